/*
 * health: is the daemon alive, should it get traffic, how is it doing.
 *
 * It answers the HTTP probes (/healthz, /readyz, /metrics: the
 * callbacks it gives httpd_start), feeds the systemd watchdog, and writes
 * the periodic progress line, from what the stop state, the llm, the
 * consumers and the metrics already keep; it keeps nothing of its own but the main loop's
 * heartbeat and the progress line's last sample.
 *
 * Alive (/healthz, WATCHDOG=1): the main loop ticked recently, and every
 * started consumer loop turned recently (each bumps a heartbeat every
 * poll). A wedged loop stops the watchdog, so systemd restarts the unit,
 * and fails /healthz, so Kubernetes does.
 *
 * Ready (/readyz): not stopping, the LLM API not paused and no spending
 * cap reached (the reason is shown), no consumer seeing all its brokers
 * down, and at least one partition assigned.
 *
 * Failures in the log: while the LLM API is paused, an error line every
 * minute says so again; while calls fail, a warning every progress
 * period says how many and what the latest said.
 */
#ifndef EXTRACTD_HEALTH_H
#define EXTRACTD_HEALTH_H

#include "httpd.h"

#include <stddef.h>
#include <stdint.h>

struct consumer;
struct llm;
struct metrics;
struct stop;
struct health;

/** The checks of the stop state, the llm's pause, the metrics and up to
 * n_consumers consumers; NULL when out of memory. */
struct health *health_new(struct stop *stop, struct llm *llm,
			  struct metrics *metrics, unsigned n_consumers);

/**
 * @brief Count a started consumer in (main thread, in start order). The
 * probes see it from then on; it must outlive the HTTP server.
 */
void health_add_consumer(struct health *h, struct consumer *c);

/**
 * @brief The main loop's periodic work (call about once a second, main
 * thread): its heartbeat, the watchdog, the progress line every 10 s.
 */
void health_tick(struct health *h);

/**
 * @brief The llm observer (llm_observer_fn; arg: the struct health): the
 * metrics count every call, and a failed call is remembered for the
 * warning health_tick() writes once per progress period while calls
 * fail. Any worker thread.
 */
struct llm_call;
void health_llm_observe(void *arg, const struct llm_call *call);

/**
 * @brief Show the spending caps in /readyz (a reached cap makes it 503
 * with the reason); call before the HTTP server starts. Not owned.
 */
struct spend;
void health_set_spend(struct health *h, struct spend *spend);

/**
 * @brief The clock the heartbeats are judged by (mono_ns unless set): a
 * test's seam, so a loop can look as silent as the test needs without
 * waiting. now_ns must read like mono_ns (the consumers' heartbeats are
 * mono_ns times), and be safe to call from the HTTP server's thread.
 * Call before the HTTP server starts; the main loop counts as just
 * ticked.
 */
void health_set_clock(struct health *h, int64_t (*now_ns)(void));

/** Free; NULL is fine. Stop the HTTP server first. */
void health_free(struct health *h);

/** The HTTP endpoints' callbacks (httpd.h); their arg is the struct
 * health. */
httpd_probe_fn health_healthy;
httpd_probe_fn health_ready;
httpd_text_fn health_metrics;

#endif
