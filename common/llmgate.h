/*
 * llmgate: what every LLM call of every worker passes through, and the
 * shared judgement of whether the deployment works.
 *
 * A call may start when extractd is not stopping, the API is not paused
 * (unless the caller is the one probing it), the shared cool-down after a
 * 429 is over and the rate budgets (configured, or learned from the
 * server) have room. llmgate_wait() is the one interruptible sleep.
 *
 * Whose fault is a failed call? Some failures can only be the
 * deployment's (no connection, DNS, TLS, a refused key, a spent quota):
 * the caller pauses the API at once. Others could be the record's or the
 * deployment's (a 400, a 404, a 5xx, a timeout): the gate counts them in a
 * streak that any answer from the API ends, and a record is dead-lettered
 * for one only after a health check (a canary: a tiny request with the
 * same model, mode and schema) has shown that the API answers other
 * requests. One canary runs at a time; callers that need a verdict while
 * it runs wait for it and share its result.
 *
 * While paused, exactly one caller probes (the first to reach the gate):
 * it sends a canary every probe period (retry.max_delay_ms, at most 5 s)
 * until one passes, then resumes everyone. The others wait in the gate; the time they wait is reported
 * so their records' deadlines move by it.
 *
 * DESIGN
 * ------
 * One mutex guards all the state; the condition variable (monotonic
 * clock) is broadcast on stop, on resume and when a canary ends. The
 * pause handler is called outside that lock, under a lock of its own,
 * with the state as it stands when it is called, and only when that
 * differs from what it heard last: two changes told by two threads can
 * never reach it in the wrong order. A canary that started before the
 * pause began does not end it. Nothing is sent over the network here:
 * the caller makes the calls (llm.c).
 */
#ifndef EXTRACTD_LLMGATE_H
#define EXTRACTD_LLMGATE_H

#include "config.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct llmgate;

/** Why the API is paused; each a bounded label for the metrics. */
enum llm_fault {
	LLM_FAULT_NONE,
	LLM_FAULT_DNS,         /**< the host does not resolve */
	LLM_FAULT_UNREACHABLE, /**< no connection */
	LLM_FAULT_TLS,         /**< TLS handshake or certificate */
	LLM_FAULT_AUTH,        /**< 401/403: the key is refused */
	LLM_FAULT_QUOTA,       /**< insufficient_quota */
	LLM_FAULT_NOT_FOUND,   /**< 404: the URL or the model */
	LLM_FAULT_REFUSED,     /**< the same 4xx for every request */
	LLM_FAULT_FAILING,     /**< 5xx, timeouts or broken answers for
				 *  every request */
	LLM_FAULT_N,
};

/** The metrics label of a fault ("dns", "unreachable", ...). */
const char *llm_fault_name(enum llm_fault fault);

/**
 * @brief Hear when the API is paused (fault and reason) and when it
 * answers again (LLM_FAULT_NONE, reason NULL). Called from a worker
 * thread, outside every lock, once per change of the fault.
 */
typedef void llm_pause_fn(void *arg, enum llm_fault fault,
			  const char *reason);

/** A gate with the configured rate budgets; NULL when out of memory. */
struct llmgate *llmgate_new(const struct extractd_config *cfg);
void llmgate_free(struct llmgate *g);

void llmgate_set_pause_handler(struct llmgate *g, llm_pause_fn *fn,
			       void *arg);

/** No new call may start; every wait ends (shutdown). */
void llmgate_stop(struct llmgate *g);

/** Cut the calls in progress too (the shutdown deadline). */
void llmgate_cut(struct llmgate *g);

/** The flag llmgate_cut() sets, for the HTTP clients' abort option. */
const atomic_bool *llmgate_cut_flag(struct llmgate *g);

/** Sleep ms unless stopped first; -1 when stopped. */
int llmgate_wait(struct llmgate *g, unsigned ms);

/**
 * @brief Wait until a call may start: not stopped, not paused (a canary
 * passes a pause: probe true), past the cool-down, within the budgets
 * (tokens: the call's estimated cost).
 * @param ret_paused_ns increased by the time spent waiting here (a pause,
 *        the cool-down, the budgets: none of it the record's doing)
 * @returns 0, or -1 when stopped.
 */
int llmgate_enter(struct llmgate *g, double tokens, bool probe,
		  int64_t *ret_paused_ns);

/**
 * @brief Start calls at least pace_ns apart until until_ns (monotonic),
 * as the provider's rate headers ask (pool.concurrency = adaptive:
 * limiter_pace_ns); 0 stops pacing. Canaries are not paced.
 */
void llmgate_set_pace(struct llmgate *g, int64_t pace_ns, int64_t until_ns);

/**
 * @brief While paused, make the calling thread the one that probes, if
 * nobody does. The prober waits *delay_ms (llmgate_wait), sends a canary,
 * reports it with llmgate_canary_done(), and goes on until a canary
 * passes (which resumes everyone) or it stops; then it calls
 * llmgate_probe_release(). Everyone else waits in llmgate_enter().
 * @returns true when the caller is now the prober.
 */
bool llmgate_probe_take(struct llmgate *g, unsigned *delay_ms);
void llmgate_probe_release(struct llmgate *g);

/** A 429: nobody calls before until (monotonic ns); learn the server's
 * budgets (x-ratelimit-limit-*) unless rate.* set them. */
void llmgate_cool_down(struct llmgate *g, int64_t until, long limit_requests,
		       long limit_tokens);

/** A call's real token cost, once known, against its estimate. */
void llmgate_correct_tokens(struct llmgate *g, double used, double estimate);

/**
 * @brief The API answered (any answer that shows it works: a 200, or an
 * error that is the record's own). Ends the streak of doubtful failures.
 */
void llmgate_alive(struct llmgate *g);

/**
 * @brief A call failed in a way that could be the record's or the
 * deployment's. Returns true when the streak of such failures since the
 * API last answered reaches the point where a canary should decide.
 */
bool llmgate_doubt(struct llmgate *g);

/** The deployment's fault beyond doubt: pause every caller. */
void llmgate_pause(struct llmgate *g, enum llm_fault fault,
		   const char *reason);

/** What llmgate_verdict() says. */
enum llm_verdict {
	LLM_VERDICT_RECORD,  /**< the API answers others: the record's fault */
	LLM_VERDICT_PAUSED,  /**< the API is paused: retry after the gate */
	LLM_VERDICT_RUN,     /**< no verdict yet: the caller sends a canary
			       *  and reports it with llmgate_canary_done() */
	LLM_VERDICT_STOPPED, /**< shutting down */
};

/**
 * @brief Who is to blame for a failure whose call started at since
 * (monotonic ns)? A canary that passed after since answers at once;
 * while another canary runs, wait for it.
 */
enum llm_verdict llmgate_verdict(struct llmgate *g, int64_t since);

/**
 * @brief A canary's outcome (it started at started, monotonic ns): passed
 * (LLM_FAULT_NONE: the API answered it; resume if paused), or the fault
 * and the reason (pause, or stay paused with the reason updated).
 */
void llmgate_canary_done(struct llmgate *g, int64_t started,
			 enum llm_fault fault, const char *reason);

/**
 * @brief The pause as it stands: its fault (LLM_FAULT_NONE when not
 * paused), its reason into reason (may be NULL), and since when
 * (monotonic ns, 0 when not paused). Any thread.
 */
enum llm_fault llmgate_paused(struct llmgate *g, char *reason, size_t size,
			      int64_t *ret_since);

#endif
