/*
 * sim_batch.c - see sim_batch.h.
 *
 * DESIGN
 * ------
 * Everything lives in memory under one mutex: the files (uploaded inputs,
 * the output and error files batches write) and the batches, each in a
 * list, looked up by id. Nothing runs in the background: a batch's state
 * is brought up to date whenever a request looks at it. A batch is
 * "validating" in the answer that creates it, "in_progress" until
 * --batch-delay-ms have passed, and is finished by the first request that
 * looks at it after that: its lines are answered then, one by one, by the
 * answer callback, under the lock (so two lookers never answer a line
 * twice), and its output and error files written, in input order.
 *
 * - A completed batch answered every line: 2xx answers go to the output
 *   file, other statuses to the error file (response set, error null), a
 *   line without an answer (the timeout fault) to the error file with
 *   response null and error {code "request_timeout"}.
 * - An expiring batch (the first --batch-expire N created) answers its
 *   first half the same way and writes the rest to the error file with
 *   error code "batch_expired"; its status is "expired".
 * - A cancelled batch (cancel while in progress) answers nothing: its
 *   cancel answer says "cancelling", it is "cancelled" from then on, and
 *   every line is in the error file with code "batch_cancelled".
 * - An input file that does not hold valid batch lines makes the batch
 *   "failed", with errors.data naming the lines (at most SB_ERRORS_MAX).
 *
 * request_counts: total lines; completed, those in the output file;
 * failed, those in the error file. usage sums the answers' usage.
 */
#include "sim_batch.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "sim_chat.h"
#include "sim_util.h"

#define SB_ID_LEN	48
#define SB_LINES_MAX	50000u		/**< requests in a batch */
#define SB_FILES_MAX	10000u		/**< files stored at once */
#define SB_STORE_MAX	(1ull << 30)	/**< bytes of files stored */
#define SB_ERRORS_MAX	10u		/**< validation errors told */
#define SB_WINDOW_S	(24 * 3600)	/**< completion_window "24h" */
#define SB_META_MAX	16u		/**< metadata pairs */
#define SB_JSON_FLAGS \
	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define SB_ENDPOINT	"/v1/chat/completions"

enum sb_status {
	SB_VALIDATING,
	SB_FAILED,
	SB_IN_PROGRESS,
	SB_COMPLETED,
	SB_EXPIRED,
	SB_CANCELLING,
	SB_CANCELLED,
};

static const char *const sb_status_names[] = {
	[SB_VALIDATING] = "validating",
	[SB_FAILED] = "failed",
	[SB_IN_PROGRESS] = "in_progress",
	[SB_COMPLETED] = "completed",
	[SB_EXPIRED] = "expired",
	[SB_CANCELLING] = "cancelling",
	[SB_CANCELLED] = "cancelled",
};

struct sb_file {
	struct sb_file *next;
	char id[SB_ID_LEN];
	char *filename;
	const char *purpose;		/**< "batch" or "batch_output" */
	char *data;
	size_t len;
	int64_t created_at;
};

/** One input line, kept until the batch is finished. */
struct sb_line {
	char *custom_id;
	char *body;			/**< the request body's JSON text */
};

struct sb_batch {
	struct sb_batch *next;
	char id[SB_ID_LEN];
	char input_file_id[SB_ID_LEN];
	char output_file_id[SB_ID_LEN];	/**< "" until written */
	char error_file_id[SB_ID_LEN];
	struct json_object *metadata;	/**< owned, or NULL */
	struct json_object *errors;	/**< validation errors, or NULL */
	enum sb_status status;
	/* Unix seconds, 0 for null. */
	int64_t created_at, in_progress_at, finalizing_at, completed_at,
		failed_at, expired_at, cancelling_at, cancelled_at,
		expires_at;
	uint64_t due_ns;		/**< when the lines get answered */
	bool expire;			/**< expires, not completes */
	struct sb_line *lines;
	size_t n;			/**< lines in the input */
	uint64_t completed, failed;
	int64_t in_tok, cached_tok, out_tok, reasoning_tok;
};

struct sim_batch {
	pthread_mutex_t lock;
	struct sim_batch_opts opt;
	unsigned long expire_left;	/**< batches still to expire */
	uint64_t seq;			/**< ids */
	struct sb_file *files;
	struct sb_batch *batches;
	struct sim_batch_stats stats;
};

static uint64_t sb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- replies ---------------------------------------------------------- */

static int sb_reply_text(struct sim_batch_reply *ret, unsigned status,
			 const char *text, size_t len, const char *type)
{
	ret->body = malloc(len + 1);
	if (!ret->body)
		return -ENOMEM;
	memcpy(ret->body, text, len);
	ret->body[len] = '\0';
	ret->len = len;
	ret->status = status;
	ret->content_type = type;
	return 0;
}

/** Reply with @p o's JSON text; takes @p o (NULL: out of memory). */
static int sb_reply_json(struct sim_batch_reply *ret, unsigned status,
			 struct json_object *o)
{
	const char *s;
	size_t len;
	int rc = -ENOMEM;

	if (!o)
		return -ENOMEM;
	s = json_object_to_json_string_length(o, SB_JSON_FLAGS, &len);
	if (s)
		rc = sb_reply_text(ret, status, s, len, "application/json");
	json_object_put(o);
	return rc;
}

