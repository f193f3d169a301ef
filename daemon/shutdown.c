/*
 * shutdown: see shutdown.h.
 */
#include "shutdown.h"

#include "clock.h"
#include "llm.h"
#include "log.h"
#include "metrics.h"
#include "stop.h"
#include "thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WATCH_STEP_NS 100000000LL /**< how often the watchdog looks */

struct shutdown {
	struct stop *stop;
	struct llm *llm;
	struct metrics *metrics;
	sigset_t signals;
	pthread_t thread;
	int64_t cut_ns;       /**< cut the LLM calls still open */
	int64_t deadline_ns;  /**< exit, done or not */
	atomic_bool done;     /**< main finished stopping in time */
};

/* The last line before a forced exit, then the exit. */
static _Noreturn void force_exit(struct shutdown *s, const char *why)
{
	struct metrics_summary m;

	metrics_summary(s->metrics, &m);
	LOG_WARN("exiting before the work in flight was delivered: those "
		 "records' offsets are not committed, they are done again "
		 "after a restart",
		 LOG_S("why", why), LOG_S("step", stop_step_name(s->stop)),
		 LOG_I("undelivered", m.inflight),
		 LOG_U("records", m.records_ok),
		 LOG_U("dead_letters", m.dead_letters));
	_exit(stop_failed(s->stop) ? 1 : 0);
}

static void *watch(void *arg)
{
	struct shutdown *s = arg;
	bool cut = false;

	thread_enter("shutdown");
	while (!atomic_load(&s->done)) {
		struct timespec step = { .tv_nsec = WATCH_STEP_NS };
		int64_t now;

		if (sigtimedwait(&s->signals, NULL, &step) > 0)
			force_exit(s, "a second stop signal");
		now = mono_ns();
		if (!cut && now >= s->cut_ns) {
			struct metrics_summary m;

			cut = true;
			metrics_summary(s->metrics, &m);
			if (m.inflight)
				LOG_WARN("two thirds of shutdown.timeout_ms "
					 "gone: LLM calls still open are cut, "
					 "their records are done again after a "
					 "restart",
					 LOG_I("inflight", m.inflight));
			if (s->llm)
				llm_cut(s->llm);
		}
		if (now >= s->deadline_ns && !atomic_load(&s->done))
			force_exit(s, "shutdown.timeout_ms reached");
	}
	return NULL;
}

struct shutdown *shutdown_begin(struct stop *stop, struct llm *llm,
				struct metrics *metrics, unsigned timeout_ms,
				const sigset_t *signals)
{
	int64_t now = mono_ns();
	int64_t timeout = (int64_t)timeout_ms * 1000000;
	struct shutdown *s;
	int r;

	stop_begin(stop, timeout_ms);
	if (llm)
		llm_stop(llm);
	s = calloc(1, sizeof(*s));
	if (!s) {
		LOG_ERROR("cannot watch the shutdown: out of memory");
		return NULL;
	}
	s->stop = stop;
	s->llm = llm;
	s->metrics = metrics;
	s->signals = *signals;
	s->cut_ns = now + timeout / 3 * 2;
	s->deadline_ns = now + timeout;
	atomic_init(&s->done, false);
	r = pthread_create(&s->thread, NULL, watch, s);
	if (r) {
		LOG_ERROR("cannot watch the shutdown",
			  LOG_S("error", strerror(r)));
		free(s);
		return NULL;
	}
	return s;
}

void shutdown_end(struct shutdown *s)
{
	if (!s)
		return;
	atomic_store(&s->done, true);
	pthread_join(s->thread, NULL);
	free(s);
}
