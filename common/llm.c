/*
 * llm: see llm.h.
 *
 * DESIGN
 * ------
 * A request is the JSON head made once in llm_new() (model, temperature,
 * and the schema as the mode carries it), then the messages, which are
 * the only part built per call. So the schema is serialized once, and no
 * json-c object is shared between threads (json-c objects are not safe
 * to share).
 *
 * A record's extraction is two nested loops with separate budgets:
 * - re-asks (llm.max_reasks): an answer that does not parse or validate
 *   goes back to the model as an assistant message, followed by a user
 *   message listing every error; no wait between them.
 * - transport retries (retry.max_attempts per call): 429, 5xx, timeouts,
 *   connection errors and malformed bodies, with exponential backoff and
 *   full jitter, never sooner than the server's Retry-After. A wait ends
 *   early when llm_stop() is called: the record is then abandoned (no
 *   output, no commit), to be done again after a restart.
 */
#include "llm.h"

#include "backoff.h"
#include "http.h"
#include "input.h"
#include "ratelimit.h"
#include "schema.h"
#include "str.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LLM_JSON_DEPTH 64 /**< nesting accepted in bodies and answers */
#define LLM_PROBE_MS 10000          /**< probe a paused API this often */
#define LLM_COMPLETION_ESTIMATE 256 /**< tokens, without llm.max_tokens */
#define LLM_LEARNED_SHARE 0.95      /**< of a budget the server announces */
#define LLM_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

struct llm {
	const struct schema *schema; /**< borrowed; outlives the llm */
	enum cfg_llm_mode mode;
	char *url;          /**< base_url + "/chat/completions" */
	char *head;         /**< request JSON without messages, no '}' */
	char *system;       /**< the system message text */
	char *model;
	char *ca_file;      /**< "" = the system's CAs */
	unsigned max_reasks;
	unsigned max_attempts;
	unsigned base_delay_ms, max_delay_ms;
	unsigned timeout_ms, connect_timeout_ms;
	size_t max_response_bytes;

	unsigned max_elapsed_ms;
	unsigned probe_ms;          /**< between probes of a paused API */
	double completion_estimate; /**< tokens an answer is assumed to cost */
	struct ratelimit *rpm;      /**< NULL: unlimited */
	struct ratelimit *tpm;      /**< NULL: unlimited */
	struct ratelimit *learned_rpm; /**< from the server's limits after a
					 *  429; set once, under lock */
	struct ratelimit *learned_tpm;
	llm_observer_fn *observe;   /**< may be NULL */
	void *observe_arg;
	llm_pause_fn *on_pause;     /**< may be NULL */
	void *on_pause_arg;

	pthread_mutex_t lock;    /**< guards the fields below */
	pthread_cond_t wake;     /**< CLOCK_MONOTONIC; broadcast on stop and
				   *  when a pause ends */
	bool stopped;
	bool paused;             /**< the API refuses the deployment */
	bool probing;            /**< a worker is probing the paused API */
	int64_t cooldown_until;  /**< no call before (monotonic ns) */
};

struct llm_worker {
	struct llm *llm;
	struct http_client *http;
	struct json_tokener *tok; /**< reset for each parse: a new one costs
				    *  two allocations, one of ~2 KiB */
	uint64_t rng;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec mono_at(int64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000),
			       .tv_nsec = (long)(ns % 1000000000) };

	return ts;
}

const char *llm_error_name(enum llm_status status)
{
	switch (status) {
	case LLM_OK:
		return "ok";
	case LLM_ERR_VALIDATION:
		return "validation";
	case LLM_ERR_HTTP:
		return "llm_http";
	case LLM_ERR_TIMEOUT:
		return "llm_timeout";
	case LLM_ERR_REFUSAL:
		return "llm_refusal";
	case LLM_ABANDONED:
		return "abandoned";
	}
	return "unknown";
}

/* Parse exactly one JSON value filling [s, s+len) with tok (made with
 * depth LLM_JSON_DEPTH, reset here). */
