/*
 * llm: one record's extraction, as Instructor does it: ask the model for
 * an object shaped by the schema, parse and validate the answer, and ask
 * again with the errors while it is invalid.
 *
 * struct llm holds what every call shares (each request format's head,
 * system message and health check serialized once, the schema, the retry
 * policy) and is read-only once made, except for the request format in
 * use (llm_mode()), which the health checks find: at start and after every
 * pause, the first format the server takes, in the order json_schema,
 * json_object_schema, tools, json_object, md_json (llm.mode = "auto"), or
 * the configured one, kept or refused but never changed. Each worker
 * thread owns a struct llm_worker: its HTTP client (so its connection)
 * and its PRNG.
 */
#ifndef EXTRACTD_LLM_H
#define EXTRACTD_LLM_H

#include "config.h"
#include "llmgate.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct schema;
struct http_share;
struct llm;
struct llm_worker;

/** How a record's extraction ended; each error is a dead-letter kind. */
enum llm_status {
	LLM_OK,
	LLM_ERR_VALIDATION, /**< answers stayed invalid after the re-asks */
	LLM_ERR_HTTP,       /**< the API said no, or kept failing */
	LLM_ERR_TIMEOUT,    /**< the API kept timing out */
	LLM_ERR_REFUSAL,    /**< the model refused */
	LLM_ABANDONED,      /**< stopped (shutdown) before it could end: no
			      *  output; the record is done again later */
};

#define LLM_DETAIL_MAX 2048 /**< bytes of extractd.error.detail */
#define LLM_ANSWER_MAX 4096 /**< bytes of extractd.error.answer */

struct llm_result {
	enum llm_status status;
	char *output;       /**< LLM_OK: the validated object, compact JSON */
	char *answer;       /**< the model's last answer (bounded), or NULL */
	char detail[LLM_DETAIL_MAX]; /**< error detail, "" when LLM_OK */
	unsigned attempts;  /**< LLM calls made, retries included */
	unsigned reasks;    /**< calls that were re-asks */
	unsigned retries;   /**< calls that repeated a failed call */
	uint64_t prompt_tokens;
	uint64_t completion_tokens;
	uint64_t cached_tokens;    /**< of prompt_tokens, served from the
				     *  provider's prompt cache */
	uint64_t reasoning_tokens; /**< of completion_tokens, reasoning */
	/** Of prompt_tokens, completion_tokens and cached_tokens, those of
	 *  the Batch API's answer (billed at llm.price.batch_factor). */
	uint64_t batch_prompt_tokens, batch_completion_tokens,
		batch_cached_tokens;
	bool batched;       /**< the first answer came from a batch */
	char model[128];    /**< the configured model (llm.model) */
	char served_model[128]; /**< the model the server says answered,
				  *  when it is not model; else "" */
	enum cfg_llm_mode mode; /**< LLM_OK: the request format it came in */
};

/** What one API answer held, mode aside. */
struct llm_reply {
	char *answer;        /**< the JSON text to judge, or NULL (a refusal,
			       *  or an answer the content filter withheld):
			       *  in md_json, taken out of what was said */
	char *said;          /**< what the model said, verbatim (its content,
			       *  or its tool call's arguments), with answer */
	char *refusal;       /**< the refusal text, or NULL */
	char finish_reason[32];
	char model[128];
	uint64_t prompt_tokens;
	uint64_t completion_tokens;
	uint64_t cached_tokens;    /**< usage.prompt_tokens_details.
				     *  cached_tokens, 0 when absent */
	uint64_t reasoning_tokens; /**< usage.completion_tokens_details.
				     *  reasoning_tokens, 0 when absent */
};

/** What one HTTP call to the API did, for metrics. */
struct llm_call {
	long status;          /**< HTTP status, 0 when none came back */
	const char *outcome;  /**< "ok", "http_error", "timeout",
			        *  "transport", "too_large", "malformed" */
	double seconds;       /**< wall time of the call */
	bool will_retry;      /**< the call is tried again after a wait */
	const char *detail;   /**< what went wrong ("HTTP 503: ..."), NULL
			        *  for a call that worked; valid during the
			        *  observer's call only */
	long tokens;          /**< the answer's usage, prompt and completion,
			        *  -1 when it has none */
	/** The answer's usage by kind (0 when it has none): what the call
	 *  costs (cached is part of prompt). */
	uint64_t prompt_tokens, cached_tokens, completion_tokens;
	/** The answer's x-ratelimit-remaining-* and -reset-* (ms), -1 for
	 *  each that was absent: what is left of the account's budgets. */
	long remaining_requests, reset_requests_ms;
	long remaining_tokens, reset_tokens_ms;
};

/**
 * @brief Observe every HTTP call (metrics). Called in the worker thread
 * that made the call, so it must be thread-safe.
 */
typedef void llm_observer_fn(void *arg, const struct llm_call *call);

/**
 * @brief Prepare the shared part of every request.
 * @returns the llm, or NULL with the reason in err.
 */
struct llm *llm_new(const struct extractd_config *cfg,
		    const struct schema *schema, char *err, size_t err_size);

/**
 * @brief Hear which request format is in use, each time the health checks
 * settle on one (at start, and after a pause): mode is never
 * CFG_MODE_AUTO; refused lists the formats the server refused first
 * ("json_schema: HTTP 500: ..."), or is NULL. Called from a worker
 * thread, outside every lock. Call before workers start.
 */
