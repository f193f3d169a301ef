/* Unit tests for common/llm: reading answers in each mode. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "llm.h"
#include "schema.h"

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
