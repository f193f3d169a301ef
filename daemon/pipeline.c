/*
 * pipeline: a job's life from admission to delivery; see pipeline.h for
 * the design and who owns what.
 */
#include "pipeline.h"

#include "consumer.h"
#include "http.h"
#include "input.h"
#include "log.h"
#include "metrics.h"
#include "offsets.h"
#include "pool.h"
#include "producer.h"
#include "sequencer.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pipeline_request_stop(struct pipeline *pl, bool failed)
{
	if (failed)
		atomic_store(&pl->failed, 1);
	/* main waits in sigwait(); this wakes it the same way a user does.
	 * Once stopping, a signal would be the watchdog's second one, which
	 * means "exit at once": stopping goes on anyway. */
	if (!atomic_load(&pl->stopping))
		kill(getpid(), SIGTERM);
}

unsigned pipeline_stop_left_ms(struct pipeline *pl, unsigned cap)
{
	int64_t left;

	if (!atomic_load(&pl->stopping))
		return cap;
	left = (atomic_load(&pl->stop_deadline_ns) - now_mono_ns()) / 1000000;
	if (left <= 0)
		return 0;
	return left < (int64_t)cap ? (unsigned)left : cap;
}

void pipeline_stop_step(struct pipeline *pl, const char *step)
{
	atomic_store(&pl->stop_step, step);
	LOG_DEBUG("stopping", "\"step\":\"%s\",\"left_ms\":%u", step,
		  pipeline_stop_left_ms(pl, UINT32_MAX));
}

struct partition *partition_new(struct consumer *owner, const char *topic,
				int32_t id, bool ordered)
{
	struct partition *part = calloc(1, sizeof(*part));

	if (!part)
		return NULL;
	part->topic = strdup(topic);
	part->track = offtrack_new();
	part->seq = ordered ? seq_new() : NULL;
	if (!part->topic || !part->track || (ordered && !part->seq)) {
		free(part->topic);
		offtrack_free(part->track);
		seq_free(part->seq);
		free(part);
		return NULL;
	}
	pthread_mutex_init(&part->lock, NULL);
	pthread_cond_init(&part->idle, NULL);
	part->id = id;
	part->owner = owner;
	part->produced = -1;
	part->committed = -1;
	atomic_init(&part->refs, 1);
	return part;
}

bool pipeline_ordered(const struct pipeline *pl)
{
	return pl->cfg->output.ordering == CFG_ORDER_OFFSET ||
	       pl->cfg->output.delivery == CFG_DELIVERY_EXACTLY_ONCE;
}

void partition_ref(struct partition *part)
{
	atomic_fetch_add(&part->refs, 1);
}

void partition_unref(struct partition *part)
{
	if (!part || atomic_fetch_sub(&part->refs, 1) != 1)
		return;
	pthread_cond_destroy(&part->idle);
	pthread_mutex_destroy(&part->lock);
	offtrack_free(part->track);
	seq_free(part->seq);
	free(part->topic);
	free(part);
}

/* The end of a job: free it, give its slot back, wake a drain wait. */
static void job_free(struct job *job)
{
	struct pipeline *pl = job->pl;

	rd_kafka_message_destroy(job->msg);
	llm_result_clear(&job->res);
	partition_unref(job->part);
	if (job->slot_returned)
		atomic_fetch_sub(&pl->early, 1);
	else
		sem_post(&pl->slots);
	free(job);

	metrics_inflight_add(pl->metrics, -1);
	pthread_mutex_lock(&pl->lock);
	if (--pl->inflight == 0)
		pthread_cond_broadcast(&pl->drained);
	pthread_mutex_unlock(&pl->lock);
}

int pipeline_admit(struct pipeline *pl, struct partition *part,
		   rd_kafka_message_t *msg)
{
	struct job *job;
	int64_t first = 0;
	int r;

	pthread_mutex_lock(&part->lock);
	r = offtrack_add(part->track, msg->offset);
	if (!r && part->seq && (r = seq_add(part->seq, msg->offset)) < 0)
		LOG_ERROR("sequencer refused an offset the tracker took",
			  "\"offset\":%lld", (long long)msg->offset);
	pthread_mutex_unlock(&part->lock);
	if (r < 0) {
		/* Already in flight (fetched again after a pause or a
		 * rebalance): the running job covers it. */
		LOG_DEBUG("offset already in flight, skipped",
			  "\"partition\":%d,\"offset\":%lld", (int)part->id,
			  (long long)msg->offset);
		rd_kafka_message_destroy(msg);
		sem_post(&pl->slots);
		return -1;
	}

	job = calloc(1, sizeof(*job));
	if (!job) {
		/* Out of memory: stop; the offset stays uncommitted. */
		LOG_ERROR("out of memory admitting a record", NULL);
		rd_kafka_message_destroy(msg);
		sem_post(&pl->slots);
		pipeline_request_stop(pl, true);
		return -1;
	}
	job->pl = pl;
	job->part = part;
	partition_ref(part);
	job->msg = msg;
	job->offset = msg->offset;
	job->consumed_ns = now_mono_ns();
	atomic_compare_exchange_strong(&pl->first_consumed_ms, &first,
				       now_wall_ms());

	pthread_mutex_lock(&pl->lock);
	pl->inflight++;
	pthread_mutex_unlock(&pl->lock);
	metrics_inflight_add(pl->metrics, 1);
	LOG_DEBUG("record consumed", "\"partition\":%d,\"offset\":%lld",
		  (int)part->id, (long long)job->offset);

	if (pool_submit(pl->pool, job) < 0) {
		/* The pool is stopping: the record is done after restart. */
		job->outcome = JOB_ABANDONED;
		job_free(job);
		return -1;
	}
	return 0;
}

