/*
 * llmgate: see llmgate.h.
 */
#include "llmgate.h"

#include "clock.h"
#include "ratelimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LLMGATE_DOUBTS 5           /**< doubtful failures in a row */
#define LLMGATE_PROBE_MS 5000      /**< probe a paused API this often */
#define LLMGATE_LEARNED_SHARE 0.95 /**< of a budget the server announces */
#define LLMGATE_REASON_MAX 768

struct llmgate {
	struct ratelimit *rpm;      /**< rate.*: NULL = unlimited; never
				      *  replaced, so read without the lock */
	struct ratelimit *tpm;
	unsigned probe_ms;
	llm_pause_fn *on_pause;     /**< may be NULL; set before calls */
	void *on_pause_arg;
	pthread_mutex_t tell_lock;  /**< one tell at a time; guards told */
	enum llm_fault told;        /**< what the handler heard last */
	atomic_bool cut;            /**< the HTTP clients' abort flag */
	atomic_uint streak;         /**< doubtful failures since the API
				      *  last answered (lock-free: every
				      *  call ends one way or the other) */

	pthread_mutex_t lock;       /**< guards everything below */
	pthread_cond_t wake;        /**< CLOCK_MONOTONIC; broadcast on stop,
				      *  resume and the end of a canary */
	bool stopped;
	enum llm_fault fault;       /**< LLM_FAULT_NONE: not paused */
	char reason[LLMGATE_REASON_MAX];
	int64_t paused_since;       /**< monotonic ns, 0 when not paused */
	bool probing;               /**< a thread probes the paused API */
	pthread_t prober;
	bool canary_running;        /**< a verdict's canary is out */
	int64_t canary_passed;      /**< start of the latest canary that the
				      *  API answered, 0: none */
	int64_t cooldown_until;     /**< no call before (monotonic ns) */
	struct ratelimit *learned_rpm; /**< from a 429's headers, set once */
	struct ratelimit *learned_tpm;
	int64_t pace_ns;            /**< calls start this far apart... */
	int64_t pace_until;         /**< ...until then (monotonic ns) */
	int64_t next_start;         /**< the next paced start may be then */
};

const char *llm_fault_name(enum llm_fault fault)
{
	static const char *const names[LLM_FAULT_N] = {
		[LLM_FAULT_NONE] = "none",
		[LLM_FAULT_DNS] = "dns",
		[LLM_FAULT_UNREACHABLE] = "unreachable",
		[LLM_FAULT_TLS] = "tls",
		[LLM_FAULT_AUTH] = "auth",
		[LLM_FAULT_QUOTA] = "quota",
		[LLM_FAULT_NOT_FOUND] = "not_found",
		[LLM_FAULT_REFUSED] = "refused",
		[LLM_FAULT_FAILING] = "failing",
	};

	return (unsigned)fault < LLM_FAULT_N ? names[fault] : "unknown";
}

struct llmgate *llmgate_new(const struct extractd_config *cfg)
{
	struct llmgate *g = calloc(1, sizeof(*g));
	pthread_condattr_t attr;
	unsigned rpm = cfg->rate.requests_per_minute;
	unsigned tpm = cfg->rate.tokens_per_minute;

	if (!g)
		return NULL;
	/* A second's worth of burst: the budget is spread, not spent at
	 * once (a minute's burst would look like a flood to the API). */
	if ((rpm && !(g->rpm = ratelimit_new(rpm, rpm / 60.0, mono_ns()))) ||
	    (tpm && !(g->tpm = ratelimit_new(tpm, tpm / 60.0, mono_ns())))) {
		ratelimit_free(g->rpm);
		free(g);
		return NULL;
	}
	/* Probe a paused API often enough that it resumes within seconds
	 * of being fixed, but not more often than the backoff cap. */
	g->probe_ms = cfg->retry.max_delay_ms < LLMGATE_PROBE_MS
			      ? (cfg->retry.max_delay_ms ? cfg->retry.max_delay_ms
							 : 1)
			      : LLMGATE_PROBE_MS;
	atomic_init(&g->cut, false);
	atomic_init(&g->streak, 0);
	pthread_mutex_init(&g->lock, NULL);
	pthread_mutex_init(&g->tell_lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &attr);
	pthread_condattr_destroy(&attr);
	return g;
}

void llmgate_free(struct llmgate *g)
{
	if (!g)
		return;
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->tell_lock);
	ratelimit_free(g->rpm);
	ratelimit_free(g->tpm);
	ratelimit_free(g->learned_rpm);
	ratelimit_free(g->learned_tpm);
	free(g);
}

void llmgate_set_pause_handler(struct llmgate *g, llm_pause_fn *fn, void *arg)
{
	g->on_pause = fn;
	g->on_pause_arg = arg;
}

void llmgate_stop(struct llmgate *g)
{
	pthread_mutex_lock(&g->lock);
	g->stopped = true;
	pthread_cond_broadcast(&g->wake);
	pthread_mutex_unlock(&g->lock);
}

void llmgate_cut(struct llmgate *g)
{
	llmgate_stop(g);
	atomic_store(&g->cut, true);
}

