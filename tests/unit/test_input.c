/* Unit tests for common/input: what reaches the model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "input.h"

#include <json-c/json.h>

static int check(const char *s, size_t len, size_t max, char *detail)
{
	return input_check(s, len, max, detail, 128);
}

static void accepts_text(void **state)
{
	char d[128];
	const char *ok[] = {
		"John Smith is a 30-year-old software engineer",
		"Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m",          /* 2-byte */
		"\xe2\x80\x8f RTL mark and \xe4\xb8\xad",        /* 3-byte */
		"emoji \xf0\x9f\x98\x80 and U+10FFFF \xf4\x8f\xbf\xbf",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_int_equal(check(ok[i], strlen(ok[i]), 1000, d), 0);
}

static void refuses_bad_bytes(void **state)
{
	char d[128];

	(void)state;
	assert_int_equal(check("", 0, 10, d), -1);
	assert_string_equal(d, "text is empty");
	assert_int_equal(check(" \t\r\n", 4, 10, d), -1);
	assert_string_equal(d, "text is blank");
	assert_int_equal(check("abcdef", 6, 5, d), -1);
	assert_string_equal(d, "text of 6 bytes is longer than "
			       "input.max_bytes (5)");
	assert_int_equal(check("ab\0cd", 5, 10, d), -1);
	assert_string_equal(d, "text contains a NUL byte at byte 2");
	assert_int_equal(check("ab\xff", 3, 10, d), -1);
	assert_string_equal(d, "text is not valid UTF-8 at byte 2");
	/* Overlong '/', a surrogate, above U+10FFFF, a cut sequence. */
	assert_int_equal(check("\xc0\xaf", 2, 10, d), -1);
	assert_int_equal(check("\xe0\x80\xaf", 3, 10, d), -1);
	assert_int_equal(check("\xed\xa0\x80", 3, 10, d), -1);
	assert_int_equal(check("\xf4\x90\x80\x80", 4, 10, d), -1);
	assert_int_equal(check("a\xe4\xb8", 3, 10, d), -1);
	assert_string_equal(d, "text is not valid UTF-8 at byte 1");
	/* A lone continuation byte. */
	assert_int_equal(check("\x80x", 2, 10, d), -1);
}

static struct json_object *doc_of(const char *text)
{
	struct json_object *doc = json_tokener_parse(text);

	assert_non_null(doc);
	return doc;
}

/* The text a pointer names in doc, as JSON, or "(none)". */
static const char *at(struct json_object *doc, const char *ptr)
{
	struct json_object *v;

	if (!input_pointer_get(doc, ptr, &v))
		return "(none)";
	return v ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN)
		 : "null";
}

static void pointer_lookup(void **state)
{
	struct json_object *doc = doc_of(
		"{\"id\": \"T-1\", \"a\": {\"b/c\": 1, \"m~n\": 2, "
		"\"\": 3}, \"l\": [10, [20, 21]], \"01\": 4, \"z\": null}");

	(void)state;
	assert_string_equal(at(doc, "/id"), "\"T-1\"");
	assert_string_equal(at(doc, "/a/b~1c"), "1");
	assert_string_equal(at(doc, "/a/m~0n"), "2");
	assert_string_equal(at(doc, "/a/"), "3");
	assert_string_equal(at(doc, "/l/0"), "10");
	assert_string_equal(at(doc, "/l/1/1"), "21");
	assert_string_equal(at(doc, "/01"), "4");
	assert_string_equal(at(doc, "/l/01"), "(none)");
	assert_string_equal(at(doc, "/l/-"), "(none)");
	assert_string_equal(at(doc, "/l/2"), "(none)");
	assert_string_equal(at(doc, "/l/x"), "(none)");
	assert_string_equal(at(doc, "/id/0"), "(none)");
	assert_string_equal(at(doc, "/nope"), "(none)");
	assert_string_equal(at(doc, "/z"), "null");
	assert_string_equal(at(doc, "/z/0"), "(none)");
	assert_string_equal(at(doc, ""), json_object_to_json_string_ext(
						 doc, JSON_C_TO_STRING_PLAIN));
	json_object_put(doc);
}

static void pointer_syntax(void **state)
{
	char why[128], name[16];

	(void)state;
	assert_int_equal(input_pointer_check("", why, sizeof(why)), 0);
	assert_int_equal(input_pointer_check("/a~0b~1c/0", why, sizeof(why)),
			 0);
	assert_int_equal(input_pointer_check("id", why, sizeof(why)), -1);
	assert_string_equal(why, "a JSON Pointer is \"\" or starts with "
			    "\"/\"");
	assert_int_equal(input_pointer_check("/a~2", why, sizeof(why)), -1);
	assert_string_equal(why, "\"~\" at byte 2: in a JSON Pointer it is "
			    "only \"~0\" (~) or \"~1\" (/)");
	assert_int_equal(input_pointer_check("/a~", why, sizeof(why)), -1);
	assert_int_equal(input_pointer_last("/meta/a~1b~0", name,
					    sizeof(name)), 0);
	assert_string_equal(name, "a/b~");
	assert_int_equal(input_pointer_last("/id", name, sizeof(name)), 0);
	assert_string_equal(name, "id");
	assert_int_equal(input_pointer_last("", name, sizeof(name)), -1);
	assert_int_equal(input_pointer_last("/0123456789abcdefg", name,
					    sizeof(name)), -1);
}

