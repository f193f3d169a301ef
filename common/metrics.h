/*
 * metrics: the daemon's counters, gauges and the LLM latency histogram,
 * rendered in the Prometheus text exposition format (version 0.0.4).
 *
 * DESIGN
 * ------
 * Writers are the hot paths: worker threads (one update per LLM call, via
 * metrics_llm_observe, the llm observer), the producer's poll thread (one
 * update per delivered record) and the consumer threads (in-flight gauge,
 * the lag daemon/kafka_stats.c reads from librdkafka's statistics; common/
 * parses no Kafka). Every counter and gauge is a C11 atomic in a
 * fixed array, so updating one is one relaxed atomic add: no lock, no
 * allocation, whatever the label. Labels are bounded sets known in
 * advance (HTTP status 100..599, the dead-letter kinds, the retry
 * reasons), so the arrays are sized at compile time.
 *
 * The one exception is consumer lag: its labels (topic, partition) come
 * from the assignment, which changes at rebalances. A consumer's part of
 * the lag table is replaced wholesale by each metrics_lag_set() (from
 * each statistics callback, every statistics.interval.ms) and the table
 * is guarded by a mutex that only metrics_lag_set(), metrics_lag_forget()
 * and the readers take.
 *
 * The reader (the HTTP thread, or the main thread's progress line) loads
 * each atomic once; a scrape may see one counter a little ahead of
 * another, never a torn value. Histogram buckets are stored per bucket
 * (not cumulative) and summed at render time, so the rendered buckets are
 * monotonic and _count equals the +Inf bucket in every scrape.
 */
#ifndef EXTRACTD_METRICS_H
#define EXTRACTD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "llmgate.h"

struct llm_call;
struct metrics;

/** What the progress line, the health checks and the last log line
 * read. */
struct metrics_summary {
	uint64_t records_ok;
	uint64_t dead_letters;
	uint64_t tokens_prompt, tokens_completion;
	uint64_t tokens_cached, tokens_reasoning;
	double cost_usd;    /**< of the records whose cost is known */
	int64_t inflight;
	int64_t lag;        /**< summed over partitions whose lag is known */
	unsigned lag_parts; /**< partitions with a known lag (0: lag unknown) */
};

/** A new set of metrics, all zero; NULL when out of memory. */
struct metrics *metrics_new(void);

/** Free; NULL is fine. No writer may run any more. */
void metrics_free(struct metrics *m);

/** What a record's calls used, summed over them, and what they cost. */
struct metrics_usage {
	uint64_t prompt, completion; /**< tokens, as the API reported them */
	uint64_t cached;             /**< of prompt: from the prompt cache */
	uint64_t reasoning;          /**< of completion: reasoning */
	double cost_usd;             /**< < 0: unknown (no llm.price) */
};

/**
 * @brief Count one delivered record (the delivery report path).
 * @param error NULL for an output record, else its extractd.error kind
 *        ("input", "validation", "llm_http", "llm_timeout", "llm_refusal",
 *        "output_too_large"; anything else counts as "other")
 * @param reasks LLM calls for the record that were re-asks
 * @param usage the record's token usage and cost
 */
void metrics_record(struct metrics *m, const char *error, unsigned reasks,
		    const struct metrics_usage *usage);

/**
 * @brief Count one answer-cache lookup (hit: the LLM was not called),
 * and set the entries it now holds. Thread-safe and lock-free.
 */
void metrics_answer_cache(struct metrics *m, bool hit, size_t entries);

/** Set the entries the answer cache holds (after an insert). */
void metrics_answer_cache_entries(struct metrics *m, size_t entries);

/** The batches (batch.mode): records waiting on one, batches in flight
 * at the API and the oldest's age. Lock-free. */
void metrics_batch(struct metrics *m, uint64_t records, uint64_t batches,
		   uint64_t oldest_ms);

/** A batch was created at the Batch API. */
void metrics_batch_created(struct metrics *m);

/**
 * @brief The llm observer (llm_observer_fn): count one LLM HTTP call, its
 * duration, and, when it is tried again, the retry with its reason.
 * Thread-safe and lock-free. arg is the struct metrics.
 */
void metrics_llm_observe(void *arg, const struct llm_call *call);

/**
 * @brief The LLM API is now paused for fault (LLM_FAULT_NONE: it works
 * again): the gauge follows it, the counter counts each new pause.
 */
void metrics_llm_pause(struct metrics *m, enum llm_fault fault);

/** The request format the LLM API takes now (never CFG_MODE_AUTO). */
void metrics_llm_mode(struct metrics *m, enum cfg_llm_mode mode);

/** Move the in-flight gauge (admitted jobs) by delta. */
void metrics_inflight_add(struct metrics *m, int delta);

/** The live limit of LLM calls open at once (pool.concurrency). */
void metrics_concurrency_limit(struct metrics *m, unsigned limit);

/**
 * @brief What the adaptive limiter says now (pool.concurrency =
 * adaptive): why the limit last changed (one of metrics_limit_reasons;
 * another string is not shown), the latency it measures (ns) and the
 * pace between call starts from rate headers (ns, 0: none).
 */
void metrics_limiter(struct metrics *m, const char *reason,
		     int64_t latency_ns, int64_t pace_ns);

/** The reasons metrics_limiter() shows, NULL-terminated. */
extern const char *const metrics_limit_reasons[];

/** One partition's consumer lag as a consumer reports it. */
struct metrics_lag {
	const char *topic;	/**< copied */
	int32_t partition;
	int64_t lag;
};

/**
 * @brief The lag of consumer owner's partitions (its assignment, where
 * the lag is known): v[0..n) replaces whatever owner reported before
 * (daemon/kafka_stats.c reads it from librdkafka's statistics).
 * @returns 0, or -1 when out of memory (nothing changes).
 */
int metrics_lag_set(struct metrics *m, unsigned owner,
		    const struct metrics_lag *v, size_t n);

/** Drop the lag that consumer owner reported (it has closed). */
void metrics_lag_forget(struct metrics *m, unsigned owner);

/** A consistent-enough snapshot for the progress line. */
void metrics_summary(struct metrics *m, struct metrics_summary *ret);

/**
 * @brief Render every metric in the Prometheus text format.
 * @param version the extractd_build_info version label
 * @param ret_len set to the text's length on success
 * @returns the text (caller frees), or NULL when out of memory.
 */
char *metrics_render(struct metrics *m, const char *version,
		     size_t *ret_len);

#endif
