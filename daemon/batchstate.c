/*
 * batchstate: see batchstate.h.
 */
#include "batchstate.h"

#include "clock.h"
#include "kafka.h"
#include "log.h"
#include "thread.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAIL_POLL_MS 200   /**< the tail thread looks at stop this often */
#define RETRY_MS 2000      /**< a state topic not found yet: ask again */
#define METADATA_MS 5000
#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

struct batchstate {
	const struct extractd_config *cfg;
	char prefix[1024];        /**< "GROUP/TOPIC/": the keys that are ours */
	rd_kafka_t *reader;       /**< the tail thread's */
	rd_kafka_t *writer;       /**< the batcher's */
	pthread_t thread;
	bool started;

	pthread_mutex_t lock;     /**< guards all below */
	pthread_cond_t moved;     /**< the tail moved, or the assignment came */
	bool stopping;
	bool assigned;            /**< the reader reads every partition */
	char why[512];            /**< why it does not, for sync's error */
	int32_t n_parts;          /**< the state topic's partitions */
	int64_t *read_to;         /**< per partition: the next offset to
				    *  read (after a message, or at an end) */
	struct batchstate_entry *entries;
	size_t n, cap;
};

/* A state record's delivery, as write_record() waits for it. */
struct delivery {
	bool done;
	bool abandoned;  /**< its writer stopped waiting: the report frees it */
	rd_kafka_resp_err_t err;
};

/* The writer's delivery report (in whichever thread serves the writer:
 * the batcher's flushes, then batchstate_free's, never two at once). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg,
			void *opaque)
{
	struct delivery *d = msg->_private;

	(void)rk;
	(void)opaque;
	if (d->abandoned) {
		free(d);
		return;
	}
	d->err = msg->err;
	d->done = true;
}

struct batchstate *batchstate_new(const struct extractd_config *cfg,
				  char *err, size_t err_size)
{
	struct batchstate *bs = calloc(1, sizeof(*bs));
	struct kafka_props *props;
	rd_kafka_conf_t *conf;
	char why[512];

	if (!bs) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	bs->cfg = cfg;
	pthread_mutex_init(&bs->lock, NULL);
	pthread_cond_init(&bs->moved, NULL);
	snprintf(bs->prefix, sizeof(bs->prefix), "%s/%s/", cfg->kafka.group,
		 cfg->kafka.input_topic);

	/* librdkafka assigns only with a group.id; the reader never joins
	 * the group (no subscription) nor commits. */
	snprintf(why, sizeof(why), "%s.batchstate", cfg->kafka.group);
	props = kafka_props_new("batch state reader", RD_KAFKA_CONSUMER,
				false);
	if (props) {
		kafka_props_require(props, "group.id", why);
		kafka_props_require(props, "enable.auto.commit", "false");
		kafka_props_require(props, "enable.partition.eof", "true");
		kafka_props_require(props, "auto.offset.reset", "earliest");
	}
	conf = props ? kafka_conf_new(cfg, props, err, err_size) : NULL;
	kafka_props_free(props);
	if (!conf)
		goto fail_conf;
	bs->reader = kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
	if (!bs->reader) {
		snprintf(err, err_size, "cannot create the batch state reader: "
			 "%s", why);
		goto fail;
	}
	rd_kafka_poll_set_consumer(bs->reader);

	props = kafka_props_new("batch state writer", RD_KAFKA_PRODUCER,
				false);
	if (props) {
		kafka_props_require(props, "enable.idempotence", "true");
		kafka_props_require(props, "acks", "all");
		kafka_props_default(props, "linger.ms", "0");
	}
	conf = props ? kafka_conf_new(cfg, props, err, err_size) : NULL;
	kafka_props_free(props);
	if (!conf)
		goto fail_conf;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	bs->writer = kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!bs->writer) {
		snprintf(err, err_size, "cannot create the batch state writer: "
			 "%s", why);
		goto fail;
	}
	return bs;
fail_conf:
	if (!props && !*err)
		snprintf(err, err_size, "out of memory");
fail:
	batchstate_free(bs);
	return NULL;
}

/* With the lock: the index of the entry of (partition, first), or -1. */
static long entry_index(struct batchstate *bs, const char *topic,
			int32_t partition, int64_t first)
{
	size_t i;

	for (i = 0; i < bs->n; i++)
		if (bs->entries[i].partition == partition &&
		    bs->entries[i].first == first &&
		    !strcmp(bs->entries[i].topic, topic))
			return (long)i;
	return -1;
}

