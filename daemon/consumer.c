/*
 * consumer: see consumer.h.
 *
 * DESIGN
 * ------
 * The thread owns its rd_kafka_t, its partition table (the ledgers'
 * assignment references) and its held messages; nothing else touches
 * them, except the ledgers' store callback (store_position), which only
 * calls librdkafka (thread-safe) with the handle.
 *
 * Admission: each message needs a slot (admission.h). The loop hands
 * held messages to the pipeline, which queues them in admission for a
 * slot, while that queue has room; the workers take them from there as
 * their calls end, so this thread is woken once per half a queue, not
 * per record. While the queue is full, messages are held; when the held
 * queue is full every assigned partition is paused, and the loop waits
 * for room in short steps, polling in between so rebalances and the
 * group session are served. Pausing makes librdkafka drop what it had
 * fetched for those partitions and fetch again from the position after
 * the last message handed to us, so nothing is skipped; a message that
 * still arrives while paused joins the held queue. A revoke, a rewind
 * and the stop take the partitions' records out of admission's queue as
 * well (pipeline_drop_queued).
 *
 * Key order (output.ordering = key): at most one record of a key (per
 * partition: keys are per partition anyway) is in flight at a time, so
 * its records are produced in offset order, retries and re-asks
 * included; a record without a key waits for nothing. The keys in flight
 * live in each partition's ledger, under the ledger's lock (ledger.h):
 * this thread takes a record's key when it admits the record, and the
 * job gives it back at its end (delivery report thread, or the worker),
 * then ends in admission, which wakes this thread if it waits for a key
 * (admission_wait_ended). Admission picks the first held record whose
 * key is free and has no held record before it (the keys passed over in
 * one look are kept in a set of this thread's, so a key freed in the
 * middle of the look cannot let a later record of it pass an earlier
 * one); records of other keys pass a waiting one, and a key's own
 * records keep their order. Held records still hold no slot. Their
 * offsets are tracked as they arrive (admission goes out of offset
 * order, the tracker takes offsets in order): a record dropped unadmitted
 * (revoke, stop) is abandoned there, so the commit stops before it.
 * Progress: a held record waits only for a record of its key in flight,
 * which ends (its call is bounded, and a full held queue only pauses the
 * fetching); the first held record is always the first of its key, so
 * it goes next once that one ends. The held queue is longer in key
 * order (4 x max_in_flight), so that other keys find their way past a
 * busy one.
 *
 * Offsets: enable.auto.offset.store=false; the delivery reports store the
 * contiguous delivered prefix (ledger.h), and auto-commit commits what is
 * stored. On revoke, the callback waits (bounded) for the partitions'
 * work to be delivered, commits synchronously, then lets them go.
 *
 * Health: the loop bumps heartbeat_ns every turn (the watchdog and
 * /healthz watch it); the rebalance callback publishes the assignment's
 * size, the error and statistics callbacks whether the brokers are
 * reachable (all three are atomics, read by the HTTP and main threads).
 * The statistics callback also hands the partitions' lag to the metrics.
 */
#include "consumer.h"

#include "admission.h"
#include "batcher.h"
#include "clock.h"
#include "config.h"
#include "kafka.h"
#include "kafka_stats.h"
#include "keyset.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "producer.h"
#include "stop.h"
#include "thread.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REVOKE_WAIT_MS 10000 /**< bound on a revoke's wait, and commit */
#define SLOT_WAIT_MS 100                   /**< poll at least this often */
#define IDLE_POLL_MS 1000 /**< nothing held: a message, a rebalance, a
			    *  transaction's period or consumer_wake() end
			    *  the poll sooner */
#define HOLD_MIN 16       /**< held queue at least this long */
#define REWIND_TIMEOUT_MS 10000 /**< committed offsets and seeks */
#define TXN_TIMEOUT_MS 60000    /**< a transaction's commit, running */
#define FIRST_ASSIGN_MS 5000    /**< at shutdown: see first_assignment() */
#define KEY_WAIT_MS 10 /**< key order: a look for a new record at least
			 *  this often while every held one waits */
#define KEY_HOLD_FACTOR 4 /**< key order: held queue x max_in_flight */

/* A message waiting for room in admission's queue (in key order, or for
 * its key); in key order with its key's hash. */
struct held {
	rd_kafka_message_t *msg;
	uint64_t key; /**< keyset_hash of its key; 0: it has none */
};

struct consumer {
	struct pipeline *pl;
	const struct extractd_config *cfg; /**< the pipeline's, and the */
	struct admission *admission;        /**< parts of it the consumer */
	struct producer *producer;          /**< uses itself */
	struct metrics *metrics;
	struct stop *stop;
	unsigned index;
	rd_kafka_t *rk;
	pthread_t thread;
	bool started;

	struct ledger **parts; /**< by partition id; NULL: not ours */
	size_t n_parts;

	struct held *held;         /**< waiting for a slot (in key order,
				     *  or for their key), oldest first */
	size_t n_held, cap_held;
	size_t hold_max;           /**< pause the partitions at this many */
	bool paused;
	enum ledger_order order;   /**< the pipeline's */
	bool track_arrival;        /**< offsets tracked as records arrive
				     *  (pipeline_tracks_arrival) */
	struct batcher *batcher;   /**< batch.mode not off, else NULL */
	bool count_live;           /**< offset order with batches: the held
				     *  records are counted in the batcher
				     *  (batcher_live) */
	bool state_wait;           /**< batches: the state topic is not read
				     *  to its end since an assignment: what
				     *  comes waits, unrouted */
	rd_kafka_message_t **unrouted; /**< they wait here, in order */
	size_t n_unrouted, cap_unrouted;
	bool *bpaused;             /**< by partition: paused while the batcher
				     *  is full and holds records of it */
	size_t n_bpaused;          /**< partitions so paused */
	struct keyset *passed;     /**< key order: keys passed over in one
				     *  look at the held queue */

