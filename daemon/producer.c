/*
 * producer: see producer.h.
 *
 * DESIGN
 * ------
 * One idempotent producer (acks=all, ordered retries) for the output and
 * dead-letter topics. message.timeout.ms is infinite: during a broker
 * outage a record waits in librdkafka, holding its admission slot, so the
 * consumer pauses instead of piling up work or failing records. A failed
 * delivery report therefore means a fatal producer error, or a topic that
 * refused the record as too large (pipeline.h says what follows).
 *
 * producer_send() never waits: on a full queue the caller (a worker,
 * holding no lock) waits in producer_wait_space(), which the poll thread
 * wakes after each batch of delivery reports; the job keeps its slot
 * meanwhile, so a slow Kafka slows admission. A full queue is reported at
 * info level, at most every QUEUE_FULL_LOG_NS.
 *
 * Values and keys are produced without copies: they live in the job (the
 * LLM's output, the input message) until the delivery report frees it.
 *
 * Where a record goes (placement()): by key, librdkafka's murmur2_random
 * (a record without a key lands anywhere); by source, a partitioner
 * callback maps the input partition onto the output topic's partition
 * count; or, with output.partitioning = auto in offset order, a callback
 * that places a record by its key when it has one and by source when it
 * has none. Readers see order only inside one output partition, and a
 * keyless record has nothing else to keep it beside its predecessors.
 */
#include "producer.h"

#include "kafka.h"
#include "log.h"
#include "pipeline.h"
#include "secret.h"
#include "slot.h"
#include "thread.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_FULL_LOG_NS (10LL * 1000000000) /**< at most one line */

struct producer {
	struct pipeline *pl;
	rd_kafka_t *rk;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	bool transactional;     /**< output.delivery = exactly-once */
	pthread_mutex_t txn;    /**< held to produce, and to commit */
	bool txn_open;          /**< a transaction was begun (txn lock) */
	rd_kafka_topic_t *out;  /**< output topic handle, owned */
	rd_kafka_topic_t *dlq;  /**< dead-letter topic handle, owned */
	struct slot *slot;      /**< our transactional.id's slot, or NULL */
	atomic_bool fence_told; /**< the fencing error is logged */

	pthread_mutex_t space_lock; /**< with space: delivery reports */
	pthread_cond_t space;       /**< broadcast after reports were served */
	atomic_uint_fast64_t queue_full;   /**< -ENOBUFS since the last line */
	atomic_int_fast64_t queue_full_ns; /**< when that line was logged */
	atomic_size_t refused_out;  /**< smallest record the output topic */
	atomic_size_t refused_dlq;  /**< (dead-letter topic) refused as too
				      *  large, SIZE_MAX: none */
};

#define TXN_TIMEOUT_MS 60000 /**< init, commit and abort calls */
#define FLUSH_MS 30000       /**< flush at exit, within the deadline */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg,
			void *opaque)
{
	(void)rk;
	(void)opaque;
	pipeline_delivered(msg->_private, msg->err);
}