/* With the lock: set an entry (replace its namesake), or remove it. */
static void table_set(struct batchstate *bs, const struct batchstate_entry *e,
		      bool remove)
{
	long i = entry_index(bs, e->topic, e->partition, e->first);

	if (remove) {
		if (i >= 0)
			bs->entries[i] = bs->entries[--bs->n];
		return;
	}
	if (i >= 0) {
		bs->entries[i] = *e;
		return;
	}
	if (bs->n == bs->cap) {
		size_t cap = bs->cap ? 2 * bs->cap : 16;
		struct batchstate_entry *p =
			realloc(bs->entries, cap * sizeof(*p));

		if (!p) {
			LOG_ERROR("out of memory keeping a batch's state: a "
				  "new owner of its partition would send its "
				  "records again",
				  LOG_S("batch", e->batch_id));
			return;
		}
		bs->entries = p;
		bs->cap = cap;
	}
	bs->entries[bs->n++] = *e;
}

static void key_of(const struct batchstate *bs,
		   const struct batchstate_entry *e, char *buf, size_t size)
{
	snprintf(buf, size, "%s%" PRId32 "/%" PRId64, bs->prefix,
		 e->partition, e->first);
}

static enum cfg_llm_mode mode_named(const char *name)
{
	int m;

	for (m = 0; m < CFG_MODE_AUTO; m++)
		if (!strcmp(cfg_mode_name((enum cfg_llm_mode)m), name))
			return (enum cfg_llm_mode)m;
	return CFG_MODE_AUTO;
}

static bool copy_id(char *dst, struct json_object *obj, const char *key)
{
	struct json_object *v;
	const char *s;

	if (!json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return false;
	s = json_object_get_string(v);
	if (!*s || strlen(s) >= BATCH_ID_MAX)
		return false;
	strcpy(dst, s);
	return true;
}

static bool get_int(struct json_object *obj, const char *key, int64_t *ret)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return false;
	*ret = json_object_get_int64(v);
	return true;
}

/*
 * Read one state record into e; remove says it is a tombstone. Returns 0,
 * 1 for a record of another group or topic, -1 for one that is not ours
 * to read (logged).
 */
static int parse_record(struct batchstate *bs, const rd_kafka_message_t *m,
			struct batchstate_entry *e, bool *remove)
{
	size_t plen = strlen(bs->prefix);
	char key[1200];
	struct json_tokener *tok;
	struct json_object *doc, *v;
	int64_t count = 0;
	char mode[32] = "";
	int end = 0;

	memset(e, 0, sizeof(*e));
	if (!m->key || m->key_len >= sizeof(key) || m->key_len <= plen ||
	    memcmp(m->key, bs->prefix, plen))
		return 1;
	memcpy(key, m->key, m->key_len);
	key[m->key_len] = '\0';
	if (sscanf(key + plen, "%" SCNd32 "/%" SCNd64 "%n", &e->partition,
		   &e->first, &end) != 2 || key[plen + (size_t)end])
		return -1;
	snprintf(e->topic, sizeof(e->topic), "%s", bs->cfg->kafka.input_topic);
	*remove = !m->payload;
	if (*remove)
		return 0;
	tok = json_tokener_new();
	doc = tok ? json_tokener_parse_ex(tok, m->payload, (int)m->len)
		  : NULL;
	json_tokener_free(tok);
	if (!doc)
		return -1;
	if (json_object_object_get_ex(doc, "mode", &v) &&
	    json_object_is_type(v, json_type_string))
		snprintf(mode, sizeof(mode), "%s", json_object_get_string(v));
	e->mode = mode_named(mode);
	if (!copy_id(e->batch_id, doc, "batch") ||
	    !copy_id(e->input_file, doc, "input_file") ||
	    !get_int(doc, "last", &e->last) || !get_int(doc, "count", &count) ||
	    e->last < e->first || count <= 0 || e->mode == CFG_MODE_AUTO) {
		json_object_put(doc);
		return -1;
	}
	e->count = (uint64_t)count;
	json_object_put(doc);
	return 0;
}

