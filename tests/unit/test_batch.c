/*
 * Unit tests for common/batch: the Batch API client against real llmsim
 * processes (tools/llmsim), started here on ephemeral ports (each writes
 * its port to a file, as tests/lib/llmsim.py reads it) and stopped with
 * SIGTERM at the end:
 *
 *  - "main": --batch-delay-ms 200 and an answers file scripting a 503
 *    for texts holding SCRIPTED-503: the round trip, the error paths;
 *  - "expire": --batch-expire 1: the first batch expires;
 *  - "slow": --batch-delay-ms 600000 and --api-key-file: a batch that is
 *    in progress until cancelled, and a key that is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "batch.h"
#include "http.h"
#include "simproc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY "sk-batch-test-Key-4f2a9c"
#define WRONG_KEY "sk-batch-test-WRONG-77e1b0"
#define LIMIT (16u << 20)

enum { SIM_MAIN, SIM_EXPIRE, SIM_SLOW, SIM_COUNT };

static struct sim sims[SIM_COUNT];
static char dir[] = "/tmp/test_batch.XXXXXX";

static void path_in(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	path_in(path, sizeof(path), name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int group_setup(void **state)
{
	char answers[256], key[256];

	(void)state;
	if (!mkdtemp(dir) || http_global_init())
		return -1;
	write_file("answers.jsonl",
		   "{\"match\": \"SCRIPTED-503\", \"status\": 503, "
		   "\"content\": \"try later\", \"code\": \"busy\"}\n");
	write_file("key", KEY "\n");
	path_in(answers, sizeof(answers), "answers.jsonl");
	path_in(key, sizeof(key), "key");
	sim_start(&sims[SIM_MAIN], dir, "main", "--batch-delay-ms", "200",
		  "--answers", answers, (char *)NULL);
	sim_start(&sims[SIM_EXPIRE], dir, "expire", "--batch-expire", "1",
		  (char *)NULL);
	sim_start(&sims[SIM_SLOW], dir, "slow", "--batch-delay-ms", "600000",
		  "--api-key-file", key, (char *)NULL);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[300];
	int i;

	(void)state;
	for (i = 0; i < SIM_COUNT; i++)
		sim_stop(&sims[i]);
	http_global_cleanup();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct batch_client *client_for(unsigned port, const char *key,
				       size_t limit)
{
	char url[64], err[256];
	struct batch_client_opts o = {
		.base_url = url,
		.api_key = key,
		.timeout_ms = 20000,
		.connect_timeout_ms = 5000,
		.max_file_bytes = limit,
	};
	struct batch_client *c;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/", port);
	c = batch_client_new(&o, err, sizeof(err));
	if (!c)
		fail_msg("batch_client_new: %s", err);
	return c;
}

/* An input line (batch_request_line()) asking about text. */
static char *line(const char *id, const char *text)
{
	char body[512];
	size_t len;
	char *out;

	snprintf(body, sizeof(body),
		 "{\"model\":\"gpt-4o-mini\",\"response_format\":{\"type\":"
		 "\"json_object\"},\"messages\":[{\"role\":\"user\","
		 "\"content\":\"%s\"}]}",
		 text);
	out = batch_request_line(id, body, strlen(body), &len);
	assert_non_null(out);
	assert_int_equal(strlen(out), len);
	return out;
}

/* A JSONL of n lines: "r0".."r{n-1}", "Person N is a 2N-year-old cook";
 * with busy, the last one's text asks for the scripted 503. */
static char *people(size_t n, bool busy)
{
	char id[32], text[96], *l;
	char *out = NULL;
	size_t size = 0, i;
	FILE *f = open_memstream(&out, &size);

	assert_non_null(f);
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "r%zu", i);
		if (busy && i == n - 1)
			snprintf(text, sizeof(text), "SCRIPTED-503 please");
		else
			snprintf(text, sizeof(text),
				 "Person %zu is a %zu-year-old cook", i,
				 20 + i);
		l = line(id, text);
		fputs(l, f);
		free(l);
	}
	assert_int_equal(fclose(f), 0);
	return out;
}

