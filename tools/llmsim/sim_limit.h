/*
 * sim_limit.h - OpenAI-style per-minute request and token budgets.
 */
#ifndef LLMSIM_SIM_LIMIT_H
#define LLMSIM_SIM_LIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Reported as the limit when a budget is unlimited (0). */
#define SIM_LIMIT_UNLIMITED	1000000ul

/** Longest string sim_limit_fmt_duration() writes, with its NUL. */
#define SIM_DURATION_LEN	64

/**
 * Two token buckets (requests, tokens), each holding a minute's budget and
 * refilled continuously at budget/60 s, which is how OpenAI enforces RPM
 * and TPM. One mutex guards both; a check takes from both or neither.
 */
struct sim_limit {
	pthread_mutex_t lock;
	unsigned long rpm;	/**< requests per minute, 0 = unlimited */
	unsigned long tpm;	/**< tokens per minute, 0 = unlimited */
	double req_level;	/**< requests available now (lock) */
	double tok_level;	/**< tokens available now (lock) */
	uint64_t last_ns;	/**< time of the last refill (lock) */
};

/** What one check saw: the x-ratelimit-* header values and, if refused, why. */
struct sim_limit_state {
	unsigned long limit_requests;
	unsigned long remaining_requests;
	uint64_t reset_requests_ms;	/**< until the request bucket is full */
	unsigned long limit_tokens;
	unsigned long remaining_tokens;
	uint64_t reset_tokens_ms;	/**< until the token bucket is full */
	uint64_t retry_after_ms;	/**< refused: until it would pass */
	const char *exceeded;		/**< NULL, "requests" or "tokens" */
};

/** @returns 0, or a negative errno. */
int sim_limit_init(struct sim_limit *l, unsigned long rpm, unsigned long tpm);
void sim_limit_done(struct sim_limit *l);

/**
 * @brief Take one request and @p tokens tokens from the budgets at
 * @p now_ns (monotonic). A request costing more than the whole token
 * budget is charged the whole budget, so it can pass once a minute.
 * @returns true if allowed (budgets charged), false if refused (nothing
 * charged, ret->exceeded and ret->retry_after_ms set). *ret is filled
 * either way.
 */
bool sim_limit_take(struct sim_limit *l, unsigned long tokens,
		    uint64_t now_ns, struct sim_limit_state *ret);

/**
 * @brief Format @p ms like OpenAI's reset headers (Go durations):
 * "20ms", "1s", "1.5s", "6m0s", "1h0m0s".
 */
void sim_limit_fmt_duration(uint64_t ms, char buf[SIM_DURATION_LEN]);

#endif /* LLMSIM_SIM_LIMIT_H */
