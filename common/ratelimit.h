/*
 * ratelimit: a token bucket shared by every worker, for the API's
 * per-minute budgets (requests and tokens).
 *
 * Reservations, not polling: ratelimit_reserve() takes the cost at once,
 * letting the bucket go into debt, and says how long the caller must wait
 * before its call fits the budget. So callers queue up in arrival order
 * and each sleeps exactly once. A cost known only later (tokens from
 * `usage`) is corrected with ratelimit_adjust().
 */
#ifndef EXTRACTD_RATELIMIT_H
#define EXTRACTD_RATELIMIT_H

#include <stdint.h>

struct ratelimit;

/**
 * @brief A bucket refilled at per_minute / 60 a second, holding at most
 * burst (and starting full).
 * @returns the bucket, or NULL on out of memory or a zero rate.
 */
struct ratelimit *ratelimit_new(double per_minute, double burst,
				int64_t now_ns);

/** Free; NULL is fine. */
void ratelimit_free(struct ratelimit *rl);

/**
 * @brief Take cost from the bucket now.
 * @returns how long (ns) to wait until the cost would have been covered;
 *          0 when it fits at once. Thread-safe.
 */
int64_t ratelimit_reserve(struct ratelimit *rl, double cost, int64_t now_ns);

/**
 * @brief Correct an earlier reservation: a positive delta takes more, a
 * negative one gives back (never above burst). Thread-safe.
 */
void ratelimit_adjust(struct ratelimit *rl, double delta, int64_t now_ns);

#endif
