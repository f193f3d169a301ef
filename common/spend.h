/*
 * spend: what LLM calls cost in dollars (llm.price), and the spending
 * caps (rate.usd_per_hour, rate.usd_per_day).
 *
 * A cap holds the dollars spent over a sliding window (an hour, a day),
 * kept in SPEND_STEPS steps of window / SPEND_STEPS: a step's spend
 * leaves the window once the window has passed since the step ended, so
 * the window is the last hour give or take a minute (the last day give
 * or take 24 minutes). When the spend in a window reaches its cap, the
 * caller stops starting work until enough old spend has left it. The
 * windows live in memory: a restart starts them empty.
 *
 * Thread-safe: one mutex, held for a few dozen additions.
 */
#ifndef EXTRACTD_SPEND_H
#define EXTRACTD_SPEND_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPEND_STEPS 60  /**< steps a window is kept in */
#define SPEND_CAPS 2    /**< caps at most (an hour's, a day's) */

struct spend;

/**
 * @brief Dollars for tokens at price (dollars per million tokens):
 * (prompt - cached) x input + cached x cached_input (input when 0) +
 * completion x output, over a million. Reasoning tokens are part of
 * completion; cached counts at most prompt.
 */
double spend_cost(const struct cfg_price *price, uint64_t prompt,
		  uint64_t cached, uint64_t completion);

/**
 * @brief Dollars for a record's tokens when a Batch API answered its
 * first call: spend_cost() of the live tokens (the totals less the
 * batch's) plus price->batch_factor x spend_cost() of the batch's.
 * @param prompt, cached, completion every call's tokens, the batch's
 *        included (llm_result's totals)
 * @param batch_prompt, batch_cached, batch_completion the batch answer's
 *        part of them; each counts at most its total
 */
double spend_cost_batched(const struct cfg_price *price, uint64_t prompt,
			  uint64_t cached, uint64_t completion,
			  uint64_t batch_prompt, uint64_t batch_cached,
			  uint64_t batch_completion);

/**
 * @brief Write a cost as a decimal string ("0.000043"): up to 12
 * decimals, trailing zeros dropped, at least one decimal.
 */
void spend_format(double usd, char *buf, size_t size);

/** No caps yet; NULL when out of memory. */
struct spend *spend_new(void);

/**
 * @brief Add a cap: at most usd dollars over the sliding window of
 * window_ns nanoseconds; setting names it in messages
 * ("rate.usd_per_hour").
 * @returns 0, or -1 when SPEND_CAPS are set already or an argument is
 *          not positive.
 */
int spend_cap(struct spend *s, const char *setting, int64_t window_ns,
	      double usd);

/** Count usd spent at now (monotonic ns) in every window. */
void spend_add(struct spend *s, int64_t now, double usd);

/**
 * @brief Whether a window's spend has reached its cap at now; if so, why
 * ("rate.usd_per_hour: $5.02 spent in the window, cap $5; about 1740 s
 * until it allows more").
 */
bool spend_over(struct spend *s, int64_t now, char *why, size_t size);

/** What spend_check() saw change. */
enum spend_turn {
	SPEND_SAME,     /**< as at the last check */
	SPEND_STOPPED,  /**< a cap is reached now, it was not */
	SPEND_RESUMED,  /**< no cap is reached now, one was */
};

/**
 * @brief spend_over(), remembering the answer: the one caller whose
 * check sees it change is told (to say so once). *ret_over is the
 * answer.
 */
enum spend_turn spend_check(struct spend *s, int64_t now, bool *ret_over,
			    char *why, size_t size);

/** Free; NULL is fine. */
void spend_free(struct spend *s);

#endif