/* Retrieve until the batch ends (20 s at most). */
static void wait_final(struct batch_client *c, const char *id,
		       struct batch_info *info)
{
	char err[512];
	int i;

	for (i = 0; i < 400; i++) {
		if (batch_retrieve(c, id, info, err, sizeof(err)) != BATCH_OK)
			fail_msg("retrieve: %s", err);
		if (batch_status_final(info->status))
			return;
		sleep_ms(50);
	}
	fail_msg("batch %s still %s", id, batch_status_name(info->status));
}

/* Upload a file, create, wait; returns the final batch. */
static void run_batch(struct batch_client *c, const char *jsonl,
		      struct batch_info *info)
{
	char err[512], file[BATCH_ID_MAX];

	if (batch_file_upload(c, "in.jsonl", jsonl, strlen(jsonl), file,
			      sizeof(file), err, sizeof(err)) != BATCH_OK)
		fail_msg("upload: %s", err);
	if (batch_create(c, file, NULL, 0, info, err, sizeof(err)) != BATCH_OK)
		fail_msg("create: %s", err);
	wait_final(c, info->id, info);
}

/* Each line of a downloaded file, parsed (at most max). */
static size_t outputs(const char *data, struct batch_output *out,
		      size_t max)
{
	const char *p = data, *eol;
	char err[256];
	size_t n = 0;

	for (; *p; p = eol + 1) {
		eol = strchr(p, '\n');
		assert_non_null(eol);
		assert_true(n < max);
		if (batch_output_parse(p, (size_t)(eol - p), &out[n], err,
				       sizeof(err)))
			fail_msg("output line %zu: %s", n, err);
		n++;
	}
	return n;
}

/* Input lines: custom_id escaped as JSON wants, the body as it is, one
 * line; a body with a line break is refused. */
static void test_request_line(void **state)
{
	const char *body = "{\"model\":\"m\",\"n\":[1,2]}";
	char *l;
	size_t len;

	(void)state;
	l = batch_request_line("texts/0/42 \"q\"", body, strlen(body), &len);
	assert_non_null(l);
	assert_string_equal(l, "{\"custom_id\":\"texts/0/42 \\\"q\\\"\","
			       "\"method\":\"POST\",\"url\":"
			       "\"/v1/chat/completions\",\"body\":"
			       "{\"model\":\"m\",\"n\":[1,2]}}\n");
	assert_int_equal(len, strlen(l));
	free(l);
	assert_null(batch_request_line("x", "{\"a\":\n1}", 8, &len));
	assert_null(batch_request_line("x", "{}\r", 3, &len));
}

/* Output lines: an answer, an error answer, no answer; lines that are
 * not output lines are refused. */
static void test_output_parse(void **state)
{
	static const char *const bad[] = {
		"not json", "[]", "{}", "{\"custom_id\":\"x\"}",
		"{\"custom_id\":\"x\",\"response\":{\"status_code\":\"200\"}}",
		"{\"custom_id\":\"x\",\"response\":{\"status_code\":7}}",
		"{\"custom_id\":\"x\",\"error\":null} trailing",
	};
	const char *ok = "{\"id\":\"r1\",\"custom_id\":\"t/0/1\","
			 "\"response\":{\"status_code\":200,\"request_id\":"
			 "\"q\",\"body\":{\"a\":\"x/y\"}},\"error\":null}";
	const char *none = "{\"custom_id\":\"t/0/2\",\"response\":null,"
			   "\"error\":{\"code\":\"batch_expired\","
			   "\"message\":\"too late\"}}";
	const char *text = "{\"custom_id\":\"t/0/3\",\"response\":"
			   "{\"status_code\":200,\"body\":\"{\\\"cut\"},"
			   "\"error\":null}";
	struct batch_output o;
	char err[256];
	size_t i;

	(void)state;
	assert_int_equal(batch_output_parse(ok, strlen(ok), &o, err,
					    sizeof(err)), 0);
	assert_string_equal(o.custom_id, "t/0/1");
	assert_int_equal(o.status, 200);
	assert_string_equal(o.body, "{\"a\":\"x/y\"}");
	assert_int_equal(o.body_len, strlen(o.body));
	assert_string_equal(o.error_code, "");
	batch_output_clear(&o);
	assert_int_equal(batch_output_parse(none, strlen(none), &o, err,
					    sizeof(err)), 0);
	assert_int_equal(o.status, 0);
	assert_null(o.body);
	assert_string_equal(o.error_code, "batch_expired");
	assert_string_equal(o.error_message, "too late");
	batch_output_clear(&o);
	assert_int_equal(batch_output_parse(text, strlen(text), &o, err,
					    sizeof(err)), 0);
	assert_string_equal(o.body, "{\"cut");
	batch_output_clear(&o);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(batch_output_parse(bad[i], strlen(bad[i]), &o,
						    err, sizeof(err)), -1);
		assert_null(o.custom_id);
		assert_true(err[0] != '\0');
	}
}

