/*
 * http: see http.h.
 *
 * DESIGN
 * ------
 * The client owns its easy handle, its header list (which holds the key)
 * and a response buffer that grows up to max_response_bytes and is reused
 * across calls. Headers are read as they arrive: Retry-After wins over
 * x-ratelimit-reset-requests/-tokens (the larger of those two). The share
 * guards each kind of shared data with its own mutex, as libcurl asks.
 */
#include "http.h"

#include "backoff.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct http_share {
	CURLSH *sh;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

struct http_client {
	CURL *curl;
	struct curl_slist *headers;  /**< owns the key's header line */
	struct curl_slist *own_tail; /**< the last of the client's own lines;
				       *  the extra ones follow it */
	char *buf;                   /**< response body */
	size_t len, cap, max;
	bool too_large;
	long retry_after_ms;         /**< Retry-After, -1 if none */
	long retry_after_ms_exact;   /**< retry-after-ms, -1 if none */
	long reset_ms;               /**< max of x-ratelimit-reset-*, or -1 */
	long limit_requests;         /**< x-ratelimit-limit-requests, or 0 */
	long limit_tokens;           /**< x-ratelimit-limit-tokens, or 0 */
	long remaining_requests;     /**< x-ratelimit-remaining-requests, -1 */
	long remaining_tokens;       /**< x-ratelimit-remaining-tokens, -1 */
	long reset_requests_ms;      /**< x-ratelimit-reset-requests, -1 */
	long reset_tokens_ms;        /**< x-ratelimit-reset-tokens, -1 */
	const atomic_bool *abort;    /**< cuts a call when set; may be NULL */
	char errbuf[CURL_ERROR_SIZE];
};

