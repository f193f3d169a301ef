/*
 * Unit tests for common/llm: reading answers in each mode, request
 * bodies, and extractions whose first answer came from a Batch API,
 * against a real llmsim (simproc.h) that answers the live calls.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "http.h"
#include "llm.h"
#include "schema.h"
#include "simproc.h"

static struct sim sim;
static char dir[] = "/tmp/test_llm.XXXXXX";

static int parse(enum cfg_llm_mode mode, const char *body,
		 struct llm_reply *r, char *err)
{
	err[0] = '\0';
	return llm_parse_reply(mode, body, strlen(body), r, err, 256);
}

static void content_modes(void **state)
{
	const char *body =
		"{\"id\":\"x\",\"model\":\"gpt-4o-mini-2024\",\"choices\":[{"
		"\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
		"\"{\\\"name\\\":\\\"Ann\\\",\\\"age\\\":3}\",\"refusal\":null},"
		"\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,"
		"\"completion_tokens\":5,\"total_tokens\":17}}";
	struct llm_reply r;
	char err[256];

	(void)state;
	assert_int_equal(parse(CFG_MODE_JSON_SCHEMA, body, &r, err), 0);
	assert_string_equal(r.answer, "{\"name\":\"Ann\",\"age\":3}");
	assert_null(r.refusal);
	assert_string_equal(r.model, "gpt-4o-mini-2024");
	assert_string_equal(r.finish_reason, "stop");
	assert_int_equal(r.prompt_tokens, 12);
	assert_int_equal(r.completion_tokens, 5);
	llm_reply_clear(&r);

	assert_int_equal(parse(CFG_MODE_JSON_OBJECT, body, &r, err), 0);
	assert_string_equal(r.answer, "{\"name\":\"Ann\",\"age\":3}");
	llm_reply_clear(&r);
}

/* The usage's details: cached prompt tokens and reasoning tokens when the
 * provider reports them, 0 when absent, null or not an object. */
static void usage_details(void **state)
{
	const char *full =
		"{\"choices\":[{\"message\":{\"content\":\"{}\"},"
		"\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":"
		"2000,\"completion_tokens\":300,\"prompt_tokens_details\":{"
		"\"cached_tokens\":1536,\"audio_tokens\":0},"
		"\"completion_tokens_details\":{\"reasoning_tokens\":256}}}";
	const char *odd =
		"{\"choices\":[{\"message\":{\"content\":\"{}\"}}],"
		"\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":3,"
		"\"prompt_tokens_details\":null,"
		"\"completion_tokens_details\":{\"reasoning_tokens\":-4}}}";
	const char *none =
		"{\"choices\":[{\"message\":{\"content\":\"{}\"}}],"
		"\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":3}}";
	struct llm_reply r;
	char err[256];

	(void)state;
	assert_int_equal(parse(CFG_MODE_JSON_SCHEMA, full, &r, err), 0);
	assert_int_equal(r.prompt_tokens, 2000);
	assert_int_equal(r.cached_tokens, 1536);
	assert_int_equal(r.completion_tokens, 300);
	assert_int_equal(r.reasoning_tokens, 256);
	llm_reply_clear(&r);
	assert_int_equal(parse(CFG_MODE_JSON_SCHEMA, odd, &r, err), 0);
	assert_int_equal(r.prompt_tokens, 20);
	assert_int_equal(r.cached_tokens, 0);
	assert_int_equal(r.reasoning_tokens, 0);
	llm_reply_clear(&r);
	assert_int_equal(parse(CFG_MODE_JSON_SCHEMA, none, &r, err), 0);
	assert_int_equal(r.cached_tokens, 0);
	assert_int_equal(r.reasoning_tokens, 0);
	llm_reply_clear(&r);
}

static void tools_mode(void **state)
{
	const char *body =
		"{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\""
		":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
		"\"function\":{\"name\":\"Person\",\"arguments\":"
		"\"{\\\"age\\\":4}\"}}]},\"finish_reason\":\"tool_calls\"}]}";
	struct llm_reply r;
	char err[256];

	(void)state;
	assert_int_equal(parse(CFG_MODE_TOOLS, body, &r, err), 0);
	assert_string_equal(r.answer, "{\"age\":4}");
	llm_reply_clear(&r);
	/* Without a tool call nor content there is nothing to judge. */
	assert_int_equal(parse(CFG_MODE_TOOLS,
			       "{\"choices\":[{\"message\":{\"content\":null}}]}",
			       &r, err), -1);
	assert_string_equal(err, "answer has no tool call");
}