	atomic_int_fast64_t heartbeat_ns; /**< the loop's last turn */
	atomic_uint assigned;     /**< partitions in the assignment */
	atomic_bool brokers_down; /**< all brokers down since last contact */
	int64_t next_txn_ns;      /**< exactly-once: the next commit; 0: none */
	bool unclosed;            /**< its close did not finish in time */
	bool assigned_once;       /**< the group gave it an assignment */
};

/* Store a partition's commit position (the next offset to read) for the
 * next commit (ledger_store_fn: any thread, with the ledger's lock); it
 * only calls librdkafka, which is thread-safe. */
static void store_position(void *arg, const char *topic, int32_t partition,
			   int64_t position)
{
	struct consumer *c = arg;
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;

	list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(list, topic, partition)->offset =
		position;
	err = rd_kafka_offsets_store(c->rk, list);
	if (err)
		LOG_DEBUG("offset not stored", LOG_I("partition", partition),
			  LOG_I("offset", position),
			  LOG_S("error", rd_kafka_err2str(err)));
	rd_kafka_topic_partition_list_destroy(list);
}

/* A partition's ledger; without transactions it stores its delivered
 * prefix for auto-commit (with them the offsets go in the transaction). */
static struct ledger *new_ledger(struct consumer *c, const char *topic,
				 int32_t id, enum ledger_order order)
{
	return ledger_new(producer_transactional(c->producer) ? NULL
							      : store_position,
			  c, topic, id, order);
}

static struct ledger *table_get(struct consumer *c, int32_t id)
{
	return id >= 0 && (size_t)id < c->n_parts ? c->parts[id] : NULL;
}

static int table_put(struct consumer *c, int32_t id, struct ledger *part)
{
	if ((size_t)id >= c->n_parts) {
		size_t n = (size_t)id + 1;
		struct ledger **p = realloc(c->parts, n * sizeof(*p));
		bool *b;

		if (!p)
			return -1;
		memset(p + c->n_parts, 0, (n - c->n_parts) * sizeof(*p));
		c->parts = p;
		b = realloc(c->bpaused, n * sizeof(*b));
		if (!b)
			return -1;
		memset(b + c->n_parts, 0, (n - c->n_parts) * sizeof(*b));
		c->bpaused = b;
		c->n_parts = n;
	}
	c->parts[id] = part;
	return 0;
}

/* Pause or resume one partition for the batcher (batch_pause). */
static void bpause_set(struct consumer *c, int32_t id, bool pause)
{
	rd_kafka_topic_partition_list_t *list =
		rd_kafka_topic_partition_list_new(1);

	rd_kafka_topic_partition_list_add(list, c->cfg->kafka.input_topic, id);
	if (pause)
		rd_kafka_pause_partitions(c->rk, list);
	else
		rd_kafka_resume_partitions(c->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	c->bpaused[id] = pause;
	c->n_bpaused += pause ? 1 : -1;
	LOG_DEBUG(pause ? "batcher full: partition paused"
			: "batcher has room: partition resumed",
		  LOG_U("consumer", c->index), LOG_I("partition", id));
}

/*
 * While the batcher holds batch.max_pending records, the partitions it
 * holds records of wait (their next records would most likely join
 * them); the others go on, live. Not while all are paused anyway.
 */
static void batch_pause(struct consumer *c)
{
	bool full = batcher_full(c->batcher);
	size_t i;

	if (c->paused || (!full && !c->n_bpaused))
		return;
	for (i = 0; i < c->n_parts; i++) {
		bool want = c->parts[i] && full &&
			    batcher_holds(c->batcher, (int32_t)i);

		if (want != c->bpaused[i])
			bpause_set(c, (int32_t)i, want);
	}
}

/* Publish the assignment's size for /readyz. */
static void publish_assigned(struct consumer *c)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < c->n_parts; i++)
		n += c->parts[i] != NULL;
	atomic_store(&c->assigned, n);
}

static void set_paused(struct consumer *c, bool pause)
{
	rd_kafka_topic_partition_list_t *list = NULL;

	if (c->paused == pause)
		return;
	if (rd_kafka_assignment(c->rk, &list) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (pause)
			rd_kafka_pause_partitions(c->rk, list);
		else
			rd_kafka_resume_partitions(c->rk, list);
		rd_kafka_topic_partition_list_destroy(list);
	}
	c->paused = pause;
	if (!pause && c->n_bpaused) {
		/* Every partition runs again: batch_pause() pauses again
		 * those it must. */
		memset(c->bpaused, 0, c->n_parts * sizeof(*c->bpaused));
		c->n_bpaused = 0;
	}
	LOG_DEBUG(pause ? "no free slot: partitions paused"
			: "slots free: partitions resumed",
		  LOG_U("consumer", c->index));
}

static int held_push(struct consumer *c, rd_kafka_message_t *msg)
{
	if (c->n_held == c->cap_held) {
		size_t cap = c->cap_held ? c->cap_held * 2 : 8;
		struct held *h = realloc(c->held, cap * sizeof(*h));

		if (!h)
			return -1;
		c->held = h;
		c->cap_held = cap;
	}
	if (c->count_live)
		batcher_live(c->batcher, msg->partition, 1);
	c->held[c->n_held++] = (struct held){
		.msg = msg,
		.key = c->order == LEDGER_KEY && msg->key
			       ? keyset_hash(msg->key, msg->key_len)
			       : 0,
	};
	return 0;
}

/* Take the i-th held message out of the queue; it is still counted in
 * the batcher (count_live) until the caller has queued it. */
static rd_kafka_message_t *held_take(struct consumer *c, size_t i)
{
	rd_kafka_message_t *msg = c->held[i].msg;

	memmove(c->held + i, c->held + i + 1,
		(--c->n_held - i) * sizeof(*c->held));
	return msg;
}

/* Drop held messages of one partition (-1: all), and its records queued
 * for a slot. They hold no slot and they are fetched again by whoever
 * owns them; tracked offsets (every queued record's, and in key order
 * or with batches every held one's) are abandoned: the commit stops
 * before them. */