static struct json_object *parse_json(struct json_tokener *tok, const char *s,
				      size_t len, char *err, size_t err_size)
{
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t end;

	if (len > (size_t)INT32_MAX) {
		snprintf(err, err_size, "too long");
		return NULL;
	}
	json_tokener_reset(tok);
	obj = json_tokener_parse_ex(tok, s, (int)len);
	jerr = json_tokener_get_error(tok);
	if (!obj && jerr == json_tokener_continue) {
		snprintf(err, err_size, "unexpected end of JSON");
		return NULL;
	}
	if (jerr != json_tokener_success) {
		snprintf(err, err_size, "%s at byte %zu",
			 json_tokener_error_desc(jerr),
			 json_tokener_get_parse_end(tok));
		return NULL;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++) {
		if (!strchr(" \t\r\n", s[end])) {
			snprintf(err, err_size,
				 "unexpected text after the JSON value at "
				 "byte %zu", end);
			json_object_put(obj);
			return NULL;
		}
	}
	return obj;
}

/* The request fields other than messages, per mode. */
static struct json_object *request_head(const struct extractd_config *cfg,
					struct json_object *schema_doc)
{
	struct json_object *req = json_object_new_object();
	struct json_object *fmt, *inner, *tool, *fn, *choice, *cfn;

	json_object_object_add(req, "model",
			       json_object_new_string(cfg->llm.model));
	json_object_object_add(req, "temperature",
			       json_object_new_double(cfg->llm.temperature));
	if (cfg->llm.max_tokens)
		json_object_object_add(req, "max_tokens",
				       json_object_new_int64(cfg->llm.max_tokens));
	switch (cfg->llm.mode) {
	case CFG_MODE_JSON_SCHEMA:
		inner = json_object_new_object();
		json_object_object_add(inner, "name",
				       json_object_new_string(cfg->schema.name));
		json_object_object_add(inner, "schema",
				       json_object_get(schema_doc));
		json_object_object_add(inner, "strict",
				       json_object_new_boolean(1));
		fmt = json_object_new_object();
		json_object_object_add(fmt, "type",
				       json_object_new_string("json_schema"));
		json_object_object_add(fmt, "json_schema", inner);
		json_object_object_add(req, "response_format", fmt);
		break;
	case CFG_MODE_TOOLS:
		fn = json_object_new_object();
		json_object_object_add(fn, "name",
				       json_object_new_string(cfg->schema.name));
		json_object_object_add(fn, "parameters",
				       json_object_get(schema_doc));
		json_object_object_add(fn, "strict",
				       json_object_new_boolean(1));
		tool = json_object_new_object();
		json_object_object_add(tool, "type",
				       json_object_new_string("function"));
		json_object_object_add(tool, "function", fn);
		json_object_object_add(req, "tools", json_object_new_array());
		json_object_array_add(json_object_object_get(req, "tools"),
				      tool);
		cfn = json_object_new_object();
		json_object_object_add(cfn, "name",
				       json_object_new_string(cfg->schema.name));
		choice = json_object_new_object();
		json_object_object_add(choice, "type",
				       json_object_new_string("function"));
		json_object_object_add(choice, "function", cfn);
		json_object_object_add(req, "tool_choice", choice);
		break;
	case CFG_MODE_JSON_OBJECT:
		fmt = json_object_new_object();
		json_object_object_add(fmt, "type",
				       json_object_new_string("json_object"));
		json_object_object_add(req, "response_format", fmt);
		break;
	case CFG_MODE_MD_JSON:
		break;
	}
	return req;
}

