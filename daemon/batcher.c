/*
 * batcher: see batcher.h.
 */
#include "batcher.h"

#include "admission.h"
#include "batch.h"
#include "batchstate.h"
#include "clock.h"
#include "config.h"
#include "ledger.h"
#include "llm.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "stop.h"
#include "thread.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000LL
#define WAKE_MS 1000        /**< the thread looks at the stop this often */
#define SLOT_STEP_MS 20     /**< a record waits for room in admission's
			      *  queue in such steps */
#define STATE_MS 10000      /**< a state record's write, at most */
#define CALL_MS 600000      /**< one Batch API call (an upload, a download) */
#define RETRY_MAX_MS 60000  /**< the longest wait between failed tries */
#define REFUSED_PAUSE_NS (600 * 1000 * NS_PER_MS) /**< no new batch for
						     *  this long after the
						     *  API refused one */
#define FILE_MAX ((size_t)2 << 30) /**< an output file, at most */
#define SWEEP_MAX 16        /**< old state entries cleaned up at once */
#define HAND_ON_MAX 256     /**< records handed on before the inbox is
			      *  looked at again (a revoke waits) */

/* A record waiting for its batch's answer. */
struct rec {
	rd_kafka_message_t *msg; /**< owned */
	struct ledger *part;     /**< a reference */
};

/* An answer of a batch's output file. */
struct answer {
	int64_t offset;
	char *body;              /**< owned; NULL once handed on */
	size_t len;
};

enum phase {
	PHASE_OPEN,      /**< taking records */
	PHASE_CLOSED,    /**< full or old enough: to be submitted */
	PHASE_SUBMITTED, /**< created at the API: its status is asked */
	PHASE_DONE,      /**< over: records go on with their answers */
};

struct bbatch {
	struct bbatch *next;
	uint64_t seq;            /**< made after every batch of a lower one */
	enum phase phase;
	bool adopted;            /**< found in the state topic */
	bool after;              /**< not a batch: offset order's records
				   *  that go live once the batches of their
				   *  partition before them have gone on */
	bool saved;              /**< its state record is written */
	struct batchstate_entry e; /**< id, input file, range, format */
	char output_file[BATCH_ID_MAX];
	char error_file[BATCH_ID_MAX];
	struct rec *recs;        /**< waiting, in offset order */
	size_t n, cap;
	struct answer *answers;  /**< PHASE_DONE: by offset */
	size_t n_answers;
	int64_t opened_ns;       /**< PHASE_OPEN: its first record */
	int64_t next_ns;         /**< the next try or status request */
	int64_t created_at;      /**< at the API (Unix s), 0: unknown */
	unsigned tries;          /**< failed tries in a row */
};

/* What consumers tell the thread, in order. */
enum event_kind { EV_ADD, EV_REVOKE, EV_COMMIT };
struct event {
	enum event_kind kind;
	int32_t partition;
	int64_t position;        /**< EV_COMMIT */
	uint64_t seq;            /**< EV_REVOKE */
	struct ledger *part;     /**< EV_ADD */
	rd_kafka_message_t *msg; /**< EV_ADD */
	bool after;              /**< EV_ADD: BATCHER_AFTER */
};

struct batcher {
	const struct extractd_config *cfg;
	struct pipeline *pl;
	struct llm *llm;
	struct admission *admission;
	struct stop *stop;
	struct metrics *metrics;
	struct batchstate *state;
	struct batch_client *client; /**< the thread's */
	atomic_bool abort;        /**< cuts a Batch API call (the stop) */
	atomic_size_t pending;    /**< records held: inbox and batches */
	atomic_int_fast64_t refused_until_ns; /**< the API refused a batch:
						 *  none is started before */
	pthread_t thread;
	bool started;

	pthread_mutex_t lock;     /**< guards the inbox, the revoke counts
				    *  and exited */
	pthread_cond_t wake;      /**< an event came, or the stop */
	pthread_cond_t acked;     /**< revokes were done */
	struct event *inbox;
	size_t n_in, cap_in;
	uint64_t revokes_asked, revokes_done;
	bool exited;              /**< the thread gave everything up */
	size_t *held;             /**< records held, by partition */
	size_t *live;             /**< offset order: records waiting in a
				    *  consumer's held queue, by partition */
	size_t n_held;            /**< partitions in held and live */

	struct bbatch *batches;   /**< the thread's */
	uint64_t seq;             /**< the last batch's seq */
};

static struct log_limit api_limit = LOG_LIMIT_INIT;
static struct log_limit state_limit = LOG_LIMIT_INIT;
static struct log_limit file_limit = LOG_LIMIT_INIT;

struct batcher *batcher_new(const struct extractd_config *cfg,
			    struct pipeline *pl, struct llm *llm,
			    const char *api_key, struct http_share *share,
			    char *err, size_t err_size)
{
	struct batcher *b = calloc(1, sizeof(*b));
	struct batch_client_opts opts = {
		.base_url = cfg->llm.base_url,
		.api_key = api_key,
		.api_key_header = cfg->llm.api_key_header,
		.timeout_ms = CALL_MS,
		.connect_timeout_ms = cfg->llm.connect_timeout_ms,
		.max_file_bytes = FILE_MAX,
		.ca_file = *cfg->llm.ca_file ? cfg->llm.ca_file : NULL,
		.share = share,
	};

	if (!b) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	b->cfg = cfg;
	b->pl = pl;
	b->llm = llm;
	b->admission = pipeline_admission(pl);
	b->stop = pipeline_stop(pl);
	b->metrics = pipeline_metrics(pl);
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->wake, NULL);
	pthread_cond_init(&b->acked, NULL);
	opts.abort = &b->abort;
	b->client = batch_client_new(&opts, err, err_size);
	if (!b->client) {
		batcher_free(b);
		return NULL;
	}
	b->state = batchstate_new(cfg, err, err_size);
	if (!b->state) {
		batcher_free(b);
		return NULL;
	}
	return b;
}

