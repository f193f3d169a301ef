/*
 * httpd: the operations endpoint on http.listen (libmicrohttpd):
 *
 *   GET /metrics  the Prometheus text format (200)
 *   GET /healthz  200 "ok" while the process works, else 503 and why
 *   GET /readyz   200 "ready" while it should get traffic, else 503 and why
 *
 * It knows nothing of the pipeline: the answers come from the callbacks
 * given to httpd_start(), called in the server's one thread (requests are
 * served one at a time; each answer is computed from atomics and one
 * short lock, so that is plenty for probes and scrapes).
 */
#ifndef EXTRACTD_HTTPD_H
#define EXTRACTD_HTTPD_H

#include <stddef.h>

struct httpd;

/** A probe: 0 when the answer is yes, else -1 and a short why. */
typedef int httpd_probe_fn(void *arg, char *why, size_t why_size);

/** /metrics: the text (the server frees it), or NULL on failure. */
typedef char *httpd_text_fn(void *arg, size_t *ret_len);

/**
 * @brief Bind listen ("host:port"; port 0 picks a free one) and serve.
 * The callbacks may run as soon as this returns, in another thread.
 * @param ret_addr receives the bound address as "host:port"
 * @returns the server, or NULL with err set (naming the address) when it
 *          cannot listen.
 */
struct httpd *httpd_start(const char *listen, httpd_probe_fn *healthy,
			  httpd_probe_fn *ready, httpd_text_fn *metrics,
			  void *arg, char *ret_addr, size_t addr_size,
			  char *err, size_t err_size);

/** Stop serving (waits for the request being served); NULL is fine. */
void httpd_stop(struct httpd *h);

#endif
