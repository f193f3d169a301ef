/*
 * batch: see batch.h.
 *
 * Each call builds its URL from the base and a checked id, makes one
 * HTTP exchange through the client's http_client, and turns the answer
 * into a result: a transport failure or a status is classified by
 * finish(), a 2xx body is read with json-c.
 */
#include "batch.h"

#include "http.h"
#include "jsonparse.h"
#include "llm.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_JSON_DEPTH 32
#define BATCH_METADATA_MAX 16 /**< pairs the API takes */
#define BATCH_WHAT_MAX (BATCH_ID_MAX + 32) /**< "METHOD /path" */
#define BATCH_JSON_FLAGS \
	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

struct batch_client {
	struct http_client *http;
	char *base;       /**< base_url without a trailing '/' */
	size_t max_bytes; /**< opts.max_file_bytes */
	long status;      /**< of the last call, 0 when none came back */
};

static const char *const status_names[] = {
	[BATCH_VALIDATING] = "validating",
	[BATCH_IN_PROGRESS] = "in_progress",
	[BATCH_FINALIZING] = "finalizing",
	[BATCH_COMPLETED] = "completed",
	[BATCH_FAILED] = "failed",
	[BATCH_EXPIRED] = "expired",
	[BATCH_CANCELLING] = "cancelling",
	[BATCH_CANCELLED] = "cancelled",
	[BATCH_STATUS_UNKNOWN] = "unknown",
};

const char *batch_status_name(enum batch_status status)
{
	return status <= BATCH_STATUS_UNKNOWN ? status_names[status]
					      : "unknown";
}

bool batch_status_final(enum batch_status status)
{
	return status == BATCH_COMPLETED || status == BATCH_FAILED ||
	       status == BATCH_EXPIRED || status == BATCH_CANCELLED;
}

static enum batch_status status_of(const char *name)
{
	size_t i;

	for (i = 0; i < BATCH_STATUS_UNKNOWN; i++)
		if (!strcmp(name, status_names[i]))
			return (enum batch_status)i;
	return BATCH_STATUS_UNKNOWN;
}

/* An id as the API makes them ("file-abc", "batch_abc"): letters,
 * digits, '-', '_' and '.', so it is safe in a URL path as it is. */
static bool id_ok(const char *id)
{
	size_t n = id ? strspn(id, "abcdefghijklmnopqrstuvwxyz"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789-_.")
		      : 0;

	return n && n < BATCH_ID_MAX && !id[n] && strcmp(id, ".") &&
	       strcmp(id, "..");
}

struct batch_client *batch_client_new(const struct batch_client_opts *opts,
				      char *err, size_t err_size)
{
	struct http_client_opts h = {
		.api_key = opts->api_key,
		.api_key_header = opts->api_key_header,
		.timeout_ms = opts->timeout_ms,
		.connect_timeout_ms = opts->connect_timeout_ms,
		.max_response_bytes = opts->max_file_bytes,
		.ca_file = opts->ca_file,
		.share = opts->share,
		.abort = opts->abort,
	};
	struct batch_client *c;
	size_t n;

	if (!opts->base_url || !*opts->base_url || !opts->max_file_bytes) {
		snprintf(err, err_size,
			 "batch client: a base URL and max_file_bytes are "
			 "needed");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->base = strdup(opts->base_url))) {
		free(c);
		snprintf(err, err_size, "batch client: out of memory");
		return NULL;
	}
	n = strlen(c->base);
	while (n && c->base[n - 1] == '/')
		c->base[--n] = '\0';
	c->max_bytes = opts->max_file_bytes;
	c->http = http_client_new(&h, err, err_size);
	if (!c->http) {
		batch_client_free(c);
		return NULL;
	}
	return c;
}

void batch_client_free(struct batch_client *c)
{
	if (!c)
		return;
	http_client_free(c->http);
	free(c->base);
	free(c);
}

long batch_last_status(const struct batch_client *c)
{
	return c->status;
}

/* base + "/" + path [+ "/" + id [+ "/" + suffix]]; malloc'ed or NULL. */
static char *url_of(const struct batch_client *c, const char *path,
		    const char *id, const char *suffix)
{
	size_t n = strlen(c->base) + strlen(path) + (id ? strlen(id) : 0) +
		   (suffix ? strlen(suffix) : 0) + 4;
	char *url = malloc(n);

	if (url)
		snprintf(url, n, "%s/%s%s%s%s%s", c->base, path, id ? "/" : "",
			 id ? id : "", suffix ? "/" : "", suffix ? suffix : "");
	return url;
}

