/*
 * limiter: the live concurrency limit for LLM calls, between a floor and
 * pool.max_in_flight, moved by what the API says (rate headers, 429s) and
 * does (latency, timeouts, overload errors). See limiter.c for how.
 *
 * Workers report every finished call with limiter_observe() and, when the
 * answer carried x-ratelimit-* headers, limiter_headers() first; admission
 * reads limiter_limit(). Metrics and logs read limiter_reason() and
 * limiter_latency_ns().
 *
 * DESIGN
 * ------
 * Pure logic: no thread of its own, no I/O, no clock reading. Every call
 * that can move the limit takes now_ns (monotonic), so tests drive time.
 * One mutex inside: any thread may call anything.
 */
#ifndef EXTRACTD_LIMITER_H
#define EXTRACTD_LIMITER_H

#include <stdint.h>

struct limiter;

/** How a call ended, as far as the limit is concerned. */
enum limiter_outcome {
	LIMITER_OK,		/**< an answer: its latency is a sample */
	LIMITER_RATE_LIMITED,	/**< 429 */
	LIMITER_TIMEOUT,	/**< no answer in time */
	LIMITER_SERVER_ERROR,	/**< overloaded: 502, 503, 504, 529 */
	LIMITER_OTHER,		/**< the record's own fault: ignored */
};

/**
 * @brief A limiter that never goes below min (at least 1) nor above max
 * (the ceiling, pool.max_in_flight), and goes to initial once it has
 * measured the server's latency at the floor (see limiter.c).
 * @returns the limiter, or NULL when out of memory.
 */
struct limiter *limiter_new(unsigned min, unsigned max, unsigned initial);

/** Free; NULL is fine. No thread may use it any more. */
void limiter_free(struct limiter *l);

/** The number of calls admission may have in flight now. */
unsigned limiter_limit(struct limiter *l);

/**
 * @brief A call ended at now_ns.
 * @param latency_ns from sending the call to its end
 * @param inflight   calls in flight when it was sent, itself included
 * @param tokens     its total tokens (usage), -1 when unknown; they turn
 *                   a token budget from limiter_headers() into calls
 */
void limiter_observe(struct limiter *l, int64_t now_ns,
		     enum limiter_outcome outcome, int64_t latency_ns,
		     unsigned inflight, int64_t tokens);

/**
 * @brief An answer's rate headers, received at now_ns: what is left of
 * the account's request and token budgets and how long until each is full
 * again (x-ratelimit-remaining-* and x-ratelimit-reset-*); -1 for a header
 * that was absent. Call it before limiter_observe() for the same answer,
 * a 429 included.
 */
void limiter_headers(struct limiter *l, int64_t now_ns,
		     int64_t remaining_requests, int64_t reset_requests_ns,
		     int64_t remaining_tokens, int64_t reset_tokens_ns);

/**
 * @brief The time between two call starts that the latest rate headers
 * ask for (T / R of the tighter budget), 0 when they ask for none; it
 * lapses at *ret_until_ns (the budget's reset), after which it is 0 until
 * new headers come.
 */
int64_t limiter_pace_ns(struct limiter *l, int64_t now_ns,
			int64_t *ret_until_ns);

/** Why the limit last changed: a constant string ("start", "probe",
 * "growth", "rtt gradient", "429", "timeout", "5xx", "rate headers"). */
const char *limiter_reason(struct limiter *l);

/** The measured (short-term) latency of answered calls, 0 before any. */
int64_t limiter_latency_ns(struct limiter *l);

#endif