typedef void llm_mode_fn(void *arg, enum cfg_llm_mode mode,
			 const char *refused);
void llm_set_mode_handler(struct llm *llm, llm_mode_fn *fn, void *arg);

/** The request format in use (or being tried); any thread. */
enum cfg_llm_mode llm_mode(struct llm *llm);

/** Set the call observer; call before any worker starts. */
void llm_set_observer(struct llm *llm, llm_observer_fn *fn, void *arg);

/**
 * @brief Hear when the API is paused for a fault of the deployment (no
 * connection, DNS, TLS, a refused key or quota, a 404 or the same error
 * for every request: llmgate.h) and when it works again: while paused,
 * every call waits and one worker probes. Call before workers start.
 */
void llm_set_pause_handler(struct llm *llm, llm_pause_fn *fn, void *arg);

/**
 * @brief The pause as it stands (llmgate_paused()): LLM_FAULT_NONE when
 * the API works; else its reason in reason and since when (monotonic
 * ns). Any thread.
 */
enum llm_fault llm_paused(struct llm *llm, char *reason, size_t size,
			  int64_t *ret_since);

/**
 * @brief Start the start-up check in a thread of its own (with its own
 * worker): find the request format the server takes now, before any
 * record needs it, and if that pauses the API, probe it until it answers.
 * The thread ends then, or at llm_stop(); llm_free() joins it. Call once,
 * after the handlers are set.
 * @returns 0, or -1 with the reason in err.
 */
int llm_check_start(struct llm *llm, const char *api_key,
		    struct http_share *share, char *err, size_t err_size);

/** Start calls at least pace_ns apart until until_ns (monotonic), as the
 * provider's rate headers ask; 0 stops pacing (llmgate_set_pace). */
void llm_set_pace(struct llm *llm, int64_t pace_ns, int64_t until_ns);

/** Wake every retry wait and make further waits fail (shutdown): calls
 * in progress finish, their records are abandoned if they need more. */
void llm_stop(struct llm *llm);

/** llm_stop(), and cut the calls in progress too (within about a
 * second): their records are abandoned (the shutdown deadline). */
void llm_cut(struct llm *llm);

/** Free; NULL is fine. Workers must be freed first. */
void llm_free(struct llm *llm);

/**
 * @brief A worker's state: its own HTTP client.
 * @param api_key copied into the client's headers only
 */
struct llm_worker *llm_worker_new(struct llm *llm, const char *api_key,
				  struct http_share *share, uint64_t seed,
				  char *err, size_t err_size);
void llm_worker_free(struct llm_worker *w);

/**
 * @brief Send the record's W3C trace context with the worker's calls
 * from now on (each must have passed input_traceparent_ok() and
 * input_tracestate_ok()); NULL traceparent: none (tracestate goes only
 * with a traceparent).
 * @returns 0, or -1 when out of memory (then none is sent).
 */
int llm_worker_trace(struct llm_worker *w, const char *traceparent,
		     const char *tracestate);

/**
 * @brief Extract one record's object from its text (blocking).
 * res is filled in; free what it holds with llm_result_clear().
 */
void llm_extract(struct llm_worker *w, const char *text, size_t len,
		 struct llm_result *res);

/**
 * @brief llm_extract() for a record whose first call a Batch API has
 * answered: answer is the body of that 200 chat-completions answer to
 * the request llm_request_body(llm, mode, text, len) built. It is
 * parsed in mode, its usage counted (res->batch_*; one of
 * res->attempts) and judged as a live answer is; what follows (re-asks,
 * more room, retries, a new format after a pause) goes to the live API.
 * A body that is not a chat completion (or a mode no request is built
 * in) does not lose the record: its first call is made live instead, at
 * the live price, and res->batched stays false.
 */
void llm_extract_answered(struct llm_worker *w, const char *text, size_t len,
			  enum cfg_llm_mode mode, const char *answer,
			  size_t answer_len, struct llm_result *res);

void llm_result_clear(struct llm_result *res);

/**
 * @brief The body of a record's first request in format mode (not
 * CFG_MODE_AUTO), as llm_extract() sends it: every byte before the
 * text's user message is the same for every record (the head, the
 * system message), so the provider can cache that prefix.
 * @returns a malloc'ed string, or NULL (out of memory, or mode auto).
 */
char *llm_request_body(struct llm *llm, enum cfg_llm_mode mode,
		       const char *text, size_t len);

/**
 * @brief Parse one chat-completions answer body in the given mode.
 * @returns 0 with out filled (free with llm_reply_clear()), -1 when the
 *          body is not a chat completion, with the reason in err.
 */
int llm_parse_reply(enum cfg_llm_mode mode, const char *body, size_t len,
		    struct llm_reply *out, char *err, size_t err_size);

void llm_reply_clear(struct llm_reply *r);

/**
 * @brief What an API error body says, for people: OpenAI's
 * error.message, a bare {"error": "..."}, FastAPI's {"detail": ...}, or
 * the words of a plain-text or HTML body; at most 300 bytes, blanks
 * squeezed (line breaks kept), redacted (secret.h). "" when it says
 * nothing.
 */
void llm_error_text(const char *body, size_t len, char *out, size_t size);

/** The extractd.error name of a status ("validation", "llm_http"...). */
const char *llm_error_name(enum llm_status status);

#endif
