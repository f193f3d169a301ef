/*
 * pipeline: a job's life from admission to delivery; see pipeline.h for
 * the design and who owns what.
 */
#include "pipeline.h"

#include "admission.h"
#include "answercache.h"
#include "clock.h"
#include "config.h"
#include "http.h"
#include "input.h"
#include "jsonparse.h"
#include "keyset.h"
#include "llm.h"
#include "log.h"
#include "metrics.h"
#include "ledger.h"
#include "limiter.h"
#include "pool.h"
#include "producer.h"
#include "secret.h"
#include "spend.h"
#include "stop.h"
#include "str.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum job_outcome {
	JOB_OUTPUT,      /**< a validated record for the output topic */
	JOB_DEAD_LETTER, /**< the input for the dead-letter topic */
	JOB_ABANDONED,   /**< nothing produced: done again after restart */
};

struct await;

/* A record from admission to its end; see pipeline.h for who owns it
 * when. */
struct job {
	struct pipeline *pl;
	struct ledger *part;      /**< its partition's, a reference */
	rd_kafka_message_t *msg;  /**< the input, owned */
	int64_t offset;
	int64_t consumed_ns;      /**< CLOCK_MONOTONIC when it got its slot
				    *  (extractd.latency_ms from there) */
	enum job_outcome outcome;
	const char *error;        /**< dead letter: extractd.error value */
	struct llm_result res;
	bool early;               /**< its slot went back when the LLM call
				    *  ended (admission_call_done) */
	bool cut;                 /**< a topic refused its record as too
				    *  large: the bounded dead letter */
	bool delivered;           /**< its offset was marked delivered */
	bool cached;              /**< its output came from the answer
				    *  cache: no LLM call */
	bool slotless;            /**< it holds no admission slot: queued,
				    *  or given up unstarted */
	bool counted;             /**< counted in pipeline.inflight */
	bool started;             /**< it was given a slot */
	struct admission_link link; /**< its place in admission's queue */
	char *answer;             /**< its first call's answer, from a
				    *  batch (owned), or NULL */
	size_t answer_len;
	enum cfg_llm_mode mode;   /**< the request format of answer */
	struct await *_Atomic await; /**< a worker waits for its delivery
				    *  report (pipeline.await_lock), else
				    *  NULL */
};

struct pipeline {
	const struct extractd_config *cfg;
	struct llm *llm;
	const char *api_key;      /**< secret: never logged (main's) */
	struct http_share *share;
	struct metrics *metrics;  /**< lock-free counters (metrics.h) */
	struct stop *stop;
	pipeline_msg_free_fn *msg_free; /**< frees an input message */
	struct admission *admission;
	struct limiter *limiter;  /**< pool.concurrency = adaptive, else NULL */
	struct spend *spend;      /**< the spending caps, or NULL (main's) */
	struct answercache *cache; /**< cache.entries > 0, else NULL */
	atomic_uint limit;        /**< the limit admission was last given */
	llm_observer_fn *observer; /**< every LLM call goes on to it */
	void *observer_arg;
	struct pool *pool;
	struct producer *producer;
	struct batcher *batcher;  /**< batch.mode not off, else NULL (main's) */

	pthread_mutex_t await_lock; /**< guards every job's await, and the
				      *  struct await it points to */
	pthread_mutex_t lock;     /**< guards inflight for drained */
	pthread_cond_t drained;   /**< broadcast when inflight drops to 0 */
	unsigned inflight;        /**< jobs started (or given up) and not
				    *  yet freed; queued ones are not */

	atomic_bool llm_paused;   /**< the API does not work for the
				    *  deployment: consumption waits */
	atomic_int_fast64_t llm_paused_ns; /**< since when (monotonic), 0 */
	atomic_uint_fast64_t n_abandoned; /**< jobs started and ended
					     *  undelivered (the
					     *  rest is counted in metrics) */
	atomic_int_fast64_t first_consumed_ms; /**< wall clock, 0 = none */
	atomic_int_fast64_t last_delivered_ms;
	atomic_int_fast64_t oversize_ns; /**< last oversize warning */
	atomic_uint oversize_quiet;      /**< warnings not logged since */
};

bool pipeline_ordered(const struct pipeline *pl)
{
	return pl->cfg->output.ordering == CFG_ORDER_OFFSET ||
	       pl->cfg->output.delivery == CFG_DELIVERY_EXACTLY_ONCE;
}

enum ledger_order pipeline_order(const struct pipeline *pl)
{
	if (pipeline_ordered(pl))
		return LEDGER_OFFSET;
	return pl->cfg->output.ordering == CFG_ORDER_KEY ? LEDGER_KEY
							 : LEDGER_COMPLETION;
}

#define QUEUE_WAIT_MS 10  /**< one wait for producer queue space */
#define STOP_WAIT_NS (2LL * 1000000000) /**< at shutdown, a record that
					  *  cannot move this long is left */
#define OVERSIZE_LOG_NS 1000000000LL /**< at most one such warning */
#define DEAD_LOG_BURST 10                 /**< dead-letter lines... */
#define DEAD_LOG_NS (10LL * 1000000000)   /**< ...per this period */
#define CUT_HEADERS 8192 /**< input header bytes a bounded dead letter
			   *  carries, at most */
#define OUTPUT_JSON_DEPTH 64 /**< an output's nesting, at most: as deep as
			       *  llm.c takes answers */
#define HEADER_FRAMING 16 /**< bytes a header takes besides its name and
			    *  value, about */

#define QUEUE_MIN 16 /**< records queued for a slot: at least this many */

static void release(struct pipeline *pl, struct job *job);

/* How many records may wait for a slot: enough that a consumer refills
 * the queue once per half of it, not once per record. */
static size_t queue_max(const struct extractd_config *cfg)
{
	return cfg->pool.max_in_flight > QUEUE_MIN ? cfg->pool.max_in_flight
						   : QUEUE_MIN;
}

/* The end of a job: free it, give its slot back, wake a drain wait. A
 * job that was not delivered gives its offset up (ledger_abandon):
 * nothing waits for it, and it is never committed past. In key order a
 * delivered job gives its key back (before admission_end, which wakes a
 * consumer waiting for a key); an undelivered one keeps it, so nothing
 * of its key passes it (that only happens when stopping). */
static void job_free(struct job *job)
{
	struct pipeline *pl = job->pl;
	struct ledger *part = job->part;
	const rd_kafka_message_t *msg = job->msg;

	if (!job->delivered) {
		if (job->started)
			atomic_fetch_add(&pl->n_abandoned, 1);
		ledger_abandon(part, job->offset);
	} else if (ledger_keyed(part) && msg->key) {
		ledger_key_give(part, keyset_hash(msg->key, msg->key_len));
	}
	pl->msg_free(job->msg);
	free(job->answer);
	llm_result_clear(&job->res);
	ledger_unref(part);
	if (!job->slotless)
		admission_end(pl->admission, job->early);
	if (job->counted) {
		metrics_inflight_add(pl->metrics, -1);
		pthread_mutex_lock(&pl->lock);
		if (--pl->inflight == 0)
			pthread_cond_broadcast(&pl->drained);
		pthread_mutex_unlock(&pl->lock);
	}
	free(job);
}

/* A job for msg of part (a reference taken), holding no slot; NULL
 * when out of memory. */
static struct job *job_new(struct pipeline *pl, struct ledger *part,
			   rd_kafka_message_t *msg)
{
	struct job *job = calloc(1, sizeof(*job));

	if (!job)
		return NULL;
	job->pl = pl;
	job->part = part;
	ledger_ref(part);
	job->msg = msg;
	job->offset = msg->offset;
	job->slotless = true;
	return job;
}

