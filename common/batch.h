/*
 * batch: a client of OpenAI's Batch API and the part of its Files API a
 * batch needs: upload a JSONL file of chat-completion requests, create a
 * batch from it, follow its status and counts, download its output and
 * error files, cancel it, delete files.
 *
 * DESIGN
 * ------
 * A struct batch_client owns one http_client (so one connection, kept
 * between calls) and is one thread's at a time; every call blocks until
 * the answer is in. Nothing here logs: each call returns a result the
 * caller branches on (enum batch_result) and a reason for people in err,
 * "METHOD /path: HTTP 404: <the API's message>", redacted (secret.h);
 * the key goes into the request header only (http.h), never into err.
 * Ids that come back in from outside (a state topic, a config) are
 * checked before they go into a URL.
 */
#ifndef EXTRACTD_BATCH_H
#define EXTRACTD_BATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batch_client;
struct http_share;

#define BATCH_ID_MAX 128 /**< bytes of an id, its NUL included */
#define BATCH_ERRORS_MAX 512 /**< bytes of batch_info.errors */

struct batch_client_opts {
	const char *base_url;       /**< e.g. "https://api.openai.com/v1" */
	const char *api_key;        /**< NULL or "" for none */
	const char *api_key_header; /**< NULL or "": "Authorization: Bearer
				      *  KEY"; else "NAME: KEY" */
	unsigned timeout_ms;        /**< a whole call, uploads and downloads
				      *  included */
	unsigned connect_timeout_ms;
	size_t max_file_bytes;      /**< a longer answer (a download) is
				      *  BATCH_ERR_TOO_LARGE */
	const char *ca_file;        /**< NULL: the system's CAs */
	struct http_share *share;   /**< may be NULL */
	const atomic_bool *abort;   /**< NULL, or a flag that cuts a call in
				      *  progress (BATCH_ERR_RETRY) */
};

/** How a call ended: what the caller should do next. */
enum batch_result {
	BATCH_OK,
	BATCH_ERR_NOT_FOUND,  /**< 404: no such batch or file */
	BATCH_ERR_REFUSED,    /**< another 4xx (400, 401, 403, 413...), or an
			        *  id that is not one: the same request will
			        *  not work later either */
	BATCH_ERR_RETRY,      /**< 408, 409, 429, 5xx, or no answer (no
			        *  connection, a timeout, an abort): the same
			        *  request may work later */
	BATCH_ERR_BAD_ANSWER, /**< a 2xx whose body is not what the API
			        *  sends */
	BATCH_ERR_TOO_LARGE,  /**< the answer passed max_file_bytes */
	BATCH_ERR_NOMEM,
};

/** A batch's status, as the API names it. */
enum batch_status {
	BATCH_VALIDATING,
	BATCH_IN_PROGRESS,
	BATCH_FINALIZING,
	BATCH_COMPLETED,
	BATCH_FAILED,         /**< the input was refused: info.errors */
	BATCH_EXPIRED,        /**< not done within its window: some lines
			        *  may be in the output file, the rest in
			        *  the error file (batch_expired) */
	BATCH_CANCELLING,
	BATCH_CANCELLED,
	BATCH_STATUS_UNKNOWN, /**< a status this client does not know */
};

/** What a batch object says (a retrieve, a create, a cancel). */
struct batch_info {
	char id[BATCH_ID_MAX];
	enum batch_status status;
	char input_file_id[BATCH_ID_MAX];
	char output_file_id[BATCH_ID_MAX]; /**< "" while there is none */
	char error_file_id[BATCH_ID_MAX];  /**< "" while there is none */
	uint64_t total;       /**< request_counts.total */
	uint64_t completed;   /**< request_counts.completed */
	uint64_t failed;      /**< request_counts.failed */
	int64_t created_at;   /**< Unix seconds */
	int64_t expires_at;   /**< Unix seconds, 0 when not given */
	/** usage, 0 where the API sent none */
	uint64_t input_tokens, cached_tokens, output_tokens, reasoning_tokens;
	/** a failed batch's errors.data, "line N: code: message; ..."
	 *  (cut to fit), "" when none */
	char errors[BATCH_ERRORS_MAX];
};