/* Whether err says another producer took our transactional.id. */
static bool fenced(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR__FENCED ||
	       err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
	       err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

/* The fencing error, once (the commit and the error callback both see
 * it): which transactional.id, and what to do. */
static void log_fenced(struct producer *p, rd_kafka_t *rk, const char *why)
{
	char id[512], text[600], reason[600];
	size_t size = sizeof(id);

	if (atomic_exchange(&p->fence_told, true))
		return;
	if (rd_kafka_conf_get(rd_kafka_conf(rk), "transactional.id", id,
			      &size) != RD_KAFKA_CONF_OK)
		snprintf(id, sizeof(id), "?");
	LOG_ERROR("fenced: another producer started with this "
		  "transactional.id; stopping",
		  "\"transactional_id\":%s,\"error\":%s,\"fix\":\"give each "
		  "instance its own transactional.id; two get the same one "
		  "from one kafka.properties transactional.id, from two hosts "
		  "with the same hostname, or on one host from different slot "
		  "directories ($RUNTIME_DIRECTORY, else /run/extractd, "
		  "$TMPDIR, /tmp)\"",
		  log_str(text, sizeof(text), id),
		  log_str(reason, sizeof(reason), why));
}

static void on_error(rd_kafka_t *rk, int err, const char *reason,
		     void *opaque)
{
	struct producer *p = opaque;
	char text[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char why[512];

		if (fenced(rd_kafka_fatal_error(rk, why, sizeof(why))))
			log_fenced(p, rk, why);
		else
			LOG_ERROR("fatal producer error", "\"error\":%s",
				  log_str(text, sizeof(text), why));
		pipeline_request_stop(p->pl, true);
		return;
	}
	LOG_WARN("producer error", "\"error\":%s",
		 log_str(text, sizeof(text), reason));
}

enum placement {
	PLACE_KEY,            /**< librdkafka's partitioner, by name */
	PLACE_SOURCE,         /**< by_source() */
	PLACE_KEY_ELSE_SOURCE /**< key_else_source() */
};

/* output.partitioning as the producer applies it: auto is by key, but in
 * offset order (as pipeline_ordered() has it: ordering = offset, or
 * exactly-once) a record without a key goes by source. */
static enum placement placement(const struct extractd_config *cfg)
{
	switch (cfg->output.partitioning) {
	case CFG_PART_KEY:
		return PLACE_KEY;
	case CFG_PART_SOURCE:
		return PLACE_SOURCE;
	case CFG_PART_AUTO:
		break;
	}
	if (cfg->output.ordering == CFG_ORDER_OFFSET ||
	    cfg->output.delivery == CFG_DELIVERY_EXACTLY_ONCE)
		return PLACE_KEY_ELSE_SOURCE;
	return PLACE_KEY;
}

/* By source: the input's partition number, modulo the output topic's
 * count. */
static int32_t by_source(const rd_kafka_topic_t *rkt, const void *key,
			 size_t keylen, int32_t partition_cnt,
			 void *rkt_opaque, void *msg_opaque)
{
	const struct job *job = msg_opaque;

	(void)rkt;
	(void)key;
	(void)keylen;
	(void)rkt_opaque;
	return job->part->id % partition_cnt;
}

/* By key as PLACE_KEY places it (murmur2 of the key), and by source when
 * there is no key (murmur2_random would pick any partition). */
static int32_t key_else_source(const rd_kafka_topic_t *rkt, const void *key,
			       size_t keylen, int32_t partition_cnt,
			       void *rkt_opaque, void *msg_opaque)
{
	if (!key)
		return by_source(rkt, key, keylen, partition_cnt, rkt_opaque,
				 msg_opaque);
	return rd_kafka_msg_partitioner_murmur2_random(
		rkt, key, keylen, partition_cnt, rkt_opaque, msg_opaque);
}

static void *poll_main(void *arg)
{
	struct producer *p = arg;

	thread_enter("producer");
	while (!atomic_load(&p->stop)) {
		if (rd_kafka_poll(p->rk, 100) > 0) {
			/* Messages were delivered: their queue space frees
			 * as the reports return. */
			pthread_mutex_lock(&p->space_lock);
			pthread_cond_broadcast(&p->space);
			pthread_mutex_unlock(&p->space_lock);
		}
	}
	return NULL;
}

/*
 * exactly-once: the transactional.id, unique among live instances and
 * stable across an instance's restarts, so that a restart fences its
 * previous self (aborting the transaction that one left open).
 * kafka.properties may set it; else "extractd-GROUP-HOSTNAME-SLOT", SLOT
 * the lowest that no live instance of the group on this host holds
 * (slot.h; ours until producer_free()). A killed instance's slot is free
 * at once, so its restart takes it back. With no writable directory for
 * the lock files (a read-only container), slot 0 unlocked, with a
 * warning: right for one instance per host (a pod).
 */
static int set_transactional_id(struct producer *p, rd_kafka_conf_t *conf,
				char *err, size_t err_size)
{
	const struct extractd_config *cfg = p->pl->cfg;
	char host[256] = "localhost", name[512], id[sizeof(name) + 16];
	char dir[PATH_MAX], why[PATH_MAX + 128], text[600], lock[PATH_MAX + 64];
	size_t i;

	for (i = 0; i < cfg->kafka.n_properties; i++)
		if (!strcmp(cfg->kafka.properties[i].name,
			    "transactional.id")) {
			LOG_INFO("exactly-once", "\"transactional_id\":%s,"
				 "\"from\":\"kafka.properties\"",
				 log_str(text, sizeof(text),
					 cfg->kafka.properties[i].value));
			return 0;
		}
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(name, sizeof(name), "extractd-%s-%s", cfg->kafka.group, host);
	if (slot_default_dir(dir, sizeof(dir)) < 0) {
		snprintf(id, sizeof(id), "%s-0", name);
		LOG_WARN("exactly-once: no writable directory for the "
			 "transactional.id slot locks ($RUNTIME_DIRECTORY, "
			 "/run/extractd, $TMPDIR, /tmp): slot 0, unlocked; a "
			 "second instance of this group on this host would "
			 "take the same transactional.id",
			 "\"transactional_id\":%s",
			 log_str(text, sizeof(text), id));
	} else {
		p->slot = slot_claim(dir, name, why, sizeof(why));
		if (!p->slot) {
			snprintf(err, err_size,
				 "exactly-once: cannot claim a transactional.id "
				 "slot: %s", why);
			return -1;
		}
		snprintf(id, sizeof(id), "%s-%u", name, slot_number(p->slot));
		LOG_INFO("exactly-once", "\"transactional_id\":%s,\"lock\":%s",
			 log_str(text, sizeof(text), id),
			 log_str(lock, sizeof(lock), slot_path(p->slot)));
	}
	return kafka_conf_set(conf, "transactional.id", id, err, err_size);
}

/* Fence any earlier instance with our id, then open the first
 * transaction. */
static int txn_start(struct producer *p, char *err, size_t err_size)
{
	rd_kafka_error_t *error;

	error = rd_kafka_init_transactions(p->rk, TXN_TIMEOUT_MS);
	if (!error)
		error = rd_kafka_begin_transaction(p->rk);
	if (error) {
		if (fenced(rd_kafka_error_code(error)))
			log_fenced(p, p->rk, rd_kafka_error_string(error));
		snprintf(err, err_size, "cannot start transactions: %s",
			 rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
		return -1;
	}
	p->txn_open = true;
	return 0;
}

void producer_kafka_props(const struct extractd_config *cfg,
			  struct kafka_props *props)
{
	bool by_key = placement(cfg) == PLACE_KEY;

	/*
	 * message.max.bytes: a dead letter carries its input unchanged, and
	 * an input can be as large as the consumer fetches (its
	 * receive.message.max.bytes, 100000000 by default). librdkafka's
	 * default of 1000000 fails such a dead letter (and a record near
	 * llm.max_response_bytes) at produce time, which stops extractd on
	 * the same record after every restart. The topics' own
	 * max.message.bytes still applies on the brokers (README).
	 *
	 * batch.size 65536 (PRODUCER_SAFE_BYTES; librdkafka's default is
	 * 1000000): a record larger than that goes alone in its batch, and
	 * smaller ones are batched up to it, so a broker refusing a batch as
	 * too large refuses exactly one record, one extractd replaces in its
	 * place (pipeline.h). With 1 MB batches a topic whose limit is below
	 * 1 MB would refuse a batch of small records along with a big one.
	 *
	 * linger.ms 5 (librdkafka's own default): outputs go in batches,
	 * fewer produce requests and broker-thread wakeups (~9% less CPU
	 * per record at 5,000 records/s). The few ms a record waits hold
	 * no LLM slot: the slot went back when its call ended.
	 */
	*props = (struct kafka_props){
		.role = "producer",
		.type = RD_KAFKA_PRODUCER,
		.transactional =
			cfg->output.delivery == CFG_DELIVERY_EXACTLY_ONCE,
		.defaults = {
			"linger.ms", "5",
			"message.max.bytes", "100000000",
			"batch.size", "65536",
			"queue.buffering.max.messages", "1000000",
			"queue.buffering.max.kbytes", "2097151",
			/* By key only (as Java clients do): with a
			 * callback, a "partitioner" string would override
			 * it, so NULL ends the list here. */
			by_key ? "partitioner" : NULL, "murmur2_random",
		},
		.required = {
			"enable.idempotence", "true",
			"acks", "all",
			"message.timeout.ms", "0",
			/* With a callback only: sticky partitioning would
			 * place keyless records without asking it. By key,
			 * NULL ends the list here. */
			by_key ? NULL : "sticky.partitioning.linger.ms", "0",
		},
	};
}

struct producer *producer_new(struct pipeline *pl, char *err, size_t err_size)
{
	enum placement place = placement(pl->cfg);
	struct kafka_props props;
	struct producer *p = calloc(1, sizeof(*p));
	rd_kafka_conf_t *conf;
	char why[512];
	int r;

	if (!p) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	p->pl = pl;
	pthread_mutex_init(&p->space_lock, NULL);
	pthread_cond_init(&p->space, NULL);
	atomic_init(&p->refused_out, SIZE_MAX);
	atomic_init(&p->refused_dlq, SIZE_MAX);
	producer_kafka_props(pl->cfg, &props);
	conf = kafka_conf_new(pl->cfg, &props, err, err_size);
	if (!conf)
		goto fail;
	rd_kafka_conf_set_opaque(conf, p);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	if (place != PLACE_KEY) {
		rd_kafka_topic_conf_t *tconf;

		tconf = rd_kafka_conf_get_default_topic_conf(conf);
		if (!tconf) {
			tconf = rd_kafka_topic_conf_new();
			rd_kafka_conf_set_default_topic_conf(conf, tconf);
		}
		rd_kafka_topic_conf_set_partitioner_cb(
			tconf, place == PLACE_SOURCE ? by_source
						     : key_else_source);
	}
	p->transactional =
		pl->cfg->output.delivery == CFG_DELIVERY_EXACTLY_ONCE;
	pthread_mutex_init(&p->txn, NULL);
	if (p->transactional && set_transactional_id(p, conf, err,
						      err_size) < 0) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!p->rk) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, err_size, "cannot create the producer: %s", why);
		goto fail;
	}
	conf = NULL; /* now owned by p->rk */
	/* A topic handle made here asks for the topic's metadata at once
	 * (asynchronously); a topic first named by a produce call waits
	 * for librdkafka's 1-second topic scan, and the first records hold
	 * their slots meanwhile. */
	p->out = rd_kafka_topic_new(p->rk, pl->cfg->kafka.output_topic, NULL);
	p->dlq = rd_kafka_topic_new(p->rk, pl->cfg->kafka.dlq_topic, NULL);
	if (!p->out || !p->dlq) {
		snprintf(err, err_size, "cannot create the topic handles: %s",
			 rd_kafka_err2str(rd_kafka_last_error()));
		goto fail;
	}
	if (p->transactional && txn_start(p, err, err_size) < 0)
		goto fail;
	r = pthread_create(&p->thread, NULL, poll_main, p);
	if (r) {
		snprintf(err, err_size, "cannot start the producer thread: %s",
			 strerror(r));
		goto fail;
	}
	p->started = true;
	return p;
