/*
 * consumer: see consumer.h.
 *
 * DESIGN
 * ------
 * The thread owns its rd_kafka_t, its partition table and its held
 * messages; nothing else touches them, except consumer_store(), which
 * only calls librdkafka (thread-safe) with the handle.
 *
 * Admission: each message needs a slot (sem_trywait). When none is free
 * the message is held, every assigned partition is paused, and the loop
 * waits for a slot in short steps, polling in between so rebalances and
 * the group session are served. Pausing makes librdkafka drop what it had
 * fetched for those partitions and fetch again from the position after
 * the last message handed to us, so nothing is skipped; a message that
 * still arrives while paused joins the held queue.
 *
 * Offsets: enable.auto.offset.store=false; the delivery reports store the
 * contiguous delivered prefix (offsets.h), and auto-commit commits what is
 * stored. On revoke, the callback waits (bounded) for the partitions'
 * work to be delivered, commits synchronously, then lets them go.
 */
#include "consumer.h"

#include "kafka.h"
#include "log.h"
#include "offsets.h"
#include "pipeline.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REVOKE_WAIT_NS (10LL * 1000000000) /**< bound on a revoke's wait */
#define SLOT_WAIT_MS 100                   /**< poll at least this often */

struct consumer {
	struct pipeline *pl;
	unsigned index;
	rd_kafka_t *rk;
	pthread_t thread;
	bool started;

	struct partition **parts; /**< by partition id; NULL: not ours */
	size_t n_parts;

	rd_kafka_message_t **held; /**< waiting for a slot, oldest first */
	size_t n_held, cap_held;
	bool paused;
};

void consumer_store(struct consumer *c, const char *topic, int32_t partition,
		    int64_t position)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;

	list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(list, topic, partition)->offset =
		position;
	err = rd_kafka_offsets_store(c->rk, list);
	if (err)
		LOG_DEBUG("offset not stored",
			  "\"partition\":%d,\"offset\":%lld,\"error\":\"%s\"",
			  (int)partition, (long long)position,
			  rd_kafka_err2str(err));
	rd_kafka_topic_partition_list_destroy(list);
}

static struct partition *table_get(struct consumer *c, int32_t id)
{
	return id >= 0 && (size_t)id < c->n_parts ? c->parts[id] : NULL;
}

static int table_put(struct consumer *c, int32_t id, struct partition *part)
{
	if ((size_t)id >= c->n_parts) {
		size_t n = (size_t)id + 1;
		struct partition **p = realloc(c->parts, n * sizeof(*p));

		if (!p)
			return -1;
		memset(p + c->n_parts, 0, (n - c->n_parts) * sizeof(*p));
		c->parts = p;
		c->n_parts = n;
	}
	c->parts[id] = part;
	return 0;
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
	LOG_DEBUG(pause ? "no free slot: partitions paused"
			: "slots free: partitions resumed",
		  "\"consumer\":%u", c->index);
}

static int held_push(struct consumer *c, rd_kafka_message_t *msg)
{
	if (c->n_held == c->cap_held) {
		size_t cap = c->cap_held ? c->cap_held * 2 : 8;
		rd_kafka_message_t **h = realloc(c->held, cap * sizeof(*h));

		if (!h)
			return -1;
		c->held = h;
		c->cap_held = cap;
	}
	c->held[c->n_held++] = msg;
	return 0;
}

static rd_kafka_message_t *held_pop(struct consumer *c)
{
	rd_kafka_message_t *msg = c->held[0];

	memmove(c->held, c->held + 1, --c->n_held * sizeof(*c->held));
	return msg;
}

/* Drop held messages of one partition (-1: all). They hold no slot and
 * no offset was tracked: they are fetched again by whoever owns them. */