static int sb_reply_error(struct sim_batch_reply *ret, unsigned status,
			  const char *message, const char *param,
			  const char *code)
{
	char *body = sim_chat_error(message, "invalid_request_error", param,
				    code);

	if (!body)
		return -ENOMEM;
	ret->status = status;
	ret->body = body;
	ret->len = strlen(body);
	ret->content_type = "application/json";
	return 0;
}

/* ---- json helpers ----------------------------------------------------- */


static bool sb_add_str(struct json_object *o, const char *key, const char *s)
{
	return sim_add(o, key, json_object_new_string(s));
}

/** A string, or null for "". */
static bool sb_add_str_null(struct json_object *o, const char *key,
			    const char *s)
{
	return *s ? sb_add_str(o, key, s) : sim_add_null(o, key);
}

static bool sb_add_int(struct json_object *o, const char *key, int64_t v)
{
	return sim_add(o, key, json_object_new_int64(v));
}

/** A timestamp, or null for 0. */
static bool sb_add_time(struct json_object *o, const char *key, int64_t v)
{
	return v ? sb_add_int(o, key, v) : sim_add_null(o, key);
}

static struct json_object *sb_add_obj(struct json_object *o, const char *key)
{
	struct json_object *sub = json_object_new_object();

	return sim_add(o, key, sub) ? sub : NULL;
}