/* How an exchange ended, with err worded "what: ..." for a failure. */
static enum batch_result finish(struct batch_client *c, const char *what,
				enum http_result hr,
				const struct http_response *resp,
				const char *terr, char *err, size_t err_size)
{
	char text[320];

	c->status = 0;
	if (hr == HTTP_ERR_TOO_LARGE) {
		snprintf(err, err_size,
			 "%s: the answer is larger than %zu bytes", what,
			 c->max_bytes);
		return BATCH_ERR_TOO_LARGE;
	}
	if (hr != HTTP_DONE) {
		snprintf(err, err_size, "%s: %s", what, terr);
		return BATCH_ERR_RETRY;
	}
	c->status = resp->status;
	if (resp->status >= 200 && resp->status < 300)
		return BATCH_OK;
	llm_error_text(resp->body, resp->body_len, text, sizeof(text));
	snprintf(err, err_size, "%s: HTTP %ld%s%s", what, resp->status,
		 *text ? ": " : "", text);
	if (resp->status == 404)
		return BATCH_ERR_NOT_FOUND;
	if (resp->status == 408 || resp->status == 409 ||
	    resp->status == 429 || resp->status >= 500)
		return BATCH_ERR_RETRY;
	return BATCH_ERR_REFUSED;
}

/* A 2xx body as a JSON object (the caller puts it), or NULL with err. */
static struct json_object *answer_object(const char *what,
					 const struct http_response *resp,
					 char *err, size_t err_size)
{
	struct jsonparse_error perr;
	struct json_object *o;

	o = jsonparse_once(resp->body, resp->body_len, BATCH_JSON_DEPTH,
			   JSON_TOKENER_STRICT, &perr);
	if (o && json_object_is_type(o, json_type_object))
		return o;
	json_object_put(o);
	snprintf(err, err_size, "%s: the answer is not a JSON object", what);
	return NULL;
}

static const char *get_string(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* A non-negative integer member (under sub when not NULL), or 0. */
static uint64_t get_count(struct json_object *o, const char *sub,
			  const char *key)
{
	struct json_object *v;
	int64_t n;

	if (sub && !json_object_object_get_ex(o, sub, &o))
		return 0;
	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return 0;
	n = json_object_get_int64(v);
	return n > 0 ? (uint64_t)n : 0;
}

/* Copy the id member key into out: "" when absent or null; false when it
 * is there but not an id. */
static bool get_id(struct json_object *o, const char *key,
		   char out[BATCH_ID_MAX])
{
	struct json_object *v;
	const char *s;

	out[0] = '\0';
	if (!json_object_object_get_ex(o, key, &v) ||
	    json_object_is_type(v, json_type_null))
		return true;
	s = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
						     : NULL;
	if (!id_ok(s))
		return false;
	snprintf(out, BATCH_ID_MAX, "%s", s);
	return true;
}

/* errors.data as "line N: code: message; ..." into out. */
static void get_errors(struct json_object *o, char *out, size_t size)
{
	struct json_object *errors, *data, *e, *line;
	size_t i, n, used = 0;
	const char *code, *msg;
	int w;

	out[0] = '\0';
	if (!json_object_object_get_ex(o, "errors", &errors) ||
	    !json_object_object_get_ex(errors, "data", &data) ||
	    !json_object_is_type(data, json_type_array))
		return;
	n = json_object_array_length(data);
	for (i = 0; i < n && used < size; i++) {
		e = json_object_array_get_idx(data, i);
		code = get_string(e, "code");
		msg = get_string(e, "message");
		w = 0;
		if (json_object_object_get_ex(e, "line", &line) &&
		    json_object_is_type(line, json_type_int))
			w = snprintf(out + used, size - used, "%sline %lld: ",
				     i ? "; " : "",
				     (long long)json_object_get_int64(line));
		else if (i)
			w = snprintf(out + used, size - used, "; ");
		if (w < 0)
			return;
		used += (size_t)w;
		if (used >= size)
			break;
		w = snprintf(out + used, size - used, "%s: %s",
			     code ? code : "error", msg ? msg : "");
		if (w < 0)
			return;
		used += (size_t)w;
	}
}

/* A batch object into *ret. */
static enum batch_result parse_batch(const char *what,
				     const struct http_response *resp,
				     struct batch_info *ret, char *err,
				     size_t err_size)
{
	struct json_object *o = answer_object(what, resp, err, err_size), *v;
	const char *status;

	if (!o)
		return BATCH_ERR_BAD_ANSWER;
	memset(ret, 0, sizeof(*ret));
	status = get_string(o, "status");
	if (!status || !get_id(o, "id", ret->id) || !ret->id[0] ||
	    !get_id(o, "input_file_id", ret->input_file_id) ||
	    !get_id(o, "output_file_id", ret->output_file_id) ||
	    !get_id(o, "error_file_id", ret->error_file_id)) {
		snprintf(err, err_size,
			 "%s: the answer is not a batch (no id or status, or a "
			 "bad file id)", what);
		json_object_put(o);
		return BATCH_ERR_BAD_ANSWER;
	}
	ret->status = status_of(status);
	ret->total = get_count(o, "request_counts", "total");
	ret->completed = get_count(o, "request_counts", "completed");
	ret->failed = get_count(o, "request_counts", "failed");
	if (json_object_object_get_ex(o, "created_at", &v))
		ret->created_at = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "expires_at", &v))
		ret->expires_at = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "usage", &v)) {
		ret->input_tokens = get_count(v, NULL, "input_tokens");
		ret->cached_tokens = get_count(v, "input_tokens_details",
					       "cached_tokens");
		ret->output_tokens = get_count(v, NULL, "output_tokens");
		ret->reasoning_tokens = get_count(v, "output_tokens_details",
						  "reasoning_tokens");
	}
	get_errors(o, ret->errors, sizeof(ret->errors));
	json_object_put(o);
	return BATCH_OK;
}