const atomic_bool *llmgate_cut_flag(struct llmgate *g)
{
	return &g->cut;
}

int llmgate_wait(struct llmgate *g, unsigned ms)
{
	struct timespec until = mono_timespec(mono_ns() + (int64_t)ms * 1000000);
	bool stopped;

	pthread_mutex_lock(&g->lock);
	while (!g->stopped &&
	       pthread_cond_timedwait(&g->wake, &g->lock, &until) != ETIMEDOUT)
		;
	stopped = g->stopped;
	pthread_mutex_unlock(&g->lock);
	return stopped ? -1 : 0;
}

/* Take a call's cost from one limiter; the longer wait wins. */
static int64_t reserve(struct ratelimit *rl, double cost, int64_t wait)
{
	int64_t w = rl ? ratelimit_reserve(rl, cost, mono_ns()) : 0;

	return w > wait ? w : wait;
}

int llmgate_enter(struct llmgate *g, double tokens, bool probe,
		  int64_t *ret_paused_ns)
{
	struct ratelimit *lrpm, *ltpm;
	int64_t wait = 0, t0 = mono_ns();
	int r = 0;

	pthread_mutex_lock(&g->lock);
	for (;;) {
		struct timespec until;

		if (g->stopped) {
			pthread_mutex_unlock(&g->lock);
			return -1;
		}
		if (g->fault != LLM_FAULT_NONE && !probe) {
			pthread_cond_wait(&g->wake, &g->lock);
			continue;
		}
		if (g->cooldown_until <= mono_ns())
			break;
		until = mono_timespec(g->cooldown_until);
		pthread_cond_timedwait(&g->wake, &g->lock, &until);
	}
	lrpm = g->learned_rpm;
	ltpm = g->learned_tpm;
	if (g->pace_ns > 0 && !probe) {
		int64_t now = mono_ns();

		if (now < g->pace_until) {
			int64_t start = g->next_start > now ? g->next_start
							    : now;

			g->next_start = start + g->pace_ns;
			wait = start - now;
		}
	}
	pthread_mutex_unlock(&g->lock);

	wait = reserve(g->rpm, 1, wait);
	wait = reserve(lrpm, 1, wait);
	wait = reserve(g->tpm, tokens, wait);
	wait = reserve(ltpm, tokens, wait);
	if (wait > 0)
		r = llmgate_wait(g, (unsigned)((wait + 999999) / 1000000));
	/* Waiting here is the deployment's doing or the budgets', never the
	 * record's: none of it counts against the record's time. */
	*ret_paused_ns += mono_ns() - t0;
	return r;
}

bool llmgate_probe_take(struct llmgate *g, unsigned *delay_ms)
{
	bool mine = false;

	pthread_mutex_lock(&g->lock);
	if (g->fault != LLM_FAULT_NONE && !g->probing && !g->stopped) {
		g->probing = true;
		g->prober = pthread_self();
		mine = true;
	}
	pthread_mutex_unlock(&g->lock);
	*delay_ms = g->probe_ms;
	return mine;
}

void llmgate_probe_release(struct llmgate *g)
{
	pthread_mutex_lock(&g->lock);
	if (g->probing && pthread_equal(g->prober, pthread_self())) {
		g->probing = false;
		/* A waiter may take the role over. */
		pthread_cond_broadcast(&g->wake);
	}
	pthread_mutex_unlock(&g->lock);
}

/*
 * A 429: every caller waits until the server's reset (the shared
 * cool-down), and from then on calls are paced at the budget the server
 * announces (x-ratelimit-limit-*), a little under it, so that the pool
 * does not run into the same wall again. A budget set in the config
 * (rate.*) is the user's decision and is kept as it is.
 */
void llmgate_cool_down(struct llmgate *g, int64_t until, long limit_requests,
		       long limit_tokens)
{
	int64_t now = mono_ns();

	pthread_mutex_lock(&g->lock);
	if (until > g->cooldown_until)
		g->cooldown_until = until;
	if (!g->rpm && !g->learned_rpm && limit_requests > 0)
		g->learned_rpm = ratelimit_new(
			LLMGATE_LEARNED_SHARE * (double)limit_requests,
			LLMGATE_LEARNED_SHARE * (double)limit_requests / 60,
			now);
	if (!g->tpm && !g->learned_tpm && limit_tokens > 0)
		g->learned_tpm = ratelimit_new(
			LLMGATE_LEARNED_SHARE * (double)limit_tokens,
			LLMGATE_LEARNED_SHARE * (double)limit_tokens / 60, now);
	pthread_mutex_unlock(&g->lock);
}

void llmgate_set_pace(struct llmgate *g, int64_t pace_ns, int64_t until_ns)
{
	pthread_mutex_lock(&g->lock);
	if (pace_ns > 0 && g->pace_ns > 0 && g->next_start > 0) {
		/* Starts already promised at the old pace keep their place;
		 * the next one moves to the new pace. */
		g->next_start += pace_ns - g->pace_ns;
	}
	g->pace_ns = pace_ns > 0 ? pace_ns : 0;
	g->pace_until = until_ns;
	pthread_mutex_unlock(&g->lock);
}