static void md_json_mode(void **state)
{
	const char *body =
		"{\"choices\":[{\"message\":{\"content\":\"Here it is:\\n"
		"```json\\n{\\\"a\\\": 1}\\n```\\nDone.\"}}]}";
	const char *bare = "{\"choices\":[{\"message\":{\"content\":"
			   "\"{\\\"a\\\": 2}\"}}]}";
	struct llm_reply r;
	char err[256];

	(void)state;
	assert_int_equal(parse(CFG_MODE_MD_JSON, body, &r, err), 0);
	assert_string_equal(r.answer, "{\"a\": 1}\n");
	llm_reply_clear(&r);
	assert_int_equal(parse(CFG_MODE_MD_JSON, bare, &r, err), 0);
	assert_string_equal(r.answer, "{\"a\": 2}");
	llm_reply_clear(&r);
}

static void md_json_extraction(void **state)
{
	/* Prose, then an object, then prose: the object, and what was said
	 * kept whole for the re-ask. */
	const char *prose =
		"{\"choices\":[{\"message\":{\"content\":\"Sure! The person "
		"is {\\\"name\\\": \\\"A {b}\\\", \\\"n\\\": [1, {}]} as "
		"asked.\"}}]}";
	/* Cut before the object closes: to the end, for the judge to see. */
	const char *cut = "{\"choices\":[{\"message\":{\"content\":"
			  "\"Here: {\\\"name\\\": \\\"Tom\"}}]}";
	/* No JSON at all: the whole text, so the error quotes it. */
	const char *none = "{\"choices\":[{\"message\":{\"content\":"
			   "\"Tom Brown is a DevOps engineer.\"}}]}";
	struct llm_reply r;
	char err[256];

	(void)state;
	assert_int_equal(parse(CFG_MODE_MD_JSON, prose, &r, err), 0);
	assert_string_equal(r.answer, "{\"name\": \"A {b}\", \"n\": [1, {}]}");
	assert_string_equal(r.said, "Sure! The person is {\"name\": \"A {b}\", "
				    "\"n\": [1, {}]} as asked.");
	llm_reply_clear(&r);
	assert_int_equal(parse(CFG_MODE_MD_JSON, cut, &r, err), 0);
	assert_string_equal(r.answer, "{\"name\": \"Tom");
	llm_reply_clear(&r);
	assert_int_equal(parse(CFG_MODE_MD_JSON, none, &r, err), 0);
	assert_string_equal(r.answer, "Tom Brown is a DevOps engineer.");
	assert_string_equal(r.said, r.answer);
	llm_reply_clear(&r);
}

static void json_object_schema_mode(void **state)
{
	const char *body =
		"{\"model\":\"smollm2\",\"choices\":[{\"message\":{"
		"\"content\":\"{\\\"age\\\": 5}\"},\"finish_reason\":"
		"\"length\"}],\"usage\":{\"completion_tokens\":8}}";
	struct llm_reply r;
	char err[256];

	(void)state;
	assert_int_equal(parse(CFG_MODE_JSON_OBJECT_SCHEMA, body, &r, err), 0);
	assert_string_equal(r.answer, "{\"age\": 5}");
	assert_string_equal(r.said, "{\"age\": 5}");
	assert_string_equal(r.finish_reason, "length");
	assert_string_equal(r.model, "smollm2");
	assert_int_equal(r.completion_tokens, 8);
	llm_reply_clear(&r);
}