fail:
	producer_free(p);
	return NULL;
}

static void add_header(rd_kafka_headers_t *h, const char *name,
		       const char *value)
{
	rd_kafka_header_add(h, name, -1, value, -1);
}

static void add_number(rd_kafka_headers_t *h, const char *name,
		       uint64_t value)
{
	char text[24];

	snprintf(text, sizeof(text), "%" PRIu64, value);
	add_header(h, name, text);
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

static size_t input_bytes(const struct job *job)
{
	return job->msg->payload ? job->msg->len : 0;
}

static size_t key_bytes(const struct job *job)
{
	return job->msg->key ? job->msg->key_len : 0;
}

static rd_kafka_headers_t *job_headers(const struct job *job)
{
	const struct llm_result *res = &job->res;
	rd_kafka_headers_t *h = rd_kafka_headers_new(8);
	char source[512], text[LLM_ANSWER_MAX + 1];

	snprintf(source, sizeof(source), "%s/%d/%lld", job->part->topic,
		 (int)job->part->id, (long long)job->offset);
	add_header(h, "extractd.source", source);
	add_number(h, "extractd.attempts", res->attempts);
	if (job->outcome == JOB_OUTPUT) {
		add_header(h, "extractd.model", res->model);
		if (*res->served_model)
			add_header(h, "extractd.model.served",
				   res->served_model);
		add_number(h, "extractd.latency_ms",
			   (uint64_t)(now_mono_ns() - job->consumed_ns) /
				   1000000);
		add_number(h, "extractd.tokens.prompt", res->prompt_tokens);
		add_number(h, "extractd.tokens.completion",
			   res->completion_tokens);
		return h;
	}
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

size_t producer_record_bytes(const struct job *job)
{
	const struct llm_result *res = &job->res;
	size_t value = input_bytes(job), key = key_bytes(job);
	size_t headers = 512; /* source, numbers, names, framing */

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

const char *producer_topic(const struct producer *p, const struct job *job)
{
	return job->outcome == JOB_OUTPUT ? p->pl->cfg->kafka.output_topic
					  : p->pl->cfg->kafka.dlq_topic;
}

void producer_refused(struct producer *p, const struct job *job,
		      size_t bytes)
{
	atomic_size_t *refused = job->outcome == JOB_OUTPUT ? &p->refused_out
							    : &p->refused_dlq;
	size_t was = atomic_load(refused);

	while (bytes < was &&
	       !atomic_compare_exchange_weak(refused, &was, bytes))
		;
}

/* -ENOBUFS: count it, and say so at most every QUEUE_FULL_LOG_NS. */
static void queue_full(struct producer *p)
{
	int64_t now = now_mono_ns(), last = atomic_load(&p->queue_full_ns);

	atomic_fetch_add(&p->queue_full, 1);
	if (last && now - last < QUEUE_FULL_LOG_NS)
		return;
	if (!atomic_compare_exchange_strong(&p->queue_full_ns, &last, now))
		return;
	LOG_INFO("producer queue full: records wait for Kafka to take "
		 "earlier ones, and admission slows (kafka.properties "
		 "queue.buffering.max.messages and .kbytes)",
		 "\"waits\":%llu",
		 (unsigned long long)atomic_exchange(&p->queue_full, 0));
}

void producer_wait_space(struct producer *p, int ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long)ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&p->space_lock);
	pthread_cond_timedwait(&p->space, &p->space_lock, &until);
	pthread_mutex_unlock(&p->space_lock);
}

int producer_send(struct producer *p, struct job *job)
{
	bool output = job->outcome == JOB_OUTPUT;
	atomic_size_t *refused = output ? &p->refused_out : &p->refused_dlq;
	size_t len = output ? strlen(job->res.output) : input_bytes(job);
	size_t key_len = key_bytes(job);
	const char *value = output ? job->res.output : job->msg->payload;
	rd_kafka_headers_t *headers;
	rd_kafka_resp_err_t err;
	char topic[256];

	if (!job->cut && producer_record_bytes(job) >= atomic_load(refused))
		return -EFBIG;
	if (job->cut) {
		len = cut_len(value, len, PRODUCER_CUT_VALUE);
		key_len = cut_len(job->msg->key, key_len, PRODUCER_CUT_KEY);
	}
	headers = job_headers(job);
	/* Values and keys stay in the job until its delivery report: no
	 * copy flag. */
	err = rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(output ? p->out : p->dlq),
				RD_KAFKA_V_VALUE((void *)value, len),
				RD_KAFKA_V_KEY(job->msg->key, key_len),
				RD_KAFKA_V_HEADERS(headers),
				RD_KAFKA_V_OPAQUE(job), RD_KAFKA_V_END);
	if (!err)
		return 0; /* headers are librdkafka's now */
	rd_kafka_headers_destroy(headers);
	log_str(topic, sizeof(topic), producer_topic(p, job));
	switch (err) {
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
		queue_full(p);
		return -ENOBUFS;
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		if (!job->cut)
			return -EMSGSIZE;
		LOG_ERROR("a bounded dead letter is larger than "
			  "kafka.properties message.max.bytes allows: set it "
			  "to at least 65536",
			  "\"topic\":%s,\"bytes\":%zu", topic,
			  producer_record_bytes(job));
		break;
	case RD_KAFKA_RESP_ERR__STATE:
		if (p->transactional) {
			/* The transaction is failed (a record of it was
			 * refused): the commit aborts it and rewinds. */
			LOG_DEBUG("produce refused until the transaction "
				  "aborts", "\"source_offset\":%lld",
				  (long long)job->offset);
			return -ECANCELED;
		}
		/* fall through */
	default:
		LOG_ERROR("produce failed",
			  "\"topic\":%s,\"source_offset\":%lld,"
			  "\"error\":\"%s\"",
			  topic, (long long)job->offset, rd_kafka_err2str(err));
		break;
	}
	pipeline_request_stop(p->pl, true);
	return -EIO;
}

