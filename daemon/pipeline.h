/*
 * pipeline: the objects a record passes through and who owns them.
 *
 * DESIGN
 * ------
 * A record is a struct job from admission to delivery:
 *
 *   consumer thread ── sem_wait(slots) ── pool queue ── worker thread
 *     (owns the job until pool_submit)     (llm_extract, then release)
 *   release: completion order → produce now;
 *            offset order → the partition's sequencer, produce in order
 *   producer poll thread: delivery report → offset tracker → store the
 *     contiguous delivered prefix → free the job → sem_post(slots)
 *
 * Ownership moves with the job pointer: the consumer creates it, the pool
 * owns it while queued, the worker while it runs, the partition's
 * sequencer while it waits its turn, librdkafka while it is in the
 * producer queue (the job is the message opaque), and the delivery report
 * frees it. The input message (value and key) lives in the job until then,
 * so producing the dead letter or the key copies nothing.
 *
 * A partition (struct partition) is shared by its consumer thread, the
 * workers and the delivery reports; its mutex guards the sequencer, the
 * offset tracker and the flags. It is reference-counted (one reference
 * for the assignment, one per job), so a revoked partition lives until
 * its last job is gone.
 *
 * Release never produces under a lock another thread needs. In offset
 * order a worker completes its job's offset in the sequencer under the
 * partition's lock; if no thread holds the partition's releaser role
 * (partition.releasing) it takes it, and then pops the ready jobs one by
 * one under the lock and produces each outside it. A job completed
 * meanwhile is left in the sequencer for the releaser, which pops it
 * before it gives the role up (both under the lock, so none is missed).
 * One releaser per partition keeps the produce calls in offset order, and
 * librdkafka keeps that order per output partition. A full producer queue
 * makes the releaser (or, in completion order, the job's own worker) wait
 * in short steps, holding no lock: the job keeps its slot, so admission
 * slows; it is never an error. At shutdown a record that cannot be queued
 * for STOP_WAIT_NS is abandoned.
 *
 * Locks, always taken in this order: the producer's transaction lock
 * (exactly-once), a partition's lock, the pipeline's lock. With exactly-once
 * each produce attempt holds the transaction lock from the check that the
 * partition is not broken (a rewind after an aborted transaction breaks
 * it) to the mark of its offset as produced, so a commit (which takes the
 * same lock) never separates a record from its offset.
 *
 * A record too large for its topic becomes a bounded dead letter
 * (job.cut: the input cut to PRODUCER_CUT_VALUE bytes, see producer.h),
 * in its place in the order: an output as output_too_large, a dead letter
 * keeping its kind. librdkafka refuses it before it is queued
 * (message.max.bytes), or the broker refuses it in the delivery report.
 * For the broker's refusal: without transactions the worker that produced
 * a record above PRODUCER_SAFE_BYTES awaits its report (job.await), still
 * the partition's releaser, and produces the replacement at once. With
 * transactions the transaction fails; the commit aborts it and rewinds,
 * and the producer remembers the size, so the record, done again, is
 * replaced before it is produced. A refused record of at most
 * PRODUCER_SAFE_BYTES (a topic limit below 64 KiB, or a batch.size raised
 * above the topic's limit: the producer's batches are at most 64 KiB, so
 * a larger record travels alone), or a refused bounded dead letter,
 * cannot be replaced safely: extractd stops with a message saying which
 * setting to change.
 *
 * A job that ends without being delivered (abandoned at shutdown, or
 * behind an abandoned one in offset order) gives its offset up in the
 * tracker: revokes and closes do not wait for it, and the commit position
 * never passes it, so the next reader of the partition does it again.
 *
 * The slots semaphore (pool.max_in_flight slots) bounds the LLM calls: a
 * job takes a slot at admission and gives it back when its call ends, if
 * fewer than max_in_flight answered jobs hold none (pipeline.early), else
 * at its end. So at most 2 x max_in_flight jobs exist, which bounds queue
 * lengths and memory whatever the backlog, and the calls go on while
 * answers wait for an older offset or a delivery report.
 *
 * Metrics are counted where the facts happen, lock-free: admission and
 * job_free move the in-flight gauge, the delivery report counts the
 * record (result, dead-letter kind, re-asks, tokens), the llm observer
 * each API call, the consumers the lag (metrics.h).
 */
#ifndef EXTRACTD_PIPELINE_H
#define EXTRACTD_PIPELINE_H

#include "config.h"
#include "llm.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct consumer;
struct metrics;
struct producer;

struct partition {
	pthread_mutex_t lock;     /**< guards everything below but refs */
	pthread_cond_t idle;      /**< broadcast when track has no pending */
	char *topic;
	int32_t id;
	struct consumer *owner;   /**< whose rd_kafka_t stores offsets */
	struct sequencer *seq;    /**< offset order only, else NULL */
	struct offtrack *track;
	bool revoked;             /**< no longer ours: store nothing */
	bool broken;              /**< offset order: a job was abandoned, so
				    *  nothing after it may be released */
	bool releasing;           /**< offset order: a thread is producing
				    *  the sequencer's ready jobs */
	int64_t produced;         /**< exactly-once: the offset after the
				    *  last one produced, -1 if none */
	int64_t committed;        /**< exactly-once: the last position sent
				    *  with a committed transaction, -1 */
	atomic_uint refs;
};