void llmgate_correct_tokens(struct llmgate *g, double used, double estimate)
{
	struct ratelimit *ltpm;

	if (!used)
		return;
	pthread_mutex_lock(&g->lock);
	ltpm = g->learned_tpm;
	pthread_mutex_unlock(&g->lock);
	if (g->tpm)
		ratelimit_adjust(g->tpm, used - estimate, mono_ns());
	if (ltpm)
		ratelimit_adjust(ltpm, used - estimate, mono_ns());
}

void llmgate_alive(struct llmgate *g)
{
	/* Read first: most calls succeed, and a store to a shared line on
	 * every call would bounce it between the workers' cores. */
	if (atomic_load_explicit(&g->streak, memory_order_relaxed))
		atomic_store_explicit(&g->streak, 0, memory_order_relaxed);
}

bool llmgate_doubt(struct llmgate *g)
{
	return atomic_fetch_add(&g->streak, 1) + 1 >= LLMGATE_DOUBTS;
}

/* Set the pause (fault, reason) with the lock held; whether the fault
 * changed, so the handler must hear of it. */
static bool set_fault(struct llmgate *g, enum llm_fault fault,
		      const char *reason)
{
	bool changed = g->fault != fault;

	if (fault == LLM_FAULT_NONE) {
		g->probing = false;
		g->paused_since = 0;
		g->reason[0] = '\0';
		atomic_store(&g->streak, 0);
		pthread_cond_broadcast(&g->wake);
	} else {
		if (g->fault == LLM_FAULT_NONE)
			g->paused_since = mono_ns();
		snprintf(g->reason, sizeof(g->reason), "%s",
			 reason ? reason : "");
	}
	g->fault = fault;
	return changed;
}

/*
 * Tell the handler the pause as it stands now, if that is not what it
 * heard last. Changes are made under the lock and told outside it, so two
 * threads' tells could reach the handler in the wrong order (a resume told
 * before the pause it ended, leaving the daemon paused for good): one
 * tell at a time, each reading the latest state.
 */
static void tell(struct llmgate *g)
{
	char reason[LLMGATE_REASON_MAX];
	enum llm_fault fault;

	pthread_mutex_lock(&g->tell_lock);
	pthread_mutex_lock(&g->lock);
	fault = g->fault;
	snprintf(reason, sizeof(reason), "%s", g->reason);
	pthread_mutex_unlock(&g->lock);
	if (fault != g->told) {
		g->told = fault;
		if (g->on_pause)
			g->on_pause(g->on_pause_arg, fault,
				    fault == LLM_FAULT_NONE ? NULL : reason);
	}
	pthread_mutex_unlock(&g->tell_lock);
}

void llmgate_pause(struct llmgate *g, enum llm_fault fault,
		   const char *reason)
{
	bool changed;

	pthread_mutex_lock(&g->lock);
	changed = !g->stopped && set_fault(g, fault, reason);
	pthread_mutex_unlock(&g->lock);
	if (changed)
		tell(g);
}

enum llm_verdict llmgate_verdict(struct llmgate *g, int64_t since)
{
	enum llm_verdict v;

	pthread_mutex_lock(&g->lock);
	for (;;) {
		if (g->stopped) {
			v = LLM_VERDICT_STOPPED;
			break;
		}
		if (g->canary_passed > since) {
			v = LLM_VERDICT_RECORD;
			break;
		}
		if (g->fault != LLM_FAULT_NONE) {
			v = LLM_VERDICT_PAUSED;
			break;
		}
		if (!g->canary_running) {
			g->canary_running = true;
			v = LLM_VERDICT_RUN;
			break;
		}
		pthread_cond_wait(&g->wake, &g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return v;
}

void llmgate_canary_done(struct llmgate *g, int64_t started,
			 enum llm_fault fault, const char *reason)
{
	bool changed = false;

	pthread_mutex_lock(&g->lock);
	g->canary_running = false;
	if (fault == LLM_FAULT_NONE) {
		if (started > g->canary_passed)
			g->canary_passed = started;
		atomic_store(&g->streak, 0);
		/* A canary sent before the pause began says nothing of it. */
		changed = g->fault != LLM_FAULT_NONE &&
			  started >= g->paused_since &&
			  set_fault(g, fault, NULL);
	} else if (!g->stopped) {
		changed = set_fault(g, fault, reason);
	}
	pthread_cond_broadcast(&g->wake);
	pthread_mutex_unlock(&g->lock);
	if (changed)
		tell(g);
}

enum llm_fault llmgate_paused(struct llmgate *g, char *reason, size_t size,
			      int64_t *ret_since)
{
	enum llm_fault fault;

	pthread_mutex_lock(&g->lock);
	fault = g->fault;
	if (reason && size)
		snprintf(reason, size, "%s", g->reason);
	if (ret_since)
		*ret_since = g->paused_since;
	pthread_mutex_unlock(&g->lock);
	return fault;
}