static void held_drop(struct consumer *c, int32_t id)
{
	size_t i, kept = 0;

	if (id >= 0) {
		struct ledger *part = table_get(c, id);

		if (part)
			pipeline_drop_queued(c->pl, &part, 1);
	} else if (c->n_parts) {
		pipeline_drop_queued(c->pl, c->parts, c->n_parts);
	}

	for (i = 0; i < c->n_held; i++) {
		rd_kafka_message_t *msg = c->held[i].msg;
		struct ledger *part;

		if (id >= 0 && msg->partition != id) {
			c->held[kept++] = c->held[i];
			continue;
		}
		if (c->count_live)
			batcher_live(c->batcher, msg->partition, -1);
		part = table_get(c, msg->partition);
		if (part && c->track_arrival)
			pipeline_abandon(c->pl, part, msg);
		else
			rd_kafka_message_destroy(msg);
	}
	c->n_held = kept;
	for (i = kept = 0; i < c->n_unrouted; i++) {
		rd_kafka_message_t *msg = c->unrouted[i];

		if (id >= 0 && msg->partition != id)
			c->unrouted[kept++] = msg;
		else
			rd_kafka_message_destroy(msg); /* not tracked yet */
	}
	c->n_unrouted = kept;
}

/*
 * Batches: before records of a partition just assigned are routed, the
 * state topic must be read to its end (batcher_sync), or a record in a
 * batch its last owner sent could be sent again. Returns 0 when it is.
 */
static int sync_state(struct consumer *c, unsigned timeout_ms)
{
	static struct log_limit limit = LOG_LIMIT_INIT;
	char err[512];
	uint64_t held;

	if (batcher_sync(c->batcher, timeout_ms, err, sizeof(err)) == 0) {
		if (c->state_wait)
			LOG_INFO("batch.state_topic read: records move on",
				 LOG_U("consumer", c->index));
		c->state_wait = false;
		return 0;
	}
	if (log_limit(&limit, 1, 30000000000LL, &held))
		LOG_ERROR("cannot read batch.state_topic to its end: the "
			  "partitions wait",
			  LOG_U("consumer", c->index), LOG_S("error", err),
			  LOG_U("held_back", held));
	c->state_wait = true;
	return -1;
}

static void on_assign(struct consumer *c,
		      rd_kafka_topic_partition_list_t *parts)
{
	bool cooperative =
		!strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE");
	rd_kafka_error_t *error = NULL;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	int i;

	for (i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &parts->elems[i];
		struct ledger *part;

		if (table_get(c, tp->partition))
			continue;
		part = new_ledger(c, tp->topic, tp->partition, c->order);
		if (!part || table_put(c, tp->partition, part) < 0) {
			ledger_unref(part);
			LOG_ERROR("out of memory on assignment");
			stop_request(c->stop, true);
			continue;
		}
		if (c->bpaused[tp->partition]) {
			/* Its state is set below, with the others'. */
			c->bpaused[tp->partition] = false;
			c->n_bpaused--;
		}
	}
	if (cooperative)
		error = rd_kafka_incremental_assign(c->rk, parts);
	else
		err = rd_kafka_assign(c->rk, parts);
	if (error) {
		LOG_ERROR("assign failed",
			  LOG_S("error", rd_kafka_error_string(error)));
		rd_kafka_error_destroy(error);
	} else if (err) {
		LOG_ERROR("assign failed",
			  LOG_S("error", rd_kafka_err2str(err)));
	}
	/* librdkafka keeps a partition's pause across its revocation (and a
	 * lost assignment): set the state of what comes back explicitly, or
	 * a partition paused when it went away is never fetched again. */
	if (c->paused)
		rd_kafka_pause_partitions(c->rk, parts);
	else
		rd_kafka_resume_partitions(c->rk, parts);
	if (c->batcher && sync_state(c, REVOKE_WAIT_MS) < 0)
		rd_kafka_pause_partitions(c->rk, parts);
	publish_assigned(c);
	c->assigned_once = true;
	atomic_store(&c->brokers_down, false); /* the group answered */
	LOG_INFO("partitions assigned", LOG_U("consumer", c->index),
		 LOG_I("count", parts->cnt));
}

/*
 * exactly-once, after an aborted transaction (its outputs are invisible to
 * read_committed readers): forget every partition's state (jobs still
 * running for them find them broken and produce nothing), drop the held
 * records and seek the assignment back to the committed offsets. Called
 * with the transaction lock held, so no old record slips into the next
 * transaction.
 */
static void rewind_to_committed(struct consumer *c)
{
	rd_kafka_topic_partition_list_t *list = NULL;
	rd_kafka_error_t *error;
	size_t i;
	int j;

	/* Every partition first, then their queued records at once: none
	 * starts meanwhile. */
	for (i = 0; i < c->n_parts; i++)
		if (c->parts[i])
			ledger_rewound(c->parts[i]);
	if (c->n_parts)
		pipeline_drop_queued(c->pl, c->parts, c->n_parts);
	for (i = 0; i < c->n_parts; i++) {
		struct ledger *part = c->parts[i];

		c->parts[i] = NULL;
		ledger_unref(part);
	}
	held_drop(c, -1);
	if (rd_kafka_assignment(c->rk, &list) || !list)
		return;
	if (rd_kafka_committed(c->rk, list, REWIND_TIMEOUT_MS)) {
		/* Without them a seek could only go to the start of every
		 * partition and redo what was committed: stop instead, and
		 * the restart reads them. */
		LOG_ERROR("cannot read the committed offsets to rewind to: "
			  "stopping", LOG_U("consumer", c->index));
		rd_kafka_topic_partition_list_destroy(list);
		stop_request(c->stop, true);
		return;
	}
	for (j = 0; j < list->cnt; j++) {
		rd_kafka_topic_partition_t *tp = &list->elems[j];
		struct ledger *part;

		if (tp->err) {
			LOG_ERROR("cannot read a committed offset to rewind "
				  "to: stopping",
				  LOG_I("partition", tp->partition),
				  LOG_S("error", rd_kafka_err2str(tp->err)));
			rd_kafka_topic_partition_list_destroy(list);
			stop_request(c->stop, true);
			return;
		}

		/* Nothing committed yet: from the start, as
		 * auto.offset.reset = earliest does. */
		if (tp->offset < 0)
			tp->offset = RD_KAFKA_OFFSET_BEGINNING;
		part = new_ledger(c, tp->topic, tp->partition,
				  LEDGER_OFFSET);
		if (!part || table_put(c, tp->partition, part) < 0) {
			ledger_unref(part);
			LOG_ERROR("out of memory rewinding");
			stop_request(c->stop, true);
		}
	}
	error = rd_kafka_seek_partitions(c->rk, list, REWIND_TIMEOUT_MS);
	if (error) {
		LOG_ERROR("cannot rewind to the committed offsets",
			  LOG_S("error", rd_kafka_error_string(error)));
		rd_kafka_error_destroy(error);
		stop_request(c->stop, true);
	}
	rd_kafka_topic_partition_list_destroy(list);
	publish_assigned(c);
	LOG_WARN("rewound to the committed offsets",
		 LOG_U("consumer", c->index));
}