void pipeline_llm_paused(void *arg, enum llm_fault fault, const char *reason)
{
	struct pipeline *pl = arg;
	int64_t since = atomic_load(&pl->llm_paused_ns);
	char text[1024];

	metrics_llm_pause(pl->metrics, fault);
	if (fault == LLM_FAULT_NONE) {
		atomic_store(&pl->llm_paused_ns, 0);
		atomic_store(&pl->llm_paused, false);
		LOG_INFO("the LLM API answers again: consumption resumed",
			 "\"paused_s\":%.1f",
			 since ? (double)(now_mono_ns() - since) / 1e9 : 0.0);
		return;
	}
	if (!since)
		atomic_store(&pl->llm_paused_ns, now_mono_ns());
	atomic_store(&pl->llm_paused, true);
	LOG_ERROR("the LLM API does not work for this deployment: consumption "
		  "paused, the API is probed until it answers; no record is "
		  "dead-lettered for this", "\"fault\":\"%s\",\"reason\":%s",
		  llm_fault_name(fault), log_str(text, sizeof(text), reason));
}

void pipeline_llm_mode(void *arg, enum cfg_llm_mode mode, const char *refused)
{
	struct pipeline *pl = arg;
	char text[1200];

	metrics_llm_mode(pl->metrics, mode);
	if (refused)
		LOG_WARN("the LLM server refuses the request formats before "
			 "this one: using the first it takes",
			 "\"mode\":\"%s\",\"configured\":\"%s\","
			 "\"refused\":%s", cfg_mode_name(mode),
			 cfg_mode_name(pl->cfg->llm.mode),
			 log_str(text, sizeof(text), refused));
	else
		LOG_INFO("the LLM server takes the request format",
			 "\"mode\":\"%s\",\"configured\":\"%s\"",
			 cfg_mode_name(mode), cfg_mode_name(pl->cfg->llm.mode));
}

void *pipeline_worker_init(void *arg, unsigned index)
{
	struct pipeline *pl = arg;
	char err[256];
	struct llm_worker *w;

	w = llm_worker_new(pl->llm, pl->api_key, pl->share,
			   (uint64_t)now_mono_ns() ^ ((uint64_t)index << 32),
			   err, sizeof(err));
	if (!w)
		LOG_ERROR("cannot set up a worker", "\"error\":\"%s\"", err);
	return w;
}

void pipeline_worker_fini(void *worker)
{
	llm_worker_free(worker);
}

/* Hand a finished job on: produce it, or end it when abandoned. In offset
 * order a job waits in the sequencer until every older one has gone. */
static void release(struct pipeline *pl, struct job *job)
{
	struct partition *part = job->part;
	bool txn = producer_transactional(pl->producer);
	struct job *next;
	int64_t offset;

	if (!part->seq) {
		if (job->outcome == JOB_ABANDONED ||
		    producer_send(pl->producer, job) < 0)
			job_free(job);
		return;
	}

	/* Jobs freed below may hold the last references to part but ours:
	 * keep it alive until it is unlocked. With transactions, the
	 * transaction lock comes first (the committer's order too). */
	partition_ref(part);
	if (txn)
		producer_txn_lock(pl->producer);
	pthread_mutex_lock(&part->lock);
	if (seq_complete(part->seq, job->offset, job) < 0) {
		LOG_ERROR("sequencer lost an offset",
			  "\"partition\":%d,\"offset\":%lld", (int)part->id,
			  (long long)job->offset);
		part->broken = true;
		job->outcome = JOB_ABANDONED;
		job_free(job);
	}
	/* Produce under the lock: librdkafka keeps the order of produce
	 * calls, and the lock makes that the offset order. */
	while ((next = seq_pop(part->seq, &offset))) {
		if (next->outcome == JOB_ABANDONED)
			part->broken = true;
		if (part->broken || producer_send(pl->producer, next) < 0) {
			part->broken = true;
			next->outcome = JOB_ABANDONED;
			/* job_free takes the pipeline lock, which is never
			 * held while taking a partition lock: no cycle. */
			job_free(next);
		} else {
			part->produced = offset + 1;
		}
	}
	pthread_mutex_unlock(&part->lock);
	if (txn)
		producer_txn_unlock(pl->producer);
	partition_unref(part);
}

