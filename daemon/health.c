/*
 * health: see health.h.
 *
 * DESIGN
 * ------
 * Two threads use a struct health: the main thread (health_add_consumer,
 * health_tick) and the HTTP server's thread (the probes). What both see
 * is atomic: the consumer count n (a consumer's pointer is written before
 * n is raised with release order, so a probe that loads n with acquire
 * order sees every pointer below it) and the main loop's heartbeat. The
 * clock they are judged by is set before the HTTP server starts. The
 * watchdog and progress fields are the main thread's alone. Everything
 * else is read through stop.h (stopping), the llm (paused), the
 * consumers' atomics (heartbeat, assignment, brokers down) and the
 * metrics'.
 */
#include "health.h"

#include "clock.h"
#include "consumer.h"
#include "llm.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "secret.h"
#include "spend.h"
#include "stop.h"
#include "str.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STALE_NS (30LL * 1000000000)    /**< a loop this quiet is wedged */
#define PROGRESS_NS (10LL * 1000000000) /**< between progress lines */
#define REMIND_NS (60LL * 1000000000)   /**< between "still paused" lines */

struct health {
	struct stop *stop;
	struct llm *llm;
	struct metrics *metrics;
	struct spend *spend;         /**< the spending caps, or NULL */
	struct consumer **consumers; /**< [0, n) are started */
	int64_t (*now_ns)(void);     /**< mono_ns, or a test's clock */
	unsigned cap;
	atomic_uint n;
	atomic_int_fast64_t main_ns; /**< the main loop's last tick */

	pthread_mutex_t failed_lock; /**< guards the two below (workers write
				       *  them on failed calls only) */
	uint64_t failed_calls;       /**< LLM calls that failed */
	char last_failure[512];      /**< what the latest one said */

	/* The main thread's alone: */
	uint64_t watchdog_usec;      /**< WatchdogSec=, 0: none */
	bool starving;               /**< logged: the watchdog goes unfed */
	int64_t progress_ns;         /**< when the last progress line was */
	uint64_t progress_records;   /**< records finished by then */
	uint64_t failed_logged;      /**< failed_calls at the last warning */
	int64_t reminded_ns;         /**< last pause line, 0: not paused */
};

struct health *health_new(struct stop *stop, struct llm *llm,
			  struct metrics *metrics, unsigned n_consumers)
{
	struct health *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->consumers = calloc(n_consumers ? n_consumers : 1,
			      sizeof(*h->consumers));
	if (!h->consumers) {
		free(h);
		return NULL;
	}
	h->stop = stop;
	h->llm = llm;
	h->metrics = metrics;
	h->cap = n_consumers;
	pthread_mutex_init(&h->failed_lock, NULL);
	atomic_init(&h->n, 0);
	h->now_ns = mono_ns;
	atomic_init(&h->main_ns, mono_ns());
	h->watchdog_usec = notify_watchdog_usec();
	h->progress_ns = mono_ns();
	return h;
}

void health_set_clock(struct health *h, int64_t (*now_ns)(void))
{
	h->now_ns = now_ns;
	atomic_store(&h->main_ns, now_ns());
	h->progress_ns = now_ns();
}

void health_add_consumer(struct health *h, struct consumer *c)
{
	unsigned n = atomic_load_explicit(&h->n, memory_order_relaxed);

	if (n == h->cap)
		return;
	h->consumers[n] = c;
	atomic_store_explicit(&h->n, n + 1, memory_order_release);
}

void health_free(struct health *h)
{
	if (!h)
		return;
	pthread_mutex_destroy(&h->failed_lock);
	free(h->consumers);
	free(h);
}

/* Append one reason to why ("a; b"). */
__attribute__((format(printf, 2, 3)))
static void add_why(struct textbuf *why, const char *fmt, ...)
{
	va_list ap;

	if (why->len)
		textbuf_add(why, "; ", 2);
	va_start(ap, fmt);
	textbuf_vaddf(why, fmt, ap);
	va_end(ap);
}

/* The index of a consumer whose loop has not turned within stale_ns, or
 * -1 when all have; its silence in *ret_ns. */
static int stalled_consumer(struct health *h, int64_t now, int64_t stale_ns,
			    int64_t *ret_ns)
{
	unsigned i, n = atomic_load_explicit(&h->n, memory_order_acquire);

	for (i = 0; i < n; i++) {
		int64_t quiet = now - consumer_heartbeat_ns(h->consumers[i]);

		if (quiet > stale_ns) {
			*ret_ns = quiet;
			return (int)i;
		}
	}
	return -1;
}

int health_healthy(void *arg, char *why, size_t why_size)
{
	struct health *h = arg;
	int64_t now = h->now_ns(), quiet;
	struct textbuf w;
	int i;

	textbuf_init(&w, why, why_size, TEXTBUF_CUT);
	/* Shutting down on purpose: draining is work, not a hang. */
	if (stop_stopping(h->stop))
		return 0;
	quiet = now - atomic_load(&h->main_ns);
	if (quiet > STALE_NS)
		add_why(&w, "main loop silent for %llds",
			(long long)(quiet / 1000000000));
	i = stalled_consumer(h, now, STALE_NS, &quiet);
	if (i >= 0)
		add_why(&w, "consumer %d loop silent for %llds", i,
			(long long)(quiet / 1000000000));
	return w.len ? -1 : 0;
}