/* Push an event; with the lock. Returns -1 when out of memory. */
static int push(struct batcher *b, const struct event *ev)
{
	if (b->n_in == b->cap_in) {
		size_t cap = b->cap_in ? 2 * b->cap_in : 64;
		struct event *p = realloc(b->inbox, cap * sizeof(*p));

		if (!p)
			return -1;
		b->inbox = p;
		b->cap_in = cap;
	}
	b->inbox[b->n_in++] = *ev;
	pthread_cond_signal(&b->wake);
	return 0;
}

/* A record is given up: its offset abandoned (never committed past; read
 * again by the partition's next reader). */
static void settle(struct batcher *b, int32_t partition)
{
	pthread_mutex_lock(&b->lock);
	if (partition >= 0 && (size_t)partition < b->n_held &&
	    b->held[partition])
		b->held[partition]--;
	pthread_mutex_unlock(&b->lock);
	atomic_fetch_sub(&b->pending, 1);
}

/* A record is given up: its offset abandoned (never committed past; read
 * again by the partition's next reader; in offset order the records
 * after it do not wait for it). */
static void give_up(struct batcher *b, struct ledger *part,
		    rd_kafka_message_t *msg)
{
	int32_t partition = msg->partition;

	pipeline_abandon(b->pl, part, msg);
	ledger_unref(part);
	settle(b, partition);
}

/* With the lock: make room for partition in the counts; -1 when out of
 * memory. */
static int counts_for(struct batcher *b, int32_t partition)
{
	size_t n = (size_t)partition + 1;
	size_t *h, *l;

	if (partition < 0)
		return -1;
	if (n <= b->n_held)
		return 0;
	h = realloc(b->held, n * sizeof(*h));
	if (h)
		b->held = h;
	l = h ? realloc(b->live, n * sizeof(*l)) : NULL;
	if (!l)
		return -1;
	b->live = l;
	memset(b->held + b->n_held, 0, (n - b->n_held) * sizeof(*h));
	memset(b->live + b->n_held, 0, (n - b->n_held) * sizeof(*l));
	b->n_held = n;
	return 0;
}

/* With the lock: count a record of partition in; -1 when out of memory. */
static int count_in(struct batcher *b, int32_t partition)
{
	if (counts_for(b, partition) < 0)
		return -1;
	b->held[partition]++;
	return 0;
}

void batcher_live(struct batcher *b, int32_t partition, int delta)
{
	pthread_mutex_lock(&b->lock);
	if (counts_for(b, partition) == 0) {
		if (delta > 0) {
			b->live[partition]++;
		} else if (b->live[partition]) {
			/* The last one went: its partition's batches may go
			 * on. */
			if (!--b->live[partition])
				pthread_cond_signal(&b->wake);
		}
	}
	pthread_mutex_unlock(&b->lock);
}

enum batcher_way batcher_route(struct batcher *b,
			       const rd_kafka_message_t *msg, int64_t lag)
{
	struct batchstate_entry e;
	bool batch, waiting = false;

	if (batchstate_find(b->state, b->cfg->kafka.input_topic,
			    msg->partition, msg->offset, &e))
		return BATCHER_BATCH;
	batch = mono_ns() >= atomic_load(&b->refused_until_ns) &&
		(b->cfg->batch.mode == CFG_BATCH_ALWAYS ||
		 lag > (int64_t)b->cfg->batch.min_backlog);
	if (batch)
		return BATCHER_BATCH;
	if (pipeline_ordered(b->pl)) {
		pthread_mutex_lock(&b->lock);
		waiting = msg->partition >= 0 &&
			  (size_t)msg->partition < b->n_held &&
			  b->held[msg->partition];
		pthread_mutex_unlock(&b->lock);
	}
	return waiting ? BATCHER_AFTER : BATCHER_LIVE;
}

void batcher_add(struct batcher *b, struct ledger *part,
		 rd_kafka_message_t *msg, bool after)
{
	struct event ev = { .kind = EV_ADD, .partition = msg->partition,
			    .part = part, .msg = msg, .after = after };
	bool exited;
	int r = -1;

	ledger_ref(part);
	atomic_fetch_add(&b->pending, 1);
	pthread_mutex_lock(&b->lock);
	exited = b->exited;
	if (!exited && count_in(b, msg->partition) == 0) {
		r = push(b, &ev);
		if (r < 0)
			b->held[msg->partition]--;
	}
	if (r < 0)
		(void)count_in(b, msg->partition); /* give_up settles it */
	pthread_mutex_unlock(&b->lock);
	if (r < 0) {
		if (!exited)
			LOG_ERROR("out of memory handing a record to the "
				  "batcher: it is read again after a restart");
		give_up(b, part, msg);
	}
}

bool batcher_holds(struct batcher *b, int32_t partition)
{
	bool holds;

	pthread_mutex_lock(&b->lock);
	holds = partition >= 0 && (size_t)partition < b->n_held &&
		b->held[partition];
	pthread_mutex_unlock(&b->lock);
	return holds;
}

bool batcher_full(struct batcher *b)
{
	return atomic_load(&b->pending) >= b->cfg->batch.max_pending;
}