void pipeline_worker_run(void *arg, void *worker)
{
	struct job *job = arg;
	struct pipeline *pl = job->pl;
	const char *text = job->msg->payload ? job->msg->payload : "";
	size_t len = job->msg->payload ? job->msg->len : 0;

	if (input_check(text, len, pl->cfg->input.max_bytes, job->res.detail,
			sizeof(job->res.detail)) < 0) {
		job->outcome = JOB_DEAD_LETTER;
		job->error = "input";
	} else {
		llm_extract(worker, text, len, &job->res);
		switch (job->res.status) {
		case LLM_OK:
			job->outcome = JOB_OUTPUT;
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
	if (job->outcome == JOB_ABANDONED)
		atomic_fetch_add(&pl->n_abandoned, 1);
	/* The LLM call is over: what is left (waiting for older offsets,
	 * producing, the delivery report) needs no LLM slot. Give it back
	 * now, while at most max_in_flight jobs are in that state, so the
	 * next record's call starts without waiting for this one's delivery
	 * (in offset order, for every older record of its partition). */
	if (atomic_fetch_add(&pl->early, 1) < pl->cfg->pool.max_in_flight) {
		job->slot_returned = true;
		sem_post(&pl->slots);
	} else {
		atomic_fetch_sub(&pl->early, 1);
	}
	release(pl, job);
}

void pipeline_delivered(struct job *job, rd_kafka_resp_err_t err)
{
	struct pipeline *pl = job->pl;
	struct partition *part = job->part;
	int64_t position;
	char topic[256];

	if (err && producer_transactional(pl->producer)) {
		/* The transaction cannot commit now; the commit aborts it and
		 * rewinds, so the record is done again. Purged messages of an
		 * aborted transaction come here too. */
		LOG_DEBUG("delivery failed inside a transaction",
			  "\"partition\":%d,\"offset\":%lld,\"error\":\"%s\"",
			  (int)part->id, (long long)job->offset,
			  rd_kafka_err2str(err));
		atomic_fetch_add(&pl->n_abandoned, 1);
		job_free(job);
		return;
	}
	if (err) {
		/* message.timeout.ms is infinite, so this is fatal: stop,
		 * and leave the offset uncommitted for the next run. */
		LOG_ERROR("delivery failed",
			  "\"topic\":%s,\"partition\":%d,\"offset\":%lld,"
			  "\"error\":\"%s\"",
			  log_str(topic, sizeof(topic), part->topic),
			  (int)part->id, (long long)job->offset,
			  rd_kafka_err2str(err));
		pipeline_request_stop(pl, true);
		job_free(job);
		return;
	}

	pthread_mutex_lock(&part->lock);
	/* With transactions the offsets travel in the transaction. */
	if (offtrack_done(part->track, job->offset, &position) == 1 &&
	    !part->revoked && !producer_transactional(pl->producer))
		consumer_store(part->owner, part->topic, part->id, position);
	if (!offtrack_pending(part->track))
		pthread_cond_broadcast(&part->idle);
	pthread_mutex_unlock(&part->lock);

	if (job->outcome == JOB_OUTPUT)
		atomic_fetch_add(&pl->n_ok, 1);
	else
		atomic_fetch_add(&pl->n_dead, 1);
	atomic_fetch_add(&pl->n_prompt_tokens, job->res.prompt_tokens);
	atomic_fetch_add(&pl->n_completion_tokens, job->res.completion_tokens);
	metrics_record(pl->metrics,
		       job->outcome == JOB_OUTPUT ? NULL : job->error,
		       job->res.reasks, job->res.prompt_tokens,
		       job->res.completion_tokens);
	atomic_store(&pl->last_delivered_ms, now_wall_ms());
	LOG_DEBUG("record delivered",
		  "\"partition\":%d,\"offset\":%lld,\"result\":\"%s\","
		  "\"attempts\":%u",
		  (int)part->id, (long long)job->offset,
		  job->outcome == JOB_OUTPUT ? "ok" : job->error,
		  job->res.attempts);
	job_free(job);
}

int pipeline_wait_drained(struct pipeline *pl, int64_t deadline_ns)
{
	struct timespec until;
	int64_t wall_deadline_ns;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	wall_deadline_ns = (int64_t)until.tv_sec * 1000000000 + until.tv_nsec +
			   (deadline_ns - now_mono_ns());
	until.tv_sec = (time_t)(wall_deadline_ns / 1000000000);
	until.tv_nsec = (long)(wall_deadline_ns % 1000000000);

	pthread_mutex_lock(&pl->lock);
	while (pl->inflight && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&pl->drained, &pl->lock, &until);
	r = pl->inflight ? -1 : 0;
	pthread_mutex_unlock(&pl->lock);
	return r;
}