static void held_drop(struct consumer *c, int32_t id)
{
	size_t i, kept = 0;

	for (i = 0; i < c->n_held; i++) {
		if (id < 0 || c->held[i]->partition == id)
			rd_kafka_message_destroy(c->held[i]);
		else
			c->held[kept++] = c->held[i];
	}
	c->n_held = kept;
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
		struct partition *part;

		if (table_get(c, tp->partition))
			continue;
		part = partition_new(c, tp->topic, tp->partition,
				     c->pl->cfg->output.ordering ==
					     CFG_ORDER_OFFSET);
		if (!part || table_put(c, tp->partition, part) < 0) {
			partition_unref(part);
			LOG_ERROR("out of memory on assignment", NULL);
			pipeline_request_stop(c->pl, true);
			continue;
		}
	}
	if (cooperative)
		error = rd_kafka_incremental_assign(c->rk, parts);
	else
		err = rd_kafka_assign(c->rk, parts);
	if (error) {
		LOG_ERROR("assign failed", "\"error\":\"%s\"",
			  rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	} else if (err) {
		LOG_ERROR("assign failed", "\"error\":\"%s\"",
			  rd_kafka_err2str(err));
	}
	if (c->paused)
		rd_kafka_pause_partitions(c->rk, parts);
	LOG_INFO("partitions assigned", "\"consumer\":%u,\"count\":%d",
		 c->index, parts->cnt);
}

/* Wait, bounded, until part has nothing pending. */
static void wait_idle(struct partition *part, int64_t deadline_ns)
{
	struct timespec until;
	int64_t wall;

	clock_gettime(CLOCK_REALTIME, &until);
	wall = (int64_t)until.tv_sec * 1000000000 + until.tv_nsec +
	       (deadline_ns - now_mono_ns());
	until.tv_sec = (time_t)(wall / 1000000000);
	until.tv_nsec = (long)(wall % 1000000000);

	pthread_mutex_lock(&part->lock);
	while (offtrack_pending(part->track) &&
	       pthread_cond_timedwait(&part->idle, &part->lock, &until) !=
		       ETIMEDOUT)
		;
	pthread_mutex_unlock(&part->lock);
}

static void on_revoke(struct consumer *c,
		      rd_kafka_topic_partition_list_t *parts)
{
	bool cooperative =
		!strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE");
	bool lost = rd_kafka_assignment_lost(c->rk);
	int64_t deadline = now_mono_ns() + REVOKE_WAIT_NS;
	rd_kafka_resp_err_t err;
	int i;

	if (!lost) {
		/* Let in-flight work of these partitions be delivered (and
		 * so stored), then commit before another member reads. */
		for (i = 0; i < parts->cnt; i++) {
			struct partition *part =
				table_get(c, parts->elems[i].partition);

			if (part)
				wait_idle(part, deadline);
		}
		err = rd_kafka_commit(c->rk, NULL, 0);
		if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
			LOG_WARN("commit on revoke failed", "\"error\":\"%s\"",
				 rd_kafka_err2str(err));
	}
	for (i = 0; i < parts->cnt; i++) {
		int32_t id = parts->elems[i].partition;
		struct partition *part = table_get(c, id);

		held_drop(c, id);
		if (!part)
			continue;
		pthread_mutex_lock(&part->lock);
		part->revoked = true;
		pthread_mutex_unlock(&part->lock);
		c->parts[id] = NULL;
		partition_unref(part);
	}
	if (cooperative) {
		rd_kafka_error_t *error =
			rd_kafka_incremental_unassign(c->rk, parts);

		if (error) {
			LOG_ERROR("unassign failed", "\"error\":\"%s\"",
				  rd_kafka_error_string(error));
			rd_kafka_error_destroy(error);
		}
	} else {
		rd_kafka_assign(c->rk, NULL);
	}
	LOG_INFO(lost ? "partitions lost" : "partitions revoked",
		 "\"consumer\":%u,\"count\":%d", c->index, parts->cnt);
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
	char text[512];

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char why[512];

		rd_kafka_fatal_error(rk, why, sizeof(why));
		LOG_ERROR("fatal consumer error", "\"error\":%s",
			  log_str(text, sizeof(text), why));
		pipeline_request_stop(c->pl, true);
		return;
	}
	LOG_WARN("consumer error", "\"error\":%s",
		 log_str(text, sizeof(text), reason));
}

