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
 * refused the record as too large (pipeline.c says what follows).
 *
 * producer_send() never waits: on a full queue the caller (a worker,
 * holding no lock) waits in producer_wait_space(), which the poll thread
 * wakes after each batch of delivery reports; the job keeps its slot
 * meanwhile, so a slow Kafka slows admission. A full queue is reported at
 * info level, at most every QUEUE_FULL_LOG_NS.
 *
 * Values and keys are produced without copies: the caller keeps them
 * until the delivery report (the pipeline's job holds the LLM's output
 * and the input message).
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

#include "clock.h"
#include "kafka.h"
#include "log.h"
#include "slot.h"
#include "stop.h"
#include "thread.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_FULL_LOG_NS (10LL * 1000000000) /**< at most one line */

struct producer {
	const struct extractd_config *cfg;
	struct stop *stop;
	producer_delivered_fn *delivered;
	producer_source_fn *source;
	rd_kafka_t *rk;
	pthread_t thread;
	bool started;
	atomic_bool quit;        /**< the poll thread ends */
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
	static struct log_limit limit = LOG_LIMIT_INIT;
	struct producer *p = opaque;
	uint64_t held;

	(void)rk;
	/* A success with no offset is librdkafka taking a broker's
	 * "duplicate sequence" as an earlier write of the record. With
	 * librdkafka 2.0.2 against Kafka 4.4 such a record was once seen
	 * missing from a new partition (a test's own producer): say so, so
	 * that a record missing downstream can be traced here. */
	if (!msg->err && msg->offset < 0 &&
	    log_limit(&limit, 1, 60 * 1000000000LL, &held))
		LOG_WARN("the broker acknowledged a record without its "
			 "offset (a duplicate write, as librdkafka takes it)",
			 LOG_S("topic", rd_kafka_topic_name(msg->rkt)),
			 LOG_I("partition", msg->partition),
			 LOG_U("held_back", held));
	p->delivered(msg->_private, msg->err);
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
	char id[512];
	size_t size = sizeof(id);

	if (atomic_exchange(&p->fence_told, true))
		return;
	if (rd_kafka_conf_get(rd_kafka_conf(rk), "transactional.id", id,
			      &size) != RD_KAFKA_CONF_OK)
		snprintf(id, sizeof(id), "?");
	LOG_ERROR("fenced: another producer started with this "
		  "transactional.id; stopping",
		  LOG_S("transactional_id", id), LOG_S("error", why),
		  LOG_S("fix", "give each instance its own transactional.id; "
			       "two get the same one from one kafka.properties "
			       "transactional.id, from two hosts with the same "
			       "hostname, or on one host from different slot "
			       "directories ($RUNTIME_DIRECTORY, else "
			       "/run/extractd, $TMPDIR, /tmp)"));
}

static void on_error(rd_kafka_t *rk, int err, const char *reason,
		     void *opaque)
{
	struct producer *p = opaque;

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char why[512];

		if (fenced(rd_kafka_fatal_error(rk, why, sizeof(why))))
			log_fenced(p, rk, why);
		else
			LOG_ERROR("fatal producer error", LOG_S("error", why));
		stop_request(p->stop, true);
		return;
	}
	LOG_WARN("producer error", LOG_S("error", reason));
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
 * count (rkt_opaque: the producer). */