/* Count a job in flight: started, or given up (the drain waits for it
 * to leave the sequencer). */
static void job_count(struct job *job)
{
	struct pipeline *pl = job->pl;

	job->counted = true;
	pthread_mutex_lock(&pl->lock);
	pl->inflight++;
	pthread_mutex_unlock(&pl->lock);
	metrics_inflight_add(pl->metrics, 1);
}

/* The job a queue link is in. */
static struct job *job_of(const struct admission_link *link)
{
	return (struct job *)((const char *)link - offsetof(struct job, link));
}

/* A queued job was given a slot: it is counted in flight. */
static struct job *job_started(struct admission_link *link)
{
	struct job *job = job_of(link);

	job->slotless = false;
	job->started = true;
	job->consumed_ns = mono_ns();
	job_count(job);
	return job;
}

/* Give up a job that holds no slot: in offset order it takes its place
 * in the sequencer, and the order breaks there (release). */
static void job_give_up(struct job *job)
{
	job->slotless = true;
	job->outcome = JOB_ABANDONED;
	if (!job->counted)
		job_count(job);
	release(job->pl, job);
}

/* A started job to the pool's queue, for the next free worker (the
 * queue holds only started jobs, each with a slot: it is never full). */
static void submit(struct pipeline *pl, struct job *job)
{
	if (pool_submit(pl->pool, job) < 0) {
		/* The pool is stopping: the record is done after restart
		 * (in offset order, its turn must still pass). */
		job->outcome = JOB_ABANDONED;
		release(pl, job);
	}
}

/* admission_start_fn: a queued job has its slot: to a worker. */
static void job_start(struct admission_link *link, void *arg)
{
	submit(arg, job_started(link));
}

/* Make a record's job and queue it for a slot; tracked says its offset
 * is in the ledger already. Takes msg and answer. */
static int admit(struct pipeline *pl, struct ledger *part,
		 rd_kafka_message_t *msg, bool tracked, char *answer,
		 size_t answer_len, enum cfg_llm_mode mode)
{
	struct job *job;
	int64_t first = 0;
	int r;

	r = tracked ? 0 : ledger_track(part, msg->offset);
	if (r < 0 && r != -ERANGE) {
		/* Out of memory: not tracked, so later offsets could be
		 * committed past it. Stop; nothing past it is committed. */
		LOG_ERROR("out of memory tracking a record",
			  LOG_I("offset", msg->offset));
		pl->msg_free(msg);
		free(answer);
		stop_request(pl->stop, true);
		return -1;
	}
	if (r < 0) {
		/* Already in flight (fetched again after a pause or a
		 * rebalance): the running job covers it. */
		LOG_DEBUG("offset already in flight, skipped",
			  LOG_I("partition", ledger_id(part)),
			  LOG_I("offset", msg->offset));
		pl->msg_free(msg);
		free(answer);
		return -1;
	}

	job = job_new(pl, part, msg);
	if (!job) {
		/* Out of memory: stop; the offset stays uncommitted. */
		LOG_ERROR("out of memory admitting a record");
		pipeline_abandon(pl, part, msg);
		free(answer);
		stop_request(pl->stop, true);
		return -1;
	}
	job->answer = answer;
	job->answer_len = answer_len;
	job->mode = mode;
	atomic_compare_exchange_strong(&pl->first_consumed_ms, &first,
				       wall_ms());
	LOG_DEBUG("record consumed", LOG_I("partition", ledger_id(part)),
		  LOG_I("offset", job->offset));
	admission_queue(pl->admission, &job->link);
	return 0;
}

int pipeline_admit(struct pipeline *pl, struct ledger *part,
		   rd_kafka_message_t *msg)
{
	return admit(pl, part, msg, pipeline_tracks_arrival(pl), NULL, 0,
		     CFG_MODE_AUTO);
}

void pipeline_abandon(struct pipeline *pl, struct ledger *part,
		      rd_kafka_message_t *msg)
{
	struct job *job;

	if (!ledger_ordered(part) || !(job = job_new(pl, part, msg))) {
		if (ledger_ordered(part)) {
			/* The sequencer still waits for it: nothing after
			 * it can be released any more. */
			LOG_ERROR("out of memory giving a record up");
			stop_request(pl->stop, true);
		}
		ledger_abandon(part, msg->offset);
		pl->msg_free(msg);
		return;
	}
	/* In offset order its place in the sequencer must be taken, or the
	 * records after it would wait for it for ever. */
	job_give_up(job);
}

struct parts {
	struct ledger *const *parts;
	size_t n;
};

static bool queued_of(const struct admission_link *link, void *arg)
{
	const struct job *job = job_of(link);
	const struct parts *p = arg;
	size_t i;

	if (!p->parts)
		return true;
	for (i = 0; i < p->n; i++)
		if (job->part == p->parts[i])
			return true;
	return false;
}

void pipeline_drop_queued(struct pipeline *pl, struct ledger *const *parts,
			  size_t n)
{
	struct parts p = { parts, n };
	struct admission_link *l =
		admission_remove(pl->admission, queued_of, &p);

	while (l) {
		struct admission_link *next = l->next;

		job_give_up(job_of(l));
		l = next;
	}
}

int pipeline_admit_answered(struct pipeline *pl, struct ledger *part,
			    rd_kafka_message_t *msg, char *answer,
			    size_t answer_len, enum cfg_llm_mode mode)
{
	return admit(pl, part, msg, true, answer, answer_len, mode);
}

bool pipeline_tracks_arrival(const struct pipeline *pl)
{
	return pl->cfg->output.ordering == CFG_ORDER_KEY ||
	       pl->cfg->batch.mode != CFG_BATCH_OFF;
}

static void llm_paused_changed(void *arg, enum llm_fault fault, const char *reason)
{
	struct pipeline *pl = arg;
	int64_t since = atomic_load(&pl->llm_paused_ns);

	metrics_llm_pause(pl->metrics, fault);
	if (fault == LLM_FAULT_NONE) {
		atomic_store(&pl->llm_paused_ns, 0);
		atomic_store(&pl->llm_paused, false);
		admission_hold(pl->admission,
			       stop_stopping(pl->stop) || pipeline_paused(pl));
		LOG_INFO("the LLM API answers again: consumption resumed",
			 LOG_D("paused_s",
			       since ? (double)(mono_ns() - since) / 1e9 : 0.0,
			       1));
		return;
	}
	if (!since)
		atomic_store(&pl->llm_paused_ns, mono_ns());
	atomic_store(&pl->llm_paused, true);
	LOG_ERROR("the LLM API does not work for this deployment: consumption "
		  "paused, the API is probed until it answers; no record is "
		  "dead-lettered for this",
		  LOG_S("fault", llm_fault_name(fault)),
		  LOG_S("reason", reason));
}

static void llm_mode_found(void *arg, enum cfg_llm_mode mode, const char *refused)
{
	struct pipeline *pl = arg;

	metrics_llm_mode(pl->metrics, mode);
	if (refused)
		LOG_WARN("the LLM server refuses the request formats before "
			 "this one: using the first it takes",
			 LOG_S("mode", cfg_mode_name(mode)),
			 LOG_S("configured", cfg_mode_name(pl->cfg->llm.mode)),
			 LOG_S("refused", refused));
	else
		LOG_INFO("the LLM server takes the request format",
			 LOG_S("mode", cfg_mode_name(mode)),
			 LOG_S("configured",
			       cfg_mode_name(pl->cfg->llm.mode)));
}

