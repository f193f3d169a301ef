/*
 * pipeline: the objects a record passes through and who owns them.
 *
 * DESIGN
 * ------
 * A record is a job (private to pipeline.c) from admission to delivery:
 *
 *   consumer thread ── admission queue ── slot ── worker thread
 *     (makes the job)   (waits for a slot)        (llm_extract, then
 *                                                   release)
 *   release: completion order → produce now;
 *            offset order → the partition's ledger, produce in order;
 *            key order → produce now (the consumer admitted no other
 *            record of the key while this one is in flight)
 *   producer poll thread: delivery report → the ledger stores the
 *     contiguous delivered prefix (through the consumer's callback) →
 *     free the job → admission_end
 *
 * Ownership moves with the job pointer: the consumer (or the batcher)
 * creates it, admission's queue owns it until it has a slot, then the
 * pool's queue, or directly the worker whose call just ended (which takes
 * the oldest queued job itself, admission.h), the worker while it runs, the partition's
 * sequencer while it waits its turn, librdkafka while it is in the
 * producer queue (the job is the message opaque), and the delivery report
 * frees it. The input message (value and key) lives in the job until then,
 * so producing the dead letter or the key copies nothing.
 *
 * A partition's books (ledger.h: offsets in flight, the sequencer, the
 * flags, its one lock and the lock order) are shared by its consumer
 * thread, the workers and the delivery reports; each job holds a
 * reference, so a revoked partition's ledger lives until its last job is
 * gone.
 *
 * Release never produces under a lock another thread needs. In offset
 * order a worker completes its job's offset in the ledger's sequencer; if
 * no thread holds the partition's releaser role it takes it, and then
 * takes the ready jobs one by one and produces each outside the ledger's
 * lock. A job completed meanwhile is left in the sequencer for the
 * releaser, which takes it before it gives the role up (ledger.h).
 * One releaser per partition keeps the produce calls in offset order, and
 * librdkafka keeps that order per output partition. A full producer queue
 * makes the releaser (or, in completion order, the job's own worker) wait
 * in short steps, holding no lock: the job keeps its slot, so admission
 * slows; it is never an error. At shutdown a record that cannot be queued
 * for STOP_WAIT_NS is abandoned.
 *
 * Locks: the producer's transaction lock, then a ledger's (ledger.h says
 * why). The pipeline's own two locks (the drain count, the awaited
 * delivery reports) are taken with no other held and take none.
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
 * Admission (admission.h) bounds the LLM calls to pool.max_in_flight and
 * the started jobs to twice that: a job takes a slot when it leaves the
 * queue and gives it back (or hands it to the next queued job) when its
 * call ends, or at its end when the early window is full. Queued jobs
 * are not in flight yet: a revoke or the stop takes them out
 * (pipeline_drop_queued).
 *
 * Metrics are counted where the facts happen, lock-free: admission and
 * job_free move the in-flight gauge, the delivery report counts the
 * record (result, dead-letter kind, re-asks, tokens), the llm observer
 * each API call, the consumers the lag (metrics.h).
 *
 * Calls point down: main → consumer → pipeline → {admission, producer};
 * what must go up goes through function pointers given at creation (the
 * producer's delivery report, a partition's store callback, the llm's
 * pause and mode handlers). Every layer asks stop.h whether it is
 * stopping and how long it may still wait.
 */
#ifndef EXTRACTD_PIPELINE_H
#define EXTRACTD_PIPELINE_H

#include "ledger.h"
#include "llm.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

struct admission;
struct extractd_config;
struct http_share;
struct ledger;
struct llm;
struct metrics;
struct producer;
struct stop;

/** Frees an input message the pipeline is done with: the consumer's
 * rd_kafka_message_destroy (tests give their own). */
typedef void pipeline_msg_free_fn(rd_kafka_message_t *msg);

/**
 * @brief A pipeline for cfg, calling the API through llm (whose pause and
 * mode handlers it takes), with api_key (kept, never logged) and share;
 * counting into metrics, stopping through stop; input messages end in
 * msg_free. Nothing runs until pipeline_start().
 * @returns the pipeline, or NULL with err set.
 */
struct pipeline *pipeline_new(const struct extractd_config *cfg,
			      struct llm *llm, const char *api_key,
			      struct http_share *share, struct metrics *metrics,
			      struct stop *stop, pipeline_msg_free_fn *msg_free,
			      char *err, size_t err_size);

/** Every LLM call is observed by the pipeline (the live concurrency
 * limit learns from it), then by next (with arg). Before any call. */
void pipeline_observe_calls(struct pipeline *pl, llm_observer_fn *next,
			    void *arg);

/** Start the workers and the producer; -1 with err set. */
int pipeline_start(struct pipeline *pl, char *err, size_t err_size);

