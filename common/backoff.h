/*
 * backoff: how long to wait before trying an LLM call again.
 *
 * Exponential backoff with full jitter (a uniform draw between zero and
 * the exponential ceiling), and the parsers for the server's own hints:
 * Retry-After (seconds or an HTTP date) and OpenAI's x-ratelimit-reset-*
 * durations ("1s", "6m0s", "20ms").
 */
#ifndef EXTRACTD_BACKOFF_H
#define EXTRACTD_BACKOFF_H

#include <stdint.h>
#include <time.h>

/**
 * @brief Delay before retry number attempt (0 for the first retry):
 * uniform in [0, min(max_ms, base_ms * 2^attempt)].
 * @param rng the caller's PRNG state (one per thread), never 0
 */
unsigned backoff_delay_ms(unsigned attempt, unsigned base_ms,
			  unsigned max_ms, uint64_t *rng);

/** A xorshift64* draw; state must not be 0. */
uint64_t backoff_rand(uint64_t *rng);

/**
 * @brief Parse a Retry-After value: delta-seconds or an HTTP date.
 * @param now the current time, for dates
 * @returns 0 with ret_ms set, -1 when the value is not understood.
 */
int backoff_parse_retry_after(const char *value, time_t now,
			      unsigned *ret_ms);

/**
 * @brief Parse a Go-style duration as OpenAI sends in x-ratelimit-reset-*:
 * "20ms", "1s", "1.5s", "6m0s", "1h2m3s".
 * @returns 0 with ret_ms set (rounded up), -1 when not understood.
 */
int backoff_parse_duration(const char *value, unsigned *ret_ms);

#endif