int health_ready(void *arg, char *why, size_t why_size)
{
	struct health *h = arg;
	unsigned i, n = atomic_load_explicit(&h->n, memory_order_acquire);
	unsigned assigned = 0;
	struct textbuf w;
	bool down = false;

	textbuf_init(&w, why, why_size, TEXTBUF_CUT);
	if (stop_stopping(h->stop))
		add_why(&w, "stopping");
	if (h->llm) {
		char reason[768];

		if (llm_paused(h->llm, reason, sizeof(reason), NULL) !=
		    LLM_FAULT_NONE) {
			secret_redact_buf(reason, sizeof(reason));
			add_why(&w, "LLM API paused: %s", reason);
		}
	}
	if (h->spend) {
		char reason[256];

		if (spend_over(h->spend, mono_ns(), reason, sizeof(reason)))
			add_why(&w, "spending cap reached: %s", reason);
	}
	for (i = 0; i < n; i++) {
		assigned += consumer_assigned(h->consumers[i]);
		down = down || consumer_brokers_down(h->consumers[i]);
	}
	if (n < h->cap)
		add_why(&w, "starting");
	if (down)
		add_why(&w, "Kafka brokers unreachable");
	if (!assigned)
		add_why(&w, "no partitions assigned");
	return w.len ? -1 : 0;
}

char *health_metrics(void *arg, size_t *ret_len)
{
	struct health *h = arg;

	return metrics_render(h->metrics, EXTRACTD_VERSION, ret_len);
}

/* WATCHDOG=1 while every consumer loop turns; a wedged one starves it
 * (well before WatchdogSec runs out: at half of it), and systemd
 * restarts the service. */
static void feed_watchdog(struct health *h, int64_t now)
{
	int64_t stale = (int64_t)h->watchdog_usec * 1000 / 2, quiet = 0;
	int i;

	if (stale > STALE_NS)
		stale = STALE_NS;
	i = stalled_consumer(h, now, stale, &quiet);
	if (i < 0) {
		notify_watchdog();
		if (h->starving)
			LOG_WARN("consumer loops turn again: watchdog fed");
		h->starving = false;
		return;
	}
	if (!h->starving)
		LOG_ERROR("a consumer loop is stuck: the systemd watchdog is "
			  "no longer fed", LOG_I("consumer", i),
			  LOG_I("silent_ms", quiet / 1000000));
	h->starving = true;
}

static void progress(struct health *h, int64_t now)
{
	struct metrics_summary s;
	uint64_t records;
	double rate;
	char lag[32], status[256];

	metrics_summary(h->metrics, &s);
	records = s.records_ok + s.dead_letters;
	rate = (double)(records - h->progress_records) * 1e9 /
	       (double)(now - h->progress_ns);
	h->progress_ns = now;
	h->progress_records = records;
	LOG_INFO("progress", LOG_D("records_per_s", rate, 2),
		 LOG_I("inflight", s.inflight),
		 s.lag_parts ? LOG_I("lag", s.lag) : LOG_S("lag", NULL),
		 LOG_U("records", records),
		 LOG_U("dead_letters", s.dead_letters));
	if (s.lag_parts)
		snprintf(lag, sizeof(lag), "%lld", (long long)s.lag);
	else
		snprintf(lag, sizeof(lag), "unknown");
	snprintf(status, sizeof(status),
		 "%llu records (%.1f/s), %lld in flight, lag %s, "
		 "%llu dead letters",
		 (unsigned long long)records, rate, (long long)s.inflight,
		 lag,
		 (unsigned long long)s.dead_letters);
	notify_status(status);
}

void health_llm_observe(void *arg, const struct llm_call *call)
{
	struct health *h = arg;

	metrics_llm_observe(h->metrics, call);
	if (!call->detail)
		return;
	pthread_mutex_lock(&h->failed_lock);
	h->failed_calls++;
	snprintf(h->last_failure, sizeof(h->last_failure), "%s", call->detail);
	pthread_mutex_unlock(&h->failed_lock);
}

/* One warning per progress period while LLM calls fail: how many, and
 * what the latest said (each call's fate is in the metrics). */
static void warn_failures(struct health *h)
{
	char last[512];
	uint64_t n;

	pthread_mutex_lock(&h->failed_lock);
	n = h->failed_calls;
	snprintf(last, sizeof(last), "%s", h->last_failure);
	pthread_mutex_unlock(&h->failed_lock);
	if (n == h->failed_logged)
		return;
	LOG_WARN("LLM API calls failed", LOG_U("calls", n - h->failed_logged),
		 LOG_I("since_s", PROGRESS_NS / 1000000000),
		 LOG_S("last_error", last));
	h->failed_logged = n;
}

/* While the LLM API is paused, say so again every REMIND_NS: the line
 * that paused it may have scrolled away long ago. */
static void remind_pause(struct health *h, int64_t now)
{
	char reason[768];
	int64_t since;

	if (!h->llm ||
	    llm_paused(h->llm, reason, sizeof(reason), &since) ==
		    LLM_FAULT_NONE) {
		h->reminded_ns = 0;
		return;
	}
	if (!h->reminded_ns) {
		h->reminded_ns = now; /* the pause itself was logged */
		return;
	}
	if (now - h->reminded_ns < REMIND_NS)
		return;
	h->reminded_ns = now;
	LOG_ERROR("the LLM API is still paused: nothing is consumed",
		  LOG_I("paused_s", (now - since) / 1000000000),
		  LOG_S("reason", reason));
}

void health_set_spend(struct health *h, struct spend *spend)
{
	h->spend = spend;
}

void health_tick(struct health *h)
{
	int64_t now = h->now_ns();

	atomic_store(&h->main_ns, now);
	if (h->watchdog_usec)
		feed_watchdog(h, now);
	remind_pause(h, now);
	if (now - h->progress_ns >= PROGRESS_NS) {
		progress(h, now);
		warn_failures(h);
	}
}