/*
 * exactly-once: commit the open transaction with the offsets after what
 * each partition produced in it (released in offset order, so that is a
 * contiguous prefix), and begin the next. An abort rewinds.
 */
static void txn_commit(struct consumer *c, unsigned timeout_ms)
{
	struct producer *prod = c->producer;
	rd_kafka_topic_partition_list_t *list;
	size_t i;
	int j, r;

	list = rd_kafka_topic_partition_list_new((int)c->n_parts + 1);
	producer_txn_lock(prod);
	for (i = 0; i < c->n_parts; i++) {
		struct ledger *part = c->parts[i];
		int64_t position;

		if (part && ledger_uncommitted(part, &position))
			rd_kafka_topic_partition_list_add(
				list, ledger_topic(part), ledger_id(part))
				->offset = position;
	}
	r = list->cnt ? producer_txn_commit(prod, c->rk, list, timeout_ms) : 0;
	if (r == 0) {
		for (j = 0; j < list->cnt; j++) {
			struct ledger *part =
				table_get(c, list->elems[j].partition);

			ledger_committed(part, list->elems[j].offset);
		}
	} else if (r == 1) {
		rewind_to_committed(c);
	}
	producer_txn_unlock(prod);
	rd_kafka_topic_partition_list_destroy(list);
}

/* Batches: the positions committed, so that the batches before them are
 * forgotten (batcher_committed). */
static void tell_committed(struct consumer *c,
			   const rd_kafka_topic_partition_list_t *list)
{
	int i;

	if (!c->batcher || !list)
		return;
	for (i = 0; i < list->cnt; i++) {
		const rd_kafka_topic_partition_t *tp = &list->elems[i];

		if (!tp->err && tp->offset >= 0 &&
		    !strcmp(tp->topic, c->cfg->kafka.input_topic))
			batcher_committed(c->batcher, tp->partition,
					  tp->offset);
	}
}

/* An auto-commit's result (librdkafka's offset commit callback). */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
		      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	(void)rk;
	if (!err)
		tell_committed(opaque, offsets);
}

/*
 * Commit the stored offsets and wait for the result, at most timeout_ms
 * (librdkafka's synchronous commit has no bound: with the coordinator
 * gone it would wait for ever). Returns the error, or
 * RD_KAFKA_RESP_ERR__TIMED_OUT.
 */
static rd_kafka_resp_err_t commit_bounded(struct consumer *c,
					  unsigned timeout_ms)
{
	int64_t deadline = mono_ns() + (int64_t)timeout_ms * 1000000;
	rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
	rd_kafka_resp_err_t err;

	err = rd_kafka_commit_queue(c->rk, NULL, q, NULL, NULL);
	while (!err) {
		int64_t left = (deadline - mono_ns()) / 1000000;
		rd_kafka_event_t *ev;

		if (left <= 0) {
			err = RD_KAFKA_RESP_ERR__TIMED_OUT;
			break;
		}
		ev = rd_kafka_queue_poll(q, left < 100 ? (int)left : 100);
		atomic_store(&c->heartbeat_ns, mono_ns());
		if (ev && rd_kafka_event_type(ev) ==
				  RD_KAFKA_EVENT_OFFSET_COMMIT) {
			err = rd_kafka_event_error(ev);
			if (!err)
				tell_committed(
					c, rd_kafka_event_topic_partition_list(
						   ev));
			rd_kafka_event_destroy(ev);
			break;
		}
		if (ev)
			rd_kafka_event_destroy(ev);
	}
	rd_kafka_queue_destroy(q);
	return err;
}

/* Commit what is done now: the stored offsets, or the transaction; within
 * the revoke bound, and within the shutdown deadline once stopping. */
static void commit_now(struct consumer *c, const char *what)
{
	rd_kafka_resp_err_t err;

	if (producer_transactional(c->producer)) {
		txn_commit(c, stop_left_ms(c->stop, TXN_TIMEOUT_MS));
		return;
	}
	err = commit_bounded(c, stop_left_ms(c->stop, REVOKE_WAIT_MS));
	if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		LOG_WARN(what, LOG_S("error", rd_kafka_err2str(err)));
}

/* Wait, bounded, until no record of part is still to be delivered (an
 * abandoned one is not: its offset stays uncommitted, offsets.h). */
static void wait_idle(struct ledger *part, int64_t deadline_ns)
{
	size_t left = ledger_wait_idle(part, deadline_ns);

	if (left)
		LOG_WARN("revoke wait timed out: committing what was "
			 "delivered; the records still in flight are done "
			 "again by the partition's next owner",
			 LOG_I("partition", ledger_id(part)),
			 LOG_U("records", left));
}