void producer_txn_lock(struct producer *p)
{
	pthread_mutex_lock(&p->txn);
}

void producer_txn_unlock(struct producer *p)
{
	pthread_mutex_unlock(&p->txn);
}

bool producer_transactional(const struct producer *p)
{
	return p->transactional;
}

/* Abort the open transaction and begin the next; -1 when fatal. */
static int txn_abort(struct producer *p, unsigned timeout_ms)
{
	rd_kafka_error_t *error = rd_kafka_abort_transaction(p->rk,
							     (int)timeout_ms);

	if (!error)
		error = rd_kafka_begin_transaction(p->rk);
	if (error) {
		char text[512];

		if (fenced(rd_kafka_error_code(error)))
			log_fenced(p, p->rk, rd_kafka_error_string(error));
		else
			LOG_ERROR("cannot abort the transaction",
				  "\"error\":%s",
				  log_str(text, sizeof(text),
					  rd_kafka_error_string(error)));
		rd_kafka_error_destroy(error);
		p->txn_open = false;
		pipeline_request_stop(p->pl, true);
		return -1;
	}
	return 0;
}

int producer_txn_commit(struct producer *p, rd_kafka_t *consumer,
			rd_kafka_topic_partition_list_t *offsets,
			unsigned timeout_ms)
{
	rd_kafka_consumer_group_metadata_t *meta;
	rd_kafka_error_t *error = NULL;
	char text[512];
	int tries;

	if (!p->txn_open)
		return -1;
	for (tries = 0; tries < 3; tries++) {
		meta = rd_kafka_consumer_group_metadata(consumer);
		error = rd_kafka_send_offsets_to_transaction(p->rk, offsets,
							     meta,
							     (int)timeout_ms);
		rd_kafka_consumer_group_metadata_destroy(meta);
		if (!error)
			error = rd_kafka_commit_transaction(p->rk,
							    (int)timeout_ms);
		if (!error) {
			error = rd_kafka_begin_transaction(p->rk);
			if (!error)
				return 0;
			break;
		}
		if (!rd_kafka_error_is_retriable(error))
			break;
		rd_kafka_error_destroy(error);
		error = NULL;
	}
	if (error && rd_kafka_error_txn_requires_abort(error)) {
		LOG_WARN("transaction aborted: its records are done again",
			 "\"error\":%s",
			 log_str(text, sizeof(text),
				 rd_kafka_error_string(error)));
		rd_kafka_error_destroy(error);
		return txn_abort(p, timeout_ms) < 0 ? -1 : 1;
	}
	/* Out of time while stopping: nothing of this transaction is
	 * committed, and nothing is lost (its records are done again after
	 * the restart, whose fencing aborts it); no reason for status 1. */
	if ((!error || rd_kafka_error_is_retriable(error)) &&
	    atomic_load(&p->pl->stopping)) {
		LOG_WARN("transaction not committed before shutdown.timeout_ms: "
			 "its records are done again after a restart",
			 "\"error\":%s",
			 log_str(text, sizeof(text),
				 error ? rd_kafka_error_string(error)
				       : "retries exhausted"));
		if (error)
			rd_kafka_error_destroy(error);
		p->txn_open = false;
		return -1;
	}
	/* Fenced by a newer instance with our id, or another fatal error:
	 * nothing of this transaction is committed. */
	if (error && fenced(rd_kafka_error_code(error)))
		log_fenced(p, p->rk, rd_kafka_error_string(error));
	else
		LOG_ERROR("transaction failed", "\"error\":%s",
			  log_str(text, sizeof(text),
				  error ? rd_kafka_error_string(error)
					: "retries exhausted"));
	if (error)
		rd_kafka_error_destroy(error);
	p->txn_open = false;
	pipeline_request_stop(p->pl, true);
	return -1;
}