/* "METHOD /path/id[/suffix]" for err. */
static void what_of(char *what, const char *method, const char *path,
		    const char *id, const char *suffix)
{
	snprintf(what, BATCH_WHAT_MAX, "%s /%s%s%s%s%s", method, path,
		 id ? "/" : "", id ? id : "", suffix ? "/" : "",
		 suffix ? suffix : "");
}

/* Refuse an id before it goes into a URL. */
static enum batch_result bad_id(struct batch_client *c, const char *kind,
				char *err, size_t err_size)
{
	c->status = 0;
	snprintf(err, err_size,
		 "not a %s id (1 to %d letters, digits, '-', '_', '.')", kind,
		 BATCH_ID_MAX - 1);
	return BATCH_ERR_REFUSED;
}

static enum batch_result no_memory(struct batch_client *c, char *err,
				   size_t err_size)
{
	c->status = 0;
	snprintf(err, err_size, "batch client: out of memory");
	return BATCH_ERR_NOMEM;
}

enum batch_result batch_file_upload(struct batch_client *c,
				    const char *filename, const char *data,
				    size_t len, char *ret_id, size_t id_size,
				    char *err, size_t err_size)
{
	const struct http_form_part parts[] = {
		{ .name = "purpose", .data = "batch", .len = 5 },
		{ .name = "file", .data = data, .len = len,
		  .filename = filename, .type = "application/jsonl" },
	};
	char what[BATCH_WHAT_MAX], terr[256], id[BATCH_ID_MAX];
	struct http_response resp;
	struct json_object *o;
	enum batch_result r;
	enum http_result hr;
	char *url = url_of(c, "files", NULL, NULL);

	if (!url)
		return no_memory(c, err, err_size);
	what_of(what, "POST", "files", NULL, NULL);
	hr = http_post_form(c->http, url, parts, 2, &resp, terr, sizeof(terr));
	free(url);
	r = finish(c, what, hr, &resp, terr, err, err_size);
	if (r)
		return r;
	o = answer_object(what, &resp, err, err_size);
	if (!o)
		return BATCH_ERR_BAD_ANSWER;
	if (!get_id(o, "id", id) || !id[0] || strlen(id) >= id_size) {
		snprintf(err, err_size, "%s: the answer is not a file", what);
		json_object_put(o);
		return BATCH_ERR_BAD_ANSWER;
	}
	json_object_put(o);
	snprintf(ret_id, id_size, "%s", id);
	return BATCH_OK;
}

/* The body of a create: input file, endpoint, window, metadata. */
static char *create_body(const char *input_file_id,
			 const char *const *metadata, size_t n_pairs)
{
	struct json_object *o = json_object_new_object(), *m = NULL;
	char *body = NULL;
	const char *s;
	size_t i;

	if (!o ||
	    json_object_object_add(o, "input_file_id",
				   json_object_new_string(input_file_id)) ||
	    json_object_object_add(o, "endpoint",
				   json_object_new_string(
					   "/v1/chat/completions")) ||
	    json_object_object_add(o, "completion_window",
				   json_object_new_string("24h")))
		goto out;
	if (n_pairs) {
		m = json_object_new_object();
		if (!m || json_object_object_add(o, "metadata", m)) {
			json_object_put(m);
			goto out;
		}
		for (i = 0; i < n_pairs; i++) {
			const char *key = metadata[2 * i];
			const char *value = metadata[2 * i + 1];

			if (json_object_object_add(
				    m, key, json_object_new_string(value)))
				goto out;
		}
	}
	s = json_object_to_json_string_ext(o, BATCH_JSON_FLAGS);
	if (s)
		body = strdup(s);
out:
	json_object_put(o);
	return body;
}