size_t batcher_pending(struct batcher *b)
{
	return atomic_load(&b->pending);
}

int batcher_sync(struct batcher *b, unsigned timeout_ms, char *err,
		 size_t err_size)
{
	return batchstate_sync(b->state, timeout_ms, err, err_size);
}

void batcher_revoke(struct batcher *b,
		    const rd_kafka_topic_partition_list_t *parts,
		    unsigned timeout_ms)
{
	struct timespec until = realtime_in_ns((int64_t)timeout_ms *
					       NS_PER_MS);
	uint64_t wait_for = 0;
	int i, r = 0;

	pthread_mutex_lock(&b->lock);
	if (b->exited) {
		pthread_mutex_unlock(&b->lock);
		return;
	}
	for (i = 0; i < parts->cnt; i++) {
		int32_t p = parts->elems[i].partition;
		struct event ev = { .kind = EV_REVOKE, .partition = p,
				    .seq = b->revokes_asked + 1 };

		if (push(b, &ev) < 0) {
			LOG_ERROR("out of memory revoking a partition's "
				  "batches");
			continue;
		}
		b->revokes_asked++;
		/* Only records held need the thread to give them up before
		 * the partition goes; the rest is its own bookkeeping. */
		if (p >= 0 && (size_t)p < b->n_held && b->held[p])
			wait_for = ev.seq;
	}
	while (b->revokes_done < wait_for && !b->exited && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&b->acked, &b->lock, &until);
	if (b->revokes_done < wait_for && !b->exited)
		LOG_WARN("the batcher did not give the revoked partitions' "
			 "records up in time: their next owners may send some "
			 "again", LOG_I("partitions", parts->cnt));
	pthread_mutex_unlock(&b->lock);
}

void batcher_committed(struct batcher *b, int32_t partition,
		       int64_t position)
{
	struct event ev = { .kind = EV_COMMIT, .partition = partition,
			    .position = position };

	pthread_mutex_lock(&b->lock);
	if (!b->exited)
		(void)push(b, &ev); /* out of memory: a later commit cleans */
	pthread_mutex_unlock(&b->lock);
}

/* --- the batcher thread --------------------------------------------- */

static struct bbatch *batch_new(struct batcher *b, int32_t partition,
				const char *topic)
{
	struct bbatch *bb = calloc(1, sizeof(*bb));

	if (!bb)
		return NULL;
	bb->seq = ++b->seq;
	bb->e.partition = partition;
	snprintf(bb->e.topic, sizeof(bb->e.topic), "%s", topic);
	bb->opened_ns = mono_ns();
	return bb;
}

static void answers_free(struct bbatch *bb)
{
	size_t i;

	for (i = 0; i < bb->n_answers; i++)
		free(bb->answers[i].body);
	free(bb->answers);
	bb->answers = NULL;
	bb->n_answers = 0;
}

static void batch_free(struct bbatch *bb)
{
	answers_free(bb);
	free(bb->recs);
	free(bb);
}

static void save(struct batcher *b, struct bbatch *bb);

/* Give a batch's waiting records up and free it (unlinked). A batch
 * created and not yet in the state topic is written there first, so
 * that the next owner downloads it instead of paying again. */
static void batch_drop(struct batcher *b, struct bbatch *bb)
{
	size_t i;

	if (bb->phase == PHASE_SUBMITTED && !bb->saved)
		save(b, bb);
	for (i = 0; i < bb->n; i++)
		give_up(b, bb->recs[i].part, bb->recs[i].msg);
	batch_free(bb);
}

static void unlink_batch(struct batcher *b, struct bbatch *bb)
{
	struct bbatch **p;

	for (p = &b->batches; *p; p = &(*p)->next)
		if (*p == bb) {
			*p = bb->next;
			return;
		}
}

static int rec_push(struct bbatch *bb, struct ledger *part,
		    rd_kafka_message_t *msg)
{
	if (bb->n == bb->cap) {
		size_t cap = bb->cap ? 2 * bb->cap : 64;
		struct rec *p = realloc(bb->recs, cap * sizeof(*p));

		if (!p)
			return -1;
		bb->recs = p;
		bb->cap = cap;
	}
	bb->recs[bb->n++] = (struct rec){ .msg = msg, .part = part };
	return 0;
}

/* The batch a record goes to: the one in flight that covers it (found in
 * the state topic: adopted if it is not ours yet), else its partition's
 * open one, made if need be. NULL when out of memory. */
static struct bbatch *batch_for(struct batcher *b, const rd_kafka_message_t *m)
{
	const char *topic = b->cfg->kafka.input_topic;
	struct batchstate_entry e;
	struct bbatch *bb;

	if (batchstate_find(b->state, topic, m->partition, m->offset, &e)) {
		for (bb = b->batches; bb; bb = bb->next)
			if (bb->phase >= PHASE_SUBMITTED &&
			    !strcmp(bb->e.batch_id, e.batch_id))
				return bb;
		bb = batch_new(b, m->partition, topic);
		if (!bb)
			return NULL;
		bb->e = e;
		bb->adopted = true;
		bb->saved = true;
		bb->phase = PHASE_SUBMITTED;
		bb->next_ns = mono_ns();
		bb->next = b->batches;
		b->batches = bb;
		LOG_INFO("batch in flight found in batch.state_topic: its "
			 "records wait for it",
			 LOG_S("batch", e.batch_id),
			 LOG_I("partition", e.partition),
			 LOG_I("first", e.first), LOG_I("last", e.last));
		return bb;
	}
	for (bb = b->batches; bb; bb = bb->next) {
		if (bb->phase != PHASE_OPEN || bb->e.partition != m->partition)
			continue;
		if (bb->n < b->cfg->batch.max_requests)
			return bb;
		bb->phase = PHASE_CLOSED; /* full: submitted next */
		bb->next_ns = mono_ns();
	}
	bb = batch_new(b, m->partition, topic);
	if (!bb)
		return NULL;
	bb->next = b->batches;
	b->batches = bb;
	return bb;
}