static const char *sb_get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/** Parse exactly @p len bytes as one JSON value; NULL when they are not. */
static struct json_object *sb_parse(const char *text, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o;

	if (len > INT32_MAX)
		return NULL;
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* ---- files ------------------------------------------------------------ */

static struct sb_file *sb_file_find(struct sim_batch *b, const char *id)
{
	struct sb_file *f;

	for (f = b->files; f; f = f->next)
		if (!strcmp(f->id, id))
			return f;
	return NULL;
}

/** Store @p data (taken) as a new file. @returns it, or NULL (OOM). */
static struct sb_file *sb_file_add(struct sim_batch *b, const char *filename,
				   const char *purpose, char *data,
				   size_t len)
{
	struct sb_file *f = calloc(1, sizeof(*f));

	if (!f || !(f->filename = strdup(filename))) {
		free(f);
		free(data);
		return NULL;
	}
	snprintf(f->id, sizeof(f->id), "file-llmsim%016" PRIx64, ++b->seq);
	f->purpose = purpose;
	f->data = data;
	f->len = len;
	f->created_at = (int64_t)time(NULL);
	f->next = b->files;
	b->files = f;
	b->stats.files++;
	b->stats.file_bytes += len;
	return f;
}

static void sb_file_free(struct sb_file *f)
{
	free(f->filename);
	free(f->data);
	free(f);
}

static struct json_object *sb_file_json(const struct sb_file *f)
{
	struct json_object *o = json_object_new_object();

	if (o && sb_add_str(o, "id", f->id) &&
	    sb_add_str(o, "object", "file") &&
	    sb_add_int(o, "bytes", (int64_t)f->len) &&
	    sb_add_int(o, "created_at", f->created_at) &&
	    sim_add_null(o, "expires_at") &&
	    sb_add_str(o, "filename", f->filename) &&
	    sb_add_str(o, "purpose", f->purpose) &&
	    sb_add_str(o, "status", "processed") &&
	    sim_add_null(o, "status_details"))
		return o;
	json_object_put(o);
	return NULL;
}

/** Where @p needle first occurs in @p hay, or NULL. */
static const char *sb_find(const char *hay, size_t hlen, const char *needle,
			   size_t nlen)
{
	const char *p = hay, *end = hay + hlen;

	while ((size_t)(end - p) >= nlen) {
		p = memchr(p, needle[0], (size_t)(end - p) - nlen + 1);
		if (!p)
			return NULL;
		if (!memcmp(p, needle, nlen))
			return p;
		p++;
	}
	return NULL;
}

/**
 * A parameter of a header value, e.g. boundary=... or name="...", into
 * @p out. @returns 0, or -1 when absent or too long.
 */
static int sb_param(const char *value, size_t vlen, const char *name,
		    char *out, size_t out_size)
{
	size_t nlen = strlen(name), i = 0, n;
	const char *p, *end = value + vlen, *stop;

	while (i < vlen) {
		p = value + i;
		if ((p == value || p[-1] == ';' || p[-1] == ' ') &&
		    (size_t)(end - p) > nlen && !strncasecmp(p, name, nlen) &&
		    p[nlen] == '=') {
			p += nlen + 1;
			if (p < end && *p == '"') {
				p++;
				stop = memchr(p, '"', (size_t)(end - p));
				if (!stop)
					return -1;
			} else {
				for (stop = p; stop < end && *stop != ';' &&
					       *stop != ' '; stop++)
					;
			}
			n = (size_t)(stop - p);
			if (n >= out_size)
				return -1;
			memcpy(out, p, n);
			out[n] = '\0';
			return 0;
		}
		i++;
	}
	return -1;
}

/** One part of a multipart/form-data body. */
struct sb_part {
	char name[64];
	char filename[256];
	const char *data;
	size_t len;
};

/**
 * @brief Find the "purpose" and "file" parts of a multipart/form-data
 * body (RFC 7578): parts between "--BOUNDARY" lines, each headers, a
 * blank line, then its bytes up to CRLF "--BOUNDARY".
 * @returns 0, or -1 with a client-facing reason in @p err.
 */
static int sb_multipart(const char *ctype, const char *body, size_t len,
			struct sb_part *purpose, struct sb_part *file,
			char *err, size_t errlen)
{
	char boundary[128], delim[136], disp[512];
	const char *p, *end = body + len, *head_end, *next, *h, *eol;
	size_t dlen;
	struct sb_part part;

	if (!ctype || strncasecmp(ctype, "multipart/form-data", 19) ||
	    sb_param(ctype, strlen(ctype), "boundary", boundary,
		     sizeof(boundary)) || !boundary[0]) {
		snprintf(err, errlen,
			 "Expected a multipart/form-data body with a "
			 "boundary.");
		return -1;
	}
	dlen = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	/* The first delimiter may open the body without its CRLF. */
	if (len >= dlen - 2 && !memcmp(body, delim + 2, dlen - 2))
		p = body + dlen - 2;
	else if ((p = sb_find(body, len, delim, dlen)))
		p += dlen;
	else
		goto bad;
	for (;;) {
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return 0;	/* the closing delimiter */
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
			goto bad;
		p += 2;
		head_end = sb_find(p, (size_t)(end - p), "\r\n\r\n", 4);
		if (!head_end)
			goto bad;
		memset(&part, 0, sizeof(part));
		disp[0] = '\0';
		for (h = p; h < head_end; h = eol + 2) {
			eol = sb_find(h, (size_t)(head_end + 2 - h), "\r\n", 2);
			if (!strncasecmp(h, "Content-Disposition:", 20) &&
			    (size_t)(eol - h) < sizeof(disp)) {
				memcpy(disp, h, (size_t)(eol - h));
				disp[eol - h] = '\0';
			}
		}
		if (sb_param(disp, strlen(disp), "name", part.name,
			     sizeof(part.name)))
			goto bad;
		(void)sb_param(disp, strlen(disp), "filename", part.filename,
			       sizeof(part.filename));
		part.data = head_end + 4;
		next = sb_find(part.data, (size_t)(end - part.data), delim,
			       dlen);
		if (!next)
			goto bad;
		part.len = (size_t)(next - part.data);
		if (!strcmp(part.name, "purpose"))
			*purpose = part;
		else if (!strcmp(part.name, "file"))
			*file = part;
		p = next + dlen;
	}
bad:
	snprintf(err, errlen, "Could not parse the multipart/form-data body.");
	return -1;
}

/** POST /v1/files */
static int sb_upload(struct sim_batch *b, const char *ctype, const char *body,
		     size_t len, struct sim_batch_reply *ret)
{
	struct sb_part purpose = { .data = NULL }, file = { .data = NULL };
	struct sb_file *f;
	char err[256];
	char *data;

	if (sb_multipart(ctype, body, len, &purpose, &file, err, sizeof(err)))
		return sb_reply_error(ret, 400, err, NULL, NULL);
	if (!purpose.data)
		return sb_reply_error(ret, 400,
				      "'purpose' is a required property",
				      "purpose", NULL);
	if (!file.data)
		return sb_reply_error(ret, 400, "'file' is a required property",
				      "file", NULL);
	if (purpose.len != 5 || memcmp(purpose.data, "batch", 5))
		return sb_reply_error(ret, 400,
				      "llmsim stores files for purpose "
				      "'batch' only.",
				      "purpose", NULL);
	if (file.len > SIM_BATCH_FILE_MAX)
		return sb_reply_error(ret, 400,
				      "File is larger than 200 MB, the "
				      "batch input limit.",
				      "file", "file_too_large");
	if (b->stats.files >= SB_FILES_MAX ||
	    b->stats.file_bytes + file.len > SB_STORE_MAX)
		return sb_reply_error(ret, 400,
				      "llmsim's file storage is full "
				      "(10000 files, 1 GiB): delete some.",
				      "file", "storage_limit");
	data = malloc(file.len + 1);
	if (!data)
		return -ENOMEM;
	memcpy(data, file.data, file.len);
	data[file.len] = '\0';
	f = sb_file_add(b, file.filename[0] ? file.filename : "upload.jsonl",
			"batch", data, file.len);
	if (!f)
		return -ENOMEM;
	return sb_reply_json(ret, 200, sb_file_json(f));
}

static int sb_no_file(struct sim_batch_reply *ret, const char *id)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "No such File object: %.64s", id);
	return sb_reply_error(ret, 404, msg, "id", NULL);
}

/** GET /v1/files/ID, GET /v1/files/ID/content, DELETE /v1/files/ID */
static int sb_file_op(struct sim_batch *b, const char *method, const char *id,
		      bool content, struct sim_batch_reply *ret)
{
	struct sb_file **pp, *f;
	struct json_object *o;

	for (pp = &b->files; *pp && strcmp((*pp)->id, id); pp = &(*pp)->next)
		;
	f = *pp;
	if (!f)
		return sb_no_file(ret, id);
	if (!strcmp(method, "GET"))
		return content ? sb_reply_text(ret, 200, f->data, f->len,
					       "application/octet-stream")
			       : sb_reply_json(ret, 200, sb_file_json(f));
	o = json_object_new_object();
	if (!o || !sb_add_str(o, "id", f->id) ||
	    !sb_add_str(o, "object", "file") ||
	    !sim_add(o, "deleted", json_object_new_boolean(1))) {
		json_object_put(o);
		return -ENOMEM;
	}
	*pp = f->next;
	b->stats.files--;
	b->stats.file_bytes -= f->len;
	sb_file_free(f);
	return sb_reply_json(ret, 200, o);
}