/* Give up the records of parts queued for a slot, all at once. */
static void drop_queued(struct consumer *c,
			const rd_kafka_topic_partition_list_t *parts)
{
	struct ledger **list = calloc((size_t)parts->cnt + 1, sizeof(*list));
	int i;

	if (!list) {
		/* One by one, then. */
		for (i = 0; i < parts->cnt; i++) {
			struct ledger *part =
				table_get(c, parts->elems[i].partition);

			if (part)
				pipeline_drop_queued(c->pl, &part, 1);
		}
		return;
	}
	for (i = 0; i < parts->cnt; i++)
		list[i] = table_get(c, parts->elems[i].partition);
	pipeline_drop_queued(c->pl, list, (size_t)parts->cnt);
	free(list);
}

static void on_revoke(struct consumer *c,
		      rd_kafka_topic_partition_list_t *parts)
{
	bool cooperative =
		!strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE");
	bool lost = rd_kafka_assignment_lost(c->rk);
	int64_t deadline = mono_ns() +
			   (int64_t)stop_left_ms(c->stop, REVOKE_WAIT_MS) *
				   1000000;
	int i;

	/* The records queued for a slot are given up at once (none of them
	 * may start during the revoke's waits), records waiting for a batch
	 * (their next owner finds the batch), then the held records and
	 * what the batcher queued meanwhile: none was started, so none is
	 * waited for. */
	drop_queued(c, parts);
	if (c->batcher)
		batcher_revoke(c->batcher, parts,
			       stop_left_ms(c->stop, REVOKE_WAIT_MS));
	for (i = 0; i < parts->cnt; i++)
		held_drop(c, parts->elems[i].partition);
	if (!lost) {
		/* Let in-flight work of these partitions be delivered (and
		 * so stored), then commit before another member reads. */
		for (i = 0; i < parts->cnt; i++) {
			struct ledger *part =
				table_get(c, parts->elems[i].partition);

			if (part)
				wait_idle(part, deadline);
		}
		commit_now(c, "commit on revoke failed");
	} else if (producer_transactional(c->producer)) {
		/* The generation is gone: the open transaction cannot commit
		 * these offsets. Abort it; what remains ours is redone. */
		producer_txn_lock(c->producer);
		if (producer_txn_abort(c->producer,
				       stop_left_ms(c->stop,
							     TXN_TIMEOUT_MS)) == 0)
			rewind_to_committed(c);
		producer_txn_unlock(c->producer);
	}
	for (i = 0; i < parts->cnt; i++) {
		int32_t id = parts->elems[i].partition;
		struct ledger *part = table_get(c, id);

		if (!part)
			continue;
		ledger_revoke(part);
		c->parts[id] = NULL;
		ledger_unref(part);
	}
	if (cooperative) {
		rd_kafka_error_t *error =
			rd_kafka_incremental_unassign(c->rk, parts);

		if (error) {
			LOG_ERROR("unassign failed",
				  LOG_S("error", rd_kafka_error_string(error)));
			rd_kafka_error_destroy(error);
		}
	} else {
		rd_kafka_assign(c->rk, NULL);
	}
	publish_assigned(c);
	LOG_INFO(lost ? "partitions lost" : "partitions revoked",
		 LOG_U("consumer", c->index), LOG_I("count", parts->cnt));
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct consumer *c = opaque;

	(void)rk;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
		on_assign(c, parts);
	else
		on_revoke(c, parts);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason,
		     void *opaque)
{
	struct consumer *c = opaque;

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char why[512];

		rd_kafka_fatal_error(rk, why, sizeof(why));
		LOG_ERROR("fatal consumer error", LOG_S("error", why));
		stop_request(c->stop, true);
		return;
	}
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		atomic_store(&c->brokers_down, true);
	LOG_WARN("consumer error", LOG_S("error", reason));
}

/* librdkafka statistics (every statistics.interval.ms): the lag of our
 * partitions, and whether a broker is up again. Returns 0: librdkafka
 * frees json. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	struct consumer *c = opaque;
	bool up = false;

	(void)rk;
	if (kafka_stats_take(c->metrics, c->index, json, len, &up) < 0)
		LOG_DEBUG("unreadable statistics",
			  LOG_U("consumer", c->index));
	else if (up)
		atomic_store(&c->brokers_down, false);
	return 0;
}

struct kafka_props *consumer_kafka_props(const struct extractd_config *cfg)
{
	struct kafka_props *props = kafka_props_new("consumer",
						    RD_KAFKA_CONSUMER, false);
	unsigned queued = cfg->pool.max_in_flight * 20 > 1000
				  ? cfg->pool.max_in_flight * 20
				  : 1000;
	char num[24];

	if (!props)
		return NULL;
	kafka_props_default(props, "auto.offset.reset", "earliest");
	kafka_props_default(props, "auto.commit.interval.ms", "1000");
	kafka_props_default(props, "partition.assignment.strategy",
			    "cooperative-sticky");
	/* lag for the metrics */
	kafka_props_default(props, "statistics.interval.ms", "5000");
	/* Bound the prefetch: librdkafka's defaults (100000 messages per
	 * partition, 64 MiB) let a backlog alone cost ~50 MiB of RSS; a few
	 * MiB keep max_in_flight workers busy. The count must cover a second
	 * of work: librdkafka 2.0 fetches again only after a backoff of up
	 * to 1 s once the queue is over it, and the workers starve
	 * meanwhile. At most max_in_flight / 50 ms records a second. */
	snprintf(num, sizeof(num), "%u", queued);
	kafka_props_default(props, "queued.min.messages", num);
	kafka_props_default(props, "queued.max.messages.kbytes", "4096");

	kafka_props_require(props, "group.id", cfg->kafka.group);
	kafka_props_require(props, "enable.auto.offset.store", "false");
	/* Exactly-once commits offsets in the transactions. */
	kafka_props_require(props, "enable.auto.commit",
			    cfg->output.delivery == CFG_DELIVERY_EXACTLY_ONCE
				    ? "false"
				    : "true");
	kafka_props_require(props, "enable.partition.eof", "false");
	return props;
}