/* Offset order: the records that go live after the batches of their
 * partition before them; the partition's newest if it is such, else a
 * new one. NULL when out of memory. */
static struct bbatch *after_for(struct batcher *b, int32_t partition)
{
	struct bbatch *bb, *newest = NULL;

	for (bb = b->batches; bb; bb = bb->next)
		if (bb->e.partition == partition &&
		    (!newest || bb->seq > newest->seq))
			newest = bb;
	if (newest && newest->after)
		return newest;
	/* Records that come for a batch after these start a new one: a
	 * partition's records go on oldest first (may_go), and a batch
	 * that took records on both sides of these would wait for them
	 * while they wait for it. */
	for (bb = b->batches; bb; bb = bb->next)
		if (bb->e.partition == partition && bb->phase == PHASE_OPEN) {
			bb->phase = PHASE_CLOSED;
			bb->next_ns = mono_ns();
		}
	bb = batch_new(b, partition, b->cfg->kafka.input_topic);
	if (!bb)
		return NULL;
	bb->after = true;
	bb->phase = PHASE_DONE;
	bb->next = b->batches;
	b->batches = bb;
	return bb;
}

static void on_add(struct batcher *b, struct ledger *part,
		   rd_kafka_message_t *msg, bool after)
{
	struct bbatch *bb = after ? after_for(b, msg->partition)
				  : batch_for(b, msg);

	if (!bb || rec_push(bb, part, msg) < 0) {
		LOG_ERROR("out of memory batching a record: it is read again "
			  "after a restart");
		give_up(b, part, msg);
		stop_request(b->stop, true);
	}
}

static void on_revoke(struct batcher *b, int32_t partition)
{
	struct bbatch **p = &b->batches;

	while (*p) {
		struct bbatch *bb = *p;

		if (bb->e.partition != partition) {
			p = &bb->next;
			continue;
		}
		*p = bb->next;
		batch_drop(b, bb);
	}
}

/* Delete a file at the API, if there is one; a failure is only logged
 * (a file left costs storage, nothing else). */
static void delete_file(struct batcher *b, const char *id)
{
	char err[512];
	enum batch_result r;
	uint64_t held;

	if (!*id)
		return;
	r = batch_file_delete(b->client, id, err, sizeof(err));
	if (r != BATCH_OK && r != BATCH_ERR_NOT_FOUND &&
	    log_limit(&file_limit, 3, 60 * 1000 * NS_PER_MS, &held))
		LOG_WARN("cannot delete a batch file", LOG_S("file", id),
			 LOG_S("error", err), LOG_U("held_back", held));
}

/* A batch is over and its records committed: delete its files, forget
 * its state. output and error may be NULL: asked for then. */
static void forget(struct batcher *b, const struct batchstate_entry *e,
		   const char *output, const char *error)
{
	struct batch_info info;
	char err[512];

	if (!output) {
		uint64_t held;

		if (batch_retrieve(b->client, e->batch_id, &info, err,
				   sizeof(err)) == BATCH_OK) {
			delete_file(b, info.output_file_id);
			delete_file(b, info.error_file_id);
		} else if (log_limit(&file_limit, 3, 60 * 1000 * NS_PER_MS,
				     &held)) {
			LOG_WARN("cannot find an old batch's files to delete "
				 "them", LOG_S("batch", e->batch_id),
				 LOG_S("error", err), LOG_U("held_back", held));
		}
	}
	if (output)
		delete_file(b, output);
	if (error)
		delete_file(b, error);
	delete_file(b, e->input_file);
	if (batchstate_drop(b->state, e, STATE_MS, err, sizeof(err)) < 0)
		LOG_WARN("cannot forget a batch in batch.state_topic: the "
			 "next owner of its partition finds it over",
			 LOG_S("batch", e->batch_id), LOG_S("error", err));
	else
		LOG_DEBUG("batch forgotten", LOG_S("batch", e->batch_id));
}

/* The group's commit passed position: batches before it are over. */
static void on_commit(struct batcher *b, int32_t partition, int64_t position)
{
	struct batchstate_entry old[SWEEP_MAX];
	struct bbatch **p = &b->batches;
	size_t i, n;

	while (*p) {
		struct bbatch *bb = *p;

		if (bb->e.partition != partition || bb->phase != PHASE_DONE ||
		    bb->n || bb->e.last >= position) {
			p = &bb->next;
			continue;
		}
		*p = bb->next;
		forget(b, &bb->e, bb->output_file, bb->error_file);
		batch_free(bb);
	}
	/* Entries of batches over before this run (a crash between the
	 * commit and the forgetting), or made by another instance. */
	n = batchstate_passed(b->state, b->cfg->kafka.input_topic, partition,
			      position, old, SWEEP_MAX);
	for (i = 0; i < n; i++) {
		struct bbatch *bb;

		for (bb = b->batches; bb; bb = bb->next)
			if (!strcmp(bb->e.batch_id, old[i].batch_id))
				break;
		if (!bb)
			forget(b, &old[i], NULL, NULL);
	}
}