/* Upload, create with metadata, poll until completed, download both
 * files, delete: each step checked, the 503 line in the error file. */
static void test_round_trip(void **state)
{
	struct batch_client *c = client_for(sims[SIM_MAIN].port, NULL, LIMIT);
	const char *meta[] = { "source", "texts/0/100-104", "run", "unit" };
	char err[512], file[BATCH_ID_MAX], *data = NULL, want[96];
	char *jsonl = people(5, true);
	struct batch_output out[8];
	struct batch_info info, done;
	size_t len = 0, i;

	(void)state;
	assert_int_equal(batch_file_upload(c, "people.jsonl", jsonl,
					   strlen(jsonl), file, sizeof(file),
					   err, sizeof(err)),
			 BATCH_OK);
	assert_true(strncmp(file, "file-", 5) == 0);
	assert_int_equal(batch_last_status(c), 200);
	assert_int_equal(batch_create(c, file, meta, 2, &info, err,
				      sizeof(err)),
			 BATCH_OK);
	assert_true(strncmp(info.id, "batch_", 6) == 0);
	assert_int_equal(info.status, BATCH_VALIDATING);
	assert_string_equal(info.input_file_id, file);
	assert_int_equal(info.total, 5);
	assert_string_equal(info.output_file_id, "");
	assert_true(info.expires_at == info.created_at + 24 * 3600);
	assert_false(batch_status_final(info.status));
	wait_final(c, info.id, &done);
	assert_int_equal(done.status, BATCH_COMPLETED);
	assert_string_equal(batch_status_name(done.status), "completed");
	assert_string_equal(done.id, info.id);
	assert_int_equal(done.total, 5);
	assert_int_equal(done.completed, 4);
	assert_int_equal(done.failed, 1);
	assert_true(done.input_tokens > 0 && done.output_tokens > 0);
	assert_string_equal(done.errors, "");
	assert_true(done.output_file_id[0] && done.error_file_id[0]);

	assert_int_equal(batch_file_content(c, done.output_file_id, &data,
					    &len, err, sizeof(err)),
			 BATCH_OK);
	assert_int_equal(strlen(data), len);
	assert_int_equal(outputs(data, out, 8), 4);
	for (i = 0; i < 4; i++) {
		snprintf(want, sizeof(want), "r%zu", i);
		assert_string_equal(out[i].custom_id, want);
		assert_int_equal(out[i].status, 200);
		assert_string_equal(out[i].error_code, "");
		snprintf(want, sizeof(want),
			 "\\\"name\\\":\\\"Person %zu\\\",\\\"age\\\":%zu,",
			 i, 20 + i);
		assert_non_null(strstr(out[i].body, want));
		assert_non_null(strstr(out[i].body, "\"chat.completion\""));
		batch_output_clear(&out[i]);
	}
	free(data);
	data = NULL;
	assert_int_equal(batch_file_content(c, done.error_file_id, &data, &len,
					    err, sizeof(err)),
			 BATCH_OK);
	assert_int_equal(outputs(data, out, 8), 1);
	assert_string_equal(out[0].custom_id, "r4");
	assert_int_equal(out[0].status, 503);
	assert_non_null(strstr(out[0].body, "\"message\":\"try later\""));
	batch_output_clear(&out[0]);
	free(data);
	data = NULL;

	/* the input is what was sent */
	assert_int_equal(batch_file_content(c, file, &data, &len, err,
					    sizeof(err)),
			 BATCH_OK);
	assert_int_equal(len, strlen(jsonl));
	assert_memory_equal(data, jsonl, len);
	free(data);
	data = NULL;

	assert_int_equal(batch_file_delete(c, file, err, sizeof(err)),
			 BATCH_OK);
	assert_int_equal(batch_file_content(c, file, &data, &len, err,
					    sizeof(err)),
			 BATCH_ERR_NOT_FOUND);
	assert_null(data);
	assert_int_equal(batch_last_status(c), 404);
	assert_non_null(strstr(err, "GET /files/"));
	assert_non_null(strstr(err, "HTTP 404: No such File object"));
	assert_int_equal(batch_file_delete(c, file, err, sizeof(err)),
			 BATCH_ERR_NOT_FOUND);
	assert_non_null(strstr(err, "DELETE /files/"));
	free(jsonl);
	batch_client_free(c);
}

