/*
 * shutdown: from SIGTERM to exit within shutdown.timeout_ms, whatever
 * Kafka and the LLM API do.
 *
 * main calls shutdown_begin() at the first SIGTERM or SIGINT (or after a
 * fatal error, stop_request): admission stops at once (stop_begin, so
 * /readyz turns 503), no new LLM call starts (llm_stop), and a watchdog
 * thread starts. Each step of stopping that follows (the drain, the final
 * commit, the consumer close, the producer flush) bounds its own waits
 * by stop_left_ms(), and names itself with stop_step() (stop.h).
 * The watchdog covers the rest:
 *
 *   - at two thirds of the timeout it cuts the LLM calls still open
 *     (llm_cut): their records are abandoned, neither produced nor
 *     committed, and are done again after a restart; the last third is
 *     Kafka's, to deliver and commit what was done;
 *   - at the deadline, or at a second SIGTERM or SIGINT, it logs which
 *     step was running and how many records were not delivered, and ends
 *     the process with _exit(): whatever librdkafka still waits for.
 *
 * Nothing undelivered is ever committed (the offsets rule does not change
 * on the way out), so an exit at the deadline loses nothing: the exit
 * status is the same as for a clean stop (0, or 1 after a fatal error).
 *
 * DESIGN
 * ------
 * The watchdog thread owns nothing but its timer; it reads the stop state
 * (failed, the step) and the metrics (the in-flight gauge), and calls
 * llm_cut(), which is thread-safe. It takes the stop signals with
 * sigtimedwait(), every thread having them blocked (main no longer reads
 * them once stopping).
 */
#ifndef EXTRACTD_SHUTDOWN_H
#define EXTRACTD_SHUTDOWN_H

#include <signal.h>

struct llm;
struct metrics;
struct shutdown;
struct stop;

/**
 * @brief Begin stopping within timeout_ms: set the deadline, stop
 * admission and new LLM calls (llm may be NULL), start the watchdog
 * (signals: the stop signals it waits for).
 * @returns the shutdown, or NULL when the watchdog thread cannot start
 *          (then stopping goes on without it).
 */
struct shutdown *shutdown_begin(struct stop *stop, struct llm *llm,
				struct metrics *metrics, unsigned timeout_ms,
				const sigset_t *signals);

/** Everything stopped in time: end the watchdog. NULL is fine. */
void shutdown_end(struct shutdown *s);

#endif