/* Take the inbox and act on it, in order; acknowledge the revokes. */
static void take_inbox(struct batcher *b)
{
	struct event *evs;
	size_t i, n;

	pthread_mutex_lock(&b->lock);
	evs = b->inbox;
	n = b->n_in;
	b->inbox = NULL;
	b->n_in = b->cap_in = 0;
	pthread_mutex_unlock(&b->lock);

	/* Records and revokes in order (a partition revoked and assigned
	 * again keeps what came after); each revoke is acknowledged at
	 * once. The commits, which may call the API, come last. */
	for (i = 0; i < n; i++) {
		struct event *ev = &evs[i];

		if (ev->kind == EV_ADD) {
			on_add(b, ev->part, ev->msg, ev->after);
		} else if (ev->kind == EV_REVOKE) {
			on_revoke(b, ev->partition);
			pthread_mutex_lock(&b->lock);
			b->revokes_done = ev->seq;
			pthread_cond_broadcast(&b->acked);
			pthread_mutex_unlock(&b->lock);
		}
	}
	for (i = 0; i < n; i++)
		if (evs[i].kind == EV_COMMIT)
			on_commit(b, evs[i].partition, evs[i].position);
	free(evs);
}

/* The wait before the next try of something that failed. */
static int64_t retry_at(struct batcher *b, struct bbatch *bb)
{
	uint64_t ms = (uint64_t)b->cfg->batch.poll_ms << (bb->tries < 6
							     ? bb->tries
							     : 6);

	bb->tries++;
	return mono_ns() +
	       (int64_t)(ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS) * NS_PER_MS;
}

/* The API refused a batch (or has no Batch API): its records go to the
 * live API, and so do new records for a while. */
static void refused(struct batcher *b, struct bbatch *bb, const char *what,
		    const char *err)
{
	uint64_t held = 0;

	if (log_limit(&api_limit, 3, 60 * 1000 * NS_PER_MS, &held))
		LOG_ERROR("the Batch API refused a batch: its records, and "
			  "new ones for ten minutes, go to the live API",
			  LOG_S("step", what), LOG_S("error", err),
			  LOG_I("partition", bb->e.partition),
			  LOG_U("records", bb->n), LOG_U("held_back", held));
	atomic_store(&b->refused_until_ns, mono_ns() + REFUSED_PAUSE_NS);
	bb->phase = PHASE_DONE;
}

static void retry_later(struct batcher *b, struct bbatch *bb,
			const char *what, const char *err)
{
	uint64_t held = 0;

	bb->next_ns = retry_at(b, bb);
	if (log_limit(&api_limit, 3, 60 * 1000 * NS_PER_MS, &held))
		LOG_WARN("a Batch API call failed: tried again later",
			 LOG_S("step", what), LOG_S("error", err),
			 LOG_I("partition", bb->e.partition),
			 LOG_U("held_back", held));
}