/* Apply a message of the state topic to the table; move the tail. */
static void take(struct batchstate *bs, const rd_kafka_message_t *m)
{
	static struct log_limit limit = LOG_LIMIT_INIT;
	struct batchstate_entry e;
	bool remove = false;
	uint64_t held;
	int r = parse_record(bs, m, &e, &remove);

	if (r < 0 && log_limit(&limit, 5, 60 * NS_PER_S, &held))
		LOG_WARN("an unreadable record in batch.state_topic, skipped",
			 LOG_S("topic", bs->cfg->batch.state_topic),
			 LOG_I("partition", m->partition),
			 LOG_I("offset", m->offset), LOG_U("held_back", held));
	pthread_mutex_lock(&bs->lock);
	if (r == 0)
		table_set(bs, &e, remove);
	if (m->partition >= 0 && m->partition < bs->n_parts &&
	    bs->read_to[m->partition] < m->offset + 1)
		bs->read_to[m->partition] = m->offset + 1;
	pthread_cond_broadcast(&bs->moved);
	pthread_mutex_unlock(&bs->lock);
}

/* The end of a partition was reached at offset: it is read to there. */
static void at_end(struct batchstate *bs, int32_t partition, int64_t offset)
{
	pthread_mutex_lock(&bs->lock);
	if (partition >= 0 && partition < bs->n_parts &&
	    bs->read_to[partition] < offset)
		bs->read_to[partition] = offset;
	pthread_cond_broadcast(&bs->moved);
	pthread_mutex_unlock(&bs->lock);
}

/* Find the state topic's partitions and read them all from the start.
 * Returns 0, or -1 with the reason in why. */
