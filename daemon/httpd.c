/*
 * httpd: see httpd.h.
 *
 * DESIGN
 * ------
 * We bind the listening socket ourselves (getaddrinfo, so names, IPv4
 * and [IPv6] all work, and a bind failure is reported with its reason
 * before anything else starts) and hand it to libmicrohttpd, which owns
 * it from then on and closes it in MHD_stop_daemon(). libmicrohttpd runs
 * one internal thread (poll(2), so no FD_SETSIZE limit) that calls
 * on_request(); struct httpd is read-only after start, so that thread and
 * the main thread share it without a lock. The thread inherits the main
 * thread's signal mask (SIGINT/SIGTERM blocked): signals stay with main.
 */
#include "httpd.h"

#include "log.h"
#include "str.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTPD_CONNECTIONS 32   /**< open connections at most */
#define HTTPD_IDLE_S 10        /**< an idle connection is closed after */
#define HTTPD_WHY_MAX 256      /**< bytes of a 503's reason */

#define CONTENT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TEXT "text/plain; charset=utf-8"

struct httpd {
	struct MHD_Daemon *mhd;
	httpd_probe_fn *healthy;  /**< /healthz */
	httpd_probe_fn *ready;    /**< /readyz */
	httpd_text_fn *metrics;   /**< /metrics */
	void *arg;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
			     const char *type, char *body, size_t len,
			     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	resp = MHD_create_response_from_buffer(len, body, mode);
	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					"GET, HEAD");
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn,
				  unsigned status, const char *text)
{
	char body[HTTPD_WHY_MAX + 2];
	struct textbuf t;

	textbuf_init(&t, body, sizeof(body), TEXTBUF_CUT);
	textbuf_addf(&t, "%s\n", text);
	return reply(conn, status, CONTENT_TEXT, body, t.len,
		     MHD_RESPMEM_MUST_COPY);
}

/* A probe: 200 with ok_text, or 503 with the callback's reason. */
static enum MHD_Result probe(struct httpd *h, struct MHD_Connection *conn,
			     int (*check)(void *, char *, size_t),
			     const char *ok_text)
{
	char why[HTTPD_WHY_MAX] = "";

	if (check(h->arg, why, sizeof(why)) == 0)
		return reply_text(conn, MHD_HTTP_OK, ok_text);
	return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
			  *why ? why : "not ok");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct httpd *h = cls;
	char *text;
	size_t len = 0;

	(void)version;
	(void)upload;
	(void)con_cls;
	if (*upload_size) {
		/* A body we do not want: skip it, answer at the end. */
		*upload_size = 0;
		return MHD_YES;
	}
	LOG_DEBUG("http request",
		  LOG_S("method", strcmp(method, "GET") && strcmp(method, "HEAD")
					  ? "other"
					  : method),
		  LOG_S("path", !strcmp(url, "/metrics") ||
					!strcmp(url, "/healthz") ||
					!strcmp(url, "/readyz")
				? url
				: "other"));
	if (strcmp(method, MHD_HTTP_METHOD_GET) &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "method not allowed");
	if (!strcmp(url, "/metrics")) {
		text = h->metrics(h->arg, &len);
		if (!text)
			return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  "out of memory");
		return reply(conn, MHD_HTTP_OK, CONTENT_METRICS, text, len,
			     MHD_RESPMEM_MUST_FREE);
	}
	if (!strcmp(url, "/healthz"))
		return probe(h, conn, h->healthy, "ok");
	if (!strcmp(url, "/readyz"))
		return probe(h, conn, h->ready, "ready");
	return reply_text(conn, MHD_HTTP_NOT_FOUND,
			  "not found: try /metrics, /healthz, /readyz");
}

__attribute__((format(printf, 2, 0)))
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char text[512];
	size_t n;

	(void)cls;
	vsnprintf(text, sizeof(text), fmt, ap);
	n = strlen(text);
	while (n && text[n - 1] == '\n')
		text[--n] = '\0';
	LOG_WARN("http server", LOG_S("error", text));
}

/* Split "host:port" ("[v6]:port" too) into host and port. */
static int split_listen(const char *listen, char *host, size_t host_size,
			char *port, size_t port_size)
{
	const char *colon = strrchr(listen, ':');
	size_t hlen;

	if (!colon || strlen(colon + 1) >= port_size)
		return -1;
	hlen = (size_t)(colon - listen);
	if (hlen >= 2 && listen[0] == '[' && listen[hlen - 1] == ']') {
		listen++;
		hlen -= 2;
	}
	if (!hlen || hlen >= host_size)
		return -1;
	memcpy(host, listen, hlen);
	host[hlen] = '\0';
	snprintf(port, port_size, "%s", colon + 1);
	return 0;
}

/* A listening socket on listen, or -1 with err set. */
static int bind_listen(const char *listen_addr, char *ret_addr,
		       size_t addr_size, char *err, size_t err_size)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[256], port[8], nhost[NI_MAXHOST], nport[NI_MAXSERV];
	int fd = -1, r, saved = 0, one = 1;

	if (split_listen(listen_addr, host, sizeof(host), port,
			 sizeof(port)) < 0) {
		snprintf(err, err_size, "'%s' is not host:port", listen_addr);
		return -1;
	}
	r = getaddrinfo(host, port, &hints, &res);
	if (r) {
		snprintf(err, err_size, "cannot resolve '%s': %s", host,
			 gai_strerror(r));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, HTTPD_CONNECTIONS) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, err_size, "cannot listen on '%s': %s",
			 listen_addr, strerror(saved));
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0 &&
	    getnameinfo((struct sockaddr *)&ss, sslen, nhost, sizeof(nhost),
			nport, sizeof(nport),
			NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(ret_addr, addr_size,
			 ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", nhost,
			 nport);
	else
		snprintf(ret_addr, addr_size, "%s", listen_addr);
	return fd;
}

struct httpd *httpd_start(const char *listen_addr, httpd_probe_fn *healthy,
			  httpd_probe_fn *ready, httpd_text_fn *metrics,
			  void *arg,
			  char *ret_addr, size_t addr_size, char *err,
			  size_t err_size)
{
	struct httpd *h = calloc(1, sizeof(*h));
	int fd;

	if (!h) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	h->healthy = healthy;
	h->ready = ready;
	h->metrics = metrics;
	h->arg = arg;
	fd = bind_listen(listen_addr, ret_addr, addr_size, err, err_size);
	if (fd < 0) {
		free(h);
		return NULL;
	}
	h->mhd = MHD_start_daemon(
		MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
		on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
		MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)HTTPD_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)HTTPD_IDLE_S, MHD_OPTION_END);
	if (!h->mhd) {
		close(fd);
		free(h);
		snprintf(err, err_size, "cannot start the HTTP server on '%s'",
			 listen_addr);
		return NULL;
	}
	return h;
}

void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd); /* closes the listening socket too */
	free(h);
}