/* Append to a growing buffer; -1 when out of memory. */
static int buf_add(char **buf, size_t *len, size_t *cap, const char *s,
		   size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 65536;
		char *p;

		while (c < *len + n + 1)
			c *= 2;
		p = realloc(*buf, c);
		if (!p)
			return -1;
		*buf = p;
		*cap = c;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/*
 * The batch's input file, one line per record whose text can be read (a
 * record that cannot gets no answer, and goes on without one: the live
 * path makes it a dead letter). Returns the JSONL (malloc'ed, *ret_len
 * bytes, *ret_lines lines), or NULL when out of memory.
 */
static char *input_file(struct batcher *b, struct bbatch *bb,
			enum cfg_llm_mode mode, size_t *ret_len,
			uint64_t *ret_lines)
{
	char *buf = NULL, id[300];
	size_t len = 0, cap = 0, i;
	uint64_t lines = 0;

	for (i = 0; i < bb->n; i++) {
		const rd_kafka_message_t *m = bb->recs[i].msg;
		struct json_object *doc = NULL;
		const char *text;
		char detail[256], *body, *line;
		size_t tlen, llen;
		int r;

		if (pipeline_text(b->cfg, m, &text, &tlen, &doc, detail,
				  sizeof(detail)) < 0)
			continue;
		body = llm_request_body(b->llm, mode, text, tlen);
		json_object_put(doc);
		snprintf(id, sizeof(id), "%s/%" PRId32 "/%" PRId64,
			 bb->e.topic, m->partition, m->offset);
		line = body ? batch_request_line(id, body, strlen(body), &llen)
			    : NULL;
		free(body);
		r = line ? buf_add(&buf, &len, &cap, line, llen) : -1;
		free(line);
		if (r < 0) {
			free(buf);
			return NULL;
		}
		lines++;
	}
	if (!buf && buf_add(&buf, &len, &cap, "", 0) < 0)
		return NULL;
	*ret_len = len;
	*ret_lines = lines;
	return buf;
}

/* Upload the batch's file and create it; write its state. */
static void submit(struct batcher *b, struct bbatch *bb)
{
	enum cfg_llm_mode mode = llm_mode(b->llm);
	struct batch_info info;
	char *data, name[400], err[1024], first[24], last[24], part[16];
	const char *meta[8];
	size_t len;
	uint64_t lines;
	enum batch_result r;

	bb->e.first = bb->recs[0].msg->offset;
	bb->e.last = bb->recs[bb->n - 1].msg->offset;
	if (!*bb->e.input_file) {
		data = input_file(b, bb, mode, &len, &lines);
		if (!data) {
			retry_later(b, bb, "write", "out of memory");
			return;
		}
		if (!lines) {
			/* No record can be asked: each goes on alone. */
			free(data);
			bb->phase = PHASE_DONE;
			return;
		}
		snprintf(name, sizeof(name), "extractd-%s-%" PRId32
			 "-%" PRId64 ".jsonl", bb->e.topic, bb->e.partition,
			 bb->e.first);
		r = batch_file_upload(b->client, name, data, len,
				      bb->e.input_file,
				      sizeof(bb->e.input_file), err,
				      sizeof(err));
		free(data);
		if (r == BATCH_ERR_RETRY) {
			*bb->e.input_file = '\0';
			retry_later(b, bb, "upload", err);
			return;
		}
		if (r != BATCH_OK) {
			*bb->e.input_file = '\0';
			refused(b, bb, "upload", err);
			return;
		}
		bb->e.count = lines;
		bb->e.mode = mode;
	}
	snprintf(first, sizeof(first), "%" PRId64, bb->e.first);
	snprintf(last, sizeof(last), "%" PRId64, bb->e.last);
	snprintf(part, sizeof(part), "%" PRId32, bb->e.partition);
	meta[0] = "extractd_topic";
	meta[1] = bb->e.topic;
	meta[2] = "extractd_partition";
	meta[3] = part;
	meta[4] = "extractd_first";
	meta[5] = first;
	meta[6] = "extractd_last";
	meta[7] = last;
	r = batch_create(b->client, bb->e.input_file, meta, 4, &info, err,
			 sizeof(err));
	if (r == BATCH_ERR_RETRY) {
		retry_later(b, bb, "create", err);
		return;
	}
	if (r != BATCH_OK) {
		delete_file(b, bb->e.input_file);
		refused(b, bb, "create", err);
		return;
	}
	snprintf(bb->e.batch_id, sizeof(bb->e.batch_id), "%s", info.id);
	bb->created_at = info.created_at;
	metrics_batch_created(b->metrics);
	bb->phase = PHASE_SUBMITTED;
	bb->tries = 0;
	bb->next_ns = mono_ns() + (int64_t)b->cfg->batch.poll_ms * NS_PER_MS;
	LOG_INFO("batch created", LOG_S("batch", bb->e.batch_id),
		 LOG_I("partition", bb->e.partition),
		 LOG_I("first", bb->e.first), LOG_I("last", bb->e.last),
		 LOG_U("requests", bb->e.count));
	save(b, bb);
}

/* Write the batch's state record (until it is written, a crash means its
 * records are sent again). */
static void save(struct batcher *b, struct bbatch *bb)
{
	char err[512];
	uint64_t held;

	if (batchstate_put(b->state, &bb->e, STATE_MS, err, sizeof(err)) == 0) {
		bb->saved = true;
		return;
	}
	if (log_limit(&state_limit, 3, 60 * 1000 * NS_PER_MS, &held))
		LOG_WARN("cannot write a batch to batch.state_topic: tried "
			 "again; until it is written a restart would send its "
			 "records again", LOG_S("batch", bb->e.batch_id),
			 LOG_S("error", err), LOG_U("held_back", held));
}

static int answer_cmp(const void *a, const void *b)
{
	int64_t x = ((const struct answer *)a)->offset;
	int64_t y = ((const struct answer *)b)->offset;

	return (x > y) - (x < y);
}

/*
 * Read an output file into the batch's answers: every line that is a 200
 * for one of its records (custom_id "TOPIC/PARTITION/OFFSET" in its
 * range). Returns -1 when out of memory.
 */
static int read_answers(struct bbatch *bb, char *data, size_t len)
{
	char prefix[300], first_err[256] = "";
	size_t plen, cap = 0, unread = 0;
	char *p = data, *end = data + len;

	answers_free(bb); /* a download tried again reads them all again */

	plen = (size_t)snprintf(prefix, sizeof(prefix), "%s/%" PRId32 "/",
				bb->e.topic, bb->e.partition);
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct batch_output o;
		char perr[256], *tail;
		long long off;

		if (!n) {
			p++;
			continue;
		}
		if (batch_output_parse(p, n, &o, perr, sizeof(perr)) < 0) {
			if (!unread++)
				snprintf(first_err, sizeof(first_err), "%s",
					 perr);
			p += n + 1;
			continue;
		}
		if (o.status == 200 && o.body &&
		    !strncmp(o.custom_id, prefix, plen)) {
			errno = 0;
			off = strtoll(o.custom_id + plen, &tail, 10);
			if (!errno && !*tail && off >= bb->e.first &&
			    off <= bb->e.last) {
				if (bb->n_answers == cap) {
					size_t c = cap ? 2 * cap : 256;
					struct answer *a = realloc(
						bb->answers, c * sizeof(*a));

					if (!a) {
						batch_output_clear(&o);
						return -1;
					}
					bb->answers = a;
					cap = c;
				}
				bb->answers[bb->n_answers++] = (struct answer){
					.offset = off,
					.body = o.body,
					.len = o.body_len,
				};
				o.body = NULL;
			}
		}
		batch_output_clear(&o);
		p += n + 1;
	}
	qsort(bb->answers, bb->n_answers, sizeof(*bb->answers), answer_cmp);
	if (unread)
		LOG_WARN("lines of a batch's output file could not be read: "
			 "their records go to the live API",
			 LOG_S("batch", bb->e.batch_id), LOG_U("lines", unread),
			 LOG_S("first", first_err));
	return 0;
}