static void error_texts(void **state)
{
	static const struct {
		const char *body, *want;
	} cases[] = {
		{ "{\"error\":{\"message\":\"Invalid  value\\nfor x\","
		  "\"type\":\"invalid_request_error\"}}",
		  "Invalid value\nfor x" },
		{ "{\"error\":\"model 'x' not found\"}", "model 'x' not found" },
		{ "{\"detail\":\"Not Found\"}", "Not Found" },
		{ "{\"detail\":[{\"loc\":[\"body\"],\"msg\":\"Field required\"},"
		  "{\"msg\":\"Input should be 'text'\"}]}",
		  "Field required; Input should be 'text'" },
		{ "{\"message\":\"no such route\"}", "no such route" },
		{ "Internal Server Error\n", "Internal Server Error" },
		{ "<html><head><title>404 Not Found</title></head><body>"
		  "<h1>Not  Found</h1></body></html>",
		  "404 Not Found Not Found" },
		{ "{\"error\":{\"message\":\"bad key Bearer sk-abc123456789\"}}",
		  "bad key Bearer (redacted)" },
		{ "", "" },
	};
	char out[400];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		llm_error_text(cases[i].body, strlen(cases[i].body), out,
			       sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
	/* Bounded: a page of text becomes at most 300 bytes. */
	{
		char big[5000];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		llm_error_text(big, strlen(big), out, sizeof(out));
		assert_int_equal(strlen(out), 300);
	}
}

static void refusal(void **state)
{
	const char *body =
		"{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\""
		":null,\"refusal\":\"I can't help with that.\"},"
		"\"finish_reason\":\"stop\"}]}";
	struct llm_reply r;
	char err[256];

	(void)state;
	assert_int_equal(parse(CFG_MODE_TOOLS, body, &r, err), 0);
	assert_null(r.answer);
	assert_string_equal(r.refusal, "I can't help with that.");
	llm_reply_clear(&r);
}

static void malformed_bodies(void **state)
{
	struct llm_reply r;
	char err[256];

	(void)state;
	assert_int_equal(parse(CFG_MODE_JSON_SCHEMA, "{\"choices\":[", &r,
			       err), -1);
	assert_string_equal(err, "answer body is not JSON: unexpected end "
				 "of JSON");
	assert_int_equal(parse(CFG_MODE_JSON_SCHEMA, "{} trailing", &r, err),
			 -1);
	assert_non_null(strstr(err, "unexpected text after the JSON value"));
	assert_int_equal(parse(CFG_MODE_JSON_SCHEMA, "{\"choices\":[]}", &r,
			       err), -1);
	assert_string_equal(err, "answer body has no choices");
	assert_int_equal(parse(CFG_MODE_JSON_SCHEMA,
			       "{\"choices\":[{\"message\":{}}]}", &r, err),
			 -1);
	assert_string_equal(err, "answer has no content");
	assert_int_equal(parse(CFG_MODE_JSON_SCHEMA, "[1,2]", &r, err), -1);
}

static void error_names(void **state)
{
	(void)state;
	assert_string_equal(llm_error_name(LLM_ERR_VALIDATION), "validation");
	assert_string_equal(llm_error_name(LLM_ERR_HTTP), "llm_http");
	assert_string_equal(llm_error_name(LLM_ERR_TIMEOUT), "llm_timeout");
	assert_string_equal(llm_error_name(LLM_ERR_REFUSAL), "llm_refusal");
}

/* An llm made from the defaults and the overrides given. */
static struct llm *make_llm(const char *const *ov, size_t n,
			    struct extractd_config **ret_cfg,
			    struct schema **ret_schema)
{
	char err[1024];
	struct llm *llm;

	if (cfg_load(NULL, ov, n, ret_cfg, err, sizeof(err)) < 0)
		fail_msg("config: %s", err);
	*ret_schema = schema_load_file(EXTRACTD_SOURCE_DIR
				       "/schemas/person.schema.json",
				       err, sizeof(err));
	assert_non_null(*ret_schema);
	llm = llm_new(*ret_cfg, *ret_schema, err, sizeof(err));
	assert_non_null(llm);
	return llm;
}

static void drop_llm(struct llm *llm, struct extractd_config *cfg,
		     struct schema *schema)
{
	llm_free(llm);
	schema_free(schema);
	cfg_free(cfg);
}

/* Where the last user message starts in a body. */
static const char *last_user(const char *body)
{
	const char *mark = "{\"role\":\"user\",\"content\":", *p, *last;

	last = NULL;
	for (p = body; (p = strstr(p, mark)); p++)
		last = p;
	assert_non_null(last);
	return last;
}

/* The prompt_cache_key a body carries, into buf ("" when none). */
static void key_of(const char *body, char *buf, size_t size)
{
	const char *p = strstr(body, "\"prompt_cache_key\":\"");

	buf[0] = '\0';
	if (p)
		snprintf(buf, size, "%.*s", (int)strcspn(p + 20, "\""), p + 20);
}

/*
 * Prompt caching: in every format, two records' first requests are the
 * same bytes up to the last user message (model, settings, the key, the
 * schema or tool, the system message), and that message, last, holds
 * the text; the key is the same in another process, and follows
 * llm.prompt_cache_key.
 */
static void stable_prefix(void **state)
{
	static const char *const texts[] = {
		"Ann is 3.",
		"Bob Stone, 40, says \"hi\"\nand goes.",
	};
	static const char *const keys[] = { "auto", "", "team-a" };
	char ov[64], key[80], other[80];
	size_t k;
	int mode;

	(void)state;
	for (k = 0; k < 3; k++) {
		const char *ovp[] = { ov };
		struct extractd_config *cfg, *cfg2;
		struct schema *schema, *schema2;
		struct llm *llm, *llm2;

		snprintf(ov, sizeof(ov), "llm.prompt_cache_key=\"%s\"",
			 keys[k]);
		llm = make_llm(ovp, 1, &cfg, &schema);
		llm2 = make_llm(ovp, 1, &cfg2, &schema2);
		for (mode = 0; mode < CFG_MODE_AUTO; mode++) {
			char *a = llm_request_body(llm, mode, texts[0],
						   strlen(texts[0]));
			char *b = llm_request_body(llm, mode, texts[1],
						   strlen(texts[1]));
			char *c = llm_request_body(llm2, mode, texts[0],
						   strlen(texts[0]));
			const char *ua = last_user(a), *ub = last_user(b);

			assert_int_equal(ua - a, ub - b);
			assert_memory_equal(a, b, (size_t)(ua - a));
			assert_string_equal(ua, "{\"role\":\"user\",\"content\":"
					    "\"Ann is 3.\"}]}");
			assert_string_equal(ub, "{\"role\":\"user\",\"content\":"
					    "\"Bob Stone, 40, says \\\"hi\\\"\\n"
					    "and goes.\"}]}");
			/* The system message comes before the text. */
			assert_non_null(strstr(a, "\"role\":\"system\""));
			assert_true(strstr(a, "\"role\":\"system\"") < ua);
			/* Another process sends the same bytes. */
			assert_string_equal(a, c);
			key_of(a, key, sizeof(key));
			if (k == 0) {
				assert_int_equal(strlen(key), 9 + 16);
				assert_memory_equal(key, "extractd-", 9);
				assert_int_equal(strspn(key + 9,
							"0123456789abcdef"),
						 16);
			} else {
				assert_string_equal(key, keys[k]);
			}
			free(a);
			free(b);
			free(c);
		}
		assert_null(llm_request_body(llm, CFG_MODE_AUTO, "x", 1));
		drop_llm(llm2, cfg2, schema2);
		drop_llm(llm, cfg, schema);
	}

	/* Other instructions, another derived key. */
	{
		const char *ovp[] = { "schema.instructions=\"Find the person.\"" };
		struct extractd_config *cfg, *cfg2;
		struct schema *schema, *schema2;
		struct llm *llm = make_llm(ovp, 1, &cfg, &schema);
		struct llm *llm2 = make_llm(NULL, 0, &cfg2, &schema2);
		char *a = llm_request_body(llm, CFG_MODE_JSON_SCHEMA, "x", 1);
		char *b = llm_request_body(llm2, CFG_MODE_JSON_SCHEMA, "x", 1);

		key_of(a, key, sizeof(key));
		key_of(b, other, sizeof(other));
		assert_int_equal(strlen(key), 25);
		assert_int_equal(strlen(other), 25);
		assert_string_not_equal(key, other);
		free(a);
		free(b);
		drop_llm(llm2, cfg2, schema2);
		drop_llm(llm, cfg, schema);
	}
}

static int group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir) || http_global_init())
		return -1;
	sim_start(&sim, dir, "sim", (char *)NULL);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[300];

	(void)state;
	sim_stop(&sim);
	http_global_cleanup();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* HTTP calls the llm made (canaries included): the observer's count. */