/* input_json() on s: the text it finds, or its detail. */
static const char *json_text(const char *s, const char *ptr, size_t max,
			     char *out, size_t size)
{
	struct json_object *doc;
	const char *text;
	size_t len;

	doc = input_json(s, strlen(s), ptr, max, &text, &len, out, size);
	if (!doc)
		return out;
	snprintf(out, size, "text=%.*s", (int)len, text);
	json_object_put(doc);
	return out;
}

static void json_format(void **state)
{
	char d[256];

	(void)state;
	assert_string_equal(json_text("{\"id\": 1, \"body\": \"Ann, 30\"}",
				      "/body", 100, d, sizeof(d)),
			    "text=Ann, 30");
	assert_string_equal(json_text("{\"t\": {\"x\": [\"a\\u00e9\"]}}",
				      "/t/x/0", 100, d, sizeof(d)),
			    "text=a\xc3\xa9");
	assert_string_equal(json_text("\"whole\"", "", 100, d, sizeof(d)),
			    "text=whole");
	assert_string_equal(json_text("Ann is 30", "/body", 100, d,
				      sizeof(d)),
			    "input is not JSON: unexpected character at "
			    "byte 0");
	assert_string_equal(json_text("{\"body\": \"x\"", "/body", 100, d,
				      sizeof(d)),
			    "input is not JSON: it ends inside a value at "
			    "byte 12");
	assert_string_equal(json_text("{} {}", "/body", 100, d, sizeof(d)),
			    "input is not JSON: unexpected character at "
			    "byte 3");
	assert_string_equal(json_text("", "/body", 100, d, sizeof(d)),
			    "input is not JSON: it is empty");
	assert_string_equal(json_text("{\"text\": \"x\"}", "/body", 100, d,
				      sizeof(d)),
			    "no /body in the input");
	assert_string_equal(json_text("{\"body\": 42}", "/body", 100, d,
				      sizeof(d)),
			    "/body is a number, not a string");
	assert_string_equal(json_text("{\"body\": null}", "/body", 100, d,
				      sizeof(d)),
			    "/body is null, not a string");
	assert_string_equal(json_text("{\"body\": {}}", "/body", 100, d,
				      sizeof(d)),
			    "/body is an object, not a string");
	assert_string_equal(json_text("[1]", "", 100, d, sizeof(d)),
			    "the input is an array, not a string");
	assert_string_equal(json_text("{\"body\": \" \\n\"}", "/body", 100,
				      d, sizeof(d)),
			    "/body: text is blank");
	assert_string_equal(json_text("{\"body\": \"a\\u0000b\"}", "/body",
				      100, d, sizeof(d)),
			    "/body: text contains a NUL byte at byte 1");
	/* input.max_bytes bounds the whole record, not only the text. */
	assert_string_equal(json_text("{\"body\": \"x\", \"pad\": "
				      "\"0123456789\"}", "/body", 20, d,
				      sizeof(d)),
			    "input of 34 bytes is longer than "
			    "input.max_bytes (20)");
}

static void carry_fields(void **state)
{
	static const char *const carry[] = { "/id", "/meta/customer",
					     "/missing", "/n", "/z" };
	struct json_object *doc = doc_of(
		"{\"id\": \"T-1042\", \"meta\": {\"customer\": "
		"\"acme\"}, \"n\": [1, {\"x\": null}], \"z\": null}");
	struct json_object *out = doc_of("{\"name\": \"Ann\"}");

	(void)state;
	assert_int_equal(input_carry(doc, carry, 5, out), 0);
	json_object_put(doc); /* the output keeps its own references */
	assert_string_equal(json_object_to_json_string_ext(
				    out, JSON_C_TO_STRING_PLAIN),
			    "{\"name\":\"Ann\",\"id\":\"T-1042\","
			    "\"customer\":\"acme\",\"n\":[1,{\"x\":null}],"
			    "\"z\":null}");
	json_object_put(out);
}

static void trace_context(void **state)
{
	static const char ok[] =
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
	char bad[sizeof(ok)];

	(void)state;
	assert_true(input_traceparent_ok(ok, strlen(ok)));
	assert_false(input_traceparent_ok(ok, strlen(ok) - 1));
	memcpy(bad, ok, sizeof(ok));
	bad[0] = 'f';
	bad[1] = 'f';
	assert_false(input_traceparent_ok(bad, strlen(bad)));
	memcpy(bad, ok, sizeof(ok));
	bad[10] = 'A'; /* uppercase */
	assert_false(input_traceparent_ok(bad, strlen(bad)));
	memcpy(bad, ok, sizeof(ok));
	bad[35] = '_';
	assert_false(input_traceparent_ok(bad, strlen(bad)));
	assert_false(input_traceparent_ok(
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		55));
	assert_false(input_traceparent_ok(
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		55));
	assert_true(input_tracestate_ok("congo=t61rcWkgMzE", 17));
	assert_false(input_tracestate_ok("", 0));
	assert_false(input_tracestate_ok("a=b\r\nX-Evil: 1", 15));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_text),
		cmocka_unit_test(refuses_bad_bytes),
		cmocka_unit_test(pointer_lookup),
		cmocka_unit_test(pointer_syntax),
		cmocka_unit_test(json_format),
		cmocka_unit_test(carry_fields),
		cmocka_unit_test(trace_context),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