static int32_t by_source(const rd_kafka_topic_t *rkt, const void *key,
			 size_t keylen, int32_t partition_cnt,
			 void *rkt_opaque, void *msg_opaque)
{
	const struct producer *p = rkt_opaque;

	(void)rkt;
	(void)key;
	(void)keylen;
	return p->source(msg_opaque) % partition_cnt;
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

/* The poll thread serves the delivery reports as they come; with none
 * it sleeps. producer_free() wakes it to quit (its queue's yield); the
 * timeout only backs that up. */
#define POLL_IDLE_MS 1000

static void *poll_main(void *arg)
{
	struct producer *p = arg;

	thread_enter("producer");
	while (!atomic_load(&p->quit)) {
		if (rd_kafka_poll(p->rk, POLL_IDLE_MS) > 0) {
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
	const struct extractd_config *cfg = p->cfg;
	char host[256] = "localhost", name[512], id[sizeof(name) + 16];
	char dir[PATH_MAX], why[PATH_MAX + 128];
	size_t i;

	for (i = 0; i < cfg->kafka.n_properties; i++)
		if (!strcmp(cfg->kafka.properties[i].name,
			    "transactional.id")) {
			LOG_INFO("exactly-once",
				 LOG_S("transactional_id",
				       cfg->kafka.properties[i].value),
				 LOG_S("from", "kafka.properties"));
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
			 LOG_S("transactional_id", id));
	} else {
		p->slot = slot_claim(dir, name, why, sizeof(why));
		if (!p->slot) {
			snprintf(err, err_size,
				 "exactly-once: cannot claim a transactional.id "
				 "slot: %s", why);
			return -1;
		}
		snprintf(id, sizeof(id), "%s-%u", name, slot_number(p->slot));
		LOG_INFO("exactly-once", LOG_S("transactional_id", id),
			 LOG_S("lock", slot_path(p->slot)));
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

struct kafka_props *producer_kafka_props(const struct extractd_config *cfg)
{
	bool by_key = placement(cfg) == PLACE_KEY;
	struct kafka_props *props = kafka_props_new(
		"producer", RD_KAFKA_PRODUCER,
		cfg->output.delivery == CFG_DELIVERY_EXACTLY_ONCE);

	if (!props)
		return NULL;
	/*
	 * message.max.bytes: a dead letter carries its input unchanged, and
	 * an input can be as large as the consumer fetches (its
	 * receive.message.max.bytes, 100000000 by default). librdkafka's
	 * default of 1000000 fails such a dead letter (and a record near
	 * llm.max_response_bytes) at produce time, which stops extractd on
	 * the same record after every restart. The topics' own
	 * max.message.bytes still applies on the brokers (docs/delivery.md).
	 *
	 * batch.size 65536 (PRODUCER_SAFE_BYTES; librdkafka's default is
	 * 1000000): a record larger than that goes alone in its batch, and
	 * smaller ones are batched up to it, so a broker refusing a batch as
	 * too large refuses exactly one record, one extractd replaces in its
	 * place (pipeline.c). With 1 MB batches a topic whose limit is below
	 * 1 MB would refuse a batch of small records along with a big one.
	 *
	 * linger.ms 5 (librdkafka's own default): outputs go in batches,
	 * fewer produce requests and broker-thread wakeups (~9% less CPU
	 * per record at 5,000 records/s). The few ms a record waits hold
	 * no LLM slot: the slot went back when its call ended.
	 */
	kafka_props_default(props, "linger.ms", "5");
	kafka_props_default(props, "message.max.bytes", "100000000");
	kafka_props_default(props, "batch.size", "65536");
	kafka_props_default(props, "queue.buffering.max.messages", "1000000");
	kafka_props_default(props, "queue.buffering.max.kbytes", "2097151");
	/* By key (as Java clients do) librdkafka's partitioner, by name;
	 * else a callback, which a "partitioner" string would override. */
	if (by_key)
		kafka_props_default(props, "partitioner", "murmur2_random");

	kafka_props_require(props, "enable.idempotence", "true");
	kafka_props_require(props, "acks", "all");
	kafka_props_require(props, "message.timeout.ms", "0");
	/* With a callback: sticky partitioning would place keyless records
	 * without asking it. */
	if (!by_key)
		kafka_props_require(props, "sticky.partitioning.linger.ms",
				    "0");
	return props;
}

struct producer *producer_new(const struct extractd_config *cfg,
			      struct stop *stop,
			      producer_delivered_fn *delivered,
			      producer_source_fn *source, char *err,
			      size_t err_size)
{
	enum placement place = placement(cfg);
	struct kafka_props *props;
	struct producer *p = calloc(1, sizeof(*p));
	rd_kafka_conf_t *conf;
	char why[512];
	int r;

	if (!p) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	p->cfg = cfg;
	p->stop = stop;
	p->delivered = delivered;
	p->source = source;
	pthread_mutex_init(&p->space_lock, NULL);
	pthread_cond_init(&p->space, NULL);
	atomic_init(&p->refused_out, SIZE_MAX);
	atomic_init(&p->refused_dlq, SIZE_MAX);
	props = producer_kafka_props(cfg);
	if (!props) {
		snprintf(err, err_size, "out of memory");
		goto fail;
	}
	conf = kafka_conf_new(cfg, props, err, err_size);
	kafka_props_free(props);
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
		rd_kafka_topic_conf_set_opaque(tconf, p);
	}
	p->transactional = cfg->output.delivery == CFG_DELIVERY_EXACTLY_ONCE;
	pthread_mutex_init(&p->txn, NULL);
	if (p->transactional && set_transactional_id(p, conf, err,
						      err_size) < 0) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	p->rk = kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!p->rk) {
		snprintf(err, err_size, "cannot create the producer: %s", why);
		goto fail;
	}
	conf = NULL; /* now owned by p->rk */
	/* A topic handle made here asks for the topic's metadata at once
	 * (asynchronously); a topic first named by a produce call waits
	 * for librdkafka's 1-second topic scan, and the first records hold
	 * their slots meanwhile. */
	p->out = rd_kafka_topic_new(p->rk, cfg->kafka.output_topic, NULL);
	p->dlq = rd_kafka_topic_new(p->rk, cfg->kafka.dlq_topic, NULL);
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

const char *producer_topic(const struct producer *p, enum producer_dest dest)
{
	return dest == PRODUCER_OUTPUT ? p->cfg->kafka.output_topic
				       : p->cfg->kafka.dlq_topic;
}

static atomic_size_t *refused(struct producer *p, enum producer_dest dest)
{
	return dest == PRODUCER_OUTPUT ? &p->refused_out : &p->refused_dlq;
}

void producer_refused(struct producer *p, enum producer_dest dest,
		      size_t bytes)
{
	atomic_size_t *min = refused(p, dest);
	size_t was = atomic_load(min);

	while (bytes < was && !atomic_compare_exchange_weak(min, &was, bytes))
		;
}

bool producer_too_large(struct producer *p, enum producer_dest dest,
			size_t bytes)
{
	return bytes >= atomic_load(refused(p, dest));
}

/* -ENOBUFS: count it, and say so at most every QUEUE_FULL_LOG_NS. */
static void queue_full(struct producer *p)
{
	int64_t now = mono_ns(), last = atomic_load(&p->queue_full_ns);

	atomic_fetch_add(&p->queue_full, 1);
	if (last && now - last < QUEUE_FULL_LOG_NS)
		return;
	if (!atomic_compare_exchange_strong(&p->queue_full_ns, &last, now))
		return;
	LOG_INFO("producer queue full: records wait for Kafka to take "
		 "earlier ones, and admission slows (kafka.properties "
		 "queue.buffering.max.messages and .kbytes)",
		 LOG_U("waits", atomic_exchange(&p->queue_full, 0)));
}

void producer_wait_space(struct producer *p, int ms)
{
	struct timespec until = realtime_in_ns((int64_t)ms * 1000000);

	pthread_mutex_lock(&p->space_lock);
	pthread_cond_timedwait(&p->space, &p->space_lock, &until);
	pthread_mutex_unlock(&p->space_lock);
}

const rd_kafka_headers_t *producer_input_headers(rd_kafka_message_t *msg)
{
	rd_kafka_headers_t *h = NULL;

	if (rd_kafka_message_headers(msg, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return NULL;
	return h;
}

int producer_send(struct producer *p, enum producer_dest dest,
		  const void *value, size_t len, const void *key,
		  size_t key_len, rd_kafka_headers_t *headers, void *opaque,
		  rd_kafka_resp_err_t *ret_err)
{
	rd_kafka_resp_err_t err;

	/* No copy flag: the caller keeps value and key until the report. */
	err = rd_kafka_producev(
		p->rk, RD_KAFKA_V_RKT(dest == PRODUCER_OUTPUT ? p->out : p->dlq),
		RD_KAFKA_V_VALUE((void *)value, len),
		RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_HEADERS(headers),
		RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
	if (!err)
		return 0; /* headers are librdkafka's now */
	rd_kafka_headers_destroy(headers);
	*ret_err = err;
	switch (err) {
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
		queue_full(p);
		return -ENOBUFS;
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		return -EMSGSIZE;
	case RD_KAFKA_RESP_ERR__STATE:
		/* With transactions: the transaction is failed (a record of
		 * it was refused); the commit aborts it and rewinds. */
		return p->transactional ? -ECANCELED : -EIO;
	default:
		return -EIO;
	}
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
		if (fenced(rd_kafka_error_code(error)))
			log_fenced(p, p->rk, rd_kafka_error_string(error));
		else
			LOG_ERROR("cannot abort the transaction",
				  LOG_S("error",
					rd_kafka_error_string(error)));
		rd_kafka_error_destroy(error);
		p->txn_open = false;
		stop_request(p->stop, true);
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
			 LOG_S("error", rd_kafka_error_string(error)));
		rd_kafka_error_destroy(error);
		return txn_abort(p, timeout_ms) < 0 ? -1 : 1;
	}
	/* Out of time while stopping: nothing of this transaction is
	 * committed, and nothing is lost (its records are done again after
	 * the restart, whose fencing aborts it); no reason for status 1. */
	if ((!error || rd_kafka_error_is_retriable(error)) &&
	    stop_stopping(p->stop)) {
		LOG_WARN("transaction not committed before shutdown.timeout_ms: "
			 "its records are done again after a restart",
			 LOG_S("error", error ? rd_kafka_error_string(error)
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
		LOG_ERROR("transaction failed",
			  LOG_S("error", error ? rd_kafka_error_string(error)
					       : "retries exhausted"));
	if (error)
		rd_kafka_error_destroy(error);
	p->txn_open = false;
	stop_request(p->stop, true);
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

		stop_step(p->stop, "aborting the open transaction");
		error = rd_kafka_abort_transaction(
			p->rk, (int)stop_left_ms(p->stop, TXN_TIMEOUT_MS));
		if (error)
			rd_kafka_error_destroy(error);
	}
	if (p->rk) {
		stop_step(p->stop, "flushing the producer");
		rd_kafka_flush(p->rk, (int)stop_left_ms(p->stop, FLUSH_MS));
		left = rd_kafka_outq_len(p->rk);
	}
	if (p->started) {
		rd_kafka_queue_t *q = rd_kafka_queue_get_main(p->rk);

		atomic_store(&p->quit, true);
		if (q) {
			rd_kafka_queue_yield(q); /* ends its poll's wait */
			rd_kafka_queue_destroy(q);
		}
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