static unsigned calls;

static void count_call(void *arg, const struct llm_call *call)
{
	(void)arg;
	(void)call;
	calls++;
}

/* A body as a Batch API returns a chat completion: content (a JSON
 * string's inside, escaped) or a refusal, finish_reason, usage. */
static char *batch_body(const char *content, const char *refusal,
			const char *finish, unsigned prompt, unsigned cached,
			unsigned completion)
{
	char *body = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&body, &size);

	assert_non_null(f);
	fprintf(f, "{\"id\":\"chatcmpl-b1\",\"object\":\"chat.completion\","
		"\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,"
		"\"message\":{\"role\":\"assistant\",");
	if (refusal)
		fprintf(f, "\"content\":null,\"refusal\":\"%s\"", refusal);
	else
		fprintf(f, "\"content\":\"%s\",\"refusal\":null", content);
	fprintf(f, "},\"finish_reason\":\"%s\"}],\"usage\":{"
		"\"prompt_tokens\":%u,\"completion_tokens\":%u,"
		"\"prompt_tokens_details\":{\"cached_tokens\":%u}}}",
		finish, prompt, completion, cached);
	assert_int_equal(fclose(f), 0);
	return body;
}

#define TEXT "Ann Lee is a 30-year-old cook."
#define ANN "{\"name\":\"Ann Lee\",\"age\":30,\"occupation\":\"cook\"}"
#define ANN_ESCAPED                                                      \
	"{\\\"name\\\":\\\"Ann Lee\\\",\\\"age\\\":30,"                  \
	"\\\"occupation\\\":\\\"cook\\\"}"

