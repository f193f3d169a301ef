/*
 * admission: see admission.h.
 */
#include "admission.h"

#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct admission {
	unsigned max;           /**< pool.max_in_flight */
	pthread_mutex_t lock;   /**< guards held, limit, ended */
	pthread_cond_t freed;   /**< a slot came free, or the limit rose */
	unsigned held;          /**< slots held */
	unsigned limit;         /**< slots there are now, 1..max */
	pthread_cond_t ended_cond; /**< a job ended */
	unsigned ended;         /**< jobs ended so far (wraps) */
	atomic_uint early;      /**< jobs whose slot went back before their
				  *  end */
};

struct admission *admission_new(unsigned max_in_flight)
{
	struct admission *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->max = max_in_flight;
	a->limit = max_in_flight;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->freed, NULL);
	pthread_cond_init(&a->ended_cond, NULL);
	atomic_init(&a->early, 0);
	return a;
}

void admission_free(struct admission *a)
{
	if (!a)
		return;
	pthread_cond_destroy(&a->freed);
	pthread_cond_destroy(&a->ended_cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

bool admission_try(struct admission *a)
{
	bool got;

	pthread_mutex_lock(&a->lock);
	got = a->held < a->limit;
	if (got)
		a->held++;
	pthread_mutex_unlock(&a->lock);
	return got;
}

bool admission_wait(struct admission *a, unsigned ms)
{
	struct timespec until = realtime_in_ns((int64_t)ms * 1000000);
	bool got;

	pthread_mutex_lock(&a->lock);
	while (a->held >= a->limit &&
	       pthread_cond_timedwait(&a->freed, &a->lock, &until) != ETIMEDOUT)
		;
	got = a->held < a->limit;
	if (got)
		a->held++;
	pthread_mutex_unlock(&a->lock);
	return got;
}

/* A slot goes back. */
static void put(struct admission *a)
{
	pthread_mutex_lock(&a->lock);
	a->held--;
	pthread_cond_signal(&a->freed);
	pthread_mutex_unlock(&a->lock);
}

void admission_cancel(struct admission *a)
{
	put(a);
}

bool admission_call_done(struct admission *a)
{
	if (atomic_fetch_add(&a->early, 1) < a->max) {
		put(a);
		return true;
	}
	atomic_fetch_sub(&a->early, 1);
	return false;
}

void admission_end(struct admission *a, bool early)
{
	if (early)
		atomic_fetch_sub(&a->early, 1);
	pthread_mutex_lock(&a->lock);
	if (!early) {
		a->held--;
		pthread_cond_signal(&a->freed);
	}
	a->ended++;
	pthread_cond_broadcast(&a->ended_cond);
	pthread_mutex_unlock(&a->lock);
}

unsigned admission_ended(struct admission *a)
{
	unsigned n;

	pthread_mutex_lock(&a->lock);
	n = a->ended;
	pthread_mutex_unlock(&a->lock);
	return n;
}

bool admission_wait_ended(struct admission *a, unsigned since, unsigned ms)
{
	struct timespec until = realtime_in_ns((int64_t)ms * 1000000);
	bool ended;

	pthread_mutex_lock(&a->lock);
	while (a->ended == since &&
	       pthread_cond_timedwait(&a->ended_cond, &a->lock, &until) !=
		       ETIMEDOUT)
		;
	ended = a->ended != since;
	pthread_mutex_unlock(&a->lock);
	return ended;
}

void admission_set_limit(struct admission *a, unsigned n)
{
	n = n < 1 ? 1 : n > a->max ? a->max : n;
	pthread_mutex_lock(&a->lock);
	if (n > a->limit)
		pthread_cond_broadcast(&a->freed);
	a->limit = n;
	pthread_mutex_unlock(&a->lock);
}

unsigned admission_held(struct admission *a)
{
	unsigned n;

	pthread_mutex_lock(&a->lock);
	n = a->held;
	pthread_mutex_unlock(&a->lock);
	return n;
}

unsigned admission_free_slots(struct admission *a)
{
	unsigned n;

	pthread_mutex_lock(&a->lock);
	n = a->held < a->limit ? a->limit - a->held : 0;
	pthread_mutex_unlock(&a->lock);
	return n;
}

unsigned admission_early(struct admission *a)
{
	return atomic_load(&a->early);
}
