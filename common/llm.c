/*
 * llm: see llm.h.
 *
 * DESIGN
 * ------
 * A request is a JSON head made once in llm_new() for each request format
 * (model, temperature, and the schema as the format carries it), then
 * max_tokens and the messages, which are the only parts built per call.
 * So the schema is serialized once, and no json-c object is shared
 * between threads (json-c objects are not safe to share).
 *
 * Which format: the server's capabilities are found, not assumed. The
 * health check (the canary, below) is the probe: while the format is
 * unsettled (at start, and from the moment one worker starts probing a
 * paused API), each canary walks the formats in order (llm.mode = "auto":
 * json_schema, json_object_schema, tools, json_object, md_json; an
 * explicit mode: that one, then md_json only as a control) and settles on
 * the first the server takes. A format the server refuses, whatever the
 * status code (llama-cpp-python answers json_schema with a 500), is never
 * retried as transient: the next format is tried at once. When even the
 * plainest format fails the same way, it was not the format: the failure
 * is judged as any other (a broken server pauses). An explicit mode that
 * the server refuses while it takes md_json pauses the API with a reason
 * that says so (never a silent change of mode, never a dead letter per
 * record). Records wait in the gate while the format is unsettled; a
 * record that started in another format starts over in the new one.
 *
 * A record's extraction is two nested loops with separate budgets:
 * - re-asks (llm.max_reasks): an answer that does not parse or validate
 *   goes back to the model as an assistant message, exactly as the model
 *   said it, followed by a user message that says in plain words what is
 *   wrong with it; no wait between them.
 * - transport retries (retry.max_attempts per call): 429, 5xx, timeouts,
 *   broken connections and malformed bodies, with exponential backoff and
 *   full jitter, never sooner than the server's Retry-After. A wait ends
 *   early when llm_stop() is called: the record is then abandoned (no
 *   output, no commit), to be done again after a restart.
 * An answer cut at the token limit (finish_reason "length", or JSON that
 * stops mid-way where the limit may have cut it) is neither: the same
 * request goes again once with max_tokens doubled (up to
 * llm.max_tokens_limit); cut again, the record is dead-lettered with
 * "cut at N tokens" rather than re-asked with a limit that cannot fit.
 *
 * Whose fault is a failure (judge_call): the record's (its answer is too
 * large, its text too long for the context) costs a dead letter; the
 * deployment's beyond doubt (no connection, DNS, TLS, a refused key, a
 * spent quota) pauses every worker at once (llmgate.h); anything else (a
 * 400, 404, 5xx, timeout) is retried where that can help, and then a
 * canary, a tiny request with the same model, format and schema, decides:
 * if the API answers it, the record is to blame; if not, the API pauses
 * and the record waits to be tried again, its retry budget whole. While
 * paused, one worker probes with canaries.
 *
 * Shared state: the format in use and the time it became unsettled are
 * atomics (only canaries write them, and one canary runs at a time:
 * llmgate.h); everything else in struct llm is read-only.
 */
#define _GNU_SOURCE /* strcasestr */
#include "llm.h"

#include "backoff.h"
#include "clock.h"
#include "http.h"
#include "jsonparse.h"
#include "llmgate.h"
#include "schema.h"
#include "secret.h"
#include "siphash.h"
#include "str.h"

#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LLM_JSON_DEPTH 64 /**< nesting accepted in bodies and answers */
#define LLM_COMPLETION_ESTIMATE 256 /**< tokens, without llm.max_tokens */
#define LLM_REASON_MAX 768          /**< bytes of a pause's reason */
#define LLM_REFUSED_MAX 1024        /**< bytes of the refused formats */
#define LLM_QUOTE_MAX 40            /**< bytes of an answer quoted */
/* The canary's text: short, and no person in it. */
#define LLM_CANARY_TEXT "extractd health check: nothing to extract here."
#define LLM_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
/* The request formats, in the order llm.mode = "auto" tries them (the
 * enum's): the schema enforced by the server where it can be (strict
 * json_schema, then llama.cpp's and vLLM's grammar from json_object's
 * "schema", then a forced tool), then only asked for in the prompt. */
#define LLM_N_FORMATS CFG_MODE_AUTO

/* One request format, serialized once. */
struct llm_format {
	char *head;   /**< request JSON without max_tokens, messages, '}' */
	char *system; /**< the system message text */
	char *canary; /**< the health check's whole body */
};

struct llm {
	const struct schema *schema; /**< borrowed; outlives the llm */
	enum cfg_llm_mode configured; /**< llm.mode, maybe CFG_MODE_AUTO */
	struct llm_format fmt[LLM_N_FORMATS];
	atomic_int mode;            /**< the format in use, or being tried */
	atomic_llong unsettled;     /**< monotonic ns since the format must be
				      *  found again; 0 while settled */
	char *url;          /**< base_url + "/chat/completions" */
	char *where;        /**< url without userinfo, for messages */
	char *host;         /**< "host:port" of url, for messages */
	char *model;
	char *key_header;   /**< llm.api_key_header */
	char *ca_file;      /**< "" = the system's CAs */
	unsigned max_tokens, max_tokens_limit;
	unsigned max_reasks;
	unsigned max_attempts;
	unsigned base_delay_ms, max_delay_ms;
	unsigned timeout_ms, connect_timeout_ms;
	size_t max_response_bytes;

	unsigned max_elapsed_ms;
	double completion_estimate; /**< tokens an answer is assumed to cost */
	llm_observer_fn *observe;   /**< may be NULL */
	void *observe_arg;
	llm_mode_fn *on_mode;       /**< may be NULL */
	void *on_mode_arg;
	bool checking;              /**< llm_check_start()'s thread ran */
	atomic_bool checked;        /**< and is done with the llm (it is
				      *  detached: a forced exit must not find
				      *  it finished and unjoined) */
	struct llmgate *gate;       /**< the state every worker shares */
};

struct llm_worker {
	struct llm *llm;
	struct http_client *http;
	struct json_tokener *tok; /**< reset for each parse: a new one costs
				    *  two allocations, one of ~2 KiB */
	uint64_t rng;
};