int http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void http_global_cleanup(void)
{
	curl_global_cleanup();
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access a,
		       void *p)
{
	struct http_share *share = p;

	(void)h;
	(void)a;
	pthread_mutex_lock(&share->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *p)
{
	struct http_share *share = p;

	(void)h;
	pthread_mutex_unlock(&share->locks[data]);
}

struct http_share *http_share_new(void)
{
	struct http_share *share = calloc(1, sizeof(*share));
	int i;

	if (!share)
		return NULL;
	share->sh = curl_share_init();
	if (!share->sh) {
		free(share);
		return NULL;
	}
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&share->locks[i], NULL);
	curl_share_setopt(share->sh, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(share->sh, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(share->sh, CURLSHOPT_USERDATA, share);
	curl_share_setopt(share->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(share->sh, CURLSHOPT_SHARE,
			  CURL_LOCK_DATA_SSL_SESSION);
	return share;
}

void http_share_free(struct http_share *share)
{
	int i;

	if (!share)
		return;
	curl_share_cleanup(share->sh);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&share->locks[i]);
	free(share);
}

static size_t on_body(char *data, size_t size, size_t n, void *p)
{
	struct http_client *c = p;
	size_t len = size * n;

	if (len > c->max - c->len) {
		c->too_large = true;
		return 0; /* makes curl fail the transfer */
	}
	if (c->len + len + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		char *buf;

		while (cap < c->len + len + 1)
			cap *= 2;
		if (cap > c->max + 1)
			cap = c->max + 1;
		buf = realloc(c->buf, cap);
		if (!buf)
			return 0;
		c->buf = buf;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, data, len);
	c->len += len;
	c->buf[c->len] = '\0';
	return len;
}

/* A header's value as a positive whole number, or 0. */
static long header_number(const char *value)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(value, &end, 10);
	return errno || end == value || *end || n < 0 ? 0 : n;
}

/* A header's value as a count (0 included), or -1. */
static long header_count(const char *value)
{
	long n = header_number(value);

	return n > 0 || !strcmp(value, "0") ? n : -1;
}

/* A reset header: kept as it is, and the later of the two is the wait a
 * 429 without Retry-After gets. */
static void take_reset(struct http_client *c, const char *value, long *ret)
{
	unsigned ms;

	if (backoff_parse_duration(value, &ms))
		return;
	*ret = (long)ms;
	if ((long)ms > c->reset_ms)
		c->reset_ms = ms;
}

/* The response headers read, by name (lower case). */
enum header {
	H_RETRY_AFTER_MS,
	H_RETRY_AFTER,
	H_RESET_REQUESTS,
	H_RESET_TOKENS,
	H_REMAINING_REQUESTS,
	H_REMAINING_TOKENS,
	H_LIMIT_REQUESTS,
	H_LIMIT_TOKENS,
	H_NONE
};

#define HEADER(s) { s, sizeof(s) - 1 }
static const struct {
	const char *name;
	size_t len;
} header_names[H_NONE] = {
	[H_RETRY_AFTER_MS] = HEADER("retry-after-ms"),
	[H_RETRY_AFTER] = HEADER("retry-after"),
	[H_RESET_REQUESTS] = HEADER("x-ratelimit-reset-requests"),
	[H_RESET_TOKENS] = HEADER("x-ratelimit-reset-tokens"),
	[H_REMAINING_REQUESTS] = HEADER("x-ratelimit-remaining-requests"),
	[H_REMAINING_TOKENS] = HEADER("x-ratelimit-remaining-tokens"),
	[H_LIMIT_REQUESTS] = HEADER("x-ratelimit-limit-requests"),
	[H_LIMIT_TOKENS] = HEADER("x-ratelimit-limit-tokens"),
};
#undef HEADER

/* Which of header_names a line's name (len bytes, before its colon) is. */
static enum header header_of(const char *name, size_t len)
{
	int h;

	for (h = 0; h < H_NONE; h++)
		if (len == header_names[h].len &&
		    !strncasecmp(name, header_names[h].name, len))
			return h;
	return H_NONE;
}

static size_t on_header(char *data, size_t size, size_t n, void *p)
{
	struct http_client *c = p;
	size_t len = size * n, vlen;
	const char *colon, *v;
	char value[128];
	unsigned ms;
	enum header h;

	/* Every header read below starts with r or x: most lines of an
	 * answer (the status line, content-type, date, ...) stop here. */
	if (!len || (tolower((unsigned char)*data) != 'r' &&
		     tolower((unsigned char)*data) != 'x'))
		return len;
	colon = memchr(data, ':', len);
	if (!colon || (h = header_of(data, colon - data)) == H_NONE)
		return len;
	/* The value, trimmed, cut to what a number or a date needs. */
	v = colon + 1;
	vlen = len - (v - data);
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
			v[vlen - 1] == ' '))
		vlen--;
	if (vlen > sizeof(value) - 1)
		vlen = sizeof(value) - 1;
	memcpy(value, v, vlen);
	value[vlen] = '\0';

	switch (h) {
	case H_RETRY_AFTER_MS: {
		long ms_exact = header_number(value);

		if (ms_exact > 0 || !strcmp(value, "0"))
			c->retry_after_ms_exact = ms_exact;
		break;
	}
	case H_RETRY_AFTER:
		if (!backoff_parse_retry_after(value, time(NULL), &ms))
			c->retry_after_ms = ms;
		break;
	case H_RESET_REQUESTS:
		take_reset(c, value, &c->reset_requests_ms);
		break;
	case H_RESET_TOKENS:
		take_reset(c, value, &c->reset_tokens_ms);
		break;
	case H_REMAINING_REQUESTS:
		c->remaining_requests = header_count(value);
		break;
	case H_REMAINING_TOKENS:
		c->remaining_tokens = header_count(value);
		break;
	case H_LIMIT_REQUESTS:
		c->limit_requests = header_number(value);
		break;
	case H_LIMIT_TOKENS:
		c->limit_tokens = header_number(value);
		break;
	case H_NONE:
		break;
	}
	return len;
}

char *http_url_public(const char *url, bool host_only)
{
	CURLU *u = curl_url();
	char *part = NULL, *port = NULL, *out = NULL;
	CURLUcode rc;

	if (!u)
		return NULL;
	rc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (rc) {
		curl_url_cleanup(u);
		return strdup("(unparsable URL)");
	}
	if (host_only) {
		if (!curl_url_get(u, CURLUPART_HOST, &part, 0) &&
		    !curl_url_get(u, CURLUPART_PORT, &port,
				  CURLU_DEFAULT_PORT)) {
			size_t n = strlen(part) + strlen(port) + 2;

			out = malloc(n);
			if (out)
				snprintf(out, n, "%s:%s", part, port);
		} else {
			out = strdup("(unknown host)");
		}
	} else {
		curl_url_set(u, CURLUPART_USER, NULL, 0);
		curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
		curl_url_set(u, CURLUPART_QUERY, NULL, 0);
		curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
		if (!curl_url_get(u, CURLUPART_URL, &part, 0))
			out = strdup(part);
	}
	curl_free(part);
	curl_free(port);
	curl_url_cleanup(u);
	return out;
}