/**
 * @brief At shutdown, once the consumers are joined: join the workers,
 * flush and close the producer (within the shutdown deadline).
 * @returns the records left undelivered.
 */
int pipeline_shutdown(struct pipeline *pl);

/** The last log line: what this run did, and what it leaves to the next
 * (undelivered, as pipeline_shutdown() returned). */
void pipeline_log_summary(struct pipeline *pl, int undelivered);

/** Free a pipeline that was shut down (or never started); NULL is fine. */
void pipeline_free(struct pipeline *pl);

/** What the consumers use besides the pipeline itself. */
const struct extractd_config *pipeline_config(const struct pipeline *pl);
struct admission *pipeline_admission(struct pipeline *pl);
struct producer *pipeline_producer(struct pipeline *pl);
struct stop *pipeline_stop(struct pipeline *pl);
struct metrics *pipeline_metrics(struct pipeline *pl);

/**
 * @brief Count every LLM call's cost against spend's caps (spend.h);
 * call before pipeline_observe_calls(), with llm.price set. Not owned.
 */
struct spend;
void pipeline_set_spend(struct pipeline *pl, struct spend *spend);

/** The batcher records go to a batch through (batcher.h), set before the
 * consumers start; NULL (the default) when batch.mode is off. Not owned. */
struct batcher;
void pipeline_set_batcher(struct pipeline *pl, struct batcher *b);
struct batcher *pipeline_batcher(struct pipeline *pl);

/** Whether to admit nothing: the LLM API is paused for the deployment,
 * or a spending cap is reached (one log line each time that changes). */
bool pipeline_paused(const struct pipeline *pl);

/** Whether results leave in offset order: output.ordering = offset, and
 * always with exactly-once delivery (a transaction commits offsets, which
 * only a contiguous prefix can justify). */
bool pipeline_ordered(const struct pipeline *pl);

/** How partitions' records are released: their ledgers' order (offset
 * when pipeline_ordered, key for output.ordering = key, else
 * completion). */
enum ledger_order pipeline_order(const struct pipeline *pl);

/**
 * @brief Admit a message: track its offset, make its job and queue it
 * for a slot (admission.h; the caller keeps to admission_room()). Takes
 * ownership of msg. When records are tracked as they arrive
 * (pipeline_tracks_arrival) the consumer has tracked the offset already
 * (ledger_track); in key order it has taken its key too
 * (ledger_key_take), which the job gives back once delivered.
 * @returns 0, or -1 when the message was dropped.
 */
int pipeline_admit(struct pipeline *pl, struct ledger *part,
		   rd_kafka_message_t *msg);

/**
 * @brief Admit a record whose offset is tracked already, with its first
 * call's answer from a batch (the body of a 200 for the request in
 * format mode; NULL: none, the record is asked live), queued as
 * pipeline_admit() does. Takes msg and answer (malloc'ed).
 * @returns 0, or -1 when dropped.
 */
int pipeline_admit_answered(struct pipeline *pl, struct ledger *part,
			    rd_kafka_message_t *msg, char *answer,
			    size_t answer_len, enum cfg_llm_mode mode);

/**
 * @brief Give up the records of the n partitions parts (NULL entries are
 * skipped; parts NULL: of every partition) that wait for a slot (a
 * revoke, a rewind, the stop), all at once, so that none of them starts
 * while the others are taken out: each is abandoned as
 * pipeline_abandon() says.
 */
void pipeline_drop_queued(struct pipeline *pl, struct ledger *const *parts,
			  size_t n);

/**
 * @brief Give up a record whose offset is tracked and that was never
 * admitted (dropped at a revoke or the stop): its offset is abandoned,
 * and in offset order its place in the sequencer is taken, so that the
 * records after it do not wait for it. Takes msg; holds no slot.
 */
void pipeline_abandon(struct pipeline *pl, struct ledger *part,
		      rd_kafka_message_t *msg);

/** Whether the consumers track each offset as its record arrives (key
 * order, and with batches: records are admitted out of offset order, and
 * the tracker takes offsets in order), not at admission. */
bool pipeline_tracks_arrival(const struct pipeline *pl);

/**
 * @brief A record's text: the message itself, or with input.format =
 * json the string input.text_pointer names in it (*ret_doc holds it: the
 * caller puts it).
 * @returns 0, or -1 with the reason in detail (the record is a dead
 *          letter "input").
 */
struct json_object;
int pipeline_text(const struct extractd_config *cfg,
		  const rd_kafka_message_t *msg, const char **text,
		  size_t *len, struct json_object **ret_doc, char *detail,
		  size_t size);

/**
 * @brief Wait until no job is in flight or the deadline passes.
 * @returns 0 when drained, -1 at the deadline.
 */
int pipeline_wait_drained(struct pipeline *pl, int64_t deadline_ns);

#endif