/** @returns the client, or NULL with the reason in err. */
struct batch_client *batch_client_new(const struct batch_client_opts *opts,
				      char *err, size_t err_size);

/** Accepts NULL. */
void batch_client_free(struct batch_client *c);

/** The HTTP status of the last call, 0 when none came back. */
long batch_last_status(const struct batch_client *c);

/** "validating", "in_progress"..., "unknown". */
const char *batch_status_name(enum batch_status status);

/** Whether the batch will not change any more (completed, failed,
 *  expired, cancelled). */
bool batch_status_final(enum batch_status status);

/**
 * @brief Upload len bytes of JSONL as a file for batches (purpose
 * "batch") named filename.
 * @returns BATCH_OK with its id in ret_id (id_size bytes), or an error
 *          with the reason in err.
 */
enum batch_result batch_file_upload(struct batch_client *c,
				    const char *filename, const char *data,
				    size_t len, char *ret_id, size_t id_size,
				    char *err, size_t err_size);

/**
 * @brief Create a batch of /v1/chat/completions requests from an uploaded
 * file, to be done within 24 hours. metadata: n_pairs key/value pairs,
 * keys at even indexes (at most 16 pairs, as the API takes), or NULL.
 * @returns BATCH_OK with the new batch in *ret, or an error.
 */
enum batch_result batch_create(struct batch_client *c,
			       const char *input_file_id,
			       const char *const *metadata, size_t n_pairs,
			       struct batch_info *ret, char *err,
			       size_t err_size);

/** @brief The batch as it is now. */
enum batch_result batch_retrieve(struct batch_client *c, const char *batch_id,
				 struct batch_info *ret, char *err,
				 size_t err_size);

/** @brief Cancel a batch; *ret is what the API answers (cancelling). */
enum batch_result batch_cancel(struct batch_client *c, const char *batch_id,
			       struct batch_info *ret, char *err,
			       size_t err_size);

/**
 * @brief Download a file's content.
 * @returns BATCH_OK with *ret_data malloc'ed (NUL-terminated, *ret_len
 *          bytes; the caller frees it), or an error.
 */
enum batch_result batch_file_content(struct batch_client *c,
				     const char *file_id, char **ret_data,
				     size_t *ret_len, char *err,
				     size_t err_size);

/** @brief Delete a file. */
enum batch_result batch_file_delete(struct batch_client *c,
				    const char *file_id, char *err,
				    size_t err_size);

/**
 * @brief One line of a batch's input file: {"custom_id": ID, "method":
 * "POST", "url": "/v1/chat/completions", "body": BODY} and a newline,
 * BODY the request's JSON text as it is (llm_request_body()), which
 * must be one line, as JSONL wants.
 * @returns the line, malloc'ed (*ret_len bytes, NUL-terminated), or NULL
 *          when out of memory or when body holds a line break.
 */
char *batch_request_line(const char *custom_id, const char *body,
			 size_t body_len, size_t *ret_len);

/** One line of a batch's output or error file. */
struct batch_output {
	char *custom_id;      /**< as the input line gave it */
	long status;          /**< the answer's HTTP status; 0 when none
			        *  came (then error_code says why) */
	char *body;           /**< the answer's body, JSON text (a chat
			        *  completion, or an API error), NULL with
			        *  no answer; a body that was no JSON
			        *  object comes as its text */
	size_t body_len;
	char error_code[64];  /**< error.code ("batch_expired",
			        *  "batch_cancelled", "request_timeout"...),
			        *  "" when none */
	char error_message[256]; /**< error.message, cut to fit, or "" */
};

/**
 * @brief Read one output or error file line (without its newline).
 * @returns 0 with *ret filled (free with batch_output_clear()), or -1
 *          with the reason in err (not such a line, or out of memory).
 */
int batch_output_parse(const char *line, size_t len, struct batch_output *ret,
		       char *err, size_t err_size);

/** Free what batch_output_parse() filled in; accepts a zeroed one. */
void batch_output_clear(struct batch_output *o);

#endif