static int assign_all(struct batchstate *bs, char *why, size_t size)
{
	const char *name = bs->cfg->batch.state_topic;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_topic_t *t = rd_kafka_topic_new(bs->reader, name, NULL);
	rd_kafka_resp_err_t err;
	int64_t *read_to;
	int i, n;

	if (!t) {
		snprintf(why, size, "out of memory");
		return -1;
	}
	err = rd_kafka_metadata(bs->reader, 0, t, &md, METADATA_MS);
	rd_kafka_topic_destroy(t);
	if (err) {
		snprintf(why, size, "cannot read its metadata: %s",
			 rd_kafka_err2str(err));
		return -1;
	}
	if (md->topic_cnt != 1 || md->topics[0].err ||
	    md->topics[0].partition_cnt <= 0) {
		snprintf(why, size, "%s",
			 md->topic_cnt == 1 && md->topics[0].err
				 ? rd_kafka_err2str(md->topics[0].err)
				 : "no such topic");
		rd_kafka_metadata_destroy(md);
		return -1;
	}
	n = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	read_to = calloc((size_t)n, sizeof(*read_to));
	list = rd_kafka_topic_partition_list_new(n);
	if (!read_to || !list) {
		free(read_to);
		if (list)
			rd_kafka_topic_partition_list_destroy(list);
		snprintf(why, size, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(list, name, i)->offset =
			RD_KAFKA_OFFSET_BEGINNING;
	err = rd_kafka_assign(bs->reader, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err) {
		free(read_to);
		snprintf(why, size, "cannot read it: %s",
			 rd_kafka_err2str(err));
		return -1;
	}
	pthread_mutex_lock(&bs->lock);
	bs->read_to = read_to;
	bs->n_parts = n;
	bs->assigned = true;
	pthread_cond_broadcast(&bs->moved);
	pthread_mutex_unlock(&bs->lock);
	LOG_INFO("reading batch.state_topic", LOG_S("topic", name),
		 LOG_I("partitions", n));
	return 0;
}

static bool stopping(struct batchstate *bs)
{
	bool s;

	pthread_mutex_lock(&bs->lock);
	s = bs->stopping;
	pthread_mutex_unlock(&bs->lock);
	return s;
}

static void *tail_main(void *arg)
{
	static struct log_limit read_limit = LOG_LIMIT_INIT;
	struct batchstate *bs = arg;
	int64_t next_log = 0;
	uint64_t held;

	thread_enter("batchstate");
	while (!stopping(bs)) {
		rd_kafka_message_t *m;
		char why[512];

		if (!bs->assigned) {
			if (assign_all(bs, why, sizeof(why)) == 0)
				continue;
			pthread_mutex_lock(&bs->lock);
			snprintf(bs->why, sizeof(bs->why), "%s", why);
			pthread_mutex_unlock(&bs->lock);
			if (mono_ns() >= next_log) {
				/* Records bound for batches wait meanwhile
				 * (their partitions are paused). */
				LOG_ERROR("batch.state_topic cannot be read: "
					  "create it (cleanup.policy=compact); "
					  "batching waits for it",
					  LOG_S("topic",
						bs->cfg->batch.state_topic),
					  LOG_S("error", why));
				next_log = mono_ns() + 60 * NS_PER_S;
			}
			pthread_mutex_lock(&bs->lock);
			if (!bs->stopping) {
				struct timespec until =
					realtime_in_ns(RETRY_MS * NS_PER_MS);

				pthread_cond_timedwait(&bs->moved, &bs->lock,
						       &until);
			}
			pthread_mutex_unlock(&bs->lock);
			continue;
		}
		m = rd_kafka_consumer_poll(bs->reader, TAIL_POLL_MS);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			at_end(bs, m->partition, m->offset);
		else if (m->err && log_limit(&read_limit, 3, 60 * NS_PER_S,
					     &held))
			LOG_WARN("batch.state_topic read error",
				 LOG_S("error", rd_kafka_message_errstr(m)),
				 LOG_U("held_back", held));
		else
			take(bs, m);
		rd_kafka_message_destroy(m);
	}
	return NULL;
}

int batchstate_start(struct batchstate *bs, char *err, size_t err_size)
{
	int r = pthread_create(&bs->thread, NULL, tail_main, bs);

	if (r) {
		snprintf(err, err_size, "cannot start a thread: %s",
			 strerror(r));
		return -1;
	}
	bs->started = true;
	return 0;
}

void batchstate_free(struct batchstate *bs)
{
	if (!bs)
		return;
	if (bs->started) {
		pthread_mutex_lock(&bs->lock);
		bs->stopping = true;
		pthread_cond_broadcast(&bs->moved);
		pthread_mutex_unlock(&bs->lock);
		pthread_join(bs->thread, NULL);
	}
	if (bs->reader) {
		rd_kafka_consumer_close(bs->reader);
		rd_kafka_destroy(bs->reader);
	}
	if (bs->writer) {
		rd_kafka_flush(bs->writer, 1000);
		rd_kafka_destroy(bs->writer);
	}
	pthread_cond_destroy(&bs->moved);
	pthread_mutex_destroy(&bs->lock);
	free(bs->read_to);
	free(bs->entries);
	free(bs);
}

int batchstate_sync(struct batchstate *bs, unsigned timeout_ms, char *err,
		    size_t err_size)
{
	int64_t deadline = mono_ns() + (int64_t)timeout_ms * NS_PER_MS;
	struct timespec until = realtime_in_ns((int64_t)timeout_ms *
					       NS_PER_MS);
	int64_t *want;
	int32_t i, n;
	int r = 0;

	pthread_mutex_lock(&bs->lock);
	while (!bs->assigned && !bs->stopping && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&bs->moved, &bs->lock, &until);
	n = bs->n_parts;
	if (!bs->assigned) {
		snprintf(err, err_size, "batch.state_topic '%s': %s",
			 bs->cfg->batch.state_topic,
			 *bs->why ? bs->why : "not read yet");
		pthread_mutex_unlock(&bs->lock);
		return -1;
	}
	pthread_mutex_unlock(&bs->lock);

	want = calloc((size_t)n, sizeof(*want));
	if (!want) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		int64_t lo, hi, left = (deadline - mono_ns()) / NS_PER_MS;
		rd_kafka_resp_err_t e;

		e = rd_kafka_query_watermark_offsets(
			bs->reader, bs->cfg->batch.state_topic, i, &lo, &hi,
			left > 0 ? (int)left : 1);
		if (e) {
			snprintf(err, err_size, "batch.state_topic '%s': "
				 "cannot read its end: %s",
				 bs->cfg->batch.state_topic,
				 rd_kafka_err2str(e));
			free(want);
			return -1;
		}
		want[i] = hi;
	}
	pthread_mutex_lock(&bs->lock);
	for (i = 0, r = 0; i < n && r != ETIMEDOUT;) {
		if (bs->read_to[i] >= want[i]) {
			i++;
			continue;
		}
		r = pthread_cond_timedwait(&bs->moved, &bs->lock, &until);
	}
	pthread_mutex_unlock(&bs->lock);
	free(want);
	if (i < n) {
		snprintf(err, err_size, "batch.state_topic '%s': not read to "
			 "its end within %u ms", bs->cfg->batch.state_topic,
			 timeout_ms);
		return -1;
	}
	return 0;
}

bool batchstate_find(struct batchstate *bs, const char *topic,
		     int32_t partition, int64_t offset,
		     struct batchstate_entry *ret)
{
	bool found = false;
	size_t i;

	pthread_mutex_lock(&bs->lock);
	for (i = 0; i < bs->n && !found; i++) {
		const struct batchstate_entry *e = &bs->entries[i];

		if (e->partition == partition && e->first <= offset &&
		    offset <= e->last && !strcmp(e->topic, topic)) {
			*ret = *e;
			found = true;
		}
	}
	pthread_mutex_unlock(&bs->lock);
	return found;
}

size_t batchstate_passed(struct batchstate *bs, const char *topic,
			 int32_t partition, int64_t position,
			 struct batchstate_entry *ret, size_t max)
{
	size_t i, n = 0;

	pthread_mutex_lock(&bs->lock);
	for (i = 0; i < bs->n && n < max; i++) {
		const struct batchstate_entry *e = &bs->entries[i];

		if (e->partition == partition && e->last < position &&
		    !strcmp(e->topic, topic))
			ret[n++] = *e;
	}
	pthread_mutex_unlock(&bs->lock);
	return n;
}

size_t batchstate_count(struct batchstate *bs)
{
	size_t n;

	pthread_mutex_lock(&bs->lock);
	n = bs->n;
	pthread_mutex_unlock(&bs->lock);
	return n;
}

/* Produce key (value, or a tombstone when NULL) and wait for its
 * delivery report. */
static int write_record(struct batchstate *bs, const char *key,
			const char *value, unsigned timeout_ms, char *err,
			size_t err_size)
{
	struct delivery *d = calloc(1, sizeof(*d));
	rd_kafka_resp_err_t e;

	if (!d) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	e = rd_kafka_producev(
		bs->writer, RD_KAFKA_V_TOPIC(bs->cfg->batch.state_topic),
		RD_KAFKA_V_KEY(key, strlen(key)),
		RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
	if (e) {
		free(d);
		snprintf(err, err_size, "cannot write to batch.state_topic: "
			 "%s", rd_kafka_err2str(e));
		return -1;
	}
	rd_kafka_flush(bs->writer, (int)timeout_ms);
	if (!d->done) {
		/* Still queued: it may yet be written (a later put or drop
		 * of the same key supersedes it); its report frees d. */
		d->abandoned = true;
		snprintf(err, err_size, "batch.state_topic did not take the "
			 "record within %u ms", timeout_ms);
		return -1;
	}
	e = d->err;
	free(d);
	if (e) {
		snprintf(err, err_size, "batch.state_topic refused the "
			 "record: %s", rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

int batchstate_put(struct batchstate *bs, const struct batchstate_entry *e,
		   unsigned timeout_ms, char *err, size_t err_size)
{
	struct json_object *doc = json_object_new_object();
	char key[1200];
	int r;

	if (!doc) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	key_of(bs, e, key, sizeof(key));
	json_object_object_add(doc, "batch",
			       json_object_new_string(e->batch_id));
	json_object_object_add(doc, "input_file",
			       json_object_new_string(e->input_file));
	json_object_object_add(doc, "topic", json_object_new_string(e->topic));
	json_object_object_add(doc, "partition",
			       json_object_new_int(e->partition));
	json_object_object_add(doc, "first", json_object_new_int64(e->first));
	json_object_object_add(doc, "last", json_object_new_int64(e->last));
	json_object_object_add(doc, "count",
			       json_object_new_int64((int64_t)e->count));
	json_object_object_add(doc, "mode",
			       json_object_new_string(cfg_mode_name(e->mode)));
	pthread_mutex_lock(&bs->lock);
	table_set(bs, e, false);
	pthread_mutex_unlock(&bs->lock);
	r = write_record(bs, key,
			 json_object_to_json_string_ext(doc,
							JSON_C_TO_STRING_PLAIN),
			 timeout_ms, err, err_size);
	json_object_put(doc);
	return r;
}

int batchstate_drop(struct batchstate *bs, const struct batchstate_entry *e,
		    unsigned timeout_ms, char *err, size_t err_size)
{
	char key[1200];

	key_of(bs, e, key, sizeof(key));
	pthread_mutex_lock(&bs->lock);
	table_set(bs, e, true);
	pthread_mutex_unlock(&bs->lock);
	return write_record(bs, key, NULL, timeout_ms, err, err_size);
}