int producer_txn_abort(struct producer *p, unsigned timeout_ms)
{
	return p->txn_open ? txn_abort(p, timeout_ms) : -1;
}

int producer_free(struct producer *p)
{
	int left = 0;

	if (!p)
		return 0;
	if (p->rk && p->txn_open) {
		/* Whatever was not committed is done again after restart;
		 * read_committed readers never see it. */
		rd_kafka_error_t *error;

		pipeline_stop_step(p->pl, "aborting the open transaction");
		error = rd_kafka_abort_transaction(
			p->rk, (int)pipeline_stop_left_ms(p->pl, TXN_TIMEOUT_MS));
		if (error)
			rd_kafka_error_destroy(error);
	}
	if (p->rk) {
		pipeline_stop_step(p->pl, "flushing the producer");
		rd_kafka_flush(p->rk, (int)pipeline_stop_left_ms(p->pl,
								 FLUSH_MS));
		left = rd_kafka_outq_len(p->rk);
	}
	if (p->started) {
		atomic_store(&p->stop, true);
		pthread_join(p->thread, NULL);
	}
	if (p->out)
		rd_kafka_topic_destroy(p->out);
	if (p->dlq)
		rd_kafka_topic_destroy(p->dlq);
	if (p->rk)
		rd_kafka_destroy(p->rk);
	pthread_mutex_destroy(&p->txn);
	pthread_cond_destroy(&p->space);
	pthread_mutex_destroy(&p->space_lock);
	slot_free(p->slot); /* after the producer: the id was ours to here */
	free(p);
	return left;
}