struct consumer *consumer_new(struct pipeline *pl, unsigned index, char *err,
			      size_t err_size)
{
	const struct extractd_config *cfg = pl->cfg;
	static const char *const defaults[] = {
		"auto.offset.reset", "earliest",
		"auto.commit.interval.ms", "1000",
		"partition.assignment.strategy", "cooperative-sticky",
		NULL,
	};
	const char *required[] = {
		"group.id", cfg->kafka.group,
		"enable.auto.offset.store", "false",
		"enable.auto.commit", "true",
		"enable.partition.eof", "false",
		NULL,
	};
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
	c->index = index;
	conf = kafka_conf_new(cfg, defaults, required, err, err_size);
	if (!conf)
		goto fail;
	rd_kafka_conf_set_opaque(conf, c);
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_error_cb(conf, on_error);
	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
	if (!c->rk) {
		rd_kafka_conf_destroy(conf);
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

static void handle_message(struct consumer *c, rd_kafka_message_t *msg)
{
	struct partition *part;

	if (msg->err) {
		char text[512];

		LOG_WARN("consume error", "\"error\":%s",
			 log_str(text, sizeof(text),
				 rd_kafka_message_errstr(msg)));
		rd_kafka_message_destroy(msg);
		return;
	}
	if (c->n_held || atomic_load(&c->pl->llm_paused) ||
	    sem_trywait(&c->pl->slots) < 0) {
		if (held_push(c, msg) < 0) {
			/* Not tracked, not committed: fetched again later. */
			rd_kafka_message_destroy(msg);
			LOG_ERROR("out of memory holding a record", NULL);
			pipeline_request_stop(c->pl, true);
		}
		set_paused(c, true);
		return;
	}
	part = table_get(c, msg->partition);
	if (!part) {
		/* Not (or no longer) assigned to us. */
		rd_kafka_message_destroy(msg);
		sem_post(&c->pl->slots);
		return;
	}
	pipeline_admit(c->pl, part, msg);
}

/* One held message gets a slot, or SLOT_WAIT_MS passes. */
static void admit_held(struct consumer *c)
{
	struct timespec until;
	rd_kafka_message_t *msg;
	struct partition *part;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += SLOT_WAIT_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	if (sem_timedwait(&c->pl->slots, &until) < 0)
		return;
	if (atomic_load(&c->pl->llm_paused)) {
		/* Admit nothing while the API refuses us: the records would
		 * only wait in the queue. Looked at again next round. */
		sem_post(&c->pl->slots);
		return;
	}
	msg = held_pop(c);
	part = table_get(c, msg->partition);
	if (part) {
		pipeline_admit(c->pl, part, msg);
	} else {
		rd_kafka_message_destroy(msg);
		sem_post(&c->pl->slots);
	}
	if (!c->n_held)
		set_paused(c, false);
}

static void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	struct pipeline *pl = c->pl;
	int64_t deadline;
	rd_kafka_resp_err_t err;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	while (!atomic_load(&pl->stopping)) {
		rd_kafka_message_t *msg;

		if (c->n_held && !atomic_load(&pl->llm_paused)) {
			admit_held(c);
			msg = rd_kafka_consumer_poll(c->rk, 0);
		} else {
			msg = rd_kafka_consumer_poll(c->rk, SLOT_WAIT_MS);
		}
		if (msg)
			handle_message(c, msg);
	}

	/* Stopping: admit nothing more, let the work in flight finish
	 * (each call is bounded by llm.timeout_ms), serving rebalances. */
	held_drop(c, -1);
	deadline = now_mono_ns() +
		   ((int64_t)pl->cfg->llm.timeout_ms + 10000) * 1000000;
	while (pipeline_wait_drained(pl, now_mono_ns() + 100000000LL) < 0 &&
	       now_mono_ns() < deadline) {
		rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, 0);

		if (msg)
			rd_kafka_message_destroy(msg);
	}
	err = rd_kafka_commit(c->rk, NULL, 0);
	if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		LOG_WARN("final commit failed", "\"error\":\"%s\"",
			 rd_kafka_err2str(err));
	err = rd_kafka_consumer_close(c->rk);
	if (err)
		LOG_WARN("consumer close failed", "\"error\":\"%s\"",
			 rd_kafka_err2str(err));
	return NULL;
}

int consumer_start(struct consumer *c, char *err, size_t err_size)
{
	int r = pthread_create(&c->thread, NULL, consumer_main, c);

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

void consumer_free(struct consumer *c)
{
	size_t i;

	if (!c)
		return;
	held_drop(c, -1);
	for (i = 0; i < c->n_parts; i++)
		partition_unref(c->parts[i]);
	free(c->parts);
	free(c->held);
	if (c->rk)
		rd_kafka_destroy(c->rk);
	free(c);
}