/* Progress callback: libcurl calls it about once a second or more often,
 * also while waiting; non-zero aborts the transfer. */
static int on_progress(void *p, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct http_client *c = p;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return atomic_load_explicit(c->abort, memory_order_relaxed);
}

struct http_client *http_client_new(const struct http_client_opts *opts,
				    char *err, size_t err_size)
{
	struct http_client *c = calloc(1, sizeof(*c));
	struct curl_slist *h;

	if (!c)
		goto oom;
	c->curl = curl_easy_init();
	if (!c->curl)
		goto oom;
	c->max = opts->max_response_bytes;

	h = curl_slist_append(NULL, "Content-Type: application/json");
	if (!h)
		goto oom;
	c->headers = h;
	if (opts->api_key && *opts->api_key) {
		const char *name = opts->api_key_header;
		size_t size = strlen(opts->api_key) + 32 +
			      (name ? strlen(name) : 0);
		char *line = malloc(size);

		if (!line)
			goto oom;
		if (name && *name)
			snprintf(line, size, "%s: %s", name, opts->api_key);
		else
			snprintf(line, size, "Authorization: Bearer %s",
				 opts->api_key);
		h = curl_slist_append(c->headers, line);
		/* Wipe our copy: the list holds the only one now. */
		memset(line, 0, size);
		free(line);
		if (!h)
			goto oom;
	}
	/* No "Expect: 100-continue" round trip for large bodies. */
	h = curl_slist_append(c->headers, "Expect:");
	if (!h)
		goto oom;
	for (c->own_tail = c->headers; c->own_tail->next;)
		c->own_tail = c->own_tail->next;

	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)opts->timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)opts->connect_timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "extractd/" EXTRACTD_VERSION);
	if (opts->ca_file && *opts->ca_file)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, opts->ca_file);
	if (opts->share)
		curl_easy_setopt(c->curl, CURLOPT_SHARE, opts->share->sh);
	if (opts->abort) {
		c->abort = opts->abort;
		curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION,
				 on_progress);
		curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
		curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	}
	return c;

oom:
	snprintf(err, err_size, "cannot set up an HTTP client: out of memory");
	http_client_free(c);
	return NULL;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->headers);
	free(c->buf);
	free(c);
}

int http_client_extra_headers(struct http_client *c, const char *const *lines,
			      size_t n)
{
	size_t i;

	curl_slist_free_all(c->own_tail->next);
	c->own_tail->next = NULL;
	for (i = 0; i < n; i++) {
		if (!curl_slist_append(c->headers, lines[i])) {
			curl_slist_free_all(c->own_tail->next);
			c->own_tail->next = NULL;
			return -1;
		}
	}
	return 0;
}

/* What a failed transfer says about the endpoint (http.h). */
static enum http_result transport_result(struct http_client *c, CURLcode rc)
{
	long sent = 0;

	switch (rc) {
	case CURLE_ABORTED_BY_CALLBACK:
		return HTTP_ERR_ABORTED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return HTTP_ERR_DNS;
	case CURLE_COULDNT_CONNECT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return HTTP_ERR_CONNECT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
		return HTTP_ERR_TLS_VERIFY;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		return HTTP_ERR_TLS;
	case CURLE_OPERATION_TIMEDOUT:
		/* Not one byte of the request went out: no connection came
		 * up in time, the endpoint is unreachable. */
		curl_easy_getinfo(c->curl, CURLINFO_REQUEST_SIZE, &sent);
		return sent ? HTTP_ERR_TIMEOUT : HTTP_ERR_CONNECT;
	default:
		return HTTP_ERR_TRANSPORT;
	}
}