static const char *get_string(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
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

/* Quote at most LLM_QUOTE_MAX bytes of s[0..len) as 'text' (or 'text...'
 * when cut, on a character boundary), control bytes as spaces: how an
 * error names a piece of an answer. */
static void quote(const char *s, size_t len, char *out, size_t size)
{
	size_t n = len, i;
	bool cut = false;

	if (n > LLM_QUOTE_MAX) {
		n = utf8_cut(s, LLM_QUOTE_MAX);
		cut = true;
	}
	if (size < n + 6)
		n = size > 6 ? size - 6 : 0;
	out[0] = '\'';
	for (i = 0; i < n; i++)
		out[i + 1] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
	snprintf(out + n + 1, size - n - 1, "%s'", cut ? "..." : "");
}

/* Parse exactly one JSON value filling [s, s+len) with tok (made with
 * depth LLM_JSON_DEPTH, reset here). On failure, err says why in plain
 * words and *ret_unclosed tells whether the text simply stopped before
 * the value was complete (as an answer cut at the token limit does). */
static struct json_object *parse_json(struct json_tokener *tok, const char *s,
				      size_t len, char *err, size_t err_size,
				      bool *ret_unclosed)
{
	struct jsonparse_error e;
	struct json_object *obj = jsonparse(tok, s, len, &e);
	char q[LLM_QUOTE_MAX + 8];

	if (ret_unclosed)
		*ret_unclosed = e.fail == JSONPARSE_UNCLOSED;
	switch (e.fail) {
	case JSONPARSE_OK:
		break;
	case JSONPARSE_UNCLOSED:
		snprintf(err, err_size, "unexpected end of JSON");
		break;
	case JSONPARSE_SYNTAX:
		quote(s + e.at, len - e.at, q, sizeof(q));
		snprintf(err, err_size, "%s at byte %zu, at %s", e.desc, e.at,
			 q);
		break;
	case JSONPARSE_TRAILING:
		quote(s + e.at, len - e.at, q, sizeof(q));
		snprintf(err, err_size,
			 "unexpected text after the JSON value at byte %zu: "
			 "%s", e.at, q);
		break;
	default:
		snprintf(err, err_size, "too long");
		break;
	}
	return obj;
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

/*
 * The request fields other than max_tokens and messages, per format:
 * the same bytes for every record, so that with the system message
 * after them they make one prefix the provider can cache.
 */
static struct json_object *request_head(const struct extractd_config *cfg,
					enum cfg_llm_mode mode,
					struct json_object *schema_doc,
					const char *cache_key)
{
	struct json_object *req = json_object_new_object();
	struct json_object *fmt, *inner, *tool, *fn, *choice, *cfn;

	json_object_object_add(req, "model",
			       json_object_new_string(cfg->llm.model));
	json_object_object_add(req, "temperature",
			       json_object_new_double(cfg->llm.temperature));
	if (*cache_key)
		json_object_object_add(req, "prompt_cache_key",
				       json_object_new_string(cache_key));
	switch (mode) {
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
	case CFG_MODE_JSON_OBJECT_SCHEMA:
		fmt = json_object_new_object();
		json_object_object_add(fmt, "type",
				       json_object_new_string("json_object"));
		if (mode == CFG_MODE_JSON_OBJECT_SCHEMA)
			json_object_object_add(fmt, "schema",
					       json_object_get(schema_doc));
		json_object_object_add(req, "response_format", fmt);
		break;
	case CFG_MODE_MD_JSON:
	case CFG_MODE_AUTO:
		break;
	}
	return req;
}

/* A JSON Schema's type, sketched for a prompt: "string", "integer",
 * "array of {"sku": string, "qty": integer}", "one of "a", "b"". */
static void sketch(FILE *f, struct json_object *s, int depth)
{
	struct json_object *v, *props;
	const char *type = get_string(s, "type");
	size_t i, n;
	bool first = true;

	if (depth > 4 || !json_object_is_type(s, json_type_object)) {
		fputs("any", f);
		return;
	}
	if (json_object_object_get_ex(s, "enum", &v) &&
	    json_object_is_type(v, json_type_array)) {
		fputs("one of ", f);
		n = json_object_array_length(v);
		for (i = 0; i < n; i++)
			fprintf(f, "%s%s", i ? ", " : "",
				json_object_to_json_string_ext(
					json_object_array_get_idx(v, i),
					LLM_JSON_FLAGS));
		return;
	}
	if ((json_object_object_get_ex(s, "anyOf", &v) ||
	     json_object_object_get_ex(s, "oneOf", &v)) &&
	    json_object_is_type(v, json_type_array)) {
		n = json_object_array_length(v);
		for (i = 0; i < n; i++) {
			fputs(i ? " or " : "", f);
			sketch(f, json_object_array_get_idx(v, i), depth + 1);
		}
		return;
	}
	if (json_object_object_get_ex(s, "properties", &props) &&
	    json_object_is_type(props, json_type_object)) {
		fputc('{', f);
		json_object_object_foreach(props, key, sub) {
			fprintf(f, "%s\"%s\": ", first ? "" : ", ", key);
			sketch(f, sub, depth + 1);
			first = false;
		}
		fputc('}', f);
		return;
	}
	if (type && !strcmp(type, "array") &&
	    json_object_object_get_ex(s, "items", &v)) {
		fputs("array of ", f);
		sketch(f, v, depth + 1);
		return;
	}
	fputs(type ? type : "any", f);
}

/* Whether the schema's "required" lists key. */
static bool required(struct json_object *schema, const char *key)
{
	struct json_object *req;
	size_t i;

	if (!json_object_object_get_ex(schema, "required", &req) ||
	    !json_object_is_type(req, json_type_array))
		return false;
	for (i = 0; i < json_object_array_length(req); i++) {
		const char *k = json_object_get_string(
			json_object_array_get_idx(req, i));

		if (k && !strcmp(k, key))
			return true;
	}
	return false;
}

/*
 * What to answer with, where the server does not carry the schema to the
 * model: for an object schema, its keys one a line (type, whether
 * optional, description); else the schema itself. A small model shown a
 * bare schema answers with the schema, or echoes its numbers (SmolLM2
 * made every age 25 out of "minimum": 0), and a key list is what it gets
 * right; a large one gets it right either way, and every other rule of
 * the schema still holds: validation and the re-asks see to it.
 */
static char *answer_shape(struct json_object *doc, const char *tail)
{
	struct json_object *props, *d;
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	if (!f)
		return NULL;
	if (json_object_object_get_ex(doc, "properties", &props) &&
	    json_object_is_type(props, json_type_object)) {
		fputs("Answer with one JSON object with these keys, filled in "
		      "with the values from the user's text:\n", f);
		json_object_object_foreach(props, key, sub) {
			const char *desc = NULL;

			if (json_object_object_get_ex(sub, "description", &d))
				desc = json_object_get_string(d);
			fprintf(f, "- \"%s\" (", key);
			sketch(f, sub, 1);
			fprintf(f, "%s)%s%s\n", required(doc, key) ? ""
				: ", optional", desc ? ": " : "",
				desc ? desc : "");
		}
	} else {
		fprintf(f, "Answer with one JSON value, filled in with the "
			"values from the user's text, that conforms to this JSON "
			"Schema:\n%s\n",
			json_object_to_json_string_ext(doc, LLM_JSON_FLAGS));
	}
	fprintf(f, "Write the object itself (the data), not the schema%s",
		tail);
	if (fclose(f)) {
		free(text);
		return NULL;
	}
	return text;
}

/*
 * The system message of a format: the instructions, and where the server
 * does not carry the schema to the model (json_object, md_json), what to
 * answer with. Where it does (json_schema, json_object_schema, tools),
 * nothing more: the grammar or the tool already shapes the answer.
 */
static char *system_message(const struct extractd_config *cfg,
			    enum cfg_llm_mode mode, struct json_object *doc)
{
	char *shape, *text;

	switch (mode) {
	case CFG_MODE_JSON_OBJECT:
		shape = answer_shape(doc, ", and nothing else.");
		break;
	case CFG_MODE_MD_JSON:
		shape = answer_shape(doc, ", in a ```json fenced code block.");
		break;
	default:
		return strdup(cfg->schema.instructions);
	}
	if (!shape)
		return NULL;
	text = str_printf("%s\n\n%s", cfg->schema.instructions, shape);
	free(shape);
	return text;
}

#define MAX_TOKENS_NAME ",\"max_tokens\":"
#define MAX_TOKENS_FIELD (sizeof(MAX_TOKENS_NAME) - 1 + STR_U64_SIZE)

/* max_tokens for a request, or "" when not sent: into buf. */
static const char *max_tokens_field(unsigned n, char buf[MAX_TOKENS_FIELD])
{
	if (!n)
		return "";
	memcpy(buf, MAX_TOKENS_NAME, sizeof(MAX_TOKENS_NAME) - 1);
	str_u64(buf + sizeof(MAX_TOKENS_NAME) - 1, n);
	return buf;
}

/*
 * The prompt_cache_key to send, into buf ("" = none): llm.prompt_cache_key,
 * or for "auto" one derived from what every request of this deployment
 * starts with (schema name, schema, instructions), the same in every
 * process: "extractd-" and 16 hex digits of its SipHash under a zero key.
 */
static void cache_key(const struct extractd_config *cfg,
		      struct json_object *doc, char *buf, size_t size)
{
	static const uint8_t zero[SIPHASH_KEY_BYTES];
	char *text;

	if (strcmp(cfg->llm.prompt_cache_key, "auto")) {
		snprintf(buf, size, "%s", cfg->llm.prompt_cache_key);
		return;
	}
	text = str_printf("%s\n%s\n%s", cfg->schema.name,
			  json_object_to_json_string_ext(doc, LLM_JSON_FLAGS),
			  cfg->schema.instructions);
	snprintf(buf, size, "extractd-%016llx",
		 text ? (unsigned long long)siphash24(zero, text,
						      strlen(text))
		      : 0ULL);
	free(text);
}

static int format_new(struct llm_format *f, const struct extractd_config *cfg,
		      enum cfg_llm_mode mode, struct json_object *doc,
		      const char *key)
{
	struct json_object *head = request_head(cfg, mode, doc, key), *msgs;
	const char *text = json_object_to_json_string_ext(head, LLM_JSON_FLAGS);
	size_t n = strlen(text);
	char mt[MAX_TOKENS_FIELD];

	f->system = system_message(cfg, mode, doc);
	f->head = malloc(n);
	if (f->head) {
		/* Keep "{...", drop the closing brace: more comes next. */
		memcpy(f->head, text, n - 1);
		f->head[n - 1] = '\0';
	}
	json_object_put(head);
	if (!f->system || !f->head)
		return -1;
	/* The canary: the same head, the system message, a text with
	 * nothing in it. Whatever the model answers, an answer shows that
	 * the API takes this model, format and schema. */
	msgs = json_object_new_array();
	add_message(msgs, "system", f->system, strlen(f->system));
	add_message(msgs, "user", LLM_CANARY_TEXT, strlen(LLM_CANARY_TEXT));
	f->canary = str_printf(
		"%s%s,\"messages\":%s}", f->head,
		max_tokens_field(cfg->llm.max_tokens, mt),
		json_object_to_json_string_ext(msgs, LLM_JSON_FLAGS));
	json_object_put(msgs);
	return f->canary ? 0 : -1;
}

struct llm *llm_new(const struct extractd_config *cfg,
		    const struct schema *schema, char *err, size_t err_size)
{
	struct llm *llm = calloc(1, sizeof(*llm));
	struct json_object *doc = schema_document(schema);
	char key[80];
	int i;

	if (!llm || !(llm->gate = llmgate_new(cfg)))
		goto oom;
	llm->schema = schema;
	llm->configured = cfg->llm.mode;
	atomic_init(&llm->mode, cfg->llm.mode == CFG_MODE_AUTO
					? (int)CFG_MODE_JSON_SCHEMA
					: (int)cfg->llm.mode);
	/* Nothing is known of the server yet: the first call settles it. */
	atomic_init(&llm->unsettled, mono_ns());
	llm->max_tokens = cfg->llm.max_tokens;
	llm->max_tokens_limit = cfg->llm.max_tokens_limit;
	llm->max_reasks = cfg->llm.max_reasks;
	llm->max_attempts = cfg->retry.max_attempts;
	llm->base_delay_ms = cfg->retry.base_delay_ms;
	llm->max_delay_ms = cfg->retry.max_delay_ms;
	llm->timeout_ms = cfg->llm.timeout_ms;
	llm->connect_timeout_ms = cfg->llm.connect_timeout_ms;
	llm->max_response_bytes = cfg->llm.max_response_bytes;
	llm->max_elapsed_ms = cfg->retry.max_elapsed_ms;
	llm->completion_estimate = cfg->llm.max_tokens
					   ? cfg->llm.max_tokens
					   : LLM_COMPLETION_ESTIMATE;
	llm->model = strdup(cfg->llm.model);
	llm->key_header = strdup(cfg->llm.api_key_header ?
				 cfg->llm.api_key_header : "");
	llm->ca_file = strdup(cfg->llm.ca_file);
	llm->url = str_printf("%s/chat/completions", cfg->llm.base_url);
	if (!llm->model || !llm->key_header || !llm->ca_file || !llm->url ||
	    !(llm->where = http_url_public(llm->url, false)) ||
	    !(llm->host = http_url_public(llm->url, true)))
		goto oom;
	cache_key(cfg, doc, key, sizeof(key));
	for (i = 0; i < LLM_N_FORMATS; i++)
		if (format_new(&llm->fmt[i], cfg, (enum cfg_llm_mode)i, doc,
			       key) < 0)
			goto oom;
	return llm;
oom:
	snprintf(err, err_size, "out of memory");
	llm_free(llm);
	return NULL;
}

void llm_set_observer(struct llm *llm, llm_observer_fn *fn, void *arg)
{
	llm->observe = fn;
	llm->observe_arg = arg;
}

void llm_set_mode_handler(struct llm *llm, llm_mode_fn *fn, void *arg)
{
	llm->on_mode = fn;
	llm->on_mode_arg = arg;
}

enum cfg_llm_mode llm_mode(struct llm *llm)
{
	return (enum cfg_llm_mode)atomic_load(&llm->mode);
}

void llm_set_pause_handler(struct llm *llm, llm_pause_fn *fn, void *arg)
{
	llmgate_set_pause_handler(llm->gate, fn, arg);
}

enum llm_fault llm_paused(struct llm *llm, char *reason, size_t size,
			  int64_t *ret_since)
{
	return llmgate_paused(llm->gate, reason, size, ret_since);
}

void llm_set_pace(struct llm *llm, int64_t pace_ns, int64_t until_ns)
{
	llmgate_set_pace(llm->gate, pace_ns, until_ns);
}

void llm_stop(struct llm *llm)
{
	llmgate_stop(llm->gate);
}

void llm_cut(struct llm *llm)
{
	llmgate_cut(llm->gate);
}

void llm_free(struct llm *llm)
{
	int i;

	if (!llm)
		return;
	if (llm->checking) {
		llmgate_cut(llm->gate);
		while (!atomic_load(&llm->checked))
			nanosleep(&(struct timespec){ .tv_nsec = 10000000 },
				  NULL);
	}
	llmgate_free(llm->gate);
	for (i = 0; i < LLM_N_FORMATS; i++) {
		free(llm->fmt[i].head);
		free(llm->fmt[i].system);
		free(llm->fmt[i].canary);
	}
	free(llm->url);
	free(llm->where);
	free(llm->host);
	free(llm->model);
	free(llm->key_header);
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
		.api_key_header = llm->key_header,
		.timeout_ms = llm->timeout_ms,
		.connect_timeout_ms = llm->connect_timeout_ms,
		.max_response_bytes = llm->max_response_bytes,
		.ca_file = llm->ca_file,
		.share = share,
		.abort = llmgate_cut_flag(llm->gate),
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

int llm_worker_trace(struct llm_worker *w, const char *traceparent,
		     const char *tracestate)
{
	char *lines[2] = { NULL, NULL };
	size_t n = 0;
	int r = -1;

	if (traceparent) {
		lines[n] = str_printf("traceparent: %s", traceparent);
		if (!lines[n++])
			goto out;
	}
	if (traceparent && tracestate) {
		lines[n] = str_printf("tracestate: %s", tracestate);
		if (!lines[n++])
			goto out;
	}
	r = http_client_extra_headers(w->http, (const char *const *)lines, n);
out:
	if (r < 0)
		http_client_extra_headers(w->http, NULL, 0);
	free(lines[0]);
	free(lines[1]);
	return r;
}

void llm_worker_free(struct llm_worker *w)
{
	if (!w)
		return;
	http_client_free(w->http);
	json_tokener_free(w->tok);
	free(w);
}

/* Copy at most max bytes of s, cut on a UTF-8 character boundary. */
static char *dup_bounded(const char *s, size_t max)
{
	size_t len = strlen(s);
	char *out;

	if (len > max)
		len = utf8_cut(s, max);
	out = malloc(len + 1);
	if (!out)
		return NULL;
	memcpy(out, s, len);
	out[len] = '\0';
	return out;
}

/* Set the detail, cut (on a character boundary) when too long. */
static void detail_set(struct llm_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void detail_set(struct llm_result *res, const char *fmt, ...)
{
	struct textbuf t;
	va_list ap;

	textbuf_init(&t, res->detail, sizeof(res->detail), TEXTBUF_CUT);
	va_start(ap, fmt);
	textbuf_vaddf(&t, fmt, ap);
	va_end(ap);
}

/*
 * The JSON in an md_json answer: the body of its first fenced block
 * ("```json\n...```" or "```\n...```"; to the end when it never closes),
 * else its first top-level JSON object (from the first '{' to the brace
 * that closes it, or to the end when none does), else the whole text (so
 * that the judgement quotes what the model said). A malloc'ed copy.
 */
static char *md_extract(const char *text)
{
	const char *start = strstr(text, "```"), *end, *p;
	int depth = 0;
	bool in_string = false;

	if (start) {
		start += 3;
		start += strcspn(start, "\n"); /* the info string ("json") */
		if (*start == '\n')
			start++;
		end = strstr(start, "```");
		if (!end)
			end = start + strlen(start);
		return strndup(start, (size_t)(end - start));
	}
	start = strchr(text, '{');
	if (!start)
		return strdup(text);
	for (p = start; *p; p++) {
		if (in_string) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				in_string = false;
		} else if (*p == '"') {
			in_string = true;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if ((*p == '}' || *p == ']') && --depth == 0) {
			return strndup(start, (size_t)(p + 1 - start));
		}
	}
	return strdup(start);
}

void llm_reply_clear(struct llm_reply *r)
{
	free(r->answer);
	free(r->said);
	free(r->refusal);
	memset(r, 0, sizeof(*r));
}

/* A count in usage: usage.name, or usage.name.detail (the *_details
 * objects); 0 when absent, null or negative. */
static uint64_t usage_count(struct json_object *usage, const char *name,
			    const char *detail)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(usage, name, &v))
		return 0;
	if (detail && (!json_object_is_type(v, json_type_object) ||
		       !json_object_object_get_ex(v, detail, &v)))
		return 0;
	n = json_object_get_int64(v);
	return n > 0 ? (uint64_t)n : 0;
}

static int parse_reply(struct json_tokener *tok, enum cfg_llm_mode mode,
		       const char *body, size_t len, struct llm_reply *out,
		       char *err, size_t err_size)
{
	struct json_object *root, *choices, *choice, *msg, *usage;
	struct json_object *calls, *call, *fn;
	const char *s;
	char perr[128];
	int r = -1;

	memset(out, 0, sizeof(*out));
	if (err_size)
		err[0] = '\0';
	root = parse_json(tok, body, len, perr, sizeof(perr), NULL);
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
		str_copy(out->finish_reason, sizeof(out->finish_reason), s);
	if ((s = get_string(root, "model")))
		str_copy(out->model, sizeof(out->model), s);
	if (json_object_object_get_ex(root, "usage", &usage)) {
		out->prompt_tokens = usage_count(usage, "prompt_tokens", NULL);
		out->completion_tokens =
			usage_count(usage, "completion_tokens", NULL);
		out->cached_tokens = usage_count(usage, "prompt_tokens_details",
						 "cached_tokens");
		out->reasoning_tokens = usage_count(
			usage, "completion_tokens_details", "reasoning_tokens");
	}

	if ((s = get_string(msg, "refusal"))) {
		out->refusal = strdup(s);
		r = out->refusal ? 0 : -1;
		goto out;
	}
	if (!strcmp(out->finish_reason, "content_filter") &&
	    !get_string(msg, "content") &&
	    !json_object_object_get_ex(msg, "tool_calls", &calls)) {
		/* The provider's filter withheld the answer (OpenAI, Azure:
		 * content and refusal null): an answer, about the record. */
		r = 0;
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
		out->answer = mode == CFG_MODE_MD_JSON ? md_extract(s)
						       : strdup(s);
	}
	out->said = strdup(s);
	r = out->answer && out->said ? 0 : -1;
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

/* What an error body says: its message, and its type and code (e.g.
 * OpenAI's insufficient_quota, context_length_exceeded), each "" when
 * absent. The message is bounded and redacted: it reaches dead letters,
 * logs and /readyz. */
struct api_error {
	char message[320];
	char type[64];
	char code[64];
};

/* Copy up to 300 bytes of s[0..len), redacted, into out, tidied: runs
 * of blanks and control bytes become one space, or one line break where
 * they held one (a header line's value, which redaction hides, ends at
 * its line's end: lines are kept), and markup (<...>) is dropped when
 * html. */
static void tidy(const char *raw, size_t rawlen, bool html, char *out,
		 size_t size)
{
	char s[2048];
	size_t len = secret_redact(raw, rawlen, s, sizeof(s));
	size_t i, n = 0, max = size - 1 < 300 ? size - 1 : 300;
	char gap = 0; /* what the run of blanks so far becomes */
	bool tag = false;

	if (len >= sizeof(s))
		len = strlen(s);
	for (i = 0; i < len && n < max; i++) {
		unsigned char c = (unsigned char)s[i];

		if (html && c == '<') {
			tag = true;
			continue;
		}
		if (tag) {
			if (c == '>') {
				tag = false;
				if (n && !gap)
					gap = ' ';
			}
			continue;
		}
		if (c <= 0x20 || c == 0x7f) {
			if (n && (c == '\n' || !gap))
				gap = c == '\n' ? '\n' : ' ';
			continue;
		}
		if (gap && n + 1 < max)
			out[n++] = gap;
		gap = 0;
		out[n++] = (char)c;
	}
	if (i < len)
		n = utf8_cut(out, n);
	out[n] = '\0';
}

/* The text of FastAPI's "detail": a string, or a list of errors each
 * with "msg" (a 422), or anything else as compact JSON. */
static void detail_text(struct json_object *d, char *out, size_t size)
{
	const char *text;
	struct textbuf t;
	size_t i;

	textbuf_init(&t, out, size, TEXTBUF_CUT);
	if (json_object_is_type(d, json_type_string)) {
		text = json_object_get_string(d);
		tidy(text, strlen(text), false, out, size);
		return;
	}
	if (json_object_is_type(d, json_type_array)) {
		for (i = 0; i < json_object_array_length(d) &&
			    !textbuf_full(&t); i++) {
			struct json_object *e = json_object_array_get_idx(d, i);
			const char *msg = get_string(e, "msg");

			if (!msg)
				break;
			textbuf_addf(&t, "%s%s", t.len ? "; " : "", msg);
		}
		if (i && i == json_object_array_length(d))
			return;
	}
	text = json_object_to_json_string_ext(d, LLM_JSON_FLAGS);
	tidy(text, strlen(text), false, out, size);
}

static void api_error(struct json_tokener *tok, const char *body, size_t len,
		      struct api_error *e)
{
	struct json_object *root, *obj;
	const char *text = NULL, *type = NULL, *code = NULL;
	char perr[128];
	size_t i;

	memset(e, 0, sizeof(*e));
	root = parse_json(tok, body, len, perr, sizeof(perr), NULL);
	if (root && json_object_object_get_ex(root, "error", &obj)) {
		/* OpenAI's shape, and {"error": "text"} (Ollama, others). */
		if (json_object_is_type(obj, json_type_string)) {
			text = json_object_get_string(obj);
		} else {
			text = get_string(obj, "message");
			type = get_string(obj, "type");
			code = get_string(obj, "code");
		}
		if (text)
			tidy(text, strlen(text), false, e->message,
				 sizeof(e->message));
	} else if (root && json_object_object_get_ex(root, "detail", &obj)) {
		/* FastAPI's: {"detail": "Not Found"}, or a 422's list. */
		detail_text(obj, e->message, sizeof(e->message));
	} else if (root && (text = get_string(root, "message"))) {
		tidy(text, strlen(text), false, e->message,
			 sizeof(e->message));
	} else if (!root || !json_object_is_type(root, json_type_object)) {
		/* Not JSON: plain text, or an HTML page (a proxy's, a web
		 * server's 404): its words, without the markup. */
		for (i = 0; i < len && strchr(" \t\r\n", body[i]); i++)
			;
		tidy(body + i, len - i, i < len && body[i] == '<',
			 e->message, sizeof(e->message));
	}
	snprintf(e->type, sizeof(e->type), "%s", type ? type : "");
	snprintf(e->code, sizeof(e->code), "%s", code ? code : "");
	json_object_put(root);
	secret_redact_buf(e->message, sizeof(e->message));
	secret_redact_buf(e->type, sizeof(e->type));
	secret_redact_buf(e->code, sizeof(e->code));
}

void llm_error_text(const char *body, size_t len, char *out, size_t size)
{
	struct json_tokener *tok = json_tokener_new_ex(LLM_JSON_DEPTH);
	struct api_error e;

	if (!size)
		return;
	out[0] = '\0';
	if (!tok)
		return;
	api_error(tok, body, len, &e);
	json_tokener_free(tok);
	snprintf(out, size, "%s", e.message);
}

/* Whether an error says the request is too long for the model's context:
 * the record's text, not the deployment (OpenAI's code, and the words
 * vLLM, llama.cpp and others use). */
static bool too_long_for_context(const struct api_error *e)
{
	static const char *const words[] = {
		"context length", "context_length", "maximum context",
		"context size", "context window", "too many tokens", NULL,
	};
	size_t i;

	if (strstr(e->code, "context_length"))
		return true;
	for (i = 0; words[i]; i++)
		if (strcasestr(e->message, words[i]))
			return true;
	return false;
}

/* Who is to blame for what one call did (judge_call). */
enum blame {
	BLAME_NONE,       /**< the API answered: reply is filled */
	BLAME_RECORD,     /**< the record's own: dead letter */
	BLAME_DEPLOYMENT, /**< the deployment's beyond doubt: pause */
	BLAME_RATE,       /**< a rate limit: cool down, retry */
	BLAME_DOUBT,      /**< either: retry if it helps, then a canary */
	BLAME_ABORTED,    /**< cut at the shutdown deadline */
};

struct outcome {
	enum blame blame;
	bool retryable;        /**< BLAME_DOUBT: another try may work */
	enum llm_fault fault;  /**< the pause it means (DEPLOYMENT), or would
				 *  mean if a canary failed the same way */
	enum llm_status status;/**< the dead-letter kind, if it comes to it */
	long code;             /**< HTTP status, 0 when none came */
	const char *metric;    /**< the observer's outcome */
	long hint_ms;          /**< the server's Retry-After, -1: none */
	long limit_requests, limit_tokens; /**< a 429's budgets */
	long tokens;           /**< an answer's usage, -1: none */
	uint64_t prompt_tokens, cached_tokens, completion_tokens; /**< by
							 *  kind, 0: none */
	long remaining_requests, reset_requests_ms; /**< its rate headers, */
	long remaining_tokens, reset_tokens_ms;     /**< -1 when absent */
	char detail[LLM_DETAIL_MAX]; /**< for the record's dead letter */
	char reason[LLM_REASON_MAX]; /**< for the operator, if it pauses */
};

static void outcome_set(struct outcome *o, enum blame blame,
			enum llm_fault fault, enum llm_status status,
			const char *metric)
{
	o->blame = blame;
	o->fault = fault;
	o->status = status;
	o->metric = metric;
}

static void observe(struct llm *llm, int64_t start, const struct outcome *o,
		    bool will_retry)
{
	struct llm_call call = {
		.status = o->code,
		.outcome = o->metric,
		.seconds = (double)(mono_ns() - start) / 1e9,
		.will_retry = will_retry,
		.detail = o->blame == BLAME_NONE ? NULL : o->detail,
		.tokens = o->tokens,
		.prompt_tokens = o->prompt_tokens,
		.cached_tokens = o->cached_tokens,
		.completion_tokens = o->completion_tokens,
		.remaining_requests = o->remaining_requests,
		.reset_requests_ms = o->reset_requests_ms,
		.remaining_tokens = o->remaining_tokens,
		.reset_tokens_ms = o->reset_tokens_ms,
	};

	if (llm->observe)
		llm->observe(llm->observe_arg, &call);
}

/* A failure without an HTTP answer: DNS, connection, TLS, timeout... */
static void judge_transport(struct llm *llm, enum http_result hr,
			    const char *err, struct outcome *o)
{
	snprintf(o->detail, sizeof(o->detail), "%s", err);
	switch (hr) {
	case HTTP_ERR_TOO_LARGE:
		outcome_set(o, BLAME_RECORD, LLM_FAULT_NONE, LLM_ERR_HTTP,
			    "too_large");
		return;
	case HTTP_ERR_ABORTED:
		outcome_set(o, BLAME_ABORTED, LLM_FAULT_NONE, LLM_ABANDONED,
			    "transport");
		return;
	case HTTP_ERR_DNS:
		outcome_set(o, BLAME_DEPLOYMENT, LLM_FAULT_DNS, LLM_ERR_HTTP,
			    "transport");
		snprintf(o->reason, sizeof(o->reason),
			 "cannot resolve the host of %s: %s: check "
			 "llm.base_url and the host's DNS", llm->host, err);
		return;
	case HTTP_ERR_CONNECT:
		outcome_set(o, BLAME_DEPLOYMENT, LLM_FAULT_UNREACHABLE,
			    LLM_ERR_HTTP, "transport");
		snprintf(o->reason, sizeof(o->reason),
			 "cannot connect to %s: %s: is the LLM server up, and "
			 "is llm.base_url right?", llm->host, err);
		return;
	case HTTP_ERR_TLS_VERIFY:
		outcome_set(o, BLAME_DEPLOYMENT, LLM_FAULT_TLS, LLM_ERR_HTTP,
			    "transport");
		snprintf(o->reason, sizeof(o->reason),
			 "TLS: the certificate of %s does not verify: %s: set "
			 "llm.ca_file to the CA that signed it", llm->host,
			 err);
		return;
	case HTTP_ERR_TLS:
		outcome_set(o, BLAME_DEPLOYMENT, LLM_FAULT_TLS, LLM_ERR_HTTP,
			    "transport");
		snprintf(o->reason, sizeof(o->reason),
			 "TLS handshake with %s failed: %s: does it speak "
			 "HTTPS, and does llm.base_url say https?", llm->host,
			 err);
		return;
	case HTTP_ERR_TIMEOUT:
		outcome_set(o, BLAME_DOUBT, LLM_FAULT_FAILING, LLM_ERR_TIMEOUT,
			    "timeout");
		o->retryable = true;
		snprintf(o->reason, sizeof(o->reason),
			 "%s does not answer within llm.timeout_ms (%u ms): %s",
			 llm->host, llm->timeout_ms, err);
		return;
	case HTTP_ERR_TRANSPORT:
	case HTTP_DONE:
		break;
	}
	outcome_set(o, BLAME_DOUBT, LLM_FAULT_FAILING, LLM_ERR_HTTP,
		    "transport");
	o->retryable = true;
	snprintf(o->reason, sizeof(o->reason),
		 "the connection to %s breaks during calls: %s", llm->host,
		 err);
}

/* An HTTP answer other than a usable 200. */
static void judge_status(struct llm_worker *w, const struct http_response *r,
			 struct outcome *o)
{
	struct llm *llm = w->llm;
	struct api_error e;
	long s = r->status;

	api_error(w->tok, r->body, r->body_len, &e);
	snprintf(o->detail, sizeof(o->detail), "HTTP %ld%s%s", s,
		 *e.message ? ": " : "", e.message);
	o->hint_ms = r->retry_after_ms;
	if (s == 401 || s == 403) {
		outcome_set(o, BLAME_DEPLOYMENT, LLM_FAULT_AUTH, LLM_ERR_HTTP,
			    "paused");
		snprintf(o->reason, sizeof(o->reason),
			 "the API refuses the key (%.300s): check "
			 "llm.api_key_env or llm.api_key_file, and "
			 "llm.api_key_header", o->detail);
	} else if (!strcmp(e.type, "insufficient_quota") ||
		   !strcmp(e.code, "insufficient_quota")) {
		outcome_set(o, BLAME_DEPLOYMENT, LLM_FAULT_QUOTA, LLM_ERR_HTTP,
			    "paused");
		snprintf(o->reason, sizeof(o->reason),
			 "the account's quota is spent (%.300s)", o->detail);
	} else if (s == 429) {
		outcome_set(o, BLAME_RATE, LLM_FAULT_FAILING, LLM_ERR_HTTP,
			    "http_error");
		o->limit_requests = r->limit_requests;
		o->limit_tokens = r->limit_tokens;
		snprintf(o->reason, sizeof(o->reason),
			 "the API keeps answering 429, a health check too "
			 "(%.300s)", o->detail);
	} else if (s == 413 || (s >= 400 && s < 500 &&
				too_long_for_context(&e))) {
		outcome_set(o, BLAME_RECORD, LLM_FAULT_NONE, LLM_ERR_HTTP,
			    "http_error");
	} else if (s == 404) {
		outcome_set(o, BLAME_DOUBT, LLM_FAULT_NOT_FOUND, LLM_ERR_HTTP,
			    "http_error");
		snprintf(o->reason, sizeof(o->reason),
			 "%.300s answers every request, a health check too, with "
			 "%.300s: check llm.base_url (does it end in /v1?) and "
			 "llm.model", llm->where, o->detail);
	} else if (s == 408 || s == 500 || s == 502 || s == 503 ||
		   s == 504) {
		outcome_set(o, BLAME_DOUBT, LLM_FAULT_FAILING, LLM_ERR_HTTP,
			    "http_error");
		o->retryable = true;
		snprintf(o->reason, sizeof(o->reason),
			 "the API fails every request, a health check too (%.300s)",
			 o->detail);
	} else if (s >= 500) {
		outcome_set(o, BLAME_DOUBT, LLM_FAULT_FAILING, LLM_ERR_HTTP,
			    "http_error");
		snprintf(o->reason, sizeof(o->reason),
			 "the API fails every request, a health check too (%.300s)",
			 o->detail);
	} else {
		outcome_set(o, BLAME_DOUBT, LLM_FAULT_REFUSED, LLM_ERR_HTTP,
			    "http_error");
		snprintf(o->reason, sizeof(o->reason),
			 "the API refuses every request, a health check too "
			 "(%.300s): check llm.mode (the server may not support its "
			 "request format), llm.model and llm.base_url",
			 o->detail);
	}
}

/*
 * Judge one call in a request format: hr and resp are what
 * http_post_json() gave, err its transport error. A 200 that parses
 * fills reply (BLAME_NONE).
 */
static void judge_call(struct llm_worker *w, enum cfg_llm_mode mode,
		       enum http_result hr, const struct http_response *resp,
		       const char *err, struct llm_reply *reply,
		       struct outcome *o)
{
	struct llm *llm = w->llm;
	char perr[512];

	memset(o, 0, sizeof(*o));
	o->hint_ms = -1;
	o->tokens = -1;
	o->remaining_requests = o->reset_requests_ms = -1;
	o->remaining_tokens = o->reset_tokens_ms = -1;
	if (hr != HTTP_DONE) {
		judge_transport(llm, hr, err, o);
		return;
	}
	o->code = resp->status;
	o->remaining_requests = resp->remaining_requests;
	o->reset_requests_ms = resp->reset_requests_ms;
	o->remaining_tokens = resp->remaining_tokens;
	o->reset_tokens_ms = resp->reset_tokens_ms;
	if (resp->status != 200) {
		judge_status(w, resp, o);
		return;
	}
	if (!parse_reply(w->tok, mode, resp->body, resp->body_len, reply,
			 perr, sizeof(perr))) {
		outcome_set(o, BLAME_NONE, LLM_FAULT_NONE, LLM_OK, "ok");
		o->tokens = (long)(reply->prompt_tokens +
				   reply->completion_tokens);
		o->prompt_tokens = reply->prompt_tokens;
		o->cached_tokens = reply->cached_tokens;
		o->completion_tokens = reply->completion_tokens;
		return;
	}
	outcome_set(o, BLAME_DOUBT, LLM_FAULT_FAILING, LLM_ERR_HTTP,
		    "malformed");
	o->retryable = true;
	snprintf(o->detail, sizeof(o->detail), "malformed answer: %s", perr);
	snprintf(o->reason, sizeof(o->reason),
		 "%s answers with bodies that are not chat completions, to a "
		 "health check too (%s): check llm.base_url", llm->where,
		 perr);
}

/* A 429: the shared cool-down, from the server's hint. */
static void cool_down(struct llm *llm, const struct outcome *o)
{
	long ms = o->hint_ms > 0 ? o->hint_ms : (long)llm->base_delay_ms;

	llmgate_cool_down(llm->gate, mono_ns() + ms * 1000000LL,
			  o->limit_requests, o->limit_tokens);
}

/*
 * Whether a failed call may be the server refusing the request format
 * rather than failing: an HTTP error that is not about the key, the
 * quota, the rate, a timeout or an overload (servers answer a request
 * field they do not know with 400 or 422, llama-cpp-python answers
 * json_schema with a 500), or an answer without the part the format asks
 * for. Which of the two it is, only a plainer format can tell.
 */
static bool format_suspect(const struct outcome *o)
{
	if (o->blame != BLAME_DOUBT)
		return false;
	if (!strcmp(o->metric, "malformed"))
		return true;
	switch (o->code) {
	case 400:
	case 404:
	case 405:
	case 415:
	case 422:
	case 500:
	case 501:
		return true;
	default:
		return false;
	}
}

/* Send the canary of a format and judge it into o; 429s are waited out.
 * -1 when stopped. */
static int send_canary(struct llm_worker *w, enum cfg_llm_mode mode,
		       struct outcome *o)
{
	struct llm *llm = w->llm;
	const char *body = llm->fmt[mode].canary;
	size_t len = strlen(body);
	double estimate = (double)len / 4 + llm->completion_estimate;

	for (;;) {
		struct http_response resp;
		struct llm_reply reply;
		int64_t start, paused_ns = 0;
		enum http_result hr;
		char err[512];

		if (llmgate_enter(llm->gate, estimate, true, &paused_ns) < 0)
			return -1;
		start = mono_ns();
		hr = http_post_json(w->http, llm->url, body, len, &resp, err,
				    sizeof(err));
		judge_call(w, mode, hr, &resp, err, &reply, o);
		observe(llm, start, o, false);
		if (o->blame == BLAME_NONE)
			llm_reply_clear(&reply);
		if (o->blame == BLAME_ABORTED)
			return -1;
		if (o->blame != BLAME_RATE)
			return 0;
		cool_down(llm, o);
	}
}

/* The server takes this format: use it from now on, and tell. */
static void settle(struct llm *llm, enum cfg_llm_mode mode,
		   const char *refused)
{
	atomic_store(&llm->mode, (int)mode);
	if (atomic_exchange(&llm->unsettled, 0) && llm->on_mode)
		llm->on_mode(llm->on_mode_arg, mode, *refused ? refused : NULL);
}

/*
 * The health check: send the canary and judge it. LLM_FAULT_NONE when
 * the API answered it (any 200, or an error that would be a record's
 * own), else the fault and the reason for the pause. While the format is
 * unsettled, it walks the formats (DESIGN) and settles on the first the
 * server takes. -1 when stopped.
 */
static int canary(struct llm_worker *w, enum llm_fault *ret_fault,
		  char *reason, size_t size)
{
	struct llm *llm = w->llm;
	bool unsettled = atomic_load(&llm->unsettled) != 0;
	enum cfg_llm_mode order[LLM_N_FORMATS];
	char refused[LLM_REFUSED_MAX] = "";
	struct outcome o, first;
	size_t n = 0, i;
	bool have_first = false;
	struct textbuf rt;

	memset(&first, 0, sizeof(first));
	textbuf_init(&rt, refused, sizeof(refused), TEXTBUF_CUT);
	if (!unsettled) {
		order[n++] = llm_mode(llm);
	} else if (llm->configured == CFG_MODE_AUTO) {
		for (n = 0; n < LLM_N_FORMATS; n++)
			order[n] = (enum cfg_llm_mode)n;
	} else {
		order[n++] = llm->configured;
		if (llm->configured != CFG_MODE_MD_JSON)
			order[n++] = CFG_MODE_MD_JSON; /* the control */
	}
	for (i = 0; i < n; i++) {
		if (send_canary(w, order[i], &o) < 0)
			return -1;
		if (o.blame == BLAME_NONE || o.blame == BLAME_RECORD) {
			*ret_fault = LLM_FAULT_NONE;
			if (!unsettled)
				return 0;
			if (llm->configured == CFG_MODE_AUTO ||
			    order[i] == llm->configured) {
				settle(llm, order[i], refused);
				return 0;
			}
			/* An explicit mode is kept or refused, never
			 * changed behind the user's back. */
			*ret_fault = LLM_FAULT_REFUSED;
			snprintf(reason, size,
				 "the server refuses llm.mode \"%s\" but answers "
				 "md_json: set llm.mode = \"auto\" (or a mode the "
				 "server takes); it answered %.200s",
				 cfg_mode_name(llm->configured), first.detail);
			return 0;
		}
		if (!unsettled || !format_suspect(&o))
			break;
		if (!have_first) {
			first = o;
			have_first = true;
		}
		textbuf_addf(&rt, "%s%s: %.200s", rt.len ? "; " : "",
			     cfg_mode_name(order[i]), o.detail);
	}
	/* Even the plainest format fails: not the format, then. */
	if (i == n && have_first)
		o = first;
	*ret_fault = o.fault;
	snprintf(reason, size, "%s", o.reason);
	return 0;
}

/* Run a canary for the gate and report it; -1 when stopped. */
static int run_canary(struct llm_worker *w)
{
	char reason[LLM_REASON_MAX];
	enum llm_fault fault;
	int64_t started = mono_ns();

	if (canary(w, &fault, reason, sizeof(reason)) < 0)
		return -1;
	llmgate_canary_done(w->llm->gate, started, fault, reason);
	return 0;
}

/*
 * Whose fault is the failure of the call that started at since: the
 * record's (LLM_VERDICT_RECORD), or the deployment's (LLM_VERDICT_PAUSED:
 * the API is paused now). A canary decides, unless one that started
 * after since already did.
 */
static enum llm_verdict blame(struct llm_worker *w, int64_t since)
{
	enum llm_verdict v;

	while ((v = llmgate_verdict(w->llm->gate, since)) == LLM_VERDICT_RUN)
		if (run_canary(w) < 0)
			return LLM_VERDICT_STOPPED;
	return v;
}

/*
 * Wait until this worker may call. While the request format is
 * unsettled, one canary finds it and the others wait for its verdict.
 * While the API is paused, the first worker here probes it with canaries
 * every probe period until one passes; the others wait. The prober
 * unsettles the format first: the server may have changed while it was
 * down. The time spent paused (probing included) is added to *paused_ns.
 * Returns -1 when stopped.
 */
static int settle_or_probe(struct llm_worker *w, int64_t *paused_ns)
{
	struct llm *llm = w->llm;
	struct llmgate *gate = llm->gate;
	int64_t since = atomic_load(&llm->unsettled);
	unsigned delay;

	if (since && blame(w, since) == LLM_VERDICT_STOPPED)
		return -1;
	while (llmgate_probe_take(gate, &delay)) {
		int64_t t0 = mono_ns();
		int r;

		atomic_store(&llm->unsettled, t0);
		while ((r = llmgate_wait(gate, delay)) == 0 &&
		       (r = run_canary(w)) == 0 &&
		       llmgate_paused(gate, NULL, 0, NULL) != LLM_FAULT_NONE)
			;
		llmgate_probe_release(gate);
		*paused_ns += mono_ns() - t0;
		if (r < 0)
			return -1;
	}
	return 0;
}

static int pass_gate(struct llm_worker *w, double tokens, int64_t *paused_ns)
{
	if (settle_or_probe(w, paused_ns) < 0)
		return -1;
	return llmgate_enter(w->llm->gate, tokens, false, paused_ns);
}

/* The start-up check's thread: find the format now, not at the first
 * record; if that pauses the API, probe it until it answers. */
static void *startup_check(void *arg)
{
	struct llm_worker *w = arg;
	struct llm *llm = w->llm;
	int64_t paused_ns = 0;

	settle_or_probe(w, &paused_ns);
	llm_worker_free(w);
	atomic_store(&llm->checked, true); /* the last touch of llm */
	return NULL;
}

int llm_check_start(struct llm *llm, const char *api_key,
		    struct http_share *share, char *err, size_t err_size)
{
	struct llm_worker *w = llm_worker_new(llm, api_key, share, 0, err,
					      err_size);
	pthread_attr_t attr;
	pthread_t thread;
	int rc;

	if (!w)
		return -1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&thread, &attr, startup_check, w);
	pthread_attr_destroy(&attr);
	if (rc) {
		snprintf(err, err_size, "cannot start a thread: %s",
			 strerror(rc));
		llm_worker_free(w);
		return -1;
	}
	llm->checking = true;
	return 0;
}

/*
 * One model call in format mode, with transport retries
 * (retry.max_attempts, backoff, the server's hints, the shared cool-down)
 * inside the record's deadline. A fault of the deployment pauses the API
 * for every worker; the record waits (its deadline moved by the pause)
 * and then starts its retries afresh. A failure that could be either is
 * charged to the record only when a canary shows the API answering
 * others. When the format in use is no longer mode (found again after a
 * pause), *ret_restart is set: the record starts over in the new one.
 * Returns LLM_OK with reply filled, or the final error (detail set).
 */
static enum llm_status call_model(struct llm_worker *w, enum cfg_llm_mode mode,
				  const char *body, size_t body_len,
				  struct llm_reply *reply,
				  struct llm_result *res, int64_t *deadline,
				  bool *ret_restart)
{
	struct llm *llm = w->llm;
	double estimate = (double)body_len / 4 + llm->completion_estimate;
	long hint_ms = -1; /* the server's Retry-After for the next wait */
	int64_t start = 0;  /* when the last call started */
	unsigned attempt = 0;

	*ret_restart = false;
	for (;;) {
		bool more = attempt + 1 < llm->max_attempts;
		int64_t paused_ns = 0;
		struct http_response resp;
		struct outcome o;
		enum http_result hr;
		char err[512];

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
				switch (blame(w, start)) {
				case LLM_VERDICT_RECORD:
					return LLM_ERR_TIMEOUT;
				case LLM_VERDICT_PAUSED:
					attempt = 0;
					continue;
				default:
					return LLM_ABANDONED;
				}
			}
			res->retries++;
			if (llmgate_wait(llm->gate, delay) < 0)
				return LLM_ABANDONED;
		}
		if (pass_gate(w, estimate, &paused_ns) < 0)
			return LLM_ABANDONED;
		*deadline += paused_ns;
		if (llm_mode(llm) != mode) {
			*ret_restart = true;
			return LLM_ABANDONED;
		}
		res->attempts++;
		start = mono_ns();
		hr = http_post_json(w->http, llm->url, body, body_len, &resp,
				    err, sizeof(err));
		judge_call(w, mode, hr, &resp, err, reply, &o);
		hint_ms = -1;
		if (o.blame != BLAME_NONE)
			detail_set(res, "%s", o.detail);

		switch (o.blame) {
		case BLAME_NONE:
			observe(llm, start, &o, false);
			llmgate_alive(llm->gate);
			llmgate_correct_tokens(llm->gate,
					       (double)(reply->prompt_tokens +
							reply->completion_tokens),
					       estimate);
			return LLM_OK;
		case BLAME_ABORTED:
			observe(llm, start, &o, false);
			return LLM_ABANDONED;
		case BLAME_RECORD:
			observe(llm, start, &o, false);
			llmgate_alive(llm->gate);
			return o.status;
		case BLAME_DEPLOYMENT:
			/* The gate holds the record until the API works; then
			 * its retries start afresh. */
			observe(llm, start, &o, true);
			llmgate_pause(llm->gate, o.fault, o.reason);
			attempt = 0;
			continue;
		case BLAME_RATE:
			/* A rate limit is neither the record's fault nor the
			 * deployment's: wait out the shared cool-down in the
			 * gate (not counted against the record's time) and
			 * try again, whatever the retry budget. */
			observe(llm, start, &o, true);
			cool_down(llm, &o);
			continue;
		case BLAME_DOUBT:
			/* Failures in a row: let a canary look now. */
			if (llmgate_doubt(llm->gate) &&
			    blame(w, start) == LLM_VERDICT_PAUSED) {
				observe(llm, start, &o, true);
				attempt = 0;
				continue;
			}
			observe(llm, start, &o, o.retryable && more);
			if (!o.retryable || !more)
				break;
			hint_ms = o.hint_ms;
			attempt++;
			continue;
		}
		/* Out of retries, or not worth one: the record or the
		 * deployment? */
		switch (blame(w, start)) {
		case LLM_VERDICT_RECORD:
			return o.status;
		case LLM_VERDICT_PAUSED:
			attempt = 0;
			continue;
		default:
			return LLM_ABANDONED;
		}
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

/* What judge() found wrong with an answer. */
enum flaw {
	FLAW_NONE,
	FLAW_UNPARSED, /**< not JSON (or not UTF-8) */
	FLAW_UNCLOSED, /**< JSON that stops before it is complete */
	FLAW_INVALID,  /**< JSON that breaks the schema */
};

/*
 * Judge an answer: parse it, validate it. Returns the object when valid;
 * else NULL with the flaw, and every error, one per line and in plain
 * words, in errors.
 */
static struct json_object *judge(struct llm_worker *w, const char *answer,
				 char *errors, size_t errors_size,
				 enum flaw *ret_flaw)
{
	struct json_object *obj;
	char perr[256], q[LLM_QUOTE_MAX + 8];
	size_t len = strlen(answer), bad, i;
	bool unclosed;

	/* json-c passes any bytes through strings: an answer that is not
	 * UTF-8 would become a record that is not JSON (RFC 8259). */
	*ret_flaw = FLAW_UNPARSED;
	if (utf8_check(answer, len, &bad) < 0) {
		snprintf(errors, errors_size,
			 "the answer is not valid UTF-8 at byte %zu", bad);
		return NULL;
	}
	for (i = 0; i < len && strchr(" \t\r\n", answer[i]); i++)
		;
	if (i == len) {
		snprintf(errors, errors_size, "the answer is empty");
		return NULL;
	}
	obj = parse_json(w->tok, answer, len, perr, sizeof(perr), &unclosed);
	if (!obj) {
		quote(answer + i, len - i, q, sizeof(q));
		if (unclosed && (answer[i] == '{' || answer[i] == '[')) {
			*ret_flaw = FLAW_UNCLOSED;
			snprintf(errors, errors_size,
				 "the answer stops before its JSON is complete "
				 "(after %zu bytes)", len);
		} else if (answer[i] != '{' && answer[i] != '[') {
			snprintf(errors, errors_size,
				 "the answer is not a JSON object: it starts "
				 "with %s", q);
		} else {
			snprintf(errors, errors_size,
				 "the answer is not valid JSON: %s", perr);
		}
		return NULL;
	}
	*ret_flaw = FLAW_NONE;
	if (!schema_validate(w->llm->schema, obj, errors, errors_size))
		return obj;
	*ret_flaw = FLAW_INVALID;
	json_object_put(obj);
	return NULL;
}

/* The messages a record starts with in a format. */
static struct json_object *first_messages(const struct llm_format *f,
					  const char *text, size_t len)
{
	struct json_object *messages = json_object_new_array();

	add_message(messages, "system", f->system, strlen(f->system));
	add_message(messages, "user", text, len);
	return messages;
}

/* A request's body: the format's head, max_tokens, the messages. Put
 * together with memcpy: the head holds the schema (kilobytes), which
 * printf would copy a byte at a time, twice. */
static char *request_body(const struct llm *llm, enum cfg_llm_mode mode,
			  unsigned max_tokens, struct json_object *messages)
{
	static const char key[] = ",\"messages\":";
	const char *head = llm->fmt[mode].head;
	char mt[MAX_TOKENS_FIELD];
	const char *field = max_tokens_field(max_tokens, mt);
	size_t hlen = strlen(head), flen = strlen(field), mlen;
	const char *msgs = json_object_to_json_string_length(
		messages, LLM_JSON_FLAGS, &mlen);
	char *body, *p;

	if (!msgs)
		return NULL;
	body = malloc(hlen + flen + sizeof(key) - 1 + mlen + 2);
	if (!body)
		return NULL;
	p = body;
	memcpy(p, head, hlen);
	p += hlen;
	memcpy(p, field, flen);
	p += flen;
	memcpy(p, key, sizeof(key) - 1);
	p += sizeof(key) - 1;
	memcpy(p, msgs, mlen);
	p += mlen;
	*p++ = '}';
	*p = '\0';
	return body;
}

char *llm_request_body(struct llm *llm, enum cfg_llm_mode mode,
		       const char *text, size_t len)
{
	struct json_object *messages;
	char *body;

	if (mode >= LLM_N_FORMATS)
		return NULL;
	messages = first_messages(&llm->fmt[mode], text, len);
	body = request_body(llm, mode, llm->max_tokens, messages);
	json_object_put(messages);
	return body;
}

/*
 * An answer cut at the token limit: ask once more with twice the room
 * (up to llm.max_tokens_limit). Returns the max_tokens to ask with, or 0
 * when there is no more room (the detail then says why).
 */
static unsigned more_room(struct llm *llm, const struct llm_reply *reply,
			  unsigned max_tokens, bool grown,
			  struct llm_result *res)
{
	unsigned at = reply->completion_tokens
			      ? (unsigned)reply->completion_tokens
			      : max_tokens;
	unsigned next = at ? 2 * at : LLM_COMPLETION_ESTIMATE;

	if (next > llm->max_tokens_limit)
		next = llm->max_tokens_limit;
	if (!grown && next > at && next > max_tokens)
		return next;
	if (grown && max_tokens < llm->max_tokens_limit)
		detail_set(res, "the answer was cut at %u tokens (finish_reason "
			   "\"%s\"), again when asked with max_tokens %u: a "
			   "cut answer gets one more try, with twice the room",
			   at, reply->finish_reason, max_tokens);
	else if (grown)
		detail_set(res, "the answer was cut at %u tokens (finish_reason "
			   "\"%s\"), also when asked again with max_tokens %u: "
			   "llm.max_tokens_limit (%u) leaves no more room",
			   at, reply->finish_reason, max_tokens,
			   llm->max_tokens_limit);
	else
		detail_set(res, "the answer was cut at %u tokens (finish_reason "
			   "\"%s\"): llm.max_tokens_limit (%u) leaves no more "
			   "room", at, reply->finish_reason,
			   llm->max_tokens_limit);
	return 0;
}

/*
 * One record's extraction, starting in format mode. With batch (a Batch
 * API's answer body to the request llm_request_body() builds in mode),
 * that body is the first call's reply; a body that is not a chat
 * completion leaves the first call to the live API. Every other call
 * is live.
 */
static void extract(struct llm_worker *w, const char *text, size_t len,
		    enum cfg_llm_mode mode, const char *batch,
		    size_t batch_len, struct llm_result *res)
{
	struct llm *llm = w->llm;
	struct json_object *messages = first_messages(&llm->fmt[mode], text,
						      len);
	char errors[LLM_DETAIL_MAX];
	char reask[LLM_DETAIL_MAX + 256];
	int64_t deadline = mono_ns() + (int64_t)llm->max_elapsed_ms * 1000000;
	unsigned round = 0, max_tokens = llm->max_tokens;
	bool grown = false;

	memset(res, 0, sizeof(*res));
	snprintf(res->model, sizeof(res->model), "%s", llm->model);

	for (;;) {
		struct llm_reply reply;
		struct json_object *obj;
		char *body, perr[256];
		enum llm_status st;
		enum flaw flaw;
		bool restart = false, batched = false, cut;

		if (batch) {
			/* Once, for the first call. Why a body is not a
			 * chat completion (perr) matters no more once the
			 * live call has answered instead. */
			batched = parse_reply(w->tok, mode, batch, batch_len,
					      &reply, perr, sizeof(perr)) == 0;
			batch = NULL;
		}
		if (batched) {
			st = LLM_OK;
			res->attempts++;
			res->batched = true;
		} else {
			body = request_body(llm, mode, max_tokens, messages);
			if (!body) {
				res->status = LLM_ERR_HTTP;
				detail_set(res, "out of memory");
				break;
			}
			st = call_model(w, mode, body, strlen(body), &reply,
					res, &deadline, &restart);
			free(body);
		}
		if (restart) {
			/* The server takes another format now: start over
			 * in it. */
			mode = llm_mode(llm);
			json_object_put(messages);
			messages = first_messages(&llm->fmt[mode], text, len);
			round = 0;
			max_tokens = llm->max_tokens;
			grown = false;
			continue;
		}
		if (st != LLM_OK) {
			res->status = st;
			break;
		}
		res->prompt_tokens += reply.prompt_tokens;
		res->completion_tokens += reply.completion_tokens;
		res->cached_tokens += reply.cached_tokens;
		res->reasoning_tokens += reply.reasoning_tokens;
		if (batched) {
			res->batch_prompt_tokens += reply.prompt_tokens;
			res->batch_completion_tokens += reply.completion_tokens;
			res->batch_cached_tokens += reply.cached_tokens;
		}
		if (*reply.model && strcmp(reply.model, llm->model))
			snprintf(res->served_model, sizeof(res->served_model),
				 "%s", reply.model);
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
			if (reply.said)
				keep_answer(res, reply.said);
			llm_reply_clear(&reply);
			break;
		}
		keep_answer(res, reply.said);
		obj = judge(w, reply.answer, errors, sizeof(errors), &flaw);
		if (obj) {
			res->status = LLM_OK;
			res->mode = mode;
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
		res->status = LLM_ERR_VALIDATION;
		/* Cut at the limit (the server says so, or the JSON stops
		 * where the limit may have cut it): more room, not a
		 * re-ask with the same limit. */
		cut = !strcmp(reply.finish_reason, "length") ||
		      (flaw == FLAW_UNCLOSED &&
		       (!max_tokens || !reply.completion_tokens ||
			reply.completion_tokens >= max_tokens));
		if (cut) {
			unsigned next = more_room(llm, &reply, max_tokens,
						  grown, res);

			llm_reply_clear(&reply);
			if (!next)
				break;
			grown = true;
			max_tokens = next;
			res->retries++;
			continue;
		}
		detail_set(res, "%s", errors);
		if (round == llm->max_reasks) {
			llm_reply_clear(&reply);
			break;
		}
		/* Hand back exactly what the model said, and what is wrong
		 * with it, and ask again. */
		add_message(messages, "assistant", reply.said,
			    strlen(reply.said));
		llm_reply_clear(&reply);
		if (flaw == FLAW_INVALID)
			snprintf(reask, sizeof(reask),
				 "Your answer does not match the JSON Schema. "
				 "Errors:\n%s\nAnswer again with a corrected "
				 "object.", errors);
		else
			snprintf(reask, sizeof(reask),
				 "Your answer cannot be used: %s.\nAnswer again "
				 "with only the JSON object%s, filled in from "
				 "the text.", errors,
				 mode == CFG_MODE_MD_JSON
					 ? ", in a ```json fenced code block"
					 : "");
		add_message(messages, "user", reask, strlen(reask));
		round++;
		res->reasks++;
	}
	json_object_put(messages);
}

void llm_extract(struct llm_worker *w, const char *text, size_t len,
		 struct llm_result *res)
{
	extract(w, text, len, llm_mode(w->llm), NULL, 0, res);
}

void llm_extract_answered(struct llm_worker *w, const char *text, size_t len,
			  enum cfg_llm_mode mode, const char *answer,
			  size_t answer_len, struct llm_result *res)
{
	/* No request is built in any other mode: no answer can be ours. */
	if (mode >= LLM_N_FORMATS) {
		mode = llm_mode(w->llm);
		answer = NULL;
	}
	extract(w, text, len, mode, answer, answer_len, res);
}