struct consumer *consumer_new(struct pipeline *pl, unsigned index, char *err,
			      size_t err_size)
{
	const struct extractd_config *cfg = pipeline_config(pl);
	struct kafka_props *props;
	struct consumer *c = calloc(1, sizeof(*c));
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_conf_t *conf;
	char why[512];
	rd_kafka_resp_err_t rerr;

	if (!c) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	c->pl = pl;
	c->cfg = cfg;
	c->admission = pipeline_admission(pl);
	c->producer = pipeline_producer(pl);
	c->metrics = pipeline_metrics(pl);
	c->stop = pipeline_stop(pl);
	c->index = index;
	c->order = pipeline_order(pl);
	c->track_arrival = pipeline_tracks_arrival(pl);
	c->batcher = pipeline_batcher(pl);
	c->count_live = c->batcher && pipeline_ordered(pl);
	c->hold_max = cfg->pool.max_in_flight;
	if (c->order == LEDGER_KEY)
		c->hold_max *= KEY_HOLD_FACTOR;
	if (c->hold_max < HOLD_MIN)
		c->hold_max = HOLD_MIN;
	if (c->order == LEDGER_KEY && !(c->passed = keyset_new())) {
		snprintf(err, err_size, "out of memory");
		goto fail;
	}
	props = consumer_kafka_props(cfg);
	if (!props) {
		snprintf(err, err_size, "out of memory");
		goto fail;
	}
	conf = kafka_conf_new(cfg, props, err, err_size);
	kafka_props_free(props);
	if (!conf)
		goto fail;
	rd_kafka_conf_set_opaque(conf, c);
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_stats_cb(conf, on_stats);
	if (c->batcher)
		rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
	c->rk = kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
	if (!c->rk) {
		snprintf(err, err_size, "cannot create the consumer: %s", why);
		goto fail;
	}
	conf = NULL; /* now owned by c->rk */
	rd_kafka_poll_set_consumer(c->rk);

	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, cfg->kafka.input_topic,
					  RD_KAFKA_PARTITION_UA);
	rerr = rd_kafka_subscribe(c->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (rerr) {
		snprintf(err, err_size, "cannot subscribe to '%s': %s",
			 cfg->kafka.input_topic, rd_kafka_err2str(rerr));
		goto fail;
	}
	return c;
fail:
	consumer_free(c);
	return NULL;
}

/* Track a record's offset as it arrives (key order, batches: see
 * DESIGN). Returns 0, or -1 when it was dropped. */
static int track(struct consumer *c, rd_kafka_message_t *msg)
{
	struct ledger *part = table_get(c, msg->partition);
	int r;

	if (!part) {
		/* Not (or no longer) assigned to us. */
		rd_kafka_message_destroy(msg);
		return -1;
	}
	r = ledger_track(part, msg->offset);
	if (r == -ERANGE) {
		LOG_DEBUG("offset already in flight, skipped",
			  LOG_I("partition", msg->partition),
			  LOG_I("offset", msg->offset));
		rd_kafka_message_destroy(msg);
		return -1;
	}
	if (r < 0) {
		/* Not tracked: later offsets could be committed past it. */
		LOG_ERROR("out of memory tracking a record",
			  LOG_I("offset", msg->offset));
		rd_kafka_message_destroy(msg);
		stop_request(c->stop, true);
		return -1;
	}
	return 0;
}

/* Records after msg in its partition, as far as this consumer knows. */
static int64_t lag_of(struct consumer *c, const rd_kafka_message_t *msg)
{
	int64_t lo = -1, hi = -1;

	if (rd_kafka_get_watermark_offsets(c->rk, c->cfg->kafka.input_topic,
					   msg->partition, &lo, &hi) ||
	    hi < 0)
		return 0;
	return hi - msg->offset - 1;
}

/*
 * A polled message joins the held queue, where admission takes it from;
 * or with batches, goes to the batcher (batcher_route). While the state
 * topic is not read to its end, it waits unrouted.
 */
static void handle_message(struct consumer *c, rd_kafka_message_t *msg)
{
	if (msg->err) {
		LOG_WARN("consume error",
			 LOG_S("error", rd_kafka_message_errstr(msg)));
		rd_kafka_message_destroy(msg);
		return;
	}
	if (c->batcher && c->state_wait) {
		if (c->n_unrouted == c->cap_unrouted) {
			size_t cap = c->cap_unrouted ? 2 * c->cap_unrouted
						     : 64;
			rd_kafka_message_t **p =
				realloc(c->unrouted, cap * sizeof(*p));

			if (!p) {
				rd_kafka_message_destroy(msg);
				LOG_ERROR("out of memory holding a record");
				stop_request(c->stop, true);
				return;
			}
			c->unrouted = p;
			c->cap_unrouted = cap;
		}
		c->unrouted[c->n_unrouted++] = msg;
		return;
	}
	if (c->track_arrival && track(c, msg) < 0)
		return;
	if (c->batcher) {
		enum batcher_way way = batcher_route(c->batcher, msg,
						     lag_of(c, msg));

		if (way != BATCHER_LIVE) {
			batcher_add(c->batcher, table_get(c, msg->partition),
				    msg, way == BATCHER_AFTER);
			return;
		}
	}
	if (held_push(c, msg) < 0) {
		/* Not committed: fetched again later. */
		struct ledger *part = table_get(c, msg->partition);

		LOG_ERROR("out of memory holding a record");
		stop_request(c->stop, true);
		if (part && c->track_arrival)
			pipeline_abandon(c->pl, part, msg);
		else
			rd_kafka_message_destroy(msg);
	}
}

/*
 * Key order: the first held message that may go now, its key taken: one
 * without a key, or whose key has no record in flight and no held record
 * before it. Returns its index, or -1 when every held message waits for
 * its key (or memory ran out: stopping).
 */