enum batch_result batch_create(struct batch_client *c,
			       const char *input_file_id,
			       const char *const *metadata, size_t n_pairs,
			       struct batch_info *ret, char *err,
			       size_t err_size)
{
	char what[BATCH_WHAT_MAX], terr[256];
	struct http_response resp;
	enum batch_result r;
	enum http_result hr;
	char *url, *body;

	if (!id_ok(input_file_id))
		return bad_id(c, "file", err, err_size);
	if (n_pairs > BATCH_METADATA_MAX) {
		c->status = 0;
		snprintf(err, err_size, "at most %d metadata pairs",
			 BATCH_METADATA_MAX);
		return BATCH_ERR_REFUSED;
	}
	body = create_body(input_file_id, metadata, n_pairs);
	url = url_of(c, "batches", NULL, NULL);
	if (!body || !url) {
		free(body);
		free(url);
		return no_memory(c, err, err_size);
	}
	what_of(what, "POST", "batches", NULL, NULL);
	hr = http_post_json(c->http, url, body, strlen(body), &resp, terr,
			    sizeof(terr));
	free(url);
	free(body);
	r = finish(c, what, hr, &resp, terr, err, err_size);
	return r ? r : parse_batch(what, &resp, ret, err, err_size);
}

/* GET batches/ID or POST batches/ID/cancel. */
static enum batch_result batch_call(struct batch_client *c,
				    const char *batch_id, bool cancel,
				    struct batch_info *ret, char *err,
				    size_t err_size)
{
	const char *suffix = cancel ? "cancel" : NULL;
	char what[BATCH_WHAT_MAX], terr[256];
	struct http_response resp;
	enum batch_result r;
	enum http_result hr;
	char *url;

	if (!id_ok(batch_id))
		return bad_id(c, "batch", err, err_size);
	url = url_of(c, "batches", batch_id, suffix);
	if (!url)
		return no_memory(c, err, err_size);
	what_of(what, cancel ? "POST" : "GET", "batches", batch_id, suffix);
	hr = cancel ? http_post_json(c->http, url, "", 0, &resp, terr,
				     sizeof(terr))
		    : http_get(c->http, url, &resp, terr, sizeof(terr));
	free(url);
	r = finish(c, what, hr, &resp, terr, err, err_size);
	return r ? r : parse_batch(what, &resp, ret, err, err_size);
}

enum batch_result batch_retrieve(struct batch_client *c, const char *batch_id,
				 struct batch_info *ret, char *err,
				 size_t err_size)
{
	return batch_call(c, batch_id, false, ret, err, err_size);
}

enum batch_result batch_cancel(struct batch_client *c, const char *batch_id,
			       struct batch_info *ret, char *err,
			       size_t err_size)
{
	return batch_call(c, batch_id, true, ret, err, err_size);
}

enum batch_result batch_file_content(struct batch_client *c,
				     const char *file_id, char **ret_data,
				     size_t *ret_len, char *err,
				     size_t err_size)
{
	char what[BATCH_WHAT_MAX], terr[256];
	struct http_response resp;
	enum batch_result r;
	enum http_result hr;
	char *url, *data;

	if (!id_ok(file_id))
		return bad_id(c, "file", err, err_size);
	url = url_of(c, "files", file_id, "content");
	if (!url)
		return no_memory(c, err, err_size);
	what_of(what, "GET", "files", file_id, "content");
	hr = http_get(c->http, url, &resp, terr, sizeof(terr));
	free(url);
	r = finish(c, what, hr, &resp, terr, err, err_size);
	if (r)
		return r;
	data = http_take_body(c->http, ret_len);
	if (!data)
		return no_memory(c, err, err_size);
	*ret_data = data;
	return BATCH_OK;
}