/*
 * llm_extract_answered(): a batch's answer is judged as a live one, and
 * only what follows it goes live. Every case's calls are counted by the
 * observer, after a first live extraction has settled the format (its
 * canary is a call too).
 */
static void batch_answers(void **state)
{
	char url[64], base[80], err[256];
	const char *ov[] = { base, "llm.mode=json_schema",
			     "llm.api_key_env=\"\"" };
	struct extractd_config *cfg;
	struct schema *schema;
	struct llm_result res;
	struct llm_worker *w;
	struct llm *llm;
	char *body;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1", sim.port);
	snprintf(base, sizeof(base), "llm.base_url=%s", url);
	llm = make_llm(ov, 3, &cfg, &schema);
	llm_set_observer(llm, count_call, NULL);
	w = llm_worker_new(llm, NULL, NULL, 1, err, sizeof(err));
	if (!w)
		fail_msg("worker: %s", err);
	llm_extract(w, TEXT, strlen(TEXT), &res);
	assert_int_equal(res.status, LLM_OK);
	assert_false(res.batched);
	assert_true(res.batch_prompt_tokens == 0);
	llm_result_clear(&res);

	/* Valid: no call at all; every token is the batch's. */
	calls = 0;
	body = batch_body(ANN_ESCAPED, NULL, "stop", 120, 64, 18);
	llm_extract_answered(w, TEXT, strlen(TEXT), CFG_MODE_JSON_SCHEMA,
			     body, strlen(body), &res);
	free(body);
	assert_int_equal(calls, 0);
	assert_int_equal(res.status, LLM_OK);
	assert_string_equal(res.output, ANN);
	assert_true(res.batched);
	assert_int_equal(res.attempts, 1);
	assert_int_equal(res.reasks, 0);
	assert_int_equal(res.mode, CFG_MODE_JSON_SCHEMA);
	assert_true(res.prompt_tokens == 120 && res.batch_prompt_tokens == 120);
	assert_true(res.cached_tokens == 64 && res.batch_cached_tokens == 64);
	assert_true(res.completion_tokens == 18 &&
		    res.batch_completion_tokens == 18);
	llm_result_clear(&res);

	/* Invalid: one live re-ask with the errors, which llmsim answers
	 * with what it matched; the totals hold both calls, the batch_*
	 * the batch's only. */
	calls = 0;
	body = batch_body("{\\\"name\\\":\\\"Ann Lee\\\",\\\"age\\\":"
			  "\\\"thirty\\\",\\\"occupation\\\":\\\"cook\\\"}",
			  NULL, "stop", 120, 0, 18);
	llm_extract_answered(w, TEXT, strlen(TEXT), CFG_MODE_JSON_SCHEMA,
			     body, strlen(body), &res);
	free(body);
	assert_int_equal(calls, 1);
	assert_int_equal(res.status, LLM_OK);
	assert_string_equal(res.output, ANN);
	assert_true(res.batched);
	assert_int_equal(res.attempts, 2);
	assert_int_equal(res.reasks, 1);
	assert_true(res.batch_prompt_tokens == 120);
	assert_true(res.batch_completion_tokens == 18);
	assert_true(res.batch_cached_tokens == 0);
	assert_true(res.prompt_tokens > 120);
	assert_true(res.completion_tokens > 18);
	llm_result_clear(&res);

	/* A refusal ends it: no call. */
	calls = 0;
	body = batch_body(NULL, "I cannot help with that.", "stop", 50, 0, 7);
	llm_extract_answered(w, TEXT, strlen(TEXT), CFG_MODE_JSON_SCHEMA,
			     body, strlen(body), &res);
	free(body);
	assert_int_equal(calls, 0);
	assert_int_equal(res.status, LLM_ERR_REFUSAL);
	assert_string_equal(res.detail,
			    "the model refused: I cannot help with that.");
	assert_true(res.batched);
	assert_true(res.batch_prompt_tokens == 50);
	llm_result_clear(&res);

	/* Cut at the token limit: asked again live, with more room. */
	calls = 0;
	body = batch_body("{\\\"name\\\":\\\"Ann", NULL, "length", 120, 0,
			  64);
	llm_extract_answered(w, TEXT, strlen(TEXT), CFG_MODE_JSON_SCHEMA,
			     body, strlen(body), &res);
	free(body);
	assert_int_equal(calls, 1);
	assert_int_equal(res.status, LLM_OK);
	assert_int_equal(res.attempts, 2);
	assert_int_equal(res.retries, 1);
	assert_int_equal(res.reasks, 0);
	assert_true(res.batched);
	llm_result_clear(&res);

	/* Not a chat completion (an error line's body, or no JSON): the
	 * first call is made live, at the live price. */
	{
		static const char *const bodies[] = {
			"{\"error\":{\"message\":\"server_error\"}}",
			"not json",
		};
		size_t i;

		for (i = 0; i < 2; i++) {
			calls = 0;
			llm_extract_answered(w, TEXT, strlen(TEXT),
					     CFG_MODE_JSON_SCHEMA, bodies[i],
					     strlen(bodies[i]), &res);
			assert_int_equal(calls, 1);
			assert_int_equal(res.status, LLM_OK);
			assert_string_equal(res.output, ANN);
			assert_false(res.batched);
			assert_int_equal(res.attempts, 1);
			assert_true(res.prompt_tokens > 0);
			assert_true(res.batch_prompt_tokens == 0 &&
				    res.batch_completion_tokens == 0 &&
				    res.batch_cached_tokens == 0);
			llm_result_clear(&res);
		}
	}

	/* No request is built in auto: that answer is not ours. */
	calls = 0;
	body = batch_body(ANN_ESCAPED, NULL, "stop", 120, 0, 18);
	llm_extract_answered(w, TEXT, strlen(TEXT), CFG_MODE_AUTO, body,
			     strlen(body), &res);
	free(body);
	assert_int_equal(calls, 1);
	assert_int_equal(res.status, LLM_OK);
	assert_false(res.batched);
	llm_result_clear(&res);

	llm_worker_free(w);
	drop_llm(llm, cfg, schema);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(content_modes),
		cmocka_unit_test(usage_details),
		cmocka_unit_test(tools_mode),
		cmocka_unit_test(md_json_mode),
		cmocka_unit_test(md_json_extraction),
		cmocka_unit_test(json_object_schema_mode),
		cmocka_unit_test(error_texts),
		cmocka_unit_test(refusal),
		cmocka_unit_test(malformed_bodies),
		cmocka_unit_test(error_names),
		cmocka_unit_test(stable_prefix),
		cmocka_unit_test(batch_answers),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