/* ---- batches ---------------------------------------------------------- */

static struct sb_batch *sb_batch_find(struct sim_batch *b, const char *id)
{
	struct sb_batch *bt;

	for (bt = b->batches; bt; bt = bt->next)
		if (!strcmp(bt->id, id))
			return bt;
	return NULL;
}

static void sb_lines_free(struct sb_batch *bt)
{
	size_t i;

	for (i = 0; bt->lines && i < bt->n; i++) {
		free(bt->lines[i].custom_id);
		free(bt->lines[i].body);
	}
	free(bt->lines);
	bt->lines = NULL;
}

static void sb_batch_free(struct sb_batch *bt)
{
	sb_lines_free(bt);
	json_object_put(bt->metadata);
	json_object_put(bt->errors);
	free(bt);
}

static struct json_object *sb_batch_json(const struct sb_batch *bt)
{
	struct json_object *o = json_object_new_object(), *sub, *det;

	if (!o)
		return NULL;
	if (!sb_add_str(o, "id", bt->id) || !sb_add_str(o, "object", "batch") ||
	    !sb_add_str(o, "endpoint", SB_ENDPOINT) ||
	    !sim_add_null(o, "model") ||
	    !(bt->errors ? sim_add(o, "errors", json_object_get(bt->errors))
			 : sim_add_null(o, "errors")) ||
	    !sb_add_str(o, "input_file_id", bt->input_file_id) ||
	    !sb_add_str(o, "completion_window", "24h") ||
	    !sb_add_str(o, "status", sb_status_names[bt->status]) ||
	    !sb_add_str_null(o, "output_file_id", bt->output_file_id) ||
	    !sb_add_str_null(o, "error_file_id", bt->error_file_id) ||
	    !sb_add_int(o, "created_at", bt->created_at) ||
	    !sb_add_time(o, "in_progress_at", bt->in_progress_at) ||
	    !sb_add_time(o, "expires_at", bt->expires_at) ||
	    !sb_add_time(o, "finalizing_at", bt->finalizing_at) ||
	    !sb_add_time(o, "completed_at", bt->completed_at) ||
	    !sb_add_time(o, "failed_at", bt->failed_at) ||
	    !sb_add_time(o, "expired_at", bt->expired_at) ||
	    !sb_add_time(o, "cancelling_at", bt->cancelling_at) ||
	    !sb_add_time(o, "cancelled_at", bt->cancelled_at))
		goto oom;
	sub = sb_add_obj(o, "request_counts");
	if (!sub || !sb_add_int(sub, "total", (int64_t)bt->n) ||
	    !sb_add_int(sub, "completed", (int64_t)bt->completed) ||
	    !sb_add_int(sub, "failed", (int64_t)bt->failed))
		goto oom;
	sub = sb_add_obj(o, "usage");
	if (!sub || !sb_add_int(sub, "input_tokens", bt->in_tok))
		goto oom;
	det = sb_add_obj(sub, "input_tokens_details");
	if (!det || !sb_add_int(det, "cached_tokens", bt->cached_tok) ||
	    !sb_add_int(sub, "output_tokens", bt->out_tok))
		goto oom;
	det = sb_add_obj(sub, "output_tokens_details");
	if (!det || !sb_add_int(det, "reasoning_tokens", bt->reasoning_tok) ||
	    !sb_add_int(sub, "total_tokens", bt->in_tok + bt->out_tok))
		goto oom;
	if (!(bt->metadata ? sim_add(o, "metadata",
				    json_object_get(bt->metadata))
			   : sim_add_null(o, "metadata")))
		goto oom;
	return o;
oom:
	json_object_put(o);
	return NULL;
}