/* A batch id the API does not know: 404 with its message, on retrieve
 * and on cancel. */
static void test_missing_batch(void **state)
{
	struct batch_client *c = client_for(sims[SIM_MAIN].port, NULL, LIMIT);
	struct batch_info info;
	char err[512];

	(void)state;
	assert_int_equal(batch_retrieve(c, "batch_nope", &info, err,
					sizeof(err)),
			 BATCH_ERR_NOT_FOUND);
	assert_string_equal(err, "GET /batches/batch_nope: HTTP 404: "
				 "No batch found with id 'batch_nope'.");
	assert_int_equal(batch_cancel(c, "batch_nope", &info, err,
				      sizeof(err)),
			 BATCH_ERR_NOT_FOUND);
	assert_non_null(
		strstr(err, "POST /batches/batch_nope/cancel: HTTP 404"));
	batch_client_free(c);
}

/* Ids that are not ids never reach a URL: refused with no call made. */
static void test_bad_ids(void **state)
{
	static const char *const bad[] = { "", "..", "../stats", "a/b",
					   "batch x", "id?x=1", "id#f" };
	struct batch_client *c = client_for(sims[SIM_MAIN].port, NULL, LIMIT);
	struct batch_info info;
	char err[512], *data = NULL, longid[BATCH_ID_MAX + 1];
	size_t i, len;

	(void)state;
	memset(longid, 'a', BATCH_ID_MAX);
	longid[BATCH_ID_MAX] = '\0';
	for (i = 0; i <= sizeof(bad) / sizeof(bad[0]); i++) {
		const char *id = i < sizeof(bad) / sizeof(bad[0]) ? bad[i]
								 : longid;

		assert_int_equal(batch_retrieve(c, id, &info, err,
						sizeof(err)),
				 BATCH_ERR_REFUSED);
		assert_int_equal(batch_last_status(c), 0);
		assert_non_null(strstr(err, "not a batch id"));
		assert_int_equal(batch_cancel(c, id, &info, err, sizeof(err)),
				 BATCH_ERR_REFUSED);
		assert_int_equal(batch_file_content(c, id, &data, &len, err,
						    sizeof(err)),
				 BATCH_ERR_REFUSED);
		assert_int_equal(batch_file_delete(c, id, err, sizeof(err)),
				 BATCH_ERR_REFUSED);
		assert_int_equal(batch_create(c, id, NULL, 0, &info, err,
					      sizeof(err)),
				 BATCH_ERR_REFUSED);
		assert_non_null(strstr(err, "not a file id"));
	}
	assert_null(data);
	batch_client_free(c);
}

/* The API's refusals: a create naming no file (400, with its message);
 * more metadata than the API takes (refused before any call); a file of
 * lines that are not requests makes a failed batch naming the line. */