struct llm *llm_new(const struct extractd_config *cfg,
		    const struct schema *schema, char *err, size_t err_size)
{
	struct llm *llm = calloc(1, sizeof(*llm));
	struct json_object *doc = schema_document(schema), *head = NULL;
	pthread_condattr_t attr;
	const char *text;
	size_t n;

	if (!llm)
		goto oom;
	pthread_mutex_init(&llm->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&llm->wake, &attr);
	pthread_condattr_destroy(&attr);
	llm->schema = schema;
	llm->mode = cfg->llm.mode;
	llm->max_reasks = cfg->llm.max_reasks;
	llm->max_attempts = cfg->retry.max_attempts;
	llm->base_delay_ms = cfg->retry.base_delay_ms;
	llm->max_delay_ms = cfg->retry.max_delay_ms;
	llm->timeout_ms = cfg->llm.timeout_ms;
	llm->connect_timeout_ms = cfg->llm.connect_timeout_ms;
	llm->max_response_bytes = cfg->llm.max_response_bytes;
	llm->max_elapsed_ms = cfg->retry.max_elapsed_ms;
	/* Probe a paused API slowly, but not slower than the backoff cap. */
	llm->probe_ms = cfg->retry.max_delay_ms < LLM_PROBE_MS
				? (cfg->retry.max_delay_ms ? cfg->retry.max_delay_ms
							   : 1)
				: LLM_PROBE_MS;
	llm->completion_estimate = cfg->llm.max_tokens
					   ? cfg->llm.max_tokens
					   : LLM_COMPLETION_ESTIMATE;
	/* A second's worth of burst: the budget is spread, not spent at
	 * once (a minute's burst would look like a flood to the API). */
	if (cfg->rate.requests_per_minute &&
	    !(llm->rpm = ratelimit_new(cfg->rate.requests_per_minute,
				       cfg->rate.requests_per_minute / 60.0,
				       mono_ns())))
		goto oom;
	if (cfg->rate.tokens_per_minute &&
	    !(llm->tpm = ratelimit_new(cfg->rate.tokens_per_minute,
				       cfg->rate.tokens_per_minute / 60.0,
				       mono_ns())))
		goto oom;
	llm->model = strdup(cfg->llm.model);
	llm->ca_file = strdup(cfg->llm.ca_file);
	llm->url = str_printf("%s/chat/completions", cfg->llm.base_url);

	switch (cfg->llm.mode) {
	case CFG_MODE_JSON_SCHEMA:
	case CFG_MODE_TOOLS:
		llm->system = strdup(cfg->schema.instructions);
		break;
	case CFG_MODE_JSON_OBJECT:
		llm->system = str_printf(
			"%s\n\nAnswer with one JSON object that matches this "
			"JSON Schema:\n%s",
			cfg->schema.instructions,
			json_object_to_json_string_ext(doc, LLM_JSON_FLAGS));
		break;
	case CFG_MODE_MD_JSON:
		llm->system = str_printf(
			"%s\n\nAnswer with one JSON object that matches this "
			"JSON Schema, in a ```json fenced code block:\n%s",
			cfg->schema.instructions,
			json_object_to_json_string_ext(doc, LLM_JSON_FLAGS));
		break;
	}

	head = request_head(cfg, doc);
	text = json_object_to_json_string_ext(head, LLM_JSON_FLAGS);
	n = strlen(text);
	llm->head = malloc(n);
	if (!llm->model || !llm->ca_file || !llm->url || !llm->system ||
	    !llm->head)
		goto oom;
	/* Keep "{...", drop the closing brace: messages come next. */
	memcpy(llm->head, text, n - 1);
	llm->head[n - 1] = '\0';
	json_object_put(head);
	return llm;
oom:
	json_object_put(head);
	snprintf(err, err_size, "out of memory");
	llm_free(llm);
	return NULL;
}

void llm_set_observer(struct llm *llm, llm_observer_fn *fn, void *arg)
{
	llm->observe = fn;
	llm->observe_arg = arg;
}

