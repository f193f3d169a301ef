/*
 * ledger: see ledger.h.
 */
#include "ledger.h"

#include "clock.h"
#include "keyset.h"
#include "offsets.h"
#include "sequencer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ledger {
	pthread_mutex_t lock;     /**< guards everything below but refs */
	pthread_cond_t idle;      /**< broadcast when track has no pending */
	char *topic;              /**< set at creation */
	int32_t id;               /**< set at creation */
	ledger_store_fn *store;   /**< the owner's, with store_arg */
	void *store_arg;
	struct sequencer *seq;    /**< offset order only, else NULL */
	struct offtrack *track;
	struct keyset *busy;      /**< key order only, else NULL: the keys
				    *  with a record in flight */
	bool revoked;             /**< no longer ours: store nothing */
	bool broken;              /**< offset order: a job was abandoned, so
				    *  nothing after it may be released */
	bool releasing;           /**< offset order: a thread is producing
				    *  the sequencer's ready jobs */
	int64_t produced;         /**< the offset after the last one
				    *  produced, -1 if none */
	int64_t committed;        /**< exactly-once: the last position sent
				    *  with a committed transaction, -1 */
	atomic_uint refs;
};

struct ledger *ledger_new(ledger_store_fn *store, void *arg,
			  const char *topic, int32_t id,
			  enum ledger_order order)
{
	struct ledger *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->topic = strdup(topic);
	l->track = offtrack_new();
	l->seq = order == LEDGER_OFFSET ? seq_new() : NULL;
	l->busy = order == LEDGER_KEY ? keyset_new() : NULL;
	if (!l->topic || !l->track || (order == LEDGER_OFFSET && !l->seq) ||
	    (order == LEDGER_KEY && !l->busy)) {
		free(l->topic);
		offtrack_free(l->track);
		seq_free(l->seq);
		keyset_free(l->busy);
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->idle, NULL);
	l->id = id;
	l->store = store;
	l->store_arg = arg;
	l->produced = -1;
	l->committed = -1;
	atomic_init(&l->refs, 1);
	return l;
}

void ledger_ref(struct ledger *l)
{
	atomic_fetch_add(&l->refs, 1);
}

void ledger_unref(struct ledger *l)
{
	if (!l || atomic_fetch_sub(&l->refs, 1) != 1)
		return;
	pthread_cond_destroy(&l->idle);
	pthread_mutex_destroy(&l->lock);
	offtrack_free(l->track);
	seq_free(l->seq);
	keyset_free(l->busy);
	free(l->topic);
	free(l);
}

const char *ledger_topic(const struct ledger *l)
{
	return l->topic;
}

int32_t ledger_id(const struct ledger *l)
{
	return l->id;
}

bool ledger_ordered(const struct ledger *l)
{
	return l->seq != NULL;
}

bool ledger_keyed(const struct ledger *l)
{
	return l->busy != NULL;
}

int ledger_key_take(struct ledger *l, uint64_t hash)
{
	int r;

	pthread_mutex_lock(&l->lock);
	r = keyset_add(l->busy, hash);
	pthread_mutex_unlock(&l->lock);
	return r == 0 ? 1 : r == -EEXIST ? 0 : r;
}

void ledger_key_give(struct ledger *l, uint64_t hash)
{
	pthread_mutex_lock(&l->lock);
	keyset_remove(l->busy, hash);
	pthread_mutex_unlock(&l->lock);
}

int ledger_track(struct ledger *l, int64_t offset)
{
	int r;

	pthread_mutex_lock(&l->lock);
	r = offtrack_add(l->track, offset);
	/* The tracker took it, so the sequencer must: anything else is
	 * out of memory, and the offset is not tracked. */
	if (!r && l->seq && seq_add(l->seq, offset) < 0) {
		offtrack_abandon(l->track, offset);
		r = -ENOMEM;
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}

/* With the lock: wake a wait for idleness when nothing waits any more. */
static void maybe_idle(struct ledger *l)
{
	if (!offtrack_waiting(l->track))
		pthread_cond_broadcast(&l->idle);
}

void ledger_delivered(struct ledger *l, int64_t offset)
{
	int64_t position;

	pthread_mutex_lock(&l->lock);
	if (offtrack_done(l->track, offset, &position) == 1 && !l->revoked &&
	    l->store)
		l->store(l->store_arg, l->topic, l->id, position);
	maybe_idle(l);
	pthread_mutex_unlock(&l->lock);
}

void ledger_abandon(struct ledger *l, int64_t offset)
{
	pthread_mutex_lock(&l->lock);
	if (offtrack_abandon(l->track, offset) == 0)
		maybe_idle(l);
	pthread_mutex_unlock(&l->lock);
}

int ledger_complete(struct ledger *l, int64_t offset, void *job)
{
	int r;

	pthread_mutex_lock(&l->lock);
	r = seq_complete(l->seq, offset, job) < 0 ? -1 : 0;
	if (r < 0)
		l->broken = true;
	pthread_mutex_unlock(&l->lock);
	return r;
}

bool ledger_release_begin(struct ledger *l)
{
	bool mine;

	pthread_mutex_lock(&l->lock);
	mine = !l->releasing;
	l->releasing = true;
	pthread_mutex_unlock(&l->lock);
	return mine;
}

void *ledger_release_next(struct ledger *l, bool prev_gone, bool *broken)
{
	void *job;

	pthread_mutex_lock(&l->lock);
	if (prev_gone)
		l->broken = true;
	job = seq_pop(l->seq, NULL);
	if (!job)
		l->releasing = false;
	*broken = l->broken;
	pthread_mutex_unlock(&l->lock);
	return job;
}

bool ledger_may_produce(struct ledger *l, bool txn)
{
	bool may;

	pthread_mutex_lock(&l->lock);
	may = !l->broken && !(txn && l->revoked);
	pthread_mutex_unlock(&l->lock);
	return may;
}

void ledger_produced(struct ledger *l, int64_t offset)
{
	pthread_mutex_lock(&l->lock);
	l->produced = offset + 1;
	pthread_mutex_unlock(&l->lock);
}

bool ledger_uncommitted(struct ledger *l, int64_t *position)
{
	bool ahead;

	pthread_mutex_lock(&l->lock);
	ahead = l->produced > l->committed;
	*position = l->produced;
	pthread_mutex_unlock(&l->lock);
	return ahead;
}

void ledger_committed(struct ledger *l, int64_t position)
{
	pthread_mutex_lock(&l->lock);
	l->committed = position;
	pthread_mutex_unlock(&l->lock);
}

void ledger_revoke(struct ledger *l)
{
	pthread_mutex_lock(&l->lock);
	l->revoked = true;
	pthread_mutex_unlock(&l->lock);
}

void ledger_rewound(struct ledger *l)
{
	pthread_mutex_lock(&l->lock);
	l->revoked = true;
	l->broken = true;
	pthread_mutex_unlock(&l->lock);
}

size_t ledger_wait_idle(struct ledger *l, int64_t deadline_ns)
{
	struct timespec until = realtime_in_ns(deadline_ns - mono_ns());
	size_t left;

	pthread_mutex_lock(&l->lock);
	while (offtrack_waiting(l->track) &&
	       pthread_cond_timedwait(&l->idle, &l->lock, &until) != ETIMEDOUT)
		;
	left = offtrack_waiting(l->track);
	pthread_mutex_unlock(&l->lock);
	return left;
}