static long pick_keyed(struct consumer *c)
{
	size_t i;

	keyset_clear(c->passed);
	for (i = 0; i < c->n_held; i++) {
		const struct held *h = &c->held[i];
		struct ledger *part = table_get(c, h->msg->partition);
		/* The key within its partition; never 0 (an empty cell). */
		uint64_t mark = (h->key ^ ((uint64_t)h->msg->partition *
					   0x9e3779b97f4a7c15ULL)) | 1;
		int r;

		if (!part || !h->key)
			return (long)i;
		if (keyset_has(c->passed, mark))
			continue;
		r = ledger_key_take(part, h->key);
		if (r == 1)
			return (long)i;
		if (r == 0)
			r = keyset_add(c->passed, mark);
		if (r < 0) {
			LOG_ERROR("out of memory keeping key order");
			stop_request(c->stop, true);
			return -1;
		}
	}
	return -1;
}

/* Hand the next held message to the pipeline (the oldest; in key order
 * the first whose key is free), which queues it for a slot. Returns
 * false when none may go now (key order). */
static bool admit_one(struct consumer *c)
{
	long i = c->order == LEDGER_KEY ? pick_keyed(c) : 0;
	rd_kafka_message_t *msg;
	struct ledger *part;
	int32_t partition;

	if (i < 0)
		return false;
	msg = held_take(c, (size_t)i);
	partition = msg->partition;
	part = table_get(c, partition);
	if (part)
		pipeline_admit(c->pl, part, msg);
	else
		/* Not (or no longer) assigned to us. */
		rd_kafka_message_destroy(msg);
	/* Only now, once it is queued ahead of them, may the partition's
	 * records in the batcher follow it (batcher.c, may_go). */
	if (c->count_live)
		batcher_live(c->batcher, partition, -1);
	return true;
}

/* How long a poll with nothing held may wait: a message or a rebalance
 * ends it at once, the stop wakes it (consumer_wake); only a transaction
 * due to commit must not wait behind it. */
static int idle_poll_ms(const struct consumer *c)
{
	int64_t left;

	if (!c->next_txn_ns)
		return IDLE_POLL_MS;
	left = (c->next_txn_ns - mono_ns()) / 1000000 + 1;
	return left <= 0 ? 0 : left < IDLE_POLL_MS ? (int)left : IDLE_POLL_MS;
}

/*
 * One turn of admission: move held messages into admission's queue while
 * it has room (they start as slots come free: the workers whose calls
 * end take them, admission.h), pause the partitions when the held queue
 * is full and resume them when it is half empty (each pause makes
 * librdkafka fetch again, so it must not happen per record), then wait
 * for what can move: a message when nothing is held, else room in the
 * queue, or in key order when every held message waits for its key, a
 * job's end or a new message. While the API refuses us nothing starts.
 * Returns the message polled, if any.
 */
static rd_kafka_message_t *admission_turn(struct consumer *c)
{
	unsigned ended;
	bool blocked = false;
	bool paused = pipeline_paused(c->pl);

	admission_hold(c->admission, paused || stop_stopping(c->stop));
	if (paused) {
		set_paused(c, true);
		return rd_kafka_consumer_poll(c->rk, SLOT_WAIT_MS);
	}
	if (c->batcher && (c->state_wait || c->n_unrouted)) {
		size_t i, n = c->n_unrouted;

		if (c->state_wait) {
			set_paused(c, true);
			if (sync_state(c, SLOT_WAIT_MS) < 0)
				return rd_kafka_consumer_poll(c->rk,
							      SLOT_WAIT_MS);
		}
		/* Read: what waited goes on, in order. */
		c->n_unrouted = 0;
		for (i = 0; i < n; i++)
			handle_message(c, c->unrouted[i]);
	}
	/* Before the look: a key freed during it ends a job after it. */
	ended = admission_ended(c->admission);
	while (c->n_held && admission_room(c->admission)) {
		if (!admit_one(c)) {
			blocked = true;
			break;
		}
	}
	if (c->n_held >= c->hold_max)
		set_paused(c, true);
	else if (c->n_held <= c->hold_max / 2)
		set_paused(c, false);
	if (c->batcher)
		batch_pause(c);

	if (!c->n_held)
		return rd_kafka_consumer_poll(c->rk, idle_poll_ms(c));
	if (blocked) {
		/* The queue has room, and every held message waits for a
		 * record of its key in flight: a job's end frees a key, a
		 * new message may bring another. */
		rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, 0);

		if (!msg)
			admission_wait_ended(c->admission, ended, KEY_WAIT_MS);
		return msg;
	}
	/* The queue is full and messages are held: only room in it can
	 * move them. Poll (which serves the callbacks, and may hand over
	 * one more message) only when none came for SLOT_WAIT_MS. Polling
	 * every few ms would fill the held queue within one LLM latency
	 * and pause the partitions in steady state; librdkafka fetches
	 * again only up to fetch.wait.max.ms after the resume, and the
	 * slots idle meanwhile. */
	if (admission_wait_room(c->admission, SLOT_WAIT_MS))
		return NULL;
	return rd_kafka_consumer_poll(c->rk, 0);
}

/* An event of the close's queue: the last revoke runs as a rebalance
 * callback would; errors are logged. ev may be NULL. */
static void serve_close_event(struct consumer *c, rd_kafka_event_t *ev)
{
	if (!ev)
		return;
	switch (rd_kafka_event_type(ev)) {
	case RD_KAFKA_EVENT_REBALANCE:
		on_rebalance(c->rk, rd_kafka_event_error(ev),
			     rd_kafka_event_topic_partition_list(ev), c);
		break;
	case RD_KAFKA_EVENT_ERROR:
		LOG_WARN("consumer error while closing",
			 LOG_S("error", rd_kafka_event_error_string(ev)));
		break;
	default:
		break;
	}
	rd_kafka_event_destroy(ev);
}

/*
 * Close the consumer (leave the group; auto-commit commits what is
 * stored, a last revoke runs) within the shutdown deadline: the close is
 * served on our own queue, so the wait can stop. A close that does not
 * finish leaves the handle to be dropped at exit.
 */