static void test_refusals(void **state)
{
	struct batch_client *c = client_for(sims[SIM_MAIN].port, NULL, LIMIT);
	const char *meta[34];
	struct batch_info info;
	char err[512];
	int i;

	(void)state;
	assert_int_equal(batch_create(c, "file-nope", NULL, 0, &info, err,
				      sizeof(err)),
			 BATCH_ERR_REFUSED);
	assert_int_equal(batch_last_status(c), 400);
	assert_string_equal(err, "POST /batches: HTTP 400: "
				 "No batch input file with id 'file-nope'.");
	for (i = 0; i < 34; i++)
		meta[i] = i % 2 ? "v" : "k";
	assert_int_equal(batch_create(c, "file-x", meta, 17, &info, err,
				      sizeof(err)),
			 BATCH_ERR_REFUSED);
	assert_int_equal(batch_last_status(c), 0);
	assert_string_equal(err, "at most 16 metadata pairs");

	run_batch(c, "{\"custom_id\": \"x\"}\nnot json\n", &info);
	assert_int_equal(info.status, BATCH_FAILED);
	assert_string_equal(info.errors,
			    "line 1: invalid_request: A line needs custom_id, "
			    "method \"POST\", url \"/v1/chat/completions\" and "
			    "a body object.; line 2: invalid_json_line: This "
			    "line is not a JSON object.");
	assert_string_equal(info.output_file_id, "");
	batch_client_free(c);
}

/* An expiring batch: half its lines answered, the rest in the error
 * file as batch_expired; the next batch completes. */
static void test_expired(void **state)
{
	struct batch_client *c = client_for(sims[SIM_EXPIRE].port, NULL,
					    LIMIT);
	char *jsonl = people(4, false), *data = NULL, err[512], want[16];
	struct batch_output out[4];
	struct batch_info info;
	size_t len, i;

	(void)state;
	run_batch(c, jsonl, &info);
	assert_int_equal(info.status, BATCH_EXPIRED);
	assert_true(batch_status_final(info.status));
	assert_int_equal(info.completed, 2);
	assert_int_equal(info.failed, 2);
	assert_int_equal(batch_file_content(c, info.error_file_id, &data, &len,
					    err, sizeof(err)),
			 BATCH_OK);
	assert_int_equal(outputs(data, out, 4), 2);
	for (i = 0; i < 2; i++) {
		snprintf(want, sizeof(want), "r%zu", i + 2);
		assert_string_equal(out[i].custom_id, want);
		assert_int_equal(out[i].status, 0);
		assert_null(out[i].body);
		assert_string_equal(out[i].error_code, "batch_expired");
		assert_true(out[i].error_message[0] != '\0');
		batch_output_clear(&out[i]);
	}
	free(data);
	run_batch(c, jsonl, &info);
	assert_int_equal(info.status, BATCH_COMPLETED);
	assert_int_equal(info.completed, 4);
	free(jsonl);
	batch_client_free(c);
}

/* A batch in progress, cancelled: cancelling, then cancelled; a wrong
 * key is refused (401), and the key is in no error text. */
static void test_cancel_and_key(void **state)
{
	struct batch_client *c = client_for(sims[SIM_SLOW].port, KEY, LIMIT);
	struct batch_client *bad = client_for(sims[SIM_SLOW].port, WRONG_KEY,
					      LIMIT);
	char *jsonl = people(3, false), err[512], file[BATCH_ID_MAX];
	struct batch_info info, now;

	(void)state;
	assert_int_equal(batch_file_upload(bad, "x.jsonl", jsonl,
					   strlen(jsonl), file, sizeof(file),
					   err, sizeof(err)),
			 BATCH_ERR_REFUSED);
	assert_int_equal(batch_last_status(bad), 401);
	assert_non_null(strstr(err, "POST /files: HTTP 401"));
	assert_null(strstr(err, WRONG_KEY));
	assert_int_equal(batch_file_upload(c, "x.jsonl", jsonl, strlen(jsonl),
					   file, sizeof(file), err,
					   sizeof(err)),
			 BATCH_OK);
	assert_int_equal(batch_create(c, file, NULL, 0, &info, err,
				      sizeof(err)),
			 BATCH_OK);
	assert_int_equal(batch_retrieve(c, info.id, &now, err, sizeof(err)),
			 BATCH_OK);
	assert_int_equal(now.status, BATCH_IN_PROGRESS);
	assert_int_equal(batch_retrieve(bad, info.id, &now, err, sizeof(err)),
			 BATCH_ERR_REFUSED);
	assert_null(strstr(err, WRONG_KEY));
	assert_int_equal(batch_cancel(c, info.id, &now, err, sizeof(err)),
			 BATCH_OK);
	assert_int_equal(now.status, BATCH_CANCELLING);
	assert_int_equal(batch_retrieve(c, info.id, &now, err, sizeof(err)),
			 BATCH_OK);
	assert_int_equal(now.status, BATCH_CANCELLED);
	assert_int_equal(now.completed, 0);
	assert_int_equal(now.failed, 3);
	free(jsonl);
	batch_client_free(bad);
	batch_client_free(c);
}