static void *worker_init(void *arg, unsigned index)
{
	struct pipeline *pl = arg;
	char err[256];
	struct llm_worker *w;

	w = llm_worker_new(pl->llm, pl->api_key, pl->share,
			   (uint64_t)mono_ns() ^ ((uint64_t)index << 32),
			   err, sizeof(err));
	if (!w)
		LOG_ERROR("cannot set up a worker", LOG_S("error", err));
	return w;
}

static void worker_fini(void *worker)
{
	llm_worker_free(worker);
}

/* Wait on cond (with mutex held) until it is signalled or ms pass. */
static void timed_wait(pthread_cond_t *cond, pthread_mutex_t *mutex, int ms)
{
	struct timespec until = realtime_in_ns((int64_t)ms * 1000000);

	pthread_cond_timedwait(cond, mutex, &until);
}

static bool too_large(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
	       err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

/* The record a job becomes: where it goes, what it weighs, its headers.
 * Values and keys are produced without copies: they live in the job (the
 * LLM's output, the input message) until its delivery report. */

static enum producer_dest job_dest(const struct job *job)
{
	return job->outcome == JOB_OUTPUT ? PRODUCER_OUTPUT : PRODUCER_DLQ;
}

static const char *job_topic(const struct job *job)
{
	return producer_topic(job->pl->producer, job_dest(job));
}

static size_t input_bytes(const struct job *job)
{
	return job->msg->payload ? job->msg->len : 0;
}

static size_t key_bytes(const struct job *job)
{
	return job->msg->key ? job->msg->key_len : 0;
}

/* Whether an input header is carried: names extractd.* are ours, and
 * ours replace them. */
static bool carried_header(const char *name)
{
	return strncmp(name, "extractd.", 9) != 0;
}

/*
 * Put the input's headers on the job's record, unchanged and in their
 * order, but for the extractd.* ones (ours replace them). A bounded dead
 * letter carries them while they fit in CUT_HEADERS bytes. Returns about
 * how many bytes they take (h NULL: only count).
 */
static size_t carry_headers(const struct job *job, rd_kafka_headers_t *h)
{
	const rd_kafka_headers_t *in = producer_input_headers(job->msg);
	const char *name;
	const void *value;
	size_t i, size, bytes = 0;

	for (i = 0; in && !rd_kafka_header_get_all(in, i, &name, &value,
						   &size); i++) {
		size_t n = strlen(name) + size + HEADER_FRAMING;

		if (!carried_header(name))
			continue;
		if (job->cut && bytes + n > CUT_HEADERS)
			break;
		bytes += n;
		if (h)
			rd_kafka_header_add(h, name, -1, value,
					    (ssize_t)size);
	}
	return bytes;
}

/* About how many bytes the job's record takes on the wire: value, key,
 * headers. */
static size_t record_bytes(const struct job *job)
{
	const struct llm_result *res = &job->res;
	size_t value = input_bytes(job), key = key_bytes(job);
	size_t headers = 512 + carry_headers(job, NULL); /* source, numbers,
							   * names, framing */

	if (job->outcome == JOB_OUTPUT)
		return strlen(res->output) + key + strlen(res->model) + headers;
	if (job->cut) {
		value = value < PRODUCER_CUT_VALUE ? value : PRODUCER_CUT_VALUE;
		key = key < PRODUCER_CUT_KEY ? key : PRODUCER_CUT_KEY;
	}
	headers += strlen(job->error) + strlen(res->detail) +
		   (res->answer ? strlen(res->answer) : 0);
	return value + key + headers;
}

/* How many of the len bytes at s fit in max without cutting a UTF-8
 * sequence in two (a reader decoding a cut value still can). */
static size_t cut_len(const char *s, size_t len, size_t max)
{
	size_t n = max;

	if (len <= max)
		return len;
	while (n > 0 && max - n < 3 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return ((unsigned char)s[n] & 0xc0) == 0x80 ? max : n;
}

static void add_header(rd_kafka_headers_t *h, const char *name,
		       const char *value)
{
	rd_kafka_header_add(h, name, -1, value, -1);
}

static void add_number(rd_kafka_headers_t *h, const char *name,
		       uint64_t value)
{
	char text[STR_U64_SIZE];

	rd_kafka_header_add(h, name, -1, text, (ssize_t)str_u64(text, value));
}

/* What a record's calls cost at llm.price (a Batch API answer's tokens
 * at llm.price.batch_factor of it), -1 without a price. */
static double job_cost(const struct job *job)
{
	const struct extractd_config *cfg = job->pl->cfg;
	const struct llm_result *res = &job->res;

	if (!cfg_priced(cfg))
		return -1;
	return spend_cost_batched(&cfg->llm.price, res->prompt_tokens,
				  res->cached_tokens, res->completion_tokens,
				  res->batch_prompt_tokens,
				  res->batch_cached_tokens,
				  res->batch_completion_tokens);
}

/* The tokens of every call made for the record, by kind, and their cost:
 * on outputs and dead letters alike (the calls were paid for). */
static void add_usage(rd_kafka_headers_t *h, const struct job *job)
{
	const struct llm_result *res = &job->res;
	double cost = job_cost(job);
	char text[32];

	add_number(h, "extractd.tokens.prompt", res->prompt_tokens);
	add_number(h, "extractd.tokens.completion", res->completion_tokens);
	add_number(h, "extractd.tokens.cached", res->cached_tokens);
	add_number(h, "extractd.tokens.reasoning", res->reasoning_tokens);
	if (cost < 0)
		return;
	spend_format(cost, text, sizeof(text));
	add_header(h, "extractd.cost_usd", text);
}

/* extractd.source: TOPIC/PARTITION/OFFSET of the input record (a
 * consumed record's partition and offset are never negative). */
static void add_source(rd_kafka_headers_t *h, const struct job *job)
{
	const char *topic = ledger_topic(job->part);
	char text[512];
	size_t n = str_copy(text, sizeof(text) - 2 * STR_U64_SIZE - 2, topic);

	text[n++] = '/';
	n += str_u64(text + n, (uint64_t)ledger_id(job->part));
	text[n++] = '/';
	n += str_u64(text + n, (uint64_t)job->offset);
	rd_kafka_header_add(h, "extractd.source", -1, text, (ssize_t)n);
}

static rd_kafka_headers_t *job_headers(const struct job *job)
{
	const struct llm_result *res = &job->res;
	rd_kafka_headers_t *h = rd_kafka_headers_new(16);
	char text[LLM_ANSWER_MAX + 1];

	carry_headers(job, h);
	add_source(h, job);
	add_number(h, "extractd.attempts", res->attempts);
	if (res->batched)
		add_header(h, "extractd.batch", "true");
	if (job->outcome == JOB_OUTPUT) {
		add_header(h, "extractd.model", res->model);
		if (*res->served_model)
			add_header(h, "extractd.model.served",
				   res->served_model);
		add_number(h, "extractd.latency_ms",
			   (uint64_t)(mono_ns() - job->consumed_ns) /
				   1000000);
		add_usage(h, job);
		if (job->cached)
			add_header(h, "extractd.cached", "true");
		return h;
	}
	add_usage(h, job);
	add_header(h, "extractd.error", job->error);
	/* An API error body may echo the request (its Authorization
	 * header), an answer anything: neither leaves unredacted, and
	 * both keep their bounds. */
	secret_redact(res->detail, strlen(res->detail), text, LLM_DETAIL_MAX);
	add_header(h, "extractd.error.detail", text);
	if (res->answer) {
		secret_redact(res->answer, strlen(res->answer), text,
			      sizeof(text));
		add_header(h, "extractd.error.answer", text);
	}
	if (job->cut && input_bytes(job) > PRODUCER_CUT_VALUE)
		add_number(h, "extractd.original_bytes", input_bytes(job));
	return h;
}

/*
 * Hand the job's record to the producer, once (producer_send), the job
 * as the opaque of its delivery report: the output, the dead letter, or
 * with job->cut the bounded dead letter. Returns as producer_send() does,
 * and -EFBIG when the record is as large as one the broker refused for
 * that topic before; a permanent error is logged and stops extractd.
 */
static int send_record(struct job *job)
{
	struct pipeline *pl = job->pl;
	bool output = job->outcome == JOB_OUTPUT;
	const char *value = output ? job->res.output : job->msg->payload;
	size_t len = output ? strlen(job->res.output) : input_bytes(job);
	size_t key_len = key_bytes(job);
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	int r;

	if (!job->cut &&
	    producer_too_large(pl->producer, job_dest(job), record_bytes(job)))
		return -EFBIG;
	if (job->cut) {
		len = cut_len(value, len, PRODUCER_CUT_VALUE);
		key_len = cut_len(job->msg->key, key_len, PRODUCER_CUT_KEY);
	}
	r = producer_send(pl->producer, job_dest(job), value, len,
			  job->msg->key, key_len, job_headers(job), job, &err);
	if (r == -EMSGSIZE && job->cut) {
		LOG_ERROR("a bounded dead letter is larger than "
			  "kafka.properties message.max.bytes allows: set it "
			  "to at least 65536",
			  LOG_S("topic", job_topic(job)),
			  LOG_U("bytes", record_bytes(job)));
		r = -EIO;
	} else if (r == -EIO) {
		LOG_ERROR("produce failed", LOG_S("topic", job_topic(job)),
			  LOG_I("source_offset", job->offset),
			  LOG_S("error", rd_kafka_err2str(err)));
	} else if (r == -ECANCELED) {
		LOG_DEBUG("produce refused until the transaction aborts",
			  LOG_I("source_offset", job->offset));
	}
	if (r == -EIO)
		stop_request(pl->stop, true);
	return r;
}

/* A warning about a record too large for its topic, at most every
 * OVERSIZE_LOG_NS; the ones left out are counted in the next. */
static void log_oversize(struct job *job, const char *msg, size_t bytes,
			 const char *why)
{
	struct pipeline *pl = job->pl;
	int64_t now = mono_ns(), last = atomic_load(&pl->oversize_ns);

	if (last && now - last < OVERSIZE_LOG_NS) {
		atomic_fetch_add(&pl->oversize_quiet, 1);
		return;
	}
	if (!atomic_compare_exchange_strong(&pl->oversize_ns, &last, now)) {
		atomic_fetch_add(&pl->oversize_quiet, 1);
		return;
	}
	LOG_WARN(msg, LOG_S("topic", job_topic(job)),
		 LOG_I("source_partition", ledger_id(job->part)),
		 LOG_I("source_offset", job->offset), LOG_U("bytes", bytes),
		 LOG_S("why", why),
		 LOG_U("not_logged", atomic_exchange(&pl->oversize_quiet, 0)));
}

/* Put s after the len bytes of buf (size bytes), cut where it must be,
 * not inside a UTF-8 sequence. */
static void append_cut(char *buf, size_t len, size_t size, const char *s)
{
	size_t n = strlen(s);

	if (n > size - 1 - len) {
		n = size - 1 - len;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(buf + len, s, n);
	buf[len + n] = '\0';
}

/*
 * The job's record (bytes on the wire) is larger than its topic takes
 * (why): make it the bounded dead letter (producer.h), which every topic
 * takes. An output becomes a dead letter output_too_large; a dead letter
 * keeps its kind. Either way extractd.source points at the whole input.
 */
static void make_bounded(struct job *job, size_t bytes, const char *why)
{
	struct llm_result *res = &job->res;
	const char *topic = job_topic(job);
	size_t len = job->msg->payload ? job->msg->len : 0;
	char detail[LLM_DETAIL_MAX], cut[160] = "";

	log_oversize(job, "record too large for its topic: a bounded dead "
		     "letter replaces it", bytes, why);
	if (len > PRODUCER_CUT_VALUE)
		snprintf(cut, sizeof(cut),
			 "; value cut to at most %d of its %zu bytes",
			 PRODUCER_CUT_VALUE, len);
	if (job->outcome == JOB_OUTPUT) {
		snprintf(detail, sizeof(detail),
			 "the output of %zu bytes is too large for topic %s "
			 "(%s)%s; the input is at extractd.source",
			 bytes, topic, why, cut);
		job->outcome = JOB_DEAD_LETTER;
		job->error = "output_too_large";
	} else {
		int n = snprintf(detail, sizeof(detail),
				 "the dead letter of %zu bytes is too large "
				 "for topic %s (%s)%s; the input is at "
				 "extractd.source; ",
				 bytes, topic, why, cut);

		if (n > 0 && (size_t)n < sizeof(detail))
			append_cut(detail, (size_t)n, sizeof(detail),
				   res->detail);
	}
	memcpy(res->detail, detail, sizeof(res->detail));
	job->cut = true;
}

/* Stop on a record the topic refused that extractd cannot replace in
 * its place: say what to change. The record is not committed. */
static void refused_fatal(struct job *job, size_t bytes,
			  rd_kafka_resp_err_t err)
{
	struct pipeline *pl = job->pl;

	if (job->cut)
		LOG_ERROR("the topic refused even a bounded dead letter as too "
			  "large: give it a max.message.bytes of at least "
			  "65536 (Kafka's default is 1048588); the record is "
			  "not committed and is done again after the restart",
			  LOG_S("topic", job_topic(job)),
			  LOG_I("source_partition", ledger_id(job->part)),
			  LOG_I("source_offset", job->offset),
			  LOG_U("bytes", bytes),
			  LOG_S("error", rd_kafka_err2str(err)));
	else
		LOG_ERROR("the topic refused a record of at most 64 KiB as too "
			  "large: its max.message.bytes is below 64 KiB, or "
			  "below kafka.properties batch.size if that was "
			  "raised; give the topic at least 65536, or set "
			  "kafka.properties message.max.bytes to the topic's "
			  "limit so that extractd replaces such records before "
			  "producing them; the record is not committed and is "
			  "done again after the restart",
			  LOG_S("topic", job_topic(job)),
			  LOG_I("source_partition", ledger_id(job->part)),
			  LOG_I("source_offset", job->offset),
			  LOG_U("bytes", bytes),
			  LOG_S("error", rd_kafka_err2str(err)));
	stop_request(pl->stop, true);
}

/*
 * The broker refused a record as too large and no worker awaits its
 * report to replace it in its place (release_one): with transactions the
 * transaction fails and is aborted at its commit; the size is remembered,
 * so the record, done again after the rewind, is replaced before it is
 * produced. At shutdown it is left for the next run. Otherwise (a record
 * of at most PRODUCER_SAFE_BYTES, which is never awaited) it cannot be
 * replaced in order: stop. The caller ends the job.
 */
static void refused_late(struct job *job, rd_kafka_resp_err_t err)
{
	struct pipeline *pl = job->pl;
	size_t bytes = record_bytes(job);
	bool big = !job->cut && bytes > PRODUCER_SAFE_BYTES;

	if (big)
		producer_refused(pl->producer, job_dest(job), bytes);
	if (big && producer_transactional(pl->producer))
		log_oversize(job, "record too large for its topic: the "
			     "transaction aborts, and the record is done "
			     "again as a bounded dead letter", bytes,
			     rd_kafka_err2str(err));
	else if (big && stop_stopping(pl->stop))
		log_oversize(job, "record too large for its topic at "
			     "shutdown: it is done again after the restart",
			     bytes, rd_kafka_err2str(err));
	else
		refused_fatal(job, bytes, err);
}

/* A delivered dead letter, at warn level: at most DEAD_LOG_BURST lines
 * per DEAD_LOG_NS, the next one saying how many were held back (the
 * metrics count them all). */
static void log_dead_letter(const struct job *job)
{
	static struct log_limit limit = LOG_LIMIT_INIT;
	uint64_t held;

	if (!log_enabled(LOG_LVL_WARN) ||
	    !log_limit(&limit, DEAD_LOG_BURST, DEAD_LOG_NS, &held))
		return;
	LOG_WARN("dead letter", LOG_S("error", job->error),
		 LOG_S("topic", ledger_topic(job->part)),
		 LOG_I("source_partition", ledger_id(job->part)),
		 LOG_I("source_offset", job->offset),
		 LOG_U("attempts", job->res.attempts),
		 LOG_S("detail", job->res.detail), LOG_U("held_back", held));
}

/* A delivery report, in the producer's poll thread or in the worker that
 * awaited it: count and store a delivered record, or deal with the
 * failure. Ends the job. */
static void finish(struct job *job, rd_kafka_resp_err_t err)
{
	struct pipeline *pl = job->pl;
	struct ledger *part = job->part;

	if (err && too_large(err)) {
		refused_late(job, err);
		job_free(job);
		return;
	}
	if (err && producer_transactional(pl->producer)) {
		/* The transaction cannot commit now; the commit aborts it and
		 * rewinds, so the record is done again. Purged messages of an
		 * aborted transaction come here too. */
		LOG_DEBUG("delivery failed inside a transaction",
			  LOG_I("partition", ledger_id(part)),
			  LOG_I("offset", job->offset),
			  LOG_S("error", rd_kafka_err2str(err)));
		job_free(job);
		return;
	}
	if (err) {
		/* message.timeout.ms is infinite, so this is fatal: stop,
		 * and leave the offset uncommitted for the next run. */
		LOG_ERROR("delivery failed", LOG_S("topic", job_topic(job)),
			  LOG_I("source_partition", ledger_id(part)),
			  LOG_I("source_offset", job->offset),
			  LOG_S("error", rd_kafka_err2str(err)));
		stop_request(pl->stop, true);
		job_free(job);
		return;
	}

	job->delivered = true;
	ledger_delivered(part, job->offset);

	metrics_record(pl->metrics,
		       job->outcome == JOB_OUTPUT ? NULL : job->error,
		       job->res.reasks,
		       &(struct metrics_usage){
			       .prompt = job->res.prompt_tokens,
			       .completion = job->res.completion_tokens,
			       .cached = job->res.cached_tokens,
			       .reasoning = job->res.reasoning_tokens,
			       .cost_usd = job_cost(job),
		       });
	atomic_store(&pl->last_delivered_ms, wall_ms());
	if (job->outcome != JOB_OUTPUT)
		log_dead_letter(job);
	LOG_DEBUG("record delivered", LOG_I("partition", ledger_id(part)),
		  LOG_I("offset", job->offset),
		  LOG_S("result",
			job->outcome == JOB_OUTPUT ? "ok" : job->error),
		  LOG_U("attempts", job->res.attempts));
	job_free(job);
}

/* A worker waiting for its record's delivery report (release_one); it
 * lives on the worker's stack, and pipeline.await_lock guards it and
 * job->await. Such waits are rare (records above PRODUCER_SAFE_BYTES):
 * one lock for all of them is enough. */
struct await {
	pthread_cond_t done;
	bool reported;
	rd_kafka_resp_err_t err;
};

/* Before the record is produced: its report may come at once. */
static void await_begin(struct job *job, struct await *w)
{
	pthread_cond_init(&w->done, NULL);
	w->reported = false;
	w->err = RD_KAFKA_RESP_ERR_NO_ERROR;
	pthread_mutex_lock(&job->pl->await_lock);
	atomic_store(&job->await, w);
	pthread_mutex_unlock(&job->pl->await_lock);
}

/*
 * Wait for the report (with no record produced: wait is false, just
 * stop awaiting). At shutdown give up after STOP_WAIT_NS: the report then
 * goes to finish() when it comes. Returns 0 with *err set, -1 given up.
 */
static int await_end(struct pipeline *pl, struct job *job, struct await *w,
		     bool wait, rd_kafka_resp_err_t *err)
{
	int64_t give_up = 0;
	int r = 0;

	pthread_mutex_lock(&pl->await_lock);
	while (wait && !w->reported) {
		if (stop_stopping(pl->stop)) {
			if (!give_up) {
				give_up = mono_ns() + STOP_WAIT_NS;
			} else if (mono_ns() >= give_up) {
				r = -1;
				break;
			}
		}
		timed_wait(&w->done, &pl->await_lock, 100);
	}
	atomic_store(&job->await, NULL);
	*err = w->err;
	pthread_mutex_unlock(&pl->await_lock);
	pthread_cond_destroy(&w->done);
	return r;
}

/*
 * Hand the job's record to librdkafka, waiting while its queue is full
 * (the job keeps its slot meanwhile, so admission slows). With
 * transactions, each attempt holds the transaction lock from the check
 * that the partition is still ours (a rewind breaks it) to the mark of
 * the offset as produced, so a commit never splits the two; between
 * attempts nothing is held. A record too large for its topic becomes its
 * bounded dead letter here, in its turn. Returns 0, or -1 when it was not
 * produced (the job is still the caller's).
 */
static int send_one(struct pipeline *pl, struct job *job)
{
	struct producer *prod = pl->producer;
	struct ledger *part = job->part;
	bool txn = producer_transactional(prod);
	/* Once produced, the job (and with it, in completion order, the
	 * last reference to part) may be freed by its delivery report at
	 * any time: read nothing of either after a send that worked but
	 * what release() keeps alive (offset order). */
	bool ordered = ledger_ordered(part);
	int64_t offset = job->offset;
	int64_t give_up = 0;
	int r;

	for (;;) {
		if (txn)
			producer_txn_lock(prod);
		/* With transactions a revoked partition's offsets can no
		 * longer be committed: its next owner redoes the record, so
		 * producing it would show it twice. */
		if (ordered && !ledger_may_produce(part, txn))
			r = -ECANCELED;
		else
			r = send_record(job);
		if (!r && ordered)
			ledger_produced(part, offset);
		if (txn)
			producer_txn_unlock(prod);
		if (r == -EMSGSIZE || r == -EFBIG) {
			make_bounded(job, record_bytes(job),
				     r == -EMSGSIZE
					     ? "over the producer's "
					       "message.max.bytes"
					     : "as large as a record the "
					       "broker refused");
			continue;
		}
		if (r != -ENOBUFS)
			return r ? -1 : 0;
		if (stop_stopping(pl->stop)) {
			if (!give_up) {
				give_up = mono_ns() + STOP_WAIT_NS;
			} else if (mono_ns() >= give_up) {
				LOG_WARN("producer queue still full at "
					 "shutdown: a record is left for the "
					 "next run",
					 LOG_I("source_partition",
					       ledger_id(part)),
					 LOG_I("source_offset", job->offset));
				return -1;
			}
		}
		producer_wait_space(prod, QUEUE_WAIT_MS);
	}
}

/*
 * Produce a finished job. The broker may refuse a record above
 * PRODUCER_SAFE_BYTES, and its replacement must still come in its turn:
 * without transactions the worker awaits that record's delivery report
 * and, if it was refused, produces the bounded dead letter at once (in
 * offset order it keeps the partition's releaser role meanwhile, so
 * nothing after the record is produced before its replacement). With
 * transactions see refused_late(). Returns false when the job was
 * abandoned (or left to its report at shutdown): in offset order nothing
 * after it may follow. Either way the job is no longer the caller's.
 */
static bool release_one(struct pipeline *pl, struct job *job)
{
	bool txn = producer_transactional(pl->producer);
	rd_kafka_resp_err_t err;
	struct await w;

	for (;;) {
		bool awaited = !txn && !job->cut &&
			       record_bytes(job) > PRODUCER_SAFE_BYTES;
		int r;

		if (awaited)
			await_begin(job, &w);
		r = send_one(pl, job);
		if (awaited && await_end(pl, job, &w, r == 0, &err) < 0)
			return false; /* shutdown: its report ends it */
		if (r < 0) {
			job->outcome = JOB_ABANDONED;
			job_free(job);
			return false;
		}
		if (!awaited)
			return true;
		if (too_large(err) && !job->cut) {
			size_t bytes = record_bytes(job);

			producer_refused(pl->producer, job_dest(job), bytes);
			make_bounded(job, bytes, rd_kafka_err2str(err));
			continue;
		}
		finish(job, err);
		return !err;
	}
}

/*
 * Hand a finished job on. Completion order: produce it now. Offset
 * order: it completes its offset in the ledger; one thread at a time (the
 * releaser role, ledger_release_begin) takes the ready jobs in order and
 * produces them; a job completed meanwhile is left for that thread, which
 * takes it before it lets the role go (ledger_release_next).
 */
static void release(struct pipeline *pl, struct job *job)
{
	struct ledger *part = job->part;
	struct job *next;
	bool gone = false, broken;

	if (!ledger_ordered(part)) {
		if (job->outcome == JOB_ABANDONED)
			job_free(job);
		else
			release_one(pl, job);
		return;
	}

	/* Jobs freed below may hold the last references to part but ours:
	 * keep it alive until the end. */
	ledger_ref(part);
	if (ledger_complete(part, job->offset, job) < 0) {
		LOG_ERROR("sequencer lost an offset",
			  LOG_I("partition", ledger_id(part)),
			  LOG_I("offset", job->offset));
		job->outcome = JOB_ABANDONED;
		job_free(job);
	}
	if (!ledger_release_begin(part)) {
		ledger_unref(part);
		return;
	}
	while ((next = ledger_release_next(part, gone, &broken))) {
		gone = broken || next->outcome == JOB_ABANDONED;
		if (gone) {
			next->outcome = JOB_ABANDONED;
			job_free(next);
		} else {
			gone = !release_one(pl, next);
		}
	}
	ledger_unref(part);
}

/*
 * The answer cache (cache.entries): a text asked before in the request
 * format in use gets the validated answer it got then, and no LLM call.
 * An entry's value is the served model, a NUL, and the output. Model,
 * schema and instructions are the process's, the same for every entry.
 * Returns true when the job's result was filled from it.
 */
static bool answer_cached(struct job *job, const char *text, size_t len)
{
	struct pipeline *pl = job->pl;
	struct answercache_stats st;
	struct llm_result *res = &job->res;
	enum cfg_llm_mode mode;
	char *value = NULL;
	size_t n = 0;
	bool hit;

	if (!pl->cache)
		return false;
	mode = llm_mode(pl->llm);
	hit = answercache_get(pl->cache, mode, text, len, &value, &n) == 1;
	if (hit) {
		size_t served = strlen(value);

		res->output = served < n ? strdup(value + served + 1) : NULL;
		hit = res->output != NULL;
		snprintf(res->served_model, sizeof(res->served_model), "%s",
			 value);
		snprintf(res->model, sizeof(res->model), "%s",
			 pl->cfg->llm.model);
		res->status = LLM_OK;
		res->mode = mode;
	}
	free(value);
	answercache_stats(pl->cache, &st);
	metrics_answer_cache(pl->metrics, hit, st.entries);
	job->cached = hit;
	return hit;
}

/* Keep a validated answer for the next time its text comes (only an
 * output, never a dead letter). */
static void answer_keep(struct job *job, const char *text, size_t len)
{
	struct pipeline *pl = job->pl;
	const struct llm_result *res = &job->res;
	struct answercache_stats st;
	size_t served, out;
	char *value;

	if (!pl->cache)
		return;
	served = strlen(res->served_model);
	out = strlen(res->output);
	value = malloc(served + 1 + out);
	if (!value)
		return;
	memcpy(value, res->served_model, served + 1);
	memcpy(value + served + 1, res->output, out);
	answercache_put(pl->cache, res->mode, text, len, value,
			served + 1 + out);
	free(value);
	answercache_stats(pl->cache, &st);
	metrics_answer_cache_entries(pl->metrics, st.entries);
}

int pipeline_text(const struct extractd_config *cfg,
		  const rd_kafka_message_t *msg, const char **text,
		  size_t *len, struct json_object **ret_doc, char *detail,
		  size_t size)
{
	*text = msg->payload ? msg->payload : "";
	*len = msg->payload ? msg->len : 0;
	*ret_doc = NULL;
	if (cfg->input.format == CFG_INPUT_JSON) {
		*ret_doc = input_json(*text, *len, cfg->input.text_pointer,
				      cfg->input.max_bytes, text, len, detail,
				      size);
		return *ret_doc ? 0 : -1;
	}
	return input_check(*text, *len, cfg->input.max_bytes, detail, size);
}

/* The record's text (pipeline_text); -1 with the job a dead letter
 * "input". */
static int job_text(struct job *job, const char **text, size_t *len,
		    struct json_object **ret_doc)
{
	if (pipeline_text(job->pl->cfg, job->msg, text, len, ret_doc,
			  job->res.detail, sizeof(job->res.detail)) == 0)
		return 0;
	job->outcome = JOB_DEAD_LETTER;
	job->error = "input";
	return -1;
}

/* Send the input's traceparent (and tracestate) with the worker's calls
 * for this record, when they are well formed (input.h); else none. */
static void trace_begin(struct job *job, struct llm_worker *worker)
{
	const rd_kafka_headers_t *in = producer_input_headers(job->msg);
	char parent[64], state[520];
	const void *v;
	size_t n;
	bool has_state = false;

	if (!in || rd_kafka_header_get_last(in, "traceparent", &v, &n) ||
	    !v || !input_traceparent_ok(v, n))
		return;
	memcpy(parent, v, n);
	parent[n] = '\0';
	if (!rd_kafka_header_get_last(in, "tracestate", &v, &n) && v &&
	    input_tracestate_ok(v, n)) {
		memcpy(state, v, n);
		state[n] = '\0';
		has_state = true;
	}
	/* Out of memory: the record goes without its trace context. */
	(void)llm_worker_trace(worker, parent, has_state ? state : NULL);
}

/*
 * Copy the output.carry fields of the input document into the job's
 * validated output (after validation: the schema judges only what the
 * model produced). Returns 0, or -1 when out of memory.
 */
static int carry_fields(struct job *job, struct json_object *doc)
{
	const struct cfg_list *carry = &job->pl->cfg->output.carry;
	struct json_object *out;
	struct jsonparse_error err;
	const char *text;
	char *copy;

	out = jsonparse_once(job->res.output, strlen(job->res.output),
			     OUTPUT_JSON_DEPTH, 0, &err);
	if (!out)
		return -1;
	if (!json_object_is_type(out, json_type_object) ||
	    input_carry(doc, (const char *const *)carry->items, carry->n,
			out) < 0 ||
	    !(text = json_object_to_json_string_ext(
		      out, JSON_C_TO_STRING_PLAIN |
				   JSON_C_TO_STRING_NOSLASHESCAPE)) ||
	    !(copy = strdup(text))) {
		json_object_put(out);
		return -1;
	}
	json_object_put(out);
	free(job->res.output);
	job->res.output = copy;
	return 0;
}

/* A batch answer was paid for without a call the observer saw: count it
 * against the spending caps, at the batch price. */
static void batch_spent(const struct job *job)
{
	const struct llm_result *res = &job->res;
	const struct cfg_price *price = &job->pl->cfg->llm.price;

	if (!job->pl->spend || !res->batched)
		return;
	spend_add(job->pl->spend, mono_ns(),
		  price->batch_factor *
			  spend_cost(price, res->batch_prompt_tokens,
				     res->batch_cached_tokens,
				     res->batch_completion_tokens));
}

/* Run one job; returns the queued one its slot went to, if any. */
static struct job *run_one(struct job *job, struct llm_worker *worker)
{
	struct pipeline *pl = job->pl;
	struct admission_link *next;
	struct job *successor;
	bool go;
	struct json_object *doc;
	const char *text;
	size_t len;

	if (job_text(job, &text, &len, &doc) == 0 && !job->answer &&
	    answer_cached(job, text, len)) {
		job->outcome = JOB_OUTPUT;
	} else if (job->outcome != JOB_DEAD_LETTER) {
		trace_begin(job, worker);
		if (job->answer) {
			llm_extract_answered(worker, text, len, job->mode,
					     job->answer, job->answer_len,
					     &job->res);
			batch_spent(job);
		} else
			llm_extract(worker, text, len, &job->res);
		(void)llm_worker_trace(worker, NULL, NULL);
		switch (job->res.status) {
		case LLM_OK:
			job->outcome = JOB_OUTPUT;
			answer_keep(job, text, len);
			break;
		case LLM_ABANDONED:
			job->outcome = JOB_ABANDONED;
			break;
		default:
			job->outcome = JOB_DEAD_LETTER;
			job->error = llm_error_name(job->res.status);
			break;
		}
	}
	if (job->outcome == JOB_OUTPUT && pl->cfg->output.carry.n &&
	    carry_fields(job, doc) < 0) {
		/* Not committed: done again after the restart. */
		LOG_ERROR("out of memory carrying input fields into an "
			  "output", LOG_I("partition", ledger_id(job->part)),
			  LOG_I("offset", job->offset));
		job->outcome = JOB_ABANDONED;
		stop_request(pl->stop, true);
	}
	json_object_put(doc);
	/* The LLM call is over: what is left (waiting for older offsets,
	 * producing, the delivery report) needs no LLM slot. Give it back
	 * now, while at most max_in_flight jobs are in that state, so the
	 * next record's call starts without waiting for this one's delivery
	 * (in offset order, for every older record of its partition).
	 * While records wait for a slot this worker takes the oldest
	 * itself, once this one is released: no thread is woken for it.
	 * Not when stopping, nor while the API or a spending cap says to
	 * start nothing: then admission holds every record until the
	 * consumers see the pause lifted. */
	go = !stop_stopping(pl->stop) && !pipeline_paused(pl);
	job->early = admission_call_done(pl->admission, go, &next);
	successor = next ? job_started(next) : NULL;
	release(pl, job);
	if (successor && pool_queued(pl->pool)) {
		/* Older started jobs wait for a worker (pool.workers below
		 * pool.max_in_flight): they go first. */
		submit(pl, successor);
		successor = NULL;
	}
	return successor;
}

static void worker_run(void *arg, void *worker)
{
	struct job *job = arg;

	while (job)
		job = run_one(job, worker);
}

/* A delivery report (producer_delivered_fn). */
static void delivered(void *opaque, rd_kafka_resp_err_t err)
{
	struct job *job = opaque;
	struct pipeline *pl = job->pl;
	struct await *w;

	if (atomic_load(&job->await)) {
		/* Its worker waits for this report: hand it over. */
		pthread_mutex_lock(&pl->await_lock);
		w = atomic_load(&job->await);
		if (w) {
			w->reported = true;
			w->err = err;
			atomic_store(&job->await, NULL);
			pthread_cond_signal(&w->done);
		}
		pthread_mutex_unlock(&pl->await_lock);
		if (w)
			return;
	}
	finish(job, err);
}

int pipeline_wait_drained(struct pipeline *pl, int64_t deadline_ns)
{
	struct timespec until = realtime_in_ns(deadline_ns - mono_ns());
	int r = 0;

	pthread_mutex_lock(&pl->lock);
	while (pl->inflight && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&pl->drained, &pl->lock, &until);
	r = pl->inflight ? -1 : 0;
	pthread_mutex_unlock(&pl->lock);
	return r;
}

/* Give admission a new live limit; say so when it changed. */
static void set_limit(struct pipeline *pl, unsigned n)
{
	unsigned was = atomic_exchange(&pl->limit, n);

	if (n == was)
		return;
	admission_set_limit(pl->admission, n);
	metrics_concurrency_limit(pl->metrics, n);
	if (n <= was / 2)
		LOG_INFO("concurrency limit cut", LOG_U("limit", n),
			 LOG_U("was", was),
			 LOG_S("reason", limiter_reason(pl->limiter)),
			 LOG_D("latency_ms",
			       (double)limiter_latency_ns(pl->limiter) / 1e6,
			       1));
	else
		LOG_DEBUG("concurrency limit", LOG_U("limit", n),
			  LOG_U("was", was),
			  LOG_S("reason", limiter_reason(pl->limiter)),
			  LOG_D("latency_ms",
				(double)limiter_latency_ns(pl->limiter) / 1e6,
				1));
}

/* How a call ended, as the limiter counts it: 429s, timeouts and
 * overload statuses say the server has too much; other failures are a
 * record's own. */
static enum limiter_outcome call_outcome(const struct llm_call *call)
{
	if (call->status == 429)
		return LIMITER_RATE_LIMITED;
	if (!strcmp(call->outcome, "timeout"))
		return LIMITER_TIMEOUT;
	if (call->status == 502 || call->status == 503 ||
	    call->status == 504 || call->status == 529)
		return LIMITER_SERVER_ERROR;
	if (!strcmp(call->outcome, "ok"))
		return LIMITER_OK;
	return LIMITER_OTHER;
}

/* A reset header in ms as the limiter takes it (ns), -1 absent. */
static int64_t reset_ns(long ms)
{
	return ms < 0 ? -1 : (int64_t)ms * 1000000;
}

/* Every LLM call (llm_observer_fn, in the thread that made it): the
 * limiter learns from it (the account's rate headers first, when the
 * answer had them), then the next observer (health, metrics). The calls
 * open now stand for those open when it was sent. */
static void call_observed(void *arg, const struct llm_call *call)
{
	struct pipeline *pl = arg;

	if (pl->spend)
		spend_add(pl->spend, mono_ns(),
			  spend_cost(&pl->cfg->llm.price, call->prompt_tokens,
				     call->cached_tokens,
				     call->completion_tokens));

	if (pl->limiter) {
		unsigned open = admission_held(pl->admission);
		int64_t now = mono_ns(), until, pace = -1;

		if (call->remaining_requests >= 0 ||
		    call->remaining_tokens >= 0) {
			limiter_headers(pl->limiter, now,
					call->remaining_requests,
					reset_ns(call->reset_requests_ms),
					call->remaining_tokens,
					reset_ns(call->reset_tokens_ms));
			/* (until is set by the call: not in one expression) */
			pace = limiter_pace_ns(pl->limiter, now, &until);
			llm_set_pace(pl->llm, pace, until);
		}
		limiter_observe(pl->limiter, now, call_outcome(call),
				(int64_t)(call->seconds * 1e9),
				open ? open : 1, call->tokens);
		set_limit(pl, limiter_limit(pl->limiter));
		/* limiter_observe() leaves the pace as the headers set it: an
		 * answer without headers shows what earlier ones asked for. */
		if (pace < 0)
			pace = limiter_pace_ns(pl->limiter, now, &until);
		metrics_limiter(pl->metrics, limiter_reason(pl->limiter),
				limiter_latency_ns(pl->limiter), pace);
	}
	if (pl->observer)
		pl->observer(pl->observer_arg, call);
}

/* The input partition of a job's record (producer_source_fn). */
static int32_t source_partition(const void *opaque)
{
	const struct job *job = opaque;

	return ledger_id(job->part);
}

static const struct pool_ops worker_ops = {
	.init = worker_init,
	.run = worker_run,
	.fini = worker_fini,
};

struct pipeline *pipeline_new(const struct extractd_config *cfg,
			      struct llm *llm, const char *api_key,
			      struct http_share *share, struct metrics *metrics,
			      struct stop *stop, pipeline_msg_free_fn *msg_free,
			      char *err, size_t err_size)
{
	struct pipeline *pl = calloc(1, sizeof(*pl));

	if (!pl ||
	    !(pl->admission = admission_new(cfg->pool.max_in_flight,
					    queue_max(cfg), job_start,
					    pl)) ||
	    (cfg->pool.concurrency == CFG_CONC_ADAPTIVE &&
	     !(pl->limiter = limiter_new(1, cfg->pool.max_in_flight,
					 cfg->pool.max_in_flight))) ||
	    (cfg->cache.entries &&
	     !(pl->cache = answercache_new(cfg->cache.entries,
					   cfg->cache.max_bytes)))) {
		if (pl) {
			admission_free(pl->admission);
			limiter_free(pl->limiter);
		}
		free(pl);
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	pl->cfg = cfg;
	pl->llm = llm;
	pl->api_key = api_key;
	pl->share = share;
	pl->metrics = metrics;
	pl->stop = stop;
	pl->msg_free = msg_free;
	pthread_mutex_init(&pl->await_lock, NULL);
	pthread_mutex_init(&pl->lock, NULL);
	pthread_cond_init(&pl->drained, NULL);
	llm_set_pause_handler(llm, llm_paused_changed, pl);
	llm_set_mode_handler(llm, llm_mode_found, pl);
	atomic_init(&pl->limit, cfg->pool.max_in_flight);
	if (pl->limiter)
		set_limit(pl, limiter_limit(pl->limiter));
	metrics_concurrency_limit(metrics, atomic_load(&pl->limit));
	return pl;
}

void pipeline_observe_calls(struct pipeline *pl, llm_observer_fn *next,
			    void *arg)
{
	pl->observer = next;
	pl->observer_arg = arg;
	llm_set_observer(pl->llm, call_observed, pl);
}

int pipeline_start(struct pipeline *pl, char *err, size_t err_size)
{
	pl->pool = pool_new(pl->cfg->pool.workers, pl->cfg->pool.max_in_flight,
			    &worker_ops, pl, err, err_size);
	if (!pl->pool)
		return -1;
	pl->producer = producer_new(pl->cfg, pl->stop, delivered,
				    source_partition, err, err_size);
	return pl->producer ? 0 : -1;
}

int pipeline_shutdown(struct pipeline *pl)
{
	int left;

	/* What still waits for a slot (a batch's records handed on as the
	 * consumers stopped) starts no more. */
	admission_hold(pl->admission, true);
	pipeline_drop_queued(pl, NULL, 0);
	stop_step(pl->stop, "joining the workers");
	pool_free(pl->pool);
	pl->pool = NULL;
	left = producer_free(pl->producer);
	pl->producer = NULL;
	return left;
}

void pipeline_log_summary(struct pipeline *pl, int undelivered)
{
	int64_t first = atomic_load(&pl->first_consumed_ms);
	int64_t last = atomic_load(&pl->last_delivered_ms);
	struct metrics_summary m;

	metrics_summary(pl->metrics, &m);

	LOG_INFO("stopped", LOG_U("records", m.records_ok),
		 LOG_U("dead_letters", m.dead_letters),
		 LOG_U("abandoned", atomic_load(&pl->n_abandoned)),
		 LOG_I("undelivered", undelivered),
		 LOG_U("tokens_prompt", m.tokens_prompt),
		 LOG_U("tokens_completion", m.tokens_completion),
		 LOG_U("tokens_cached", m.tokens_cached),
		 LOG_U("tokens_reasoning", m.tokens_reasoning),
		 LOG_D("cost_usd", m.cost_usd, 6),
		 LOG_I("first_consumed_ms", first),
		 LOG_I("last_delivered_ms", last),
		 LOG_D("busy_seconds",
		       first && last > first ? (double)(last - first) / 1000
					     : 0.0,
		       3));
}

void pipeline_free(struct pipeline *pl)
{
	if (!pl)
		return;
	pool_free(pl->pool);
	producer_free(pl->producer);
	admission_free(pl->admission);
	limiter_free(pl->limiter);
	answercache_free(pl->cache);
	pthread_cond_destroy(&pl->drained);
	pthread_mutex_destroy(&pl->lock);
	pthread_mutex_destroy(&pl->await_lock);
	free(pl);
}

const struct extractd_config *pipeline_config(const struct pipeline *pl)
{
	return pl->cfg;
}

struct admission *pipeline_admission(struct pipeline *pl)
{
	return pl->admission;
}

struct producer *pipeline_producer(struct pipeline *pl)
{
	return pl->producer;
}

struct stop *pipeline_stop(struct pipeline *pl)
{
	return pl->stop;
}

struct metrics *pipeline_metrics(struct pipeline *pl)
{
	return pl->metrics;
}

void pipeline_set_spend(struct pipeline *pl, struct spend *spend)
{
	pl->spend = spend;
}

void pipeline_set_batcher(struct pipeline *pl, struct batcher *b)
{
	pl->batcher = b;
}

struct batcher *pipeline_batcher(struct pipeline *pl)
{
	return pl->batcher;
}

bool pipeline_paused(const struct pipeline *pl)
{
	char why[256];
	bool over;

	if (atomic_load(&pl->llm_paused))
		return true;
	if (!pl->spend)
		return false;
	switch (spend_check(pl->spend, mono_ns(), &over, why, sizeof(why))) {
	case SPEND_STOPPED:
		LOG_WARN("spending cap reached: consumption paused until the "
			 "window allows more; calls already sent finish, no "
			 "record is dead-lettered for this",
			 LOG_S("reason", why));
		break;
	case SPEND_RESUMED:
		LOG_INFO("spending under its caps again: consumption resumed");
		break;
	case SPEND_SAME:
		break;
	}
	return over;
}
