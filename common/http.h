/*
 * http: one blocking HTTP client per worker thread, on a libcurl easy
 * handle kept for the thread's life so its connection stays open
 * (keep-alive, TLS session) between calls.
 *
 * libcurl does not share connections between threads that run at once,
 * so the share object (http_share) holds only what it may: the DNS cache
 * and TLS session ids, under its own locks.
 *
 * The key's header (Authorization: Bearer, or the one api_key_header
 * names, as Azure OpenAI's "api-key") is set once from the key and never
 * logged (verbose output is never turned on).
 */
#ifndef EXTRACTD_HTTP_H
#define EXTRACTD_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct http_share;
struct http_client;

/** Call once in main before any thread starts (curl_global_init). */
int http_global_init(void);
void http_global_cleanup(void);

/** A share for the DNS cache and TLS sessions, or NULL. */
struct http_share *http_share_new(void);
void http_share_free(struct http_share *share);

struct http_client_opts {
	const char *api_key;        /**< NULL or "" for none; copied */
	const char *api_key_header; /**< NULL or "": "Authorization: Bearer
				      *  KEY"; else "NAME: KEY" */
	unsigned timeout_ms;        /**< whole call */
	unsigned connect_timeout_ms;
	size_t max_response_bytes;  /**< a longer body is an error */
	const char *ca_file;        /**< NULL: the system's CAs */
	struct http_share *share;   /**< may be NULL */
	const atomic_bool *abort;   /**< NULL, or a flag that, once set, cuts
				      *  a call in progress (within about a
				      *  second) with HTTP_ERR_ABORTED */
};

/*
 * How a call ended. The transport errors are told apart by what they say
 * about the deployment: DNS, CONNECT and TLS mean no request reached the
 * server at all (the endpoint is wrong or down, whatever the record);
 * TIMEOUT and TRANSPORT happened on an open connection.
 */
enum http_result {
	HTTP_DONE,          /**< a status line came back (any status) */
	HTTP_ERR_TIMEOUT,   /**< connected, but no whole answer in time */
	HTTP_ERR_TRANSPORT, /**< the connection broke mid-call (reset,
			      *  empty reply) */
	HTTP_ERR_TOO_LARGE, /**< the body passed max_response_bytes */
	HTTP_ERR_DNS,       /**< the host name did not resolve */
	HTTP_ERR_CONNECT,   /**< no connection: refused, unreachable, or
			      *  not within connect_timeout_ms */
	HTTP_ERR_TLS,       /**< TLS handshake or certificate refused */
	HTTP_ERR_TLS_VERIFY,/**< the server's certificate did not verify
			      *  against the CAs (system or ca_file) */
	HTTP_ERR_ABORTED,   /**< cut short: the abort flag was set */
};

struct http_response {
	long status;
	const char *body;  /**< NUL-terminated; owned by the client, valid
			     *  until its next call */
	size_t body_len;
	long retry_after_ms; /**< from retry-after-ms, Retry-After or
			       *  x-ratelimit-reset-*, -1 when none came */
	long limit_requests; /**< x-ratelimit-limit-requests, 0 if none */
	long limit_tokens;   /**< x-ratelimit-limit-tokens, 0 if none */
	long remaining_requests; /**< x-ratelimit-remaining-requests, -1 if
				   *  none */
	long remaining_tokens;   /**< x-ratelimit-remaining-tokens, -1 */
	long reset_requests_ms;  /**< x-ratelimit-reset-requests, -1 */
	long reset_tokens_ms;    /**< x-ratelimit-reset-tokens, -1 */
};

/**
 * @brief What of a URL may be shown: without user and password (and
 * without query or fragment), or with host_only "host:port" (the
 * scheme's port when none is given).
 * @returns a malloc'ed string, or NULL when out of memory. A URL that
 *          does not parse comes back as "(unparsable URL)".
 */
char *http_url_public(const char *url, bool host_only);

/** A client, or NULL with the reason in err. */
struct http_client *http_client_new(const struct http_client_opts *opts,
				    char *err, size_t err_size);
void http_client_free(struct http_client *c);

/**
 * @brief Header lines ("Name: value", checked by the caller) sent with
 * every call from now on, after the client's own, in place of the ones
 * set before; n = 0 sends none.
 * @returns 0, or -1 when out of memory (then none are sent).
 */
int http_client_extra_headers(struct http_client *c, const char *const *lines,
			      size_t n);

/**
 * @brief POST a JSON body and wait for the answer.
 * @param err the transport error when the result is not HTTP_DONE
 */
enum http_result http_post_json(struct http_client *c, const char *url,
				const char *body, size_t body_len,
				struct http_response *resp, char *err,
				size_t err_size);

/** @brief GET url and wait for the answer (as http_post_json()). */
enum http_result http_get(struct http_client *c, const char *url,
			  struct http_response *resp, char *err,
			  size_t err_size);

/** @brief DELETE url and wait for the answer (as http_post_json()). */
enum http_result http_delete(struct http_client *c, const char *url,
			     struct http_response *resp, char *err,
			     size_t err_size);

/** One field of a multipart/form-data body. */
struct http_form_part {
	const char *name;
	const char *data;       /**< its bytes (copied by libcurl when the
				  *  form is built) */
	size_t len;
	const char *filename;   /**< NULL: a plain field; else a file's */
	const char *type;       /**< NULL, or the part's Content-Type */
};

/**
 * @brief POST a multipart/form-data body of n parts (a file upload) and
 * wait for the answer (as http_post_json()); an out-of-memory while
 * building the form is HTTP_ERR_TRANSPORT.
 */
enum http_result http_post_form(struct http_client *c, const char *url,
				const struct http_form_part *parts, size_t n,
				struct http_response *resp, char *err,
				size_t err_size);

/**
 * @brief Take the last answer's body (NUL-terminated, *ret_len bytes):
 * the caller frees it, and resp->body of that call is no longer valid.
 * @returns the body, or NULL when out of memory.
 */
char *http_take_body(struct http_client *c, size_t *ret_len);

#endif
