/*
 * ratelimit: see ratelimit.h. One mutex guards the level and the time of
 * the last refill; the level may be negative (debt), which is what turns a
 * reservation into a wait.
 */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>

struct ratelimit {
	pthread_mutex_t lock;
	double per_ns;    /**< refill rate */
	double burst;     /**< the most the bucket holds */
	double level;     /**< available now; negative = reserved ahead */
	int64_t last_ns;  /**< when level was last refilled */
};

struct ratelimit *ratelimit_new(double per_minute, double burst,
				int64_t now_ns)
{
	struct ratelimit *rl;

	if (per_minute <= 0)
		return NULL;
	rl = calloc(1, sizeof(*rl));
	if (!rl)
		return NULL;
	pthread_mutex_init(&rl->lock, NULL);
	rl->per_ns = per_minute / 60e9;
	rl->burst = burst < 1 ? 1 : burst;
	rl->level = rl->burst;
	rl->last_ns = now_ns;
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

/* Bring level up to now; the lock is held. */
static void refill(struct ratelimit *rl, int64_t now_ns)
{
	if (now_ns > rl->last_ns) {
		rl->level += (double)(now_ns - rl->last_ns) * rl->per_ns;
		if (rl->level > rl->burst)
			rl->level = rl->burst;
		rl->last_ns = now_ns;
	}
}

int64_t ratelimit_reserve(struct ratelimit *rl, double cost, int64_t now_ns)
{
	int64_t wait = 0;

	pthread_mutex_lock(&rl->lock);
	refill(rl, now_ns);
	rl->level -= cost;
	if (rl->level < 0)
		wait = (int64_t)(-rl->level / rl->per_ns) + 1;
	pthread_mutex_unlock(&rl->lock);
	return wait;
}

void ratelimit_adjust(struct ratelimit *rl, double delta, int64_t now_ns)
{
	pthread_mutex_lock(&rl->lock);
	refill(rl, now_ns);
	rl->level -= delta;
	if (rl->level > rl->burst)
		rl->level = rl->burst;
	pthread_mutex_unlock(&rl->lock);
}