static void close_bounded(struct consumer *c)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
	rd_kafka_error_t *error = rd_kafka_consumer_close_queue(c->rk, q);

	if (error) {
		LOG_WARN("consumer close failed",
			 LOG_S("error", rd_kafka_error_string(error)));
		rd_kafka_error_destroy(error);
		rd_kafka_queue_destroy(q);
		return;
	}
	while (!rd_kafka_consumer_closed(c->rk)) {
		unsigned left = stop_left_ms(c->stop, 100);

		if (!left) {
			LOG_WARN("the consumer did not leave its group within "
				 "shutdown.timeout_ms",
				 LOG_U("consumer", c->index));
			c->unclosed = true;
			return; /* q stays: librdkafka may still post to it */
		}
		serve_close_event(c, rd_kafka_queue_poll(q, (int)left));
		atomic_store(&c->heartbeat_ns, mono_ns());
	}
	rd_kafka_queue_destroy(q);
}

/*
 * librdkafka 2.0 aborts the process (an assert in the cooperative-sticky
 * assignor, its issue #4312, fixed in 2.3) when a consumer is closed and
 * destroyed after it joined its group and before its first assignment.
 * At shutdown, a consumer that has a member id but no assignment yet gives
 * that assignment a few seconds to come (the group's rebalance delay is
 * 3 s by default); when it does not, the consumer is left as it is: it
 * was assigned nothing, so nothing is to commit, and the group drops the
 * member after session.timeout.ms. Returns whether the consumer may be
 * closed and destroyed.
 */
static bool first_assignment(struct consumer *c)
{
	int64_t until = mono_ns() +
			(int64_t)stop_left_ms(c->stop, FIRST_ASSIGN_MS) *
				1000000;
	char *member = NULL;
	bool joined;

	if (c->assigned_once)
		return true;
	/* No member id: the group never answered a JoinGroup (no broker,
	 * or not yet), so the assignor has no state to trip on. */
	member = rd_kafka_memberid(c->rk);
	joined = member && *member;
	rd_kafka_mem_free(c->rk, member);
	if (!joined)
		return true;
	stop_step(c->stop, "waiting for a first assignment");
	while (!c->assigned_once && mono_ns() < until) {
		rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, 100);

		atomic_store(&c->heartbeat_ns, mono_ns());
		if (msg)
			rd_kafka_message_destroy(msg);
	}
	if (!c->assigned_once)
		LOG_INFO("leaving without closing the consumer: it has no "
			 "assignment yet, and librdkafka 2.0 cannot close it "
			 "then; the group drops it after session.timeout.ms",
			 LOG_U("consumer", c->index));
	return c->assigned_once;
}

static void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	struct pipeline *pl = c->pl;
	bool txn = producer_transactional(c->producer);
	int64_t txn_period = (int64_t)c->cfg->output.transaction_ms * 1000000;

	thread_enter("consumer-%u", c->index);
	if (txn)
		c->next_txn_ns = mono_ns() + txn_period;

	while (!stop_stopping(c->stop)) {
		rd_kafka_message_t *msg;

		atomic_store(&c->heartbeat_ns, mono_ns());
		msg = admission_turn(c);
		if (msg)
			handle_message(c, msg);
		if (txn && mono_ns() >= c->next_txn_ns) {
			txn_commit(c, TXN_TIMEOUT_MS);
			c->next_txn_ns = mono_ns() + txn_period;
		}
	}

	/* Stopping: admit nothing more, let the work in flight finish (the
	 * shutdown watchdog cuts the LLM calls still open at two thirds of
	 * the deadline), serving rebalances; then commit and leave, each
	 * bounded by what is left of shutdown.timeout_ms. */
	admission_hold(c->admission, true);
	held_drop(c, -1);
	stop_step(c->stop, "waiting for the records in flight");
	while (pipeline_wait_drained(pl, mono_ns() + 100000000LL) < 0 &&
	       stop_left_ms(c->stop, 1)) {
		rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, 0);

		atomic_store(&c->heartbeat_ns, mono_ns());
		if (msg)
			rd_kafka_message_destroy(msg);
	}
	if (!first_assignment(c)) {
		/* Nothing was consumed, so nothing is to commit. */
		c->unclosed = true;
		metrics_lag_forget(c->metrics, c->index);
		return NULL;
	}
	stop_step(c->stop, "final commit");
	commit_now(c, "final commit failed");
	stop_step(c->stop, "leaving the consumer group");
	close_bounded(c);
	metrics_lag_forget(c->metrics, c->index);
	return NULL;
}

int consumer_start(struct consumer *c, char *err, size_t err_size)
{
	int r;

	atomic_store(&c->heartbeat_ns, mono_ns());
	r = pthread_create(&c->thread, NULL, consumer_main, c);
	if (r) {
		snprintf(err, err_size, "cannot start a consumer thread: %s",
			 strerror(r));
		return -1;
	}
	c->started = true;
	return 0;
}

void consumer_join(struct consumer *c)
{
	if (c->started)
		pthread_join(c->thread, NULL);
	c->started = false;
}

void consumer_wake(struct consumer *c)
{
	rd_kafka_queue_t *q;

	if (!c || !c->rk)
		return;
	q = rd_kafka_queue_get_consumer(c->rk);
	if (q) {
		rd_kafka_queue_yield(q);
		rd_kafka_queue_destroy(q);
	}
}

int64_t consumer_heartbeat_ns(const struct consumer *c)
{
	return atomic_load(&c->heartbeat_ns);
}

unsigned consumer_assigned(const struct consumer *c)
{
	return atomic_load(&c->assigned);
}

bool consumer_brokers_down(const struct consumer *c)
{
	return atomic_load(&c->brokers_down);
}

void consumer_free(struct consumer *c)
{
	size_t i;

	if (!c)
		return;
	c->count_live = false; /* the batcher is gone by now */
	held_drop(c, -1);
	for (i = 0; i < c->n_parts; i++)
		ledger_unref(c->parts[i]);
	free(c->parts);
	free(c->held);
	free(c->unrouted);
	free(c->bpaused);
	keyset_free(c->passed);
	if (c->rk && !c->unclosed)
		rd_kafka_destroy(c->rk);
	/* Else destroying would wait for the close that did not finish:
	 * the handle goes with the process, which is about to exit. */
	free(c);
}