enum job_outcome {
	JOB_OUTPUT,      /**< a validated record for the output topic */
	JOB_DEAD_LETTER, /**< the input for the dead-letter topic */
	JOB_ABANDONED,   /**< nothing produced: done again after restart */
};

struct job {
	struct pipeline *pl;
	struct partition *part;   /**< a reference */
	rd_kafka_message_t *msg;  /**< the input, owned */
	int64_t offset;
	int64_t consumed_ns;      /**< CLOCK_MONOTONIC at admission */
	enum job_outcome outcome;
	const char *error;        /**< dead letter: extractd.error value */
	struct llm_result res;
	bool slot_returned;       /**< its slot went back when the LLM call
				    *  ended (pipeline.early counts it) */
	bool cut;                 /**< a topic refused its record as too
				    *  large: the bounded dead letter */
	bool delivered;           /**< its offset was marked delivered */
	struct await *_Atomic await; /**< a worker waits for its delivery
				    *  report (part's lock), else NULL */
};

struct pipeline {
	const struct extractd_config *cfg;
	struct llm *llm;
	char *api_key;            /**< secret: never logged */
	struct http_share *share;
	struct pool *pool;
	struct producer *producer;
	struct metrics *metrics;  /**< lock-free counters (metrics.h) */
	sem_t slots;              /**< free admission slots */
	atomic_uint early;        /**< jobs past their LLM call whose slot
				    *  went back before delivery; at most
				    *  pool.max_in_flight (the window that
				    *  bounds jobs waiting for their turn or
				    *  their delivery report) */

	pthread_mutex_t lock;     /**< guards inflight for drained */
	pthread_cond_t drained;   /**< broadcast when inflight drops to 0 */
	unsigned inflight;        /**< jobs admitted and not yet freed */

	atomic_bool stopping;     /**< shutdown began: admit nothing more */
	atomic_bool stop_requested; /**< pipeline_request_stop() signalled */
	atomic_int_fast64_t stop_deadline_ns; /**< monotonic; set before
					        *  stopping (shutdown.h) */
	_Atomic(const char *) stop_step; /**< the step of stopping under
					   *  way, for the watchdog's line */
	atomic_bool llm_paused;   /**< the API does not work for the
				    *  deployment: consumption waits */
	atomic_int_fast64_t llm_paused_ns; /**< since when (monotonic), 0 */
	atomic_int failed;        /**< a fatal error: exit status 1 */
	atomic_uint_fast64_t n_ok, n_dead, n_abandoned;
	atomic_uint_fast64_t n_prompt_tokens, n_completion_tokens;
	atomic_int_fast64_t first_consumed_ms; /**< wall clock, 0 = none */
	atomic_int_fast64_t last_delivered_ms;
	atomic_int_fast64_t oversize_ns; /**< last oversize warning */
	atomic_uint oversize_quiet;      /**< warnings not logged since */
};

/** Monotonic and wall clocks in the units the pipeline uses. */
int64_t now_mono_ns(void);
int64_t now_wall_ms(void);

/** Ask main to shut down; failed marks the exit status 1. */
void pipeline_request_stop(struct pipeline *pl, bool failed);

/**
 * @brief While stopping: the ms left until the shutdown deadline (0 once
 * it passed); before, cap. Every wait on the way out is bounded by it.
 */
unsigned pipeline_stop_left_ms(struct pipeline *pl, unsigned cap);

/** While stopping: name the step under way (a constant string). */
void pipeline_stop_step(struct pipeline *pl, const char *step);

/** Whether results leave in offset order: output.ordering = offset, and
 * always with exactly-once delivery (a transaction commits offsets, which
 * only a contiguous prefix can justify). */
bool pipeline_ordered(const struct pipeline *pl);

/** A new partition state with one reference (the assignment's). */
struct partition *partition_new(struct consumer *owner, const char *topic,
				int32_t id, bool ordered);
void partition_ref(struct partition *part);
void partition_unref(struct partition *part);

/**
 * @brief Admit a message the consumer holds a slot for: track its offset,
 * make its job and queue it. Takes ownership of msg.
 * @returns 0, or -1 when the message was dropped (the slot is returned).
 */
int pipeline_admit(struct pipeline *pl, struct partition *part,
		   rd_kafka_message_t *msg);

/** The llm's pause handler: log each change, loudly; readiness and
 * admission follow pipeline.llm_paused, the metrics the fault. */
void pipeline_llm_paused(void *pl, enum llm_fault fault, const char *reason);

/** The llm's mode handler (llm_mode_fn): log the request format the
 * health checks settled on, and follow it in the metrics. */
void pipeline_llm_mode(void *pl, enum cfg_llm_mode mode, const char *refused);

/** Pool callbacks: a worker's llm_worker, and running one job. */
void *pipeline_worker_init(void *pl, unsigned index);
void pipeline_worker_run(void *job, void *worker);
void pipeline_worker_fini(void *worker);

/** Delivery report for a job (producer poll thread). */
void pipeline_delivered(struct job *job, rd_kafka_resp_err_t err);

/**
 * @brief Wait until no job is in flight or the deadline passes.
 * @returns 0 when drained, -1 at the deadline.
 */
int pipeline_wait_drained(struct pipeline *pl, int64_t deadline_ns);

#endif