enum batch_result batch_file_delete(struct batch_client *c,
				    const char *file_id, char *err,
				    size_t err_size)
{
	char what[BATCH_WHAT_MAX], terr[256];
	struct http_response resp;
	struct json_object *o, *v;
	enum batch_result r;
	enum http_result hr;
	bool deleted;
	char *url;

	if (!id_ok(file_id))
		return bad_id(c, "file", err, err_size);
	url = url_of(c, "files", file_id, NULL);
	if (!url)
		return no_memory(c, err, err_size);
	what_of(what, "DELETE", "files", file_id, NULL);
	hr = http_delete(c->http, url, &resp, terr, sizeof(terr));
	free(url);
	r = finish(c, what, hr, &resp, terr, err, err_size);
	if (r)
		return r;
	o = answer_object(what, &resp, err, err_size);
	if (!o)
		return BATCH_ERR_BAD_ANSWER;
	deleted = json_object_object_get_ex(o, "deleted", &v) &&
		  json_object_is_type(v, json_type_boolean) &&
		  json_object_get_boolean(v);
	json_object_put(o);
	if (!deleted) {
		snprintf(err, err_size, "%s: the answer does not say deleted",
			 what);
		return BATCH_ERR_BAD_ANSWER;
	}
	return BATCH_OK;
}

char *batch_request_line(const char *custom_id, const char *body,
			 size_t body_len, size_t *ret_len)
{
	static const char mid[] = ",\"method\":\"POST\","
				  "\"url\":\"/v1/chat/completions\",\"body\":";
	struct json_object *id = json_object_new_string(custom_id);
	const char *quoted;
	size_t qlen, n;
	char *line = NULL;

	if (memchr(body, '\n', body_len) || memchr(body, '\r', body_len))
		goto out;
	quoted = id ? json_object_to_json_string_ext(id, BATCH_JSON_FLAGS)
		    : NULL;
	if (!quoted)
		goto out;
	qlen = strlen(quoted);
	n = sizeof("{\"custom_id\":") - 1 + qlen + sizeof(mid) - 1 +
	    body_len + 2;
	line = malloc(n + 1);
	if (!line)
		goto out;
	snprintf(line, n + 1, "{\"custom_id\":%s%s", quoted, mid);
	memcpy(line + n - body_len - 2, body, body_len);
	memcpy(line + n - 2, "}\n", 3);
	*ret_len = n;
out:
	json_object_put(id);
	return line;
}

void batch_output_clear(struct batch_output *o)
{
	free(o->custom_id);
	free(o->body);
	memset(o, 0, sizeof(*o));
}

int batch_output_parse(const char *line, size_t len, struct batch_output *ret,
		       char *err, size_t err_size)
{
	struct json_object *o, *resp, *v, *e;
	struct jsonparse_error perr;
	const char *s;

	memset(ret, 0, sizeof(*ret));
	o = jsonparse_once(line, len, BATCH_JSON_DEPTH, JSON_TOKENER_STRICT,
			   &perr);
	s = o ? get_string(o, "custom_id") : NULL;
	if (!s) {
		snprintf(err, err_size,
			 "not a batch output line (no JSON object with a "
			 "custom_id)");
		goto fail;
	}
	ret->custom_id = strdup(s);
	if (!ret->custom_id)
		goto oom;
	if (json_object_object_get_ex(o, "response", &resp) &&
	    json_object_is_type(resp, json_type_object)) {
		if (!json_object_object_get_ex(resp, "status_code", &v) ||
		    !json_object_is_type(v, json_type_int) ||
		    json_object_get_int64(v) < 100 ||
		    json_object_get_int64(v) > 599) {
			snprintf(err, err_size,
				 "batch output line '%.64s': no status_code",
				 ret->custom_id);
			goto fail;
		}
		ret->status = (long)json_object_get_int64(v);
		if (json_object_object_get_ex(resp, "body", &v) &&
		    !json_object_is_type(v, json_type_null)) {
			s = json_object_is_type(v, json_type_string)
				    ? json_object_get_string(v)
				    : json_object_to_json_string_ext(
					      v, BATCH_JSON_FLAGS);
			if (!s || !(ret->body = strdup(s)))
				goto oom;
			ret->body_len = strlen(ret->body);
		}
	}
	if (json_object_object_get_ex(o, "error", &e) &&
	    json_object_is_type(e, json_type_object)) {
		s = get_string(e, "code");
		snprintf(ret->error_code, sizeof(ret->error_code), "%s",
			 s ? s : "error");
		s = get_string(e, "message");
		snprintf(ret->error_message, sizeof(ret->error_message), "%s",
			 s ? s : "");
	}
	if (!ret->status && !ret->error_code[0]) {
		snprintf(err, err_size,
			 "batch output line '%.64s': neither a response nor "
			 "an error", ret->custom_id);
		goto fail;
	}
	json_object_put(o);
	return 0;
oom:
	snprintf(err, err_size, "batch output line: out of memory");
fail:
	json_object_put(o);
	batch_output_clear(ret);
	return -1;
}