/* A download larger than max_file_bytes is BATCH_ERR_TOO_LARGE; no
 * server at all is BATCH_ERR_RETRY with no status. */
static void test_limits_and_transport(void **state)
{
	struct batch_client *c = client_for(sims[SIM_MAIN].port, NULL, LIMIT);
	struct batch_client *small = client_for(sims[SIM_MAIN].port, NULL, 512);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	char *jsonl = people(8, false), *data = NULL, err[512];
	char file[BATCH_ID_MAX];
	struct batch_client *none;
	struct batch_info info;
	size_t len;
	int fd;

	(void)state;
	assert_true(strlen(jsonl) > 512);
	assert_int_equal(batch_file_upload(c, "big.jsonl", jsonl,
					   strlen(jsonl), file, sizeof(file),
					   err, sizeof(err)),
			 BATCH_OK);
	assert_int_equal(batch_file_content(small, file, &data, &len, err,
					    sizeof(err)),
			 BATCH_ERR_TOO_LARGE);
	assert_null(data);
	assert_non_null(strstr(err, "larger than 512 bytes"));
	/* the small client still works for small answers */
	assert_int_equal(batch_file_delete(small, file, err, sizeof(err)),
			 BATCH_OK);

	/* a port nobody listens on: bind one, note it, close it */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	none = client_for(ntohs(sa.sin_port), NULL, LIMIT);
	assert_int_equal(batch_retrieve(none, "batch_x", &info, err,
					sizeof(err)),
			 BATCH_ERR_RETRY);
	assert_int_equal(batch_last_status(none), 0);
	assert_non_null(strstr(err, "GET /batches/batch_x: "));
	free(jsonl);
	batch_client_free(none);
	batch_client_free(small);
	batch_client_free(c);
}

/* Options that cannot work are refused at creation. */
static void test_new_refused(void **state)
{
	struct batch_client_opts o = { .base_url = "http://127.0.0.1:1/v1" };
	char err[256];

	(void)state;
	assert_null(batch_client_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "max_file_bytes"));
	o.base_url = "";
	o.max_file_bytes = 1;
	assert_null(batch_client_new(&o, err, sizeof(err)));
	assert_string_equal(batch_status_name(BATCH_STATUS_UNKNOWN), "unknown");
	assert_false(batch_status_final(BATCH_CANCELLING));
	assert_true(batch_status_final(BATCH_CANCELLED));
}

/* Last: every llmsim exits 0 on SIGTERM (clean, and under a sanitizer
 * with nothing to report). */
static void test_llmsim_exits_zero(void **state)
{
	int i, status;

	(void)state;
	for (i = 0; i < SIM_COUNT; i++) {
		status = sim_stop(&sims[i]);
		assert_true(status != -1);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_line),
		cmocka_unit_test(test_output_parse),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_missing_batch),
		cmocka_unit_test(test_bad_ids),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_cancel_and_key),
		cmocka_unit_test(test_limits_and_transport),
		cmocka_unit_test(test_new_refused),
		cmocka_unit_test(test_llmsim_exits_zero),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