void llm_set_pause_handler(struct llm *llm, llm_pause_fn *fn, void *arg)
{
	llm->on_pause = fn;
	llm->on_pause_arg = arg;
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void observe(struct llm *llm, const struct timespec *start,
		    long status, const char *outcome, bool will_retry)
{
	struct llm_call call = {
		.status = status,
		.outcome = outcome,
		.seconds = seconds_since(start),
		.will_retry = will_retry,
	};

	if (llm->observe)
		llm->observe(llm->observe_arg, &call);
}

void llm_stop(struct llm *llm)
{
	pthread_mutex_lock(&llm->lock);
	llm->stopped = true;
	pthread_cond_broadcast(&llm->wake);
	pthread_mutex_unlock(&llm->lock);
}

void llm_free(struct llm *llm)
{
	if (!llm)
		return;
	pthread_cond_destroy(&llm->wake);
	pthread_mutex_destroy(&llm->lock);
	ratelimit_free(llm->rpm);
	ratelimit_free(llm->tpm);
	ratelimit_free(llm->learned_rpm);
	ratelimit_free(llm->learned_tpm);
	free(llm->url);
	free(llm->head);
	free(llm->system);
	free(llm->model);
	free(llm->ca_file);
	free(llm);
}

struct llm_worker *llm_worker_new(struct llm *llm, const char *api_key,
				  struct http_share *share, uint64_t seed,
				  char *err, size_t err_size)
{
	struct llm_worker *w = calloc(1, sizeof(*w));
	struct http_client_opts opts = {
		.api_key = api_key,
		.timeout_ms = llm->timeout_ms,
		.connect_timeout_ms = llm->connect_timeout_ms,
		.max_response_bytes = llm->max_response_bytes,
		.ca_file = llm->ca_file,
		.share = share,
	};

	if (!w) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	w->llm = llm;
	w->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
	w->tok = json_tokener_new_ex(LLM_JSON_DEPTH);
	if (!w->tok) {
		snprintf(err, err_size, "out of memory");
		free(w);
		return NULL;
	}
	w->http = http_client_new(&opts, err, err_size);
	if (!w->http) {
		json_tokener_free(w->tok);
		free(w);
		return NULL;
	}
	return w;
}

void llm_worker_free(struct llm_worker *w)
{
	if (!w)
		return;
	http_client_free(w->http);
	json_tokener_free(w->tok);
	free(w);
}

/* Wait ms unless stopped first; -1 when stopped. */
static int llm_wait(struct llm *llm, unsigned ms)
{
	struct timespec until = mono_at(mono_ns() + (int64_t)ms * 1000000);
	int stopped;

	pthread_mutex_lock(&llm->lock);
	while (!llm->stopped &&
	       pthread_cond_timedwait(&llm->wake, &llm->lock, &until) !=
		       ETIMEDOUT)
		;
	stopped = llm->stopped;
	pthread_mutex_unlock(&llm->lock);
	return stopped ? -1 : 0;
}

static void add_message(struct json_object *messages, const char *role,
			const char *content, size_t len)
{
	struct json_object *m = json_object_new_object();

	json_object_object_add(m, "role", json_object_new_string(role));
	json_object_object_add(m, "content",
			       json_object_new_string_len(content, (int)len));
	json_object_array_add(messages, m);
}

/* Copy at most max bytes of s, cut on a UTF-8 character boundary. */
static char *dup_bounded(const char *s, size_t max)
{
	size_t len = strlen(s);
	char *out;

	if (len > max) {
		len = max;
		while (len && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	out = malloc(len + 1);
	if (!out)
		return NULL;
	memcpy(out, s, len);
	out[len] = '\0';
	return out;
}

/* Append to the detail, cutting (on a character boundary) when full. */
static void detail_set(struct llm_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void detail_set(struct llm_result *res, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(res->detail)) {
		size_t len = sizeof(res->detail) - 1;

		while (len && ((unsigned char)res->detail[len] & 0xC0) == 0x80)
			len--;
		res->detail[len] = '\0';
	}
}

/* The first fenced block's body ("```json\n...```" or "```\n...```"),
 * else the whole text. Returns a malloc'ed copy. */
static char *unfence(const char *text)
{
	const char *start = strstr(text, "```"), *end;
	char *out;

	if (!start)
		return strdup(text);
	start += 3;
	start += strcspn(start, "\n"); /* skip the info string ("json") */
	if (*start == '\n')
		start++;
	end = strstr(start, "```");
	if (!end)
		end = start + strlen(start);
	out = malloc((size_t)(end - start) + 1);
	if (!out)
		return NULL;
	memcpy(out, start, (size_t)(end - start));
	out[end - start] = '\0';
	return out;
}

static const char *get_string(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

void llm_reply_clear(struct llm_reply *r)
{
	free(r->answer);
	free(r->refusal);
	memset(r, 0, sizeof(*r));
}

static int parse_reply(struct json_tokener *tok, enum cfg_llm_mode mode,
		       const char *body, size_t len, struct llm_reply *out,
		       char *err, size_t err_size)
{
	struct json_object *root, *choices, *choice, *msg, *usage, *v;
	struct json_object *calls, *call, *fn;
	const char *s;
	char perr[128];
	int r = -1;

	memset(out, 0, sizeof(*out));
	if (err_size)
		err[0] = '\0';
	root = parse_json(tok, body, len, perr, sizeof(perr));
	if (!root) {
		snprintf(err, err_size, "answer body is not JSON: %s", perr);
		return -1;
	}
	if (!json_object_object_get_ex(root, "choices", &choices) ||
	    !json_object_is_type(choices, json_type_array) ||
	    json_object_array_length(choices) < 1) {
		snprintf(err, err_size, "answer body has no choices");
		goto out;
	}
	choice = json_object_array_get_idx(choices, 0);
	if (!json_object_object_get_ex(choice, "message", &msg) ||
	    !json_object_is_type(msg, json_type_object)) {
		snprintf(err, err_size, "answer body has no message");
		goto out;
	}
	if ((s = get_string(choice, "finish_reason")))
		snprintf(out->finish_reason, sizeof(out->finish_reason), "%s",
			 s);
	if ((s = get_string(root, "model")))
		snprintf(out->model, sizeof(out->model), "%s", s);
	if (json_object_object_get_ex(root, "usage", &usage)) {
		if (json_object_object_get_ex(usage, "prompt_tokens", &v))
			out->prompt_tokens = (uint64_t)json_object_get_int64(v);
		if (json_object_object_get_ex(usage, "completion_tokens", &v))
			out->completion_tokens =
				(uint64_t)json_object_get_int64(v);
	}

	if ((s = get_string(msg, "refusal"))) {
		out->refusal = strdup(s);
		r = out->refusal ? 0 : -1;
		goto out;
	}
	if (mode == CFG_MODE_TOOLS) {
		if (json_object_object_get_ex(msg, "tool_calls", &calls) &&
		    json_object_is_type(calls, json_type_array) &&
		    json_object_array_length(calls) > 0 &&
		    (call = json_object_array_get_idx(calls, 0)) &&
		    json_object_object_get_ex(call, "function", &fn) &&
		    (s = get_string(fn, "arguments"))) {
			out->answer = strdup(s);
		} else if ((s = get_string(msg, "content"))) {
			/* No tool call: the text is the answer to judge. */
			out->answer = strdup(s);
		} else {
			snprintf(err, err_size, "answer has no tool call");
			goto out;
		}
	} else {
		s = get_string(msg, "content");
		if (!s) {
			snprintf(err, err_size, "answer has no content");
			goto out;
		}
		out->answer = mode == CFG_MODE_MD_JSON ? unfence(s)
						       : strdup(s);
	}
	r = out->answer ? 0 : -1;
out:
	if (r < 0 && !*err)
		snprintf(err, err_size, "out of memory");
	if (r < 0)
		llm_reply_clear(out);
	json_object_put(root);
	return r;
}

int llm_parse_reply(enum cfg_llm_mode mode, const char *body, size_t len,
		    struct llm_reply *out, char *err, size_t err_size)
{
	struct json_tokener *tok = json_tokener_new_ex(LLM_JSON_DEPTH);
	int r;

	if (!tok) {
		memset(out, 0, sizeof(*out));
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	r = parse_reply(tok, mode, body, len, out, err, err_size);
	json_tokener_free(tok);
	return r;
}

/* What an error body says: its message, and whether it is OpenAI's
 * insufficient_quota (an account problem, not a rate). */
static void api_error(struct json_tokener *tok, const char *body, size_t len,
		      char *msg, size_t msg_size, bool *ret_quota)
{
	struct json_object *root, *e;
	const char *text = NULL, *type = NULL, *code = NULL;
	char perr[64];

	root = parse_json(tok, body, len, perr, sizeof(perr));
	if (root && json_object_object_get_ex(root, "error", &e)) {
		text = get_string(e, "message");
		type = get_string(e, "type");
		code = get_string(e, "code");
	}
	snprintf(msg, msg_size, "%.300s", text ? text : "");
	*ret_quota = (type && !strcmp(type, "insufficient_quota")) ||
		     (code && !strcmp(code, "insufficient_quota"));
	json_object_put(root);
}

static bool status_retryable(long status)
{
	return status == 429 || status == 500 || status == 502 ||
	       status == 503 || status == 504;
}

/* Enter or leave the pause; the handler hears of each change once. */
static void set_paused(struct llm *llm, bool paused, const char *reason)
{
	bool changed;

	pthread_mutex_lock(&llm->lock);
	changed = llm->paused != paused;
	llm->paused = paused;
	if (!paused) {
		llm->probing = false;
		pthread_cond_broadcast(&llm->wake);
	}
	pthread_mutex_unlock(&llm->lock);
	if (changed && llm->on_pause)
		llm->on_pause(llm->on_pause_arg, paused, reason);
}

/* Whether this worker is now the one that probes a paused API. */
static bool take_probe(struct llm *llm)
{
	bool mine;

	pthread_mutex_lock(&llm->lock);
	mine = !llm->probing;
	llm->probing = true;
	pthread_mutex_unlock(&llm->lock);
	return mine;
}

/*
 * A rate-limit 429: every worker waits until the server's reset (the
 * shared cool-down), and from then on calls are paced at the budget the
 * server announces (x-ratelimit-limit-*), a little under it, so that the
 * pool does not run into the same wall again. A budget set in the config
 * (rate.*) is the user's decision and is kept as it is.
 */
static void cool_down(struct llm *llm, int64_t until,
		      const struct http_response *resp)
{
	int64_t now = mono_ns();

	pthread_mutex_lock(&llm->lock);
	if (until > llm->cooldown_until)
		llm->cooldown_until = until;
	if (!llm->rpm && !llm->learned_rpm && resp->limit_requests > 0)
		llm->learned_rpm = ratelimit_new(
			LLM_LEARNED_SHARE * (double)resp->limit_requests,
			LLM_LEARNED_SHARE * (double)resp->limit_requests / 60,
			now);
	if (!llm->tpm && !llm->learned_tpm && resp->limit_tokens > 0)
		llm->learned_tpm = ratelimit_new(
			LLM_LEARNED_SHARE * (double)resp->limit_tokens,
			LLM_LEARNED_SHARE * (double)resp->limit_tokens / 60,
			now);
	pthread_mutex_unlock(&llm->lock);
}

/* The learned limiters, read under the lock (they are set once). */
static void learned(struct llm *llm, struct ratelimit **rpm,
		    struct ratelimit **tpm)
{
	pthread_mutex_lock(&llm->lock);
	*rpm = llm->learned_rpm;
	*tpm = llm->learned_tpm;
	pthread_mutex_unlock(&llm->lock);
}

/* Take a call's cost from one limiter; the longer wait wins. */
static int64_t reserve(struct ratelimit *rl, double cost, int64_t wait)
{
	int64_t w = rl ? ratelimit_reserve(rl, cost, mono_ns()) : 0;

	return w > wait ? w : wait;
}

/*
 * Wait until this worker may call: not stopped, not paused (unless it is
 * the prober), past the shared cool-down, within the rate budgets.
 * Adds the time spent paused to *paused_ns. Returns -1 when stopped.
 */
static int gate(struct llm *llm, bool prober, double tokens,
		int64_t *paused_ns)
{
	struct ratelimit *rpm, *tpm;
	int64_t wait = 0, t0;

	pthread_mutex_lock(&llm->lock);
	for (;;) {
		struct timespec until;

		if (llm->stopped) {
			pthread_mutex_unlock(&llm->lock);
			return -1;
		}
		if (llm->paused && !prober) {
			t0 = mono_ns();
			pthread_cond_wait(&llm->wake, &llm->lock);
			*paused_ns += mono_ns() - t0;
			continue;
		}
		if (llm->cooldown_until <= mono_ns())
			break;
		until = mono_at(llm->cooldown_until);
		pthread_cond_timedwait(&llm->wake, &llm->lock, &until);
	}
	pthread_mutex_unlock(&llm->lock);

	learned(llm, &rpm, &tpm);
	wait = reserve(llm->rpm, 1, wait);
	wait = reserve(rpm, 1, wait);
	wait = reserve(llm->tpm, tokens, wait);
	wait = reserve(tpm, tokens, wait);
	if (wait > 0)
		return llm_wait(llm, (unsigned)((wait + 999999) / 1000000));
	return 0;
}

/* The token cost is known after the call: correct the estimate. */
static void correct_tokens(struct llm *llm, const struct llm_reply *reply,
			   double estimate)
{
	struct ratelimit *rpm, *tpm;
	double used = (double)(reply->prompt_tokens + reply->completion_tokens);

	if (!used)
		return;
	learned(llm, &rpm, &tpm);
	if (llm->tpm)
		ratelimit_adjust(llm->tpm, used - estimate, mono_ns());
	if (tpm)
		ratelimit_adjust(tpm, used - estimate, mono_ns());
}

/*
 * One model call, with transport retries (retry.max_attempts, backoff,
 * the server's hints, the shared cool-down) inside the record's deadline.
 * A 401, 403 or insufficient_quota is the deployment's fault, not the
 * record's: the API is paused for every worker, one of them probes it
 * slowly, and the record waits (its deadline moved by the pause).
 * Returns LLM_OK with reply filled, or the final error (detail set).
 */
static enum llm_status call_model(struct llm_worker *w, const char *body,
				  size_t body_len, struct llm_reply *reply,
				  struct llm_result *res, int64_t *deadline)
{
	struct llm *llm = w->llm;
	enum llm_status last = LLM_ERR_HTTP;
	double estimate = (double)body_len / 4 + llm->completion_estimate;
	long hint_ms = -1; /* the server's Retry-After for the next wait */
	unsigned attempt = 0;
	bool prober = false;

	for (;;) {
		bool more = attempt + 1 < llm->max_attempts, quota;
		int64_t paused_ns = 0;
		struct http_response resp;
		struct timespec start;
		char err[512];
		enum http_result hr;

		if (attempt) {
			unsigned delay = backoff_delay_ms(attempt - 1,
							  llm->base_delay_ms,
							  llm->max_delay_ms,
							  &w->rng);

			if (hint_ms > (long)delay)
				delay = (unsigned)hint_ms;
			if (mono_ns() + (int64_t)delay * 1000000 > *deadline) {
				char prev[LLM_DETAIL_MAX];

				memcpy(prev, res->detail, sizeof(prev));
				detail_set(res, "gave up within retry."
					   "max_elapsed_ms after %u calls; "
					   "last: %s", res->attempts, prev);
				return LLM_ERR_TIMEOUT;
			}
			res->retries++;
			if (llm_wait(llm, delay) < 0)
				return LLM_ABANDONED;
		}
		if (gate(llm, prober, estimate, &paused_ns) < 0)
			return LLM_ABANDONED;
		*deadline += paused_ns;
		res->attempts++;
		clock_gettime(CLOCK_MONOTONIC, &start);
		hr = http_post_json(w->http, llm->url, body, body_len, &resp,
				    err, sizeof(err));
		hint_ms = -1;
		if (hr == HTTP_ERR_TOO_LARGE) {
			observe(llm, &start, 0, "too_large", false);
			detail_set(res, "%s", err);
			return LLM_ERR_HTTP;
		}
		if (hr != HTTP_DONE) {
			bool timeout = hr == HTTP_ERR_TIMEOUT;

			observe(llm, &start, 0, timeout ? "timeout" : "transport",
				more);
			last = timeout ? LLM_ERR_TIMEOUT : LLM_ERR_HTTP;
			detail_set(res, "%s", err);
			if (!more)
				return last;
			attempt++;
			continue;
		}
		if (resp.status == 200) {
			if (prober)
				set_paused(llm, false, NULL);
			if (!parse_reply(w->tok, llm->mode, resp.body,
					 resp.body_len, reply, err,
					 sizeof(err))) {
				observe(llm, &start, 200, "ok", false);
				correct_tokens(llm, reply, estimate);
				return LLM_OK;
			}
			observe(llm, &start, 200, "malformed", more);
			last = LLM_ERR_HTTP;
			detail_set(res, "malformed answer: %s", err);
			if (!more)
				return last;
			attempt++;
			continue;
		}
		api_error(w->tok, resp.body, resp.body_len, err, sizeof(err),
			  &quota);
		detail_set(res, "HTTP %ld%s%s", resp.status, *err ? ": " : "",
			   err);
		if (resp.status == 401 || resp.status == 403 || quota) {
			int64_t t0 = mono_ns();

			observe(llm, &start, resp.status, "paused", true);
			set_paused(llm, true, res->detail);
			prober = prober || take_probe(llm);
			/* The prober tries again slowly; the others wait in
			 * gate() until it sees the API work again. */
			if (prober && llm_wait(llm, llm->probe_ms) < 0)
				return LLM_ABANDONED;
			*deadline += mono_ns() - t0;
			continue;
		}
		if (prober)
			set_paused(llm, false, NULL);
		prober = false;
		if (!status_retryable(resp.status) || !more) {
			observe(llm, &start, resp.status, "http_error", false);
			return LLM_ERR_HTTP;
		}
		observe(llm, &start, resp.status, "http_error", true);
		hint_ms = resp.retry_after_ms;
		if (resp.status == 429)
			cool_down(llm,
				  mono_ns() + (hint_ms > 0 ? hint_ms
							   : (long)llm->base_delay_ms) *
						      1000000LL,
				  &resp);
		last = LLM_ERR_HTTP;
		attempt++;
	}
}

void llm_result_clear(struct llm_result *res)
{
	free(res->output);
	free(res->answer);
	memset(res, 0, sizeof(*res));
}

/* Keep the model's last answer for the dead letter (bounded). */
static void keep_answer(struct llm_result *res, const char *answer)
{
	free(res->answer);
	res->answer = dup_bounded(answer, LLM_ANSWER_MAX);
}

/*
 * Judge an answer: parse it, validate it. Returns the object when valid;
 * else NULL with every error, one per line, in errors.
 */
static struct json_object *judge(struct llm_worker *w, const char *answer,
				 char *errors, size_t errors_size)
{
	struct json_object *obj;
	char perr[256];
	size_t len = strlen(answer), bad;

	/* json-c passes any bytes through strings: an answer that is not
	 * UTF-8 would become a record that is not JSON (RFC 8259). */
	if (input_utf8_check(answer, len, &bad) < 0) {
		snprintf(errors, errors_size,
			 "/: the answer is not valid UTF-8 at byte %zu", bad);
		return NULL;
	}
	obj = parse_json(w->tok, answer, len, perr, sizeof(perr));
	if (!obj) {
		snprintf(errors, errors_size, "/: the answer is not JSON: %s",
			 perr);
		return NULL;
	}
	if (!schema_validate(w->llm->schema, obj, errors, errors_size))
		return obj;
	json_object_put(obj);
	return NULL;
}

void llm_extract(struct llm_worker *w, const char *text, size_t len,
		 struct llm_result *res)
{
	struct llm *llm = w->llm;
	struct json_object *messages = json_object_new_array();
	char errors[LLM_DETAIL_MAX];
	char reask[LLM_DETAIL_MAX + 128];
	int64_t deadline = mono_ns() + (int64_t)llm->max_elapsed_ms * 1000000;
	unsigned round;

	memset(res, 0, sizeof(*res));
	snprintf(res->model, sizeof(res->model), "%s", llm->model);
	add_message(messages, "system", llm->system, strlen(llm->system));
	add_message(messages, "user", text, len);

	for (round = 0; round <= llm->max_reasks; round++) {
		struct llm_reply reply;
		struct json_object *obj;
		const char *msgs;
		char *body;
		enum llm_status st;

		msgs = json_object_to_json_string_ext(messages, LLM_JSON_FLAGS);
		body = str_printf("%s,\"messages\":%s}", llm->head, msgs);
		if (!body) {
			res->status = LLM_ERR_HTTP;
			detail_set(res, "out of memory");
			break;
		}
		if (round)
			res->reasks++;
		st = call_model(w, body, strlen(body), &reply, res, &deadline);
		free(body);
		if (st != LLM_OK) {
			res->status = st;
			break;
		}
		res->prompt_tokens += reply.prompt_tokens;
		res->completion_tokens += reply.completion_tokens;
		if (*reply.model)
			snprintf(res->model, sizeof(res->model), "%s",
				 reply.model);
		if (reply.refusal) {
			res->status = LLM_ERR_REFUSAL;
			detail_set(res, "the model refused: %s", reply.refusal);
			llm_reply_clear(&reply);
			break;
		}
		if (!strcmp(reply.finish_reason, "content_filter")) {
			res->status = LLM_ERR_REFUSAL;
			detail_set(res, "the answer was withheld by the "
					"provider's content filter");
			keep_answer(res, reply.answer);
			llm_reply_clear(&reply);
			break;
		}
		keep_answer(res, reply.answer);
		obj = judge(w, reply.answer, errors, sizeof(errors));
		if (obj) {
			res->status = LLM_OK;
			res->output = strdup(
				json_object_to_json_string_ext(obj,
							       LLM_JSON_FLAGS));
			json_object_put(obj);
			llm_reply_clear(&reply);
			if (!res->output) {
				res->status = LLM_ERR_HTTP;
				detail_set(res, "out of memory");
			}
			break;
		}
		/* Invalid: hand the answer and its errors back, ask again. */
		res->status = LLM_ERR_VALIDATION;
		if (!strcmp(reply.finish_reason, "length"))
			detail_set(res, "%s\n(the answer was cut at the token "
				   "limit: finish_reason length)", errors);
		else
			detail_set(res, "%s", errors);
		add_message(messages, "assistant", reply.answer,
			    strlen(reply.answer));
		llm_reply_clear(&reply);
		snprintf(reask, sizeof(reask),
			 "Your answer does not match the JSON Schema. Errors:"
			 "\n%s\nAnswer again with a corrected object.",
			 res->detail);
		add_message(messages, "user", reask, strlen(reask));
	}
	json_object_put(messages);
}