/** An integer member of @p o (through one sub-object when @p sub). */
static int64_t sb_usage(struct json_object *usage, const char *sub,
			const char *key)
{
	struct json_object *v;

	if (sub && !json_object_object_get_ex(usage, sub, &usage))
		return 0;
	if (!json_object_object_get_ex(usage, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_int64(v);
}

/** Print @p o as one JSONL line; takes @p o. @returns false on failure. */
static bool sb_put_line(FILE *f, struct json_object *o)
{
	const char *s;
	bool ok;

	if (!o)
		return false;
	s = json_object_to_json_string_ext(o, SB_JSON_FLAGS);
	ok = s && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
	json_object_put(o);
	return ok;
}

/** A line's frame: {id, custom_id, response, error}, the last two unset. */
static struct json_object *sb_out_line(struct sim_batch *b,
				       const struct sb_line *l)
{
	struct json_object *o = json_object_new_object();
	char id[SB_ID_LEN];

	snprintf(id, sizeof(id), "batch_req_llmsim%016" PRIx64, ++b->seq);
	if (o && sb_add_str(o, "id", id) &&
	    sb_add_str(o, "custom_id", l->custom_id))
		return o;
	json_object_put(o);
	return NULL;
}

/** An error-file line for a request that got no HTTP answer. */
static bool sb_put_failed(struct sim_batch *b, FILE *f,
			  const struct sb_line *l, const char *code,
			  const char *message)
{
	struct json_object *o = sb_out_line(b, l), *e;

	if (!o || !sim_add_null(o, "response") ||
	    !(e = sb_add_obj(o, "error")) || !sb_add_str(e, "code", code) ||
	    !sb_add_str(e, "message", message)) {
		json_object_put(o);
		return false;
	}
	return sb_put_line(f, o);
}

/**
 * @brief Answer line @p l and write it to @p out (a 2xx answer) or
 * @p err (the rest).
 * @returns 0, or -ENOMEM.
 */
static int sb_answer_line(struct sim_batch *b, struct sb_batch *bt,
			  const struct sb_line *l, FILE *out, FILE *err)
{
	struct sim_batch_answer a = { 0 };
	struct json_object *o, *resp, *body, *usage;
	char rid[40];
	bool ok;

	if (b->opt.answer(b->opt.answer_cls, l->body, strlen(l->body), &a))
		return -ENOMEM;
	b->stats.batch_requests++;
	if (!a.status) {
		bt->failed++;
		return sb_put_failed(b, err, l, "request_timeout",
				     "The request timed out (llmsim's "
				     "timeout fault).")
			       ? 0 : -ENOMEM;
	}
	/* A body that is not JSON (the malformed fault) goes as a string. */
	body = sb_parse(a.body, a.len);
	if (!body)
		body = json_object_new_string_len(a.body, (int)a.len);
	free(a.body);
	if (!body)
		return -ENOMEM;
	if (a.status / 100 == 2 &&
	    json_object_object_get_ex(body, "usage", &usage)) {
		bt->in_tok += sb_usage(usage, NULL, "prompt_tokens");
		bt->out_tok += sb_usage(usage, NULL, "completion_tokens");
		bt->cached_tok += sb_usage(usage, "prompt_tokens_details",
					   "cached_tokens");
		bt->reasoning_tok += sb_usage(usage,
					      "completion_tokens_details",
					      "reasoning_tokens");
		b->stats.batch_tokens +=
			(uint64_t)sb_usage(usage, NULL, "total_tokens");
	}
	snprintf(rid, sizeof(rid), "req_llmsim%016" PRIx64, a.seq);
	o = sb_out_line(b, l);
	resp = o ? sb_add_obj(o, "response") : NULL;
	if (!resp || !sb_add_int(resp, "status_code", a.status) ||
	    !sb_add_str(resp, "request_id", rid)) {
		json_object_put(body);
		json_object_put(o);
		return -ENOMEM;
	}
	/* sim_add() releases the body when it fails */
	if (!sim_add(resp, "body", body) || !sim_add_null(o, "error")) {
		json_object_put(o);
		return -ENOMEM;
	}
	if (a.status / 100 == 2)
		bt->completed++;
	else
		bt->failed++;
	ok = sb_put_line(a.status / 100 == 2 ? out : err, o);
	return ok ? 0 : -ENOMEM;
}

/** Store a finished stream as a batch_output file; "" id when empty. */
static int sb_store_output(struct sim_batch *b, const struct sb_batch *bt,
			   const char *kind, char *data, size_t len,
			   char id[SB_ID_LEN])
{
	char name[SB_ID_LEN + 16];
	struct sb_file *f;

	id[0] = '\0';
	if (!len) {
		free(data);
		return 0;
	}
	snprintf(name, sizeof(name), "%s_%s.jsonl", bt->id, kind);
	f = sb_file_add(b, name, "batch_output", data, len);
	if (!f)
		return -ENOMEM;
	snprintf(id, SB_ID_LEN, "%s", f->id);
	return 0;
}

/**
 * @brief Finish @p bt: answer its first @p answered lines, write the
 * others to the error file with @p code, store both files and set
 * @p final.
 * @returns 0, or -ENOMEM (the batch is then left as it was, but for the
 * lines answered, which count).
 */
static int sb_finish(struct sim_batch *b, struct sb_batch *bt, size_t answered,
		     enum sb_status final, const char *code,
		     const char *message)
{
	char *out_text = NULL, *err_text = NULL;
	size_t out_len = 0, err_len = 0, i;
	FILE *out, *err = NULL;
	int64_t now = (int64_t)time(NULL);
	int rc = -ENOMEM;

	out = open_memstream(&out_text, &out_len);
	if (!out || !(err = open_memstream(&err_text, &err_len)))
		goto out;
	bt->completed = bt->failed = 0;
	for (i = 0; i < bt->n; i++) {
		if (i < answered)
			rc = sb_answer_line(b, bt, &bt->lines[i], out, err);
		else
			rc = sb_put_failed(b, err, &bt->lines[i], code, message)
				     ? (bt->failed++, 0) : -ENOMEM;
		if (rc)
			goto out;
	}
	rc = -ENOMEM;
	if (fclose(out) | fclose(err)) {
		out = err = NULL;
		goto out;
	}
	out = err = NULL;
	if (sb_store_output(b, bt, "output", out_text, out_len,
			    bt->output_file_id)) {
		out_text = NULL;
		free(err_text);
		err_text = NULL;
		goto out;
	}
	out_text = NULL;
	rc = sb_store_output(b, bt, "error", err_text, err_len,
			     bt->error_file_id);
	err_text = NULL;
	if (rc)
		goto out;
	sb_lines_free(bt);
	bt->status = final;
	if (final == SB_CANCELLED) {
		bt->cancelled_at = now;
	} else {
		bt->finalizing_at = now;
		if (final == SB_EXPIRED)
			bt->expired_at = now;
		else
			bt->completed_at = now;
	}
out:
	if (out)
		fclose(out);
	if (err)
		fclose(err);
	free(out_text);
	free(err_text);
	return rc;
}

/** Bring @p bt up to date: finish it once its time is up. */
static int sb_advance(struct sim_batch *b, struct sb_batch *bt)
{
	if (bt->status == SB_CANCELLING)
		return sb_finish(b, bt, 0, SB_CANCELLED, "batch_cancelled",
				 "The batch was cancelled before this "
				 "request was executed.");
	if (bt->status != SB_IN_PROGRESS || sb_now_ns() < bt->due_ns ||
	    (b->opt.hold_file && access(b->opt.hold_file, F_OK) == 0))
		return 0;
	if (bt->expire)
		return sb_finish(b, bt, bt->n / 2, SB_EXPIRED, "batch_expired",
				 "This request could not be executed "
				 "before the completion window expired.");
	return sb_finish(b, bt, bt->n, SB_COMPLETED, NULL, NULL);
}

/** Note a validation error of input line @p line (1-based). */
static bool sb_line_error(struct sb_batch *bt, size_t line, const char *code,
			  const char *message)
{
	struct json_object *data, *e;

	if (!bt->errors) {
		bt->errors = json_object_new_object();
		if (!bt->errors || !sb_add_str(bt->errors, "object", "list") ||
		    !sim_add(bt->errors, "data", json_object_new_array()))
			return false;
	}
	json_object_object_get_ex(bt->errors, "data", &data);
	if (json_object_array_length(data) >= SB_ERRORS_MAX)
		return true;
	e = json_object_new_object();
	if (!e || json_object_array_add(data, e)) {
		json_object_put(e);
		return false;
	}
	return sb_add_str(e, "code", code) &&
	       sb_add_str(e, "message", message) &&
	       sim_add_null(e, "param") &&
	       (line ? sb_add_int(e, "line", (int64_t)line)
		     : sim_add_null(e, "line"));
}

static int sb_cmp_line(const void *a, const void *b)
{
	const struct sb_line *const *x = a, *const *y = b;

	return strcmp((*x)->custom_id, (*y)->custom_id);
}

/**
 * @brief Read the input file's lines into @p bt, noting what is wrong
 * with them in bt->errors.
 * @returns 0, or -ENOMEM.
 */
static int sb_read_lines(struct sb_batch *bt, const struct sb_file *f)
{
	const char *p = f->data, *end = f->data + f->len, *eol, *s;
	struct json_object *o, *body;
	struct sb_line *l, **sorted;
	size_t cap = 0, lineno = 0, len, i;
	const char *text;
	char msg[160];

	for (; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		lineno++;
		len = (size_t)(eol - p);
		if (len && p[len - 1] == '\r')
			len--;
		if (!len)
			continue;
		if (bt->n == SB_LINES_MAX) {
			snprintf(msg, sizeof(msg),
				 "A batch holds at most %u requests.",
				 SB_LINES_MAX);
			return sb_line_error(bt, lineno, "too_many_requests",
					     msg) ? 0 : -ENOMEM;
		}
		o = sb_parse(p, len);
		if (!o || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			if (!sb_line_error(bt, lineno, "invalid_json_line",
					   "This line is not a JSON object."))
				return -ENOMEM;
			continue;
		}
		s = sb_get_str(o, "custom_id");
		if (!s || !*s || !sb_get_str(o, "method") ||
		    strcmp(sb_get_str(o, "method"), "POST") ||
		    !sb_get_str(o, "url") ||
		    strcmp(sb_get_str(o, "url"), SB_ENDPOINT) ||
		    !json_object_object_get_ex(o, "body", &body) ||
		    !json_object_is_type(body, json_type_object)) {
			json_object_put(o);
			if (!sb_line_error(bt, lineno, "invalid_request",
					   "A line needs custom_id, method "
					   "\"POST\", url \"" SB_ENDPOINT
					   "\" and a body object."))
				return -ENOMEM;
			continue;
		}
		if (bt->n == cap) {
			cap = cap ? cap * 2 : 64;
			l = realloc(bt->lines, cap * sizeof(*l));
			if (!l) {
				json_object_put(o);
				return -ENOMEM;
			}
			bt->lines = l;
		}
		l = &bt->lines[bt->n];
		text = json_object_to_json_string_ext(body, SB_JSON_FLAGS);
		l->custom_id = strdup(s);
		l->body = text ? strdup(text) : NULL;
		bt->n++;
		json_object_put(o);
		if (!l->custom_id || !l->body)
			return -ENOMEM;
	}
	if (!bt->n && !bt->errors) {
		if (!sb_line_error(bt, 0, "empty_file",
				   "The input file holds no requests."))
			return -ENOMEM;
		return 0;
	}
	/* custom_id must be unique within the batch */
	sorted = malloc((bt->n ? bt->n : 1) * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	for (i = 0; i < bt->n; i++)
		sorted[i] = &bt->lines[i];
	qsort(sorted, bt->n, sizeof(*sorted), sb_cmp_line);
	for (i = 1; i < bt->n; i++) {
		if (strcmp(sorted[i - 1]->custom_id, sorted[i]->custom_id))
			continue;
		snprintf(msg, sizeof(msg), "Duplicate custom_id '%.64s'.",
			 sorted[i]->custom_id);
		if (!sb_line_error(bt, 0, "duplicate_custom_id", msg)) {
			free(sorted);
			return -ENOMEM;
		}
		break;
	}
	free(sorted);
	return 0;
}

/** Check metadata: an object of at most 16 string values. */
static bool sb_metadata_ok(struct json_object *m)
{
	unsigned n = 0;

	if (json_object_is_type(m, json_type_null))
		return true;
	if (!json_object_is_type(m, json_type_object))
		return false;
	json_object_object_foreach(m, key, val) {
		if (++n > SB_META_MAX || strlen(key) > 64 ||
		    !json_object_is_type(val, json_type_string) ||
		    json_object_get_string_len(val) > 512)
			return false;
	}
	return true;
}

/** POST /v1/batches */
static int sb_create(struct sim_batch *b, const char *body, size_t len,
		     struct sim_batch_reply *ret)
{
	struct json_object *req = sb_parse(body, len), *meta = NULL;
	const char *file_id, *endpoint, *window;
	struct sb_batch *bt = NULL;
	struct sb_file *f;
	struct json_object *o;
	char msg[160];
	int64_t now = (int64_t)time(NULL);
	int rc;

	if (!req || !json_object_is_type(req, json_type_object)) {
		rc = sb_reply_error(ret, 400,
				    "We could not parse the JSON body of "
				    "your request.",
				    NULL, NULL);
		goto out;
	}
	file_id = sb_get_str(req, "input_file_id");
	endpoint = sb_get_str(req, "endpoint");
	window = sb_get_str(req, "completion_window");
	if (!file_id || !endpoint || !window) {
		rc = sb_reply_error(ret, 400,
				    "input_file_id, endpoint and "
				    "completion_window are required.",
				    !file_id    ? "input_file_id"
				    : !endpoint ? "endpoint"
						: "completion_window",
				    NULL);
		goto out;
	}
	if (strcmp(endpoint, SB_ENDPOINT)) {
		rc = sb_reply_error(ret, 400,
				    "llmsim batches only " SB_ENDPOINT ".",
				    "endpoint", "invalid_value");
		goto out;
	}
	if (strcmp(window, "24h")) {
		rc = sb_reply_error(ret, 400,
				    "completion_window must be '24h'.",
				    "completion_window", "invalid_value");
		goto out;
	}
	if (json_object_object_get_ex(req, "metadata", &meta) &&
	    !sb_metadata_ok(meta)) {
		rc = sb_reply_error(ret, 400,
				    "metadata: at most 16 pairs, keys up "
				    "to 64 characters, string values up to "
				    "512.",
				    "metadata", "invalid_value");
		goto out;
	}
	f = sb_file_find(b, file_id);
	if (!f || strcmp(f->purpose, "batch")) {
		snprintf(msg, sizeof(msg),
			 "No batch input file with id '%.64s'.", file_id);
		rc = sb_reply_error(ret, 400, msg, "input_file_id",
				    "file_not_found");
		goto out;
	}
	rc = -ENOMEM;
	bt = calloc(1, sizeof(*bt));
	if (!bt)
		goto out;
	snprintf(bt->id, sizeof(bt->id), "batch_llmsim%016" PRIx64, ++b->seq);
	snprintf(bt->input_file_id, sizeof(bt->input_file_id), "%s", f->id);
	if (meta && !json_object_is_type(meta, json_type_null))
		bt->metadata = json_object_get(meta);
	bt->created_at = now;
	bt->expires_at = now + SB_WINDOW_S;
	if (sb_read_lines(bt, f))
		goto out;
	bt->status = SB_VALIDATING;
	o = sb_batch_json(bt);	/* the answer: still validating */
	if (!o)
		goto out;
	if (bt->errors) {
		sb_lines_free(bt);
		bt->status = SB_FAILED;
		bt->failed_at = now;
	} else {
		bt->status = SB_IN_PROGRESS;
		bt->in_progress_at = now;
		bt->due_ns = sb_now_ns() + b->opt.delay_ms * 1000000ull;
		if (b->expire_left) {
			b->expire_left--;
			bt->expire = true;
		}
	}
	bt->next = b->batches;
	b->batches = bt;
	bt = NULL;
	b->stats.batches_created++;
	rc = sb_reply_json(ret, 200, o);
out:
	if (bt)
		sb_batch_free(bt);
	json_object_put(req);
	return rc;
}

/** GET /v1/batches/ID, POST /v1/batches/ID/cancel */
static int sb_batch_op(struct sim_batch *b, const char *id, bool cancel,
		       struct sim_batch_reply *ret)
{
	struct sb_batch *bt = sb_batch_find(b, id);
	struct json_object *o;
	char msg[160];

	if (!bt) {
		snprintf(msg, sizeof(msg), "No batch found with id '%.64s'.",
			 id);
		return sb_reply_error(ret, 404, msg, NULL, NULL);
	}
	if (sb_advance(b, bt))
		return -ENOMEM;
	if (!cancel)
		return sb_reply_json(ret, 200, sb_batch_json(bt));
	if (bt->status != SB_IN_PROGRESS && bt->status != SB_CANCELLED) {
		snprintf(msg, sizeof(msg),
			 "Cannot cancel a batch with status '%s'.",
			 sb_status_names[bt->status]);
		return sb_reply_error(ret, 400, msg, NULL, NULL);
	}
	if (bt->status == SB_IN_PROGRESS) {
		bt->status = SB_CANCELLING;
		bt->cancelling_at = (int64_t)time(NULL);
	}
	o = sb_batch_json(bt);	/* the answer says "cancelling" */
	if (!o)
		return -ENOMEM;
	if (sb_advance(b, bt)) {
		json_object_put(o);
		return -ENOMEM;
	}
	return sb_reply_json(ret, 200, o);
}

/* ---- the API ---------------------------------------------------------- */

/** The path without its "/v1" prefix. */
static const char *sb_path(const char *url)
{
	return strncmp(url, "/v1/", 4) ? url : url + 3;
}

bool sim_batch_route(const char *url)
{
	const char *p = sb_path(url);

	return !strcmp(p, "/files") || !strncmp(p, "/files/", 7) ||
	       !strcmp(p, "/batches") || !strncmp(p, "/batches/", 9);
}

/**
 * Split "ID" or "ID/SUFFIX" after @p prefix; @returns false when the id
 * is empty, too long or followed by anything but "/" @p suffix.
 */
static bool sb_split(const char *p, char id[SB_ID_LEN], const char *suffix,
		     bool *ret_suffix)
{
	const char *slash = strchr(p, '/');
	size_t n = slash ? (size_t)(slash - p) : strlen(p);

	*ret_suffix = false;
	if (!n || n >= SB_ID_LEN)
		return false;
	memcpy(id, p, n);
	id[n] = '\0';
	if (!slash)
		return true;
	*ret_suffix = !strcmp(slash + 1, suffix);
	return *ret_suffix;
}

static int sb_bad_method(struct sim_batch_reply *ret, const char *method,
			 const char *url)
{
	char msg[320];

	snprintf(msg, sizeof(msg), "Method %.32s not allowed on %.256s.",
		 method, url);
	return sb_reply_error(ret, 405, msg, NULL, NULL);
}

int sim_batch_handle(struct sim_batch *b, const char *method, const char *url,
		     const char *content_type, const char *body, size_t len,
		     struct sim_batch_reply *ret)
{
	const char *p = sb_path(url);
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
	bool del = !strcmp(method, "DELETE"), suffix;
	char id[SB_ID_LEN], msg[320];
	int rc;

	memset(ret, 0, sizeof(*ret));
	pthread_mutex_lock(&b->lock);
	if (!strcmp(p, "/files")) {
		rc = post ? sb_upload(b, content_type, body, len, ret)
			  : sb_bad_method(ret, method, url);
	} else if (!strcmp(p, "/batches")) {
		rc = post ? sb_create(b, body, len, ret)
			  : sb_bad_method(ret, method, url);
	} else if (!strncmp(p, "/files/", 7) &&
		   sb_split(p + 7, id, "content", &suffix)) {
		rc = (suffix ? get : get || del)
			     ? sb_file_op(b, method, id, suffix, ret)
			     : sb_bad_method(ret, method, url);
	} else if (!strncmp(p, "/batches/", 9) &&
		   sb_split(p + 9, id, "cancel", &suffix)) {
		rc = (suffix ? post : get) ? sb_batch_op(b, id, suffix, ret)
					   : sb_bad_method(ret, method, url);
	} else {
		snprintf(msg, sizeof(msg), "Invalid URL (%.32s %.256s)", method,
			 url);
		rc = sb_reply_error(ret, 404, msg, NULL, "unknown_url");
	}
	pthread_mutex_unlock(&b->lock);
	return rc;
}

int sim_batch_new(const struct sim_batch_opts *opts, struct sim_batch **ret)
{
	struct sim_batch *b = calloc(1, sizeof(*b));
	int r;

	if (!b)
		return -ENOMEM;
	r = pthread_mutex_init(&b->lock, NULL);
	if (r) {
		free(b);
		return -r;
	}
	b->opt = *opts;
	b->expire_left = opts->expire;
	*ret = b;
	return 0;
}

void sim_batch_free(struct sim_batch *b)
{
	struct sb_file *f;
	struct sb_batch *bt;

	if (!b)
		return;
	while ((f = b->files)) {
		b->files = f->next;
		sb_file_free(f);
	}
	while ((bt = b->batches)) {
		b->batches = bt->next;
		sb_batch_free(bt);
	}
	pthread_mutex_destroy(&b->lock);
	free(b);
}

void sim_batch_stats(struct sim_batch *b, struct sim_batch_stats *ret)
{
	pthread_mutex_lock(&b->lock);
	*ret = b->stats;
	pthread_mutex_unlock(&b->lock);
}

void sim_batch_stats_reset(struct sim_batch *b)
{
	pthread_mutex_lock(&b->lock);
	b->stats.batches_created = 0;
	b->stats.batch_requests = 0;
	b->stats.batch_tokens = 0;
	pthread_mutex_unlock(&b->lock);
}