/* Forget the last call's answer, and aim at url. */
static void call_begin(struct http_client *c, const char *url)
{
	c->len = 0;
	if (c->buf)
		c->buf[0] = '\0';
	c->too_large = false;
	c->retry_after_ms = -1;
	c->retry_after_ms_exact = -1;
	c->reset_ms = -1;
	c->limit_requests = 0;
	c->limit_tokens = 0;
	c->remaining_requests = -1;
	c->remaining_tokens = -1;
	c->reset_requests_ms = -1;
	c->reset_tokens_ms = -1;
	c->errbuf[0] = '\0';
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, NULL);
}

/* Make the call set up since call_begin() and report how it ended. */
static enum http_result call_perform(struct http_client *c,
				     struct http_response *resp, char *err,
				     size_t err_size)
{
	CURLcode rc;

	rc = curl_easy_perform(c->curl);
	memset(resp, 0, sizeof(*resp));
	resp->body = c->buf ? c->buf : "";
	resp->body_len = c->len;
	/* The most precise hint wins, as OpenAI's own SDKs read them. */
	resp->retry_after_ms = c->retry_after_ms_exact >= 0
				       ? c->retry_after_ms_exact
			       : c->retry_after_ms >= 0 ? c->retry_after_ms
							: c->reset_ms;
	resp->limit_requests = c->limit_requests;
	resp->limit_tokens = c->limit_tokens;
	resp->remaining_requests = c->remaining_requests;
	resp->remaining_tokens = c->remaining_tokens;
	resp->reset_requests_ms = c->reset_requests_ms;
	resp->reset_tokens_ms = c->reset_tokens_ms;
	if (rc == CURLE_OK) {
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE,
				  &resp->status);
		return HTTP_DONE;
	}
	if (c->too_large) {
		snprintf(err, err_size,
			 "answer larger than llm.max_response_bytes (%zu)",
			 c->max);
		return HTTP_ERR_TOO_LARGE;
	}
	snprintf(err, err_size, "%s", *c->errbuf ? c->errbuf
						  : curl_easy_strerror(rc));
	return transport_result(c, rc);
}

enum http_result http_post_json(struct http_client *c, const char *url,
				const char *body, size_t body_len,
				struct http_response *resp, char *err,
				size_t err_size)
{
	call_begin(c, url);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)body_len);
	return call_perform(c, resp, err, err_size);
}

enum http_result http_get(struct http_client *c, const char *url,
			  struct http_response *resp, char *err,
			  size_t err_size)
{
	call_begin(c, url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	return call_perform(c, resp, err, err_size);
}

enum http_result http_delete(struct http_client *c, const char *url,
			     struct http_response *resp, char *err,
			     size_t err_size)
{
	call_begin(c, url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, "DELETE");
	return call_perform(c, resp, err, err_size);
}

enum http_result http_post_form(struct http_client *c, const char *url,
				const struct http_form_part *parts, size_t n,
				struct http_response *resp, char *err,
				size_t err_size)
{
	curl_mime *mime = curl_mime_init(c->curl);
	curl_mimepart *part;
	enum http_result res;
	size_t i;

	if (!mime)
		goto oom;
	for (i = 0; i < n; i++) {
		part = curl_mime_addpart(mime);
		if (!part ||
		    curl_mime_name(part, parts[i].name) != CURLE_OK ||
		    curl_mime_data(part, parts[i].data, parts[i].len) !=
			    CURLE_OK ||
		    (parts[i].filename &&
		     curl_mime_filename(part, parts[i].filename) != CURLE_OK) ||
		    (parts[i].type &&
		     curl_mime_type(part, parts[i].type) != CURLE_OK))
			goto oom;
	}
	call_begin(c, url);
	curl_easy_setopt(c->curl, CURLOPT_MIMEPOST, mime);
	/* The client's list but its first line, "Content-Type:
	 * application/json": libcurl writes the form's own, with its
	 * boundary. */
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers->next);
	res = call_perform(c, resp, err, err_size);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->curl, CURLOPT_MIMEPOST, NULL);
	curl_mime_free(mime);
	return res;
oom:
	curl_mime_free(mime);
	snprintf(err, err_size, "cannot build the form: out of memory");
	return HTTP_ERR_TRANSPORT;
}

char *http_take_body(struct http_client *c, size_t *ret_len)
{
	char *body = c->buf;

	if (!body)
		body = calloc(1, 1);
	else
		c->buf = NULL;
	*ret_len = body ? c->len : 0;
	c->len = c->cap = 0;
	return body;
}