/* Ask how the batch is; once it is over, take its answers. */
static void poll_batch(struct batcher *b, struct bbatch *bb)
{
	struct batch_info info;
	char err[1024], *data = NULL;
	size_t len = 0;
	enum batch_result r;

	r = batch_retrieve(b->client, bb->e.batch_id, &info, err, sizeof(err));
	if (r == BATCH_ERR_NOT_FOUND) {
		/* Not this account's, or gone: nothing will answer it. */
		LOG_ERROR("the Batch API does not know a batch in flight: its "
			  "records go to the live API",
			  LOG_S("batch", bb->e.batch_id),
			  LOG_I("partition", bb->e.partition),
			  LOG_S("error", err));
		bb->phase = PHASE_DONE;
		return;
	}
	if (r != BATCH_OK) {
		/* The batch may well be running (and billed): ask again. */
		retry_later(b, bb, "status", err);
		return;
	}
	bb->tries = 0;
	bb->created_at = info.created_at;
	if (!batch_status_final(info.status)) {
		bb->next_ns = mono_ns() +
			      (int64_t)b->cfg->batch.poll_ms * NS_PER_MS;
		return;
	}
	snprintf(bb->output_file, sizeof(bb->output_file), "%s",
		 info.output_file_id);
	snprintf(bb->error_file, sizeof(bb->error_file), "%s",
		 info.error_file_id);
	if (*bb->output_file) {
		r = batch_file_content(b->client, bb->output_file, &data, &len,
				       err, sizeof(err));
		if (r == BATCH_ERR_RETRY) {
			retry_later(b, bb, "download", err);
			return;
		}
		if (r != BATCH_OK) {
			LOG_ERROR("cannot download a batch's answers: its "
				  "records go to the live API",
				  LOG_S("batch", bb->e.batch_id),
				  LOG_S("error", err));
		} else if (read_answers(bb, data, len) < 0) {
			free(data);
			retry_later(b, bb, "read", "out of memory");
			return;
		}
		free(data);
	}
	delete_file(b, bb->e.input_file);
	*bb->e.input_file = '\0';
	bb->phase = PHASE_DONE;
	if (info.status == BATCH_COMPLETED)
		LOG_INFO("batch completed", LOG_S("batch", bb->e.batch_id),
			 LOG_I("partition", bb->e.partition),
			 LOG_U("answers", bb->n_answers),
			 LOG_U("requests", info.total),
			 LOG_U("failed", info.failed));
	else
		LOG_WARN("batch over without every answer: the records it did "
			 "not answer go to the live API",
			 LOG_S("batch", bb->e.batch_id),
			 LOG_S("status", batch_status_name(info.status)),
			 LOG_I("partition", bb->e.partition),
			 LOG_U("answers", bb->n_answers),
			 LOG_U("requests", bb->e.count),
			 LOG_S("errors", info.errors));
}

/* The answer for offset, taken out of the batch, or NULL. */
static char *take_answer(struct bbatch *bb, int64_t offset, size_t *ret_len)
{
	struct answer key = { .offset = offset }, *a;
	char *body;

	a = bb->n_answers ? bsearch(&key, bb->answers, bb->n_answers,
				    sizeof(*a), answer_cmp)
			  : NULL;
	if (!a || !a->body)
		return NULL;
	body = a->body;
	*ret_len = a->len;
	a->body = NULL;
	return body;
}

/* A batch that is over: its records go on to the pipeline, each with its
 * answer (or none: the live API), as admission's queue has room. */
static void hand_on(struct batcher *b, struct bbatch *bb)
{
	size_t i, j;

	for (i = 0; i < bb->n && i < HAND_ON_MAX; i++) {
		struct rec *r = &bb->recs[i];
		size_t len = 0;
		char *answer;

		if (!admission_room(b->admission) &&
		    !admission_wait_room(b->admission, SLOT_STEP_MS))
			break;
		answer = take_answer(bb, r->msg->offset, &len);
		pipeline_admit_answered(b->pl, r->part, r->msg, answer, len,
					bb->e.mode);
		ledger_unref(r->part);
		settle(b, bb->e.partition);
	}
	for (j = 0; i < bb->n; i++, j++)
		bb->recs[j] = bb->recs[i];
	bb->n = j;
}

/*
 * Whether a batch's records may go on now. In offset order, only once
 * every record of its partition before them has: those that wait in a
 * consumer's held queue (all older than any in the batcher: a record
 * goes there only while the batcher holds none of its partition) and
 * those of the partition's other batches (a consumer counts a held
 * record out only once it is in admission's queue, ahead of them). So
 * each partition's oldest record waiting is always first in admission's
 * queue, as on the live path, and the jobs waiting in the sequencer for
 * it, which may keep their slots, cannot take every slot from it.
 */
static bool may_go(struct batcher *b, const struct bbatch *bb)
{
	const struct bbatch *o;
	int32_t p = bb->e.partition;
	int64_t first;
	bool live;

	if (!bb->n)
		return false;
	if (!pipeline_ordered(b->pl))
		return true;
	pthread_mutex_lock(&b->lock);
	live = (size_t)p < b->n_held && b->live[p];
	pthread_mutex_unlock(&b->lock);
	if (live)
		return false;
	first = bb->recs[0].msg->offset;
	for (o = b->batches; o; o = o->next)
		if (o != bb && o->e.partition == bb->e.partition && o->n &&
		    o->recs[0].msg->offset < first)
			return false;
	return true;
}

/* Move a batch on as far as it can go now. */
static void step(struct batcher *b, struct bbatch *bb, int64_t now)
{
	switch (bb->phase) {
	case PHASE_OPEN:
		if (bb->n >= b->cfg->batch.max_requests ||
		    now - bb->opened_ns >=
			    (int64_t)(b->cfg->batch.max_wait_s * 1e9)) {
			bb->phase = bb->n ? PHASE_CLOSED : PHASE_DONE;
			bb->next_ns = now;
		}
		break;
	case PHASE_CLOSED:
		if (now < bb->next_ns)
			break;
		if (pipeline_paused(b->pl))
			/* Nothing new is spent while paused: look again. */
			bb->next_ns = now + (int64_t)WAKE_MS * NS_PER_MS;
		else
			submit(b, bb);
		break;
	case PHASE_SUBMITTED:
		if (!bb->saved)
			save(b, bb);
		if (now >= bb->next_ns)
			poll_batch(b, bb);
		break;
	case PHASE_DONE:
		break;
	}
	if (bb->phase == PHASE_DONE && may_go(b, bb) &&
	    !pipeline_paused(b->pl) && !stop_stopping(b->stop))
		hand_on(b, bb);
}

/* When the thread has something to do next (monotonic ns). */
static int64_t next_due(struct batcher *b, int64_t now)
{
	int64_t due = now + (int64_t)WAKE_MS * NS_PER_MS;
	int64_t wait = (int64_t)(b->cfg->batch.max_wait_s * 1e9);
	struct bbatch *bb;

	for (bb = b->batches; bb; bb = bb->next) {
		int64_t t = bb->phase == PHASE_OPEN ? bb->opened_ns + wait
			    : bb->phase == PHASE_DONE
				    ? (may_go(b, bb) && !pipeline_paused(b->pl)
					       ? now
					       : due)
				    : bb->next_ns;

		if (t < due)
			due = t;
	}
	return due;
}

/* The batches' gauges, once a turn. */
static void publish(struct batcher *b)
{
	int64_t now_s = wall_ms() / 1000, oldest = 0;
	uint64_t n = 0;
	struct bbatch *bb;

	for (bb = b->batches; bb; bb = bb->next) {
		if (bb->phase != PHASE_SUBMITTED)
			continue;
		n++;
		if (bb->created_at > 0 && now_s - bb->created_at > oldest)
			oldest = now_s - bb->created_at;
	}
	metrics_batch(b->metrics, atomic_load(&b->pending), n,
		      (uint64_t)oldest * 1000);
}

static void *batcher_main(void *arg)
{
	struct batcher *b = arg;
	struct event *evs;
	size_t i, n;

	thread_enter("batcher");
	while (!stop_stopping(b->stop)) {
		struct bbatch *bb, *next;
		int64_t now, due;

		take_inbox(b);
		now = mono_ns();
		for (bb = b->batches; bb; bb = next) {
			next = bb->next;
			step(b, bb, now);
			/* A batch of our own whose records all went on
			 * keeps only its state, until the commit passes
			 * it; its answers are done with. */
			if (bb->phase == PHASE_DONE && !bb->n && !bb->adopted)
				answers_free(bb);
			if (bb->phase == PHASE_DONE && !bb->n &&
			    !*bb->e.batch_id) {
				/* Never created: nothing to forget. */
				unlink_batch(b, bb);
				batch_free(bb);
			}
		}
		publish(b);
		due = next_due(b, mono_ns());
		pthread_mutex_lock(&b->lock);
		if (!b->n_in && !stop_stopping(b->stop) && due > mono_ns()) {
			struct timespec until = realtime_in_ns(due - mono_ns());

			pthread_cond_timedwait(&b->wake, &b->lock, &until);
		}
		pthread_mutex_unlock(&b->lock);
	}

	/* Stopping: give every record up (its batch stays in the state
	 * topic for the next run), and those that come later at once
	 * (batcher_add sees exited). */
	pthread_mutex_lock(&b->lock);
	b->exited = true;
	evs = b->inbox;
	n = b->n_in;
	b->inbox = NULL;
	b->n_in = b->cap_in = 0;
	pthread_cond_broadcast(&b->acked);
	pthread_mutex_unlock(&b->lock);
	for (i = 0; i < n; i++)
		if (evs[i].kind == EV_ADD)
			give_up(b, evs[i].part, evs[i].msg);
	free(evs);
	while (b->batches) {
		struct bbatch *bb = b->batches;

		b->batches = bb->next;
		batch_drop(b, bb);
	}
	return NULL;
}

int batcher_start(struct batcher *b, char *err, size_t err_size)
{
	int r;

	if (batchstate_start(b->state, err, err_size) < 0)
		return -1;
	r = pthread_create(&b->thread, NULL, batcher_main, b);
	if (r) {
		snprintf(err, err_size, "cannot start the batcher: %s",
			 strerror(r));
		return -1;
	}
	b->started = true;
	return 0;
}

void batcher_stop(struct batcher *b)
{
	if (!b)
		return;
	atomic_store(&b->abort, true);
	pthread_mutex_lock(&b->lock);
	pthread_cond_broadcast(&b->wake);
	pthread_mutex_unlock(&b->lock);
}

void batcher_free(struct batcher *b)
{
	if (!b)
		return;
	if (b->started) {
		batcher_stop(b);
		pthread_join(b->thread, NULL);
	}
	batchstate_free(b->state);
	batch_client_free(b->client);
	free(b->inbox);
	free(b->held);
	free(b->live);
	pthread_cond_destroy(&b->acked);
	pthread_cond_destroy(&b->wake);
	pthread_mutex_destroy(&b->lock);
	free(b);
}
