/*
 * Unit tests for common/schema: the Person schema shipped in schemas/,
 * every kind of error with its exact text, the buffer contract, compile
 * errors, $defs/$ref, recursion, hostile instances and concurrent use.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "schema.h"

#define PERSON_SCHEMA EXTRACTD_SOURCE_DIR "/schemas/person.schema.json"

/* ---- helpers ---------------------------------------------------------- */

static struct json_object *parse(const char *text)
{
	struct json_object *v = json_tokener_parse(text);

	if (!v && strcmp(text, "null") != 0)
		fail_msg("test JSON does not parse: %s", text);
	return v;
}

/* Compile schema text; the test's reference is dropped at once, which
 * also proves the schema keeps its own. */
static struct schema *compile_text(const char *text, char *err, size_t size)
{
	struct json_object *doc = parse(text);
	struct schema *s = schema_compile(doc, err, size);

	json_object_put(doc);
	return s;
}

static struct schema *must_compile(const char *text)
{
	char err[512];
	struct schema *s = compile_text(text, err, sizeof(err));

	if (!s)
		fail_msg("schema does not compile: %s", err);
	return s;
}

/* Validate instance text; returns the error count, text in buf. */
static unsigned validate_text(const struct schema *s, const char *text,
			      char *buf, size_t size)
{
	struct json_object *x = parse(text);
	unsigned n = schema_validate(s, x, buf, size);

	json_object_put(x);
	return n;
}

static void expect_valid(const struct schema *s, const char *text)
{
	char buf[1024];
	unsigned n = validate_text(s, text, buf, sizeof(buf));

	if (n)
		fail_msg("expected valid: %s\ngot %u error(s):\n%s", text, n,
			 buf);
	assert_string_equal(buf, "");
}

static void expect_errors(const struct schema *s, const char *text,
			  unsigned count, const char *want)
{
	char buf[4096];
	unsigned n = validate_text(s, text, buf, sizeof(buf));

	if (strcmp(buf, want) != 0)
		fail_msg("instance %s\nwant:\n%s\ngot:\n%s", text, want, buf);
	assert_int_equal(n, count);
}

static void expect_compile_error(const char *text, const char *want)
{
	char err[512];
	struct schema *s = compile_text(text, err, sizeof(err));

	if (s) {
		schema_free(s);
		fail_msg("schema should not compile: %s", text);
	}
	if (strcmp(err, want) != 0)
		fail_msg("schema %s\nwant: %s\ngot:  %s", text, want, err);
}

static int person_setup(void **state)
{
	char err[512];

	*state = schema_load_file(PERSON_SCHEMA, err, sizeof(err));
	if (!*state) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int person_teardown(void **state)
{
	schema_free(*state);
	return 0;
}

/* ---- the Person schema ------------------------------------------------ */

static void person_valid(void **state)
{
	const struct schema *s = *state;

	expect_valid(s, "{\"name\":\"John Smith\",\"age\":30,"
			"\"occupation\":\"software engineer\"}");
	expect_valid(s, "{\"occupation\":\"nurse\",\"age\":0,\"name\":\"A\"}");
	expect_valid(s, "{\"name\":\"Zoë Ñandú 山田\",\"age\":150,"
			"\"occupation\":\"🎻 player\"}");
	/* 42.0 has no fractional part: an integer for JSON Schema */
	expect_valid(s, "{\"name\":\"B\",\"age\":42.0,\"occupation\":\"x\"}");
}

static void person_each_violation(void **state)
{
	const struct schema *s = *state;

	expect_errors(s, "{\"name\":\"A\",\"age\":999,\"occupation\":\"x\"}", 1,
		      "/age: 999 is greater than the maximum of 150");
	expect_errors(s, "{\"name\":\"A\",\"age\":-1,\"occupation\":\"x\"}", 1,
		      "/age: -1 is less than the minimum of 0");
	expect_errors(s, "{\"name\":\"A\",\"age\":150.5,\"occupation\":\"x\"}",
		      1, "/age: expected integer, got number");
	expect_errors(s, "{\"name\":\"A\",\"age\":\"30\",\"occupation\":\"x\"}",
		      1, "/age: expected integer, got string");
	expect_errors(s, "{\"name\":\"A\",\"age\":null,\"occupation\":\"x\"}", 1,
		      "/age: expected integer, got null");
	expect_errors(s, "{\"name\":\"\",\"age\":3,\"occupation\":\"x\"}", 1,
		      "/name: expected at least 1 character, got 0");
	expect_errors(s, "{\"name\":7,\"age\":3,\"occupation\":\"x\"}", 1,
		      "/name: expected string, got integer");
	expect_errors(s, "{\"age\":3,\"occupation\":\"x\"}", 1,
		      "/: missing required property \"name\"");
	expect_errors(s,
		      "{\"name\":\"A\",\"age\":3,\"occupation\":\"x\","
		      "\"nickname\":\"Al\"}",
		      1, "/: property \"nickname\" is not allowed");
	expect_errors(s, "[]", 1, "/: expected object, got array");
	expect_errors(s, "null", 1, "/: expected object, got null");
	expect_errors(s, "\"John is 30\"", 1, "/: expected object, got string");
}

static const char person_four_errors[] =
	"{\"name\":\"\",\"age\":999,\"nickname\":\"x\"}";
static const char person_four_text[] =
	"/: missing required property \"occupation\"\n"
	"/name: expected at least 1 character, got 0\n"
	"/age: 999 is greater than the maximum of 150\n"
	"/: property \"nickname\" is not allowed";

static void person_all_errors(void **state)
{
	const struct schema *s = *state;

	expect_errors(s, person_four_errors, 4, person_four_text);
	expect_errors(s, "{}", 3,
		      "/: missing required property \"name\"\n"
		      "/: missing required property \"age\"\n"
		      "/: missing required property \"occupation\"");
}

static void buffer_too_small(void **state)
{
	const struct schema *s = *state;
	size_t full = strlen(person_four_text), size;
	char buf[512];
	unsigned n;

	/* exactly enough: every line, no trailer */
	memset(buf, 'X', sizeof(buf));
	n = validate_text(s, person_four_errors, buf, full + 1);
	assert_int_equal(n, 4);
	assert_string_equal(buf, person_four_text);

	/* one byte less: the last line goes, the trailer says so */
	memset(buf, 'X', sizeof(buf));
	n = validate_text(s, person_four_errors, buf, full);
	assert_int_equal(n, 4);
	assert_string_equal(buf, "/: missing required property \"occupation\"\n"
				 "/name: expected at least 1 character, got 0\n"
				 "/age: 999 is greater than the maximum of 150\n"
				 "... 1 more error");

	/* three lines fit but not the trailer after them: the third is
	 * given up to make room */
	size = strlen("/: missing required property \"occupation\"\n"
		      "/name: expected at least 1 character, got 0\n"
		      "/age: 999 is greater than the maximum of 150") + 6;
	n = validate_text(s, person_four_errors, buf, size);
	assert_int_equal(n, 4);
	assert_string_equal(buf, "/: missing required property \"occupation\"\n"
				 "/name: expected at least 1 character, got 0\n"
				 "... 2 more errors");

	/* room for one line and the trailer */
	n = validate_text(s, person_four_errors, buf, 70);
	assert_int_equal(n, 4);
	assert_string_equal(buf, "/: missing required property \"occupation\"\n"
				 "... 3 more errors");

	/* room for the trailer only */
	n = validate_text(s, person_four_errors, buf, 30);
	assert_int_equal(n, 4);
	assert_string_equal(buf, "... 4 more errors");

	/* not even that: empty, but terminated */
	memset(buf, 'X', sizeof(buf));
	n = validate_text(s, person_four_errors, buf, 5);
	assert_int_equal(n, 4);
	assert_string_equal(buf, "");
	n = validate_text(s, person_four_errors, buf, 1);
	assert_int_equal(n, 4);
	assert_int_equal(buf[0], '\0');

	/* no buffer at all: only the count */
	assert_int_equal(validate_text(s, person_four_errors, NULL, 0), 4);
	assert_int_equal(validate_text(s, "{\"name\":\"A\",\"age\":1,"
					  "\"occupation\":\"B\"}",
				       NULL, 0),
			 0);

	/* every size: terminated inside the buffer, whole lines only */
	for (size = 1; size < full + 8; size++) {
		memset(buf, 'X', sizeof(buf));
		n = validate_text(s, person_four_errors, buf, size);
		assert_int_equal(n, 4);
		assert_true(strlen(buf) < size);
		assert_int_equal(buf[size], 'X');
		assert_true(buf[0] == '\0' || buf[0] == '/' || buf[0] == '.');
	}
}

static void schema_document_borrowed(void **state)
{
	const struct schema *s = *state;
	struct json_object *doc = schema_document(s), *title;

	assert_non_null(doc);
	assert_true(json_object_object_get_ex(doc, "title", &title));
	assert_string_equal(json_object_get_string(title), "Person");
}

/* ---- every keyword ---------------------------------------------------- */

static const char order_schema[] =
	"{"
	" \"$schema\": \"https://json-schema.org/draft/2020-12/schema\","
	" \"$id\": \"https://example.com/order.json\","
	" \"title\": \"Order\", \"description\": \"an order\","
	" \"$comment\": \"test\", \"examples\": [], \"default\": {},"
	" \"type\": \"object\","
	" \"$defs\": {"
	"  \"line\": {"
	"   \"type\": \"object\","
	"   \"properties\": {"
	"    \"sku\": {\"type\": \"string\", \"pattern\": \"^[A-Z]{3}-[0-9]{4}$\"},"
	"    \"qty\": {\"type\": \"integer\", \"exclusiveMinimum\": 0,"
	"              \"exclusiveMaximum\": 1000},"
	"    \"price\": {\"type\": \"number\", \"minimum\": 0,"
	"                \"multipleOf\": 0.01}"
	"   },"
	"   \"required\": [\"sku\", \"qty\", \"price\"],"
	"   \"additionalProperties\": false"
	"  },"
	"  \"tag\": {\"type\": \"string\", \"minLength\": 2, \"maxLength\": 4}"
	" },"
	" \"properties\": {"
	"  \"code\": {\"type\": \"string\", \"pattern\": \"^[A-Z]{3}$\"},"
	"  \"status\": {\"enum\": [\"open\", \"paid\"]},"
	"  \"kind\": {\"const\": \"order\"},"
	"  \"lines\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/line\"},"
	"             \"minItems\": 1, \"maxItems\": 3},"
	"  \"note\": {\"type\": [\"string\", \"null\"], \"maxLength\": 5},"
	"  \"tags\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/tag\"}},"
	"  \"extra\": {\"type\": \"object\","
	"            \"additionalProperties\": {\"type\": \"integer\"}}"
	" },"
	" \"required\": [\"code\", \"status\", \"kind\", \"lines\"],"
	" \"additionalProperties\": false"
	"}";

static void order_keywords(void **state)
{
	struct schema *s = must_compile(order_schema);

	(void)state;
	expect_valid(s, "{\"code\":\"ABC\",\"status\":\"paid\",\"kind\":\"order\","
			"\"lines\":[{\"sku\":\"ABC-0001\",\"qty\":1,"
			"\"price\":19.99},{\"sku\":\"XYZ-9999\",\"qty\":999,"
			"\"price\":0}],\"note\":null,\"tags\":[\"ab\",\"été\"],"
			"\"extra\":{\"a\":1,\"b\":2.0}}");
	expect_valid(s, "{\"code\":\"ABC\",\"status\":\"open\",\"kind\":\"order\","
			"\"lines\":[{\"sku\":\"ABC-0001\",\"qty\":1,"
			"\"price\":0.3}],\"note\":\"hello\"}");

	expect_errors(s,
		      "{\"code\":\"x1\",\"status\":\"lost\",\"kind\":\"order\","
		      "\"lines\":[{\"sku\":\"ABC-0001\",\"qty\":2,\"price\":1},"
		      "{\"sku\":\"ABC-0002\",\"qty\":0,\"price\":1}]}",
		      3,
		      "/code: \"x1\" does not match pattern \"^[A-Z]{3}$\"\n"
		      "/status: \"lost\" is not one of \"open\", \"paid\"\n"
		      "/lines/1/qty: 0 is not greater than 0");
	expect_errors(s,
		      "{\"code\":\"ABC\",\"status\":\"open\",\"kind\":\"offer\","
		      "\"lines\":[{\"sku\":\"abc-1\",\"qty\":1000,"
		      "\"price\":1.005,\"color\":\"red\"}],"
		      "\"note\":\"too long\",\"tags\":[\"a\",\"abcde\"],"
		      "\"extra\":{\"n\":1.5}}",
		      9,
		      "/kind: \"offer\" is not equal to the constant \"order\"\n"
		      "/lines/0/sku: \"abc-1\" does not match pattern "
		      "\"^[A-Z]{3}-[0-9]{4}$\"\n"
		      "/lines/0/qty: 1000 is not less than 1000\n"
		      "/lines/0/price: 1.005 is not a multiple of 0.01\n"
		      "/lines/0: property \"color\" is not allowed\n"
		      "/note: expected at most 5 characters, got 8\n"
		      "/tags/0: expected at least 2 characters, got 1\n"
		      "/tags/1: expected at most 4 characters, got 5\n"
		      "/extra/n: expected integer, got number");
	expect_errors(s,
		      "{\"code\":\"ABC\",\"status\":\"open\",\"kind\":\"order\","
		      "\"lines\":[]}",
		      1, "/lines: expected at least 1 item, got 0");
	expect_errors(s,
		      "{\"code\":\"ABC\",\"status\":\"open\",\"kind\":\"order\","
		      "\"lines\":[{\"sku\":\"ABC-0001\",\"qty\":1,\"price\":-1},"
		      "{\"sku\":\"ABC-0001\",\"qty\":1,\"price\":1},"
		      "{\"sku\":\"ABC-0001\",\"qty\":1,\"price\":1},"
		      "{\"sku\":\"ABC-0001\",\"qty\":1,\"price\":1}],"
		      "\"note\":5}",
		      3,
		      "/lines: expected at most 3 items, got 4\n"
		      "/lines/0/price: -1 is less than the minimum of 0\n"
		      "/note: expected string or null, got integer");
	/* $ means the very end, as in ECMA-262: no trailing newline */
	expect_errors(s,
		      "{\"code\":\"ABC\\n\",\"status\":\"open\",\"kind\":\"order\","
		      "\"lines\":[{\"sku\":\"ABC-0001\",\"qty\":1,\"price\":1}]}",
		      1, "/code: \"ABC\\n\" does not match pattern \"^[A-Z]{3}$\"");
	schema_free(s);
}

static void any_of_and_all_of(void **state)
{
	struct schema *s = must_compile(
		"{\"properties\": {\"pet\": {\"anyOf\": ["
		" {\"type\": \"string\"},"
		" {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"},"
		"  \"b\": {\"type\": \"integer\"}}, \"required\": [\"a\"]}]},"
		" \"n\": {\"allOf\": [{\"minimum\": 1}, {\"multipleOf\": 2}]}}}");

	(void)state;
	expect_valid(s, "{\"pet\":\"cat\",\"n\":4}");
	expect_valid(s, "{\"pet\":{\"a\":1}}");
	expect_errors(s, "{\"pet\":{\"a\":\"x\"}}", 1,
		      "/pet: does not match any alternative of anyOf (closest is "
		      "#2: /pet/a: expected integer, got string)");
	expect_errors(s, "{\"pet\":7}", 1,
		      "/pet: does not match any alternative of anyOf (closest is "
		      "#1: expected string, got integer)");
	expect_errors(s, "{\"pet\":{\"a\":\"x\",\"b\":\"y\"}}", 1,
		      "/pet: does not match any alternative of anyOf (closest is "
		      "#2: /pet/a: expected integer, got string; /pet/b: "
		      "expected integer, got string)");
	/* allOf reports every branch's errors */
	expect_errors(s, "{\"n\":-3}", 2,
		      "/n: -3 is less than the minimum of 1\n"
		      "/n: -3 is not a multiple of 2");
	schema_free(s);
}

static void const_enum_equality(void **state)
{
	struct schema *s;

	(void)state;
	s = must_compile("{\"const\": {\"a\": [1, 2.0, {\"b\": null}], \"c\": true}}");
	expect_valid(s, "{\"c\": true, \"a\": [1.0, 2, {\"b\": null}]}");
	expect_errors(s, "{\"c\": 1, \"a\": [1, 2, {\"b\": null}]}", 1,
		      "/: {\"c\":1,\"a\":[1,2,{\"b\":null}]} is not equal to the "
		      "constant {\"a\":[1,2.0,{\"b\":null}],\"c\":true}");
	schema_free(s);

	s = must_compile("{\"enum\": [null, 0, \"0\", [false]]}");
	expect_valid(s, "null");
	expect_valid(s, "0.0");
	expect_valid(s, "\"0\"");
	expect_valid(s, "[false]");
	expect_errors(s, "false", 1,
		      "/: false is not one of null, 0, \"0\", [false]");
	expect_errors(s, "[0]", 1, "/: [0] is not one of null, 0, \"0\", [false]");
	schema_free(s);

	s = must_compile("{\"const\": null}");
	expect_valid(s, "null");
	expect_errors(s, "0", 1, "/: 0 is not equal to the constant null");
	schema_free(s);

	s = must_compile("{\"enum\": []}");
	expect_errors(s, "1", 1, "/: 1 is not allowed (the enum is empty)");
	schema_free(s);

	/* beyond 2^53 integers and doubles are compared exactly */
	s = must_compile("{\"const\": 9007199254740993}");
	expect_valid(s, "9007199254740993");
	expect_errors(s, "9007199254740992.0", 1,
		      "/: 9007199254740992.0 is not equal to the constant "
		      "9007199254740993");
	schema_free(s);
}

static void numbers(void **state)
{
	struct schema *s;

	(void)state;
	/* decimal fractions are not exact in binary: 0.3 / 0.1 is not 3 */
	s = must_compile("{\"multipleOf\": 0.1}");
	expect_valid(s, "0.3");
	expect_valid(s, "-12.7");
	expect_valid(s, "7");
	expect_errors(s, "0.35", 1, "/: 0.35 is not a multiple of 0.1");
	schema_free(s);

	s = must_compile("{\"type\": \"integer\", \"multipleOf\": 3}");
	expect_valid(s, "9.0");
	expect_valid(s, "-9223372036854775806");
	expect_errors(s, "10", 1, "/: 10 is not a multiple of 3");
	expect_errors(s, "1e308", 1, "/: 1e+308 is not a multiple of 3");
	schema_free(s);

	/* what json-c's lenient parser accepts but JSON cannot carry */
	s = must_compile("{\"type\": \"number\"}");
	expect_errors(s, "NaN", 1, "/: nan is not a valid JSON number");
	expect_errors(s, "-Infinity", 1, "/: -inf is not a valid JSON number");
	expect_errors(s, "1e400", 1, "/: inf is not a valid JSON number");
	schema_free(s);

	/* int64 against a double bound, compared exactly */
	s = must_compile("{\"maximum\": 9007199254740992.0, "
			 "\"exclusiveMinimum\": -1}");
	expect_valid(s, "9007199254740992");
	expect_valid(s, "-0.9999999999999999");
	expect_errors(s, "9007199254740993", 1,
		      "/: 9007199254740993 is greater than the maximum of "
		      "9007199254740992.0");
	expect_errors(s, "-1.0", 1, "/: -1.0 is not greater than -1");
	schema_free(s);
}

static void patterns(void **state)
{
	struct schema *s;

	(void)state;
	/* unanchored search, UTF mode, ECMA-262 property names */
	s = must_compile("{\"pattern\": \"b+\"}");
	expect_valid(s, "\"abbc\"");
	expect_valid(s, "42"); /* only strings are matched */
	expect_errors(s, "\"ac\"", 1, "/: \"ac\" does not match pattern \"b+\"");
	schema_free(s);

	s = must_compile("{\"pattern\": \"^\\\\p{Uppercase_Letter}"
			 "\\\\p{gc=Ll}+\\\\P{Letter}?$\", \"maxLength\": 4}");
	expect_valid(s, "\"Ωμέ\"");
	expect_valid(s, "\"Éa1\"");
	expect_errors(s, "\"éa\"", 1,
		      "/: \"éa\" does not match pattern "
		      "\"^\\\\p{Uppercase_Letter}\\\\p{gc=Ll}+\\\\P{Letter}?$\"");
	expect_errors(s, "\"Ωμέ1x\"", 2,
		      "/: expected at most 4 characters, got 5\n"
		      "/: \"Ωμέ1x\" does not match pattern "
		      "\"^\\\\p{Uppercase_Letter}\\\\p{gc=Ll}+\\\\P{Letter}?$\"");
	schema_free(s);
}

static void boolean_schemas(void **state)
{
	struct schema *s;

	(void)state;
	s = must_compile("true");
	expect_valid(s, "{\"anything\": [1, 2]}");
	schema_free(s);
	s = must_compile("false");
	expect_errors(s, "1", 1, "/: no value is allowed here");
	schema_free(s);
	s = must_compile("{\"properties\": {\"a\": true, \"b\": false}}");
	expect_valid(s, "{\"a\": 1}");
	expect_errors(s, "{\"a\": 1, \"b\": 2}", 1, "/b: no value is allowed here");
	schema_free(s);
}

/* ---- $ref ------------------------------------------------------------- */

static void refs_local(void **state)
{
	struct schema *s;

	(void)state;
	s = must_compile("{\"$defs\": {\"a~b\": {\"type\": \"integer\"},"
			 " \"c/d\": {\"type\": \"string\"},"
			 " \"e%f\": {\"type\": \"null\"}},"
			 " \"properties\": {"
			 "  \"x\": {\"$ref\": \"#/$defs/a~0b\"},"
			 "  \"y\": {\"$ref\": \"#/$defs/c~1d\"},"
			 "  \"z\": {\"$ref\": \"#/$defs/e%25f\"},"
			 "  \"w\": {\"$ref\": \"#/properties/x\", \"minimum\": 5},"
			 "  \"v\": {\"$ref\": \"https://example.com/s#/properties/x\"}},"
			 " \"$id\": \"https://example.com/s\"}");
	expect_valid(s, "{\"x\": 1, \"y\": \"s\", \"z\": null, \"w\": 6, \"v\": 2}");
	expect_errors(s, "{\"x\": \"1\", \"y\": 1, \"z\": 0, \"w\": 4, \"v\": 2.5}",
		      5,
		      "/x: expected integer, got string\n"
		      "/y: expected string, got integer\n"
		      "/z: expected null, got integer\n"
		      "/w: 4 is less than the minimum of 5\n"
		      "/v: expected integer, got number");
	schema_free(s);
}

static const char tree_schema[] =
	"{\"$ref\": \"#/$defs/node\","
	" \"$defs\": {\"node\": {"
	"  \"type\": \"object\","
	"  \"properties\": {"
	"   \"value\": {\"type\": \"integer\"},"
	"   \"children\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/node\"}}"
	"  },"
	"  \"required\": [\"value\"],"
	"  \"additionalProperties\": false}}}";

static void recursive_tree(void **state)
{
	struct schema *s = must_compile(tree_schema);
	struct schema *root;

	(void)state;
	expect_valid(s, "{\"value\": 1}");
	expect_valid(s, "{\"value\": 1, \"children\": [{\"value\": 2},"
			" {\"value\": 3, \"children\": [{\"value\": 4,"
			" \"children\": []}]}]}");
	expect_errors(s,
		      "{\"value\": 1, \"children\": [{\"value\": 2, \"children\":"
		      " [{\"value\": 3}, {\"value\": \"four\"}, {\"v\": 5}]}]}",
		      3,
		      "/children/0/children/1/value: expected integer, got string\n"
		      "/children/0/children/2: missing required property \"value\"\n"
		      "/children/0/children/2: property \"v\" is not allowed");
	schema_free(s);

	/* recursion through the root itself */
	root = must_compile("{\"type\": \"object\", \"properties\": {"
			    "\"next\": {\"anyOf\": [{\"$ref\": \"#\"},"
			    " {\"type\": \"null\"}]}, \"n\": {\"type\": \"integer\"}}}");
	expect_valid(root, "{\"n\": 1, \"next\": {\"n\": 2, \"next\": null}}");
	expect_errors(root, "{\"next\": {\"next\": {\"n\": \"x\"}}}", 1,
		      "/next: does not match any alternative of anyOf (closest "
		      "is #1: /next/next: does not match any alternative of "
		      "anyOf (closest is #1: /next/next/n: expected integer, got "
		      "string))");
	schema_free(root);
}

/* A schema whose $defs d0 -> d1 -> ... -> d<n-1> -> integer, by $ref. */
static struct json_object *ref_chain(int n)
{
	struct json_object *doc = json_object_new_object();
	struct json_object *defs = json_object_new_object(), *d;
	char name[32], ref[48];
	int i;

	for (i = 0; i < n; i++) {
		d = json_object_new_object();
		snprintf(name, sizeof(name), "d%d", i);
		if (i + 1 < n) {
			snprintf(ref, sizeof(ref), "#/$defs/d%d", i + 1);
			json_object_object_add(d, "$ref", json_object_new_string(ref));
		} else {
			json_object_object_add(d, "type",
					       json_object_new_string("integer"));
		}
		json_object_object_add(defs, name, d);
	}
	json_object_object_add(doc, "$defs", defs);
	json_object_object_add(doc, "$ref", json_object_new_string("#/$defs/d0"));
	return doc;
}

static void ref_chains(void **state)
{
	struct json_object *doc;
	struct schema *s;
	char err[256];

	(void)state;
	doc = ref_chain(1000);
	s = schema_compile(doc, err, sizeof(err));
	json_object_put(doc);
	assert_non_null(s);
	expect_valid(s, "3");
	expect_errors(s, "\"3\"", 1, "/: expected integer, got string");
	schema_free(s);

	/* validation would stop at 4096 nested steps: refused up front */
	doc = ref_chain(5000);
	s = schema_compile(doc, err, sizeof(err));
	json_object_put(doc);
	assert_null(s);
	assert_non_null(strstr(err, ": more than 4096 $ref, allOf or anyOf "
				    "steps in a row"));
}

/* ---- compile errors --------------------------------------------------- */

static void compile_errors(void **state)
{
	(void)state;
	expect_compile_error(
		"{\"properties\": {\"x\": {\"oneOf\": [{}, {}]}}}",
		"unsupported keyword 'oneOf' at /properties/x");
	expect_compile_error("{\"format\": \"date\"}",
			     "unsupported keyword 'format' at /");
	expect_compile_error(
		"{\"$defs\": {\"n\": {\"$anchor\": \"a\"}}}",
		"unsupported keyword '$anchor' at /$defs/n");
	expect_compile_error("{\"properties\": {\"age\": {\"minimum\": \"0\"}}}",
			     "/properties/age/minimum: must be a number");
	expect_compile_error("{\"maxLength\": -1}",
			     "/maxLength: must be a non-negative integer");
	expect_compile_error("{\"minItems\": 1.5}",
			     "/minItems: must be a non-negative integer");
	expect_compile_error("{\"multipleOf\": 0}",
			     "/multipleOf: must be a number greater than 0");
	expect_compile_error("{\"type\": \"int\"}",
			     "/type: unknown type \"int\" (expected null, "
			     "boolean, object, array, number, string or "
			     "integer)");
	expect_compile_error("{\"type\": [\"string\", \"string\"]}",
			     "/type/1: type \"string\" is listed twice");
	expect_compile_error("{\"type\": []}", "/type: must not be an empty array");
	expect_compile_error("{\"required\": \"name\"}",
			     "/required: must be an array of property names");
	expect_compile_error("{\"required\": [\"a\", 1]}",
			     "/required/1: must be a string");
	expect_compile_error("{\"properties\": []}",
			     "/properties: must be an object mapping names to "
			     "schemas");
	expect_compile_error("{\"properties\": {\"a\": 1}}",
			     "/properties/a: must be a schema (an object or a "
			     "boolean), got int");
	expect_compile_error("{\"anyOf\": []}",
			     "/anyOf: must be a non-empty array of schemas");
	expect_compile_error("{\"items\": [{}]}",
			     "/items: must be a schema (the array form, for "
			     "tuples, is not supported)");
	expect_compile_error("{\"enum\": 1}", "/enum: must be an array");
	expect_compile_error("{\"title\": 1}", "/title: must be a string");
	expect_compile_error("{\"properties\": {\"code\": {\"pattern\": \"(abc\"}}}",
			     "/properties/code/pattern: invalid regular "
			     "expression at offset 4: missing closing "
			     "parenthesis");
	expect_compile_error("{\"pattern\": \"\\\\p{Foo}\"}",
			     "/pattern: invalid regular expression at offset 7: "
			     "unknown property after \\P or \\p");
	expect_compile_error("{\"properties\": {\"x\": {\"$ref\": \"#/$defs/nope\"}}}",
			     "/properties/x/$ref: cannot resolve "
			     "\"#/$defs/nope\": no such location");
	expect_compile_error("{\"$ref\": \"https://example.com/other.json\"}",
			     "/$ref: cannot resolve "
			     "\"https://example.com/other.json\": only local "
			     "references (\"#\", \"#/$defs/name\") are "
			     "supported");
	expect_compile_error("{\"$ref\": \"#node\"}",
			     "/$ref: cannot resolve \"#node\": anchors are not "
			     "supported, only JSON pointers like "
			     "\"#/$defs/name\"");
	expect_compile_error("{\"$ref\": \"#/$defs/a%zz\"}",
			     "/$ref: cannot resolve \"#/$defs/a%zz\": bad "
			     "percent-encoding");
	expect_compile_error("{\"$defs\": {\"a\": 5}, \"$ref\": \"#/$defs/a\"}",
			     "/$defs/a: must be a schema (an object or a "
			     "boolean), got int");
	expect_compile_error("{\"$ref\": \"#/$defs/a\", \"$defs\": {\"a\": "
			     "{\"allOf\": [{\"$ref\": \"#\"}]}}}",
			     "/: circular $ref: the cycle never moves into the "
			     "instance, so validation would not end");
	expect_compile_error("{\"$ref\": \"#\"}",
			     "/: circular $ref: the cycle never moves into the "
			     "instance, so validation would not end");
	expect_compile_error("{\"$defs\": {\"a\": {\"$id\": \"a.json\"}}}",
			     "/$defs/a/$id: $id is only supported at the root "
			     "(embedded schema resources are not)");
	expect_compile_error("null",
			     "/: must be a schema (an object or a boolean), got "
			     "null");
}

static void write_file(char *path, const char *text)
{
	int fd = mkstemp(path);
	size_t len = strlen(text);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static void load_file_errors(void **state)
{
	char path[64], err[512], want[600];
	struct schema *s;

	(void)state;
	s = schema_load_file("/nonexistent/x.json", err, sizeof(err));
	assert_null(s);
	assert_string_equal(err, "/nonexistent/x.json: cannot open: No such "
				 "file or directory");

	strcpy(path, "/tmp/test_schema_XXXXXX");
	write_file(path, "{\n  \"type\": \"object\",\n  \"required\": [\"a\",]\n}\n");
	s = schema_load_file(path, err, sizeof(err));
	assert_null(s);
	snprintf(want, sizeof(want),
		 "%s: invalid JSON at line 3, column 20: unexpected character",
		 path);
	assert_string_equal(err, want);
	unlink(path);

	strcpy(path, "/tmp/test_schema_XXXXXX");
	write_file(path, "{\"type\": \"object\"} {}");
	s = schema_load_file(path, err, sizeof(err));
	assert_null(s);
	snprintf(want, sizeof(want),
		 "%s: invalid JSON at line 1, column 20: unexpected character",
		 path);
	assert_string_equal(err, want);
	unlink(path);

	strcpy(path, "/tmp/test_schema_XXXXXX");
	write_file(path, "{\"type\": \"object\", \"oneOf\": []}\n");
	s = schema_load_file(path, err, sizeof(err));
	assert_null(s);
	snprintf(want, sizeof(want), "%s: unsupported keyword 'oneOf' at /",
		 path);
	assert_string_equal(err, want);
	unlink(path);
}

/* ---- hostile instances ------------------------------------------------ */

static void bounded_messages(void **state)
{
	struct schema *s = must_compile("{\"properties\": {\"code\":"
					" {\"pattern\": \"^[A-Z]+$\"}},"
					" \"additionalProperties\": false}");
	struct json_object *x = json_object_new_object();
	char *big = malloc(100001), buf[4096];
	const char *nl;
	unsigned n;

	(void)state;
	memset(big, 'a', 100000);
	big[100000] = '\0';
	json_object_object_add(x, "code", json_object_new_string(big));
	json_object_object_add(x, big, json_object_new_int(1));
	n = schema_validate(s, x, buf, sizeof(buf));
	assert_int_equal(n, 2);
	/* two short lines, each value and name cut with "..." */
	nl = strchr(buf, '\n');
	assert_non_null(nl);
	assert_true(nl - buf < 200);
	assert_true(strlen(nl + 1) < 200);
	assert_non_null(strstr(buf, "aaa...\" does not match pattern"));
	assert_non_null(strstr(nl + 1, "aaa...\" is not allowed"));
	json_object_put(x);

	/* control characters and invalid UTF-8 stay on one line */
	x = json_object_new_object();
	json_object_object_add(x, "code",
			       json_object_new_string("a\nb\x01\xff"));
	json_object_object_add(x, "k/e~y\n", json_object_new_int(1));
	n = schema_validate(s, x, buf, sizeof(buf));
	assert_int_equal(n, 2);
	assert_string_equal(buf,
			    "/code: \"a\\nb\\u0001\\ufffd\" does not match pattern "
			    "\"^[A-Z]+$\"\n"
			    "/: property \"k/e~y\\n\" is not allowed");
	json_object_put(x);
	free(big);
	schema_free(s);
}

static void deep_instance(void **state)
{
	struct schema *s = must_compile(tree_schema);
	struct json_tokener *tok = json_tokener_new_ex(1000);
	struct json_object *x;
	char *text = malloc(64 * 400 + 64), buf[1024];
	size_t len = 0;
	int i;
	unsigned n;

	(void)state;
	/* 300 nodes deep: {"value":1,"children":[{ ... }]} */
	for (i = 0; i < 300; i++)
		len += (size_t)sprintf(text + len, "{\"value\":1,\"children\":[");
	len += (size_t)sprintf(text + len, "{\"value\":1}");
	for (i = 0; i < 300; i++)
		len += (size_t)sprintf(text + len, "]}");
	x = json_tokener_parse_ex(tok, text, (int)len);
	assert_non_null(x);
	n = schema_validate(s, x, buf, sizeof(buf));
	assert_int_equal(n, 1);
	assert_non_null(strstr(buf, ": nested deeper than 128 levels"));
	assert_true(strlen(buf) < 400);
	json_object_put(x);
	json_tokener_free(tok);
	free(text);
	schema_free(s);
}

/* ---- threads ---------------------------------------------------------- */

struct worker {
	const struct schema *s;
	struct json_object *good, *bad;
	const char *bad_text;
	int failures;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	char buf[1024];
	int i;

	for (i = 0; i < 10000; i++) {
		if (schema_validate(w->s, w->good, buf, sizeof(buf)) != 0 ||
		    buf[0])
			w->failures++;
		if (schema_validate(w->s, w->bad, buf, sizeof(buf)) != 3 ||
		    strcmp(buf, w->bad_text) != 0)
			w->failures++;
	}
	return NULL;
}

static void concurrent_validation(void **state)
{
	struct schema *s = must_compile(order_schema);
	struct json_object *good, *bad;
	struct worker w[4];
	pthread_t t[4];
	int i;

	(void)state;
	good = parse("{\"code\":\"ABC\",\"status\":\"paid\",\"kind\":\"order\","
		     "\"lines\":[{\"sku\":\"ABC-0001\",\"qty\":1,\"price\":19.99}],"
		     "\"tags\":[\"ab\"]}");
	bad = parse("{\"code\":\"x1\",\"status\":\"lost\",\"kind\":\"order\","
		    "\"lines\":[{\"sku\":\"ABC-0001\",\"qty\":2,\"price\":1},"
		    "{\"sku\":\"ABC-0002\",\"qty\":0,\"price\":1}]}");
	/* the instances are shared too: validation only reads them */
	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){
			.s = s, .good = good, .bad = bad,
			.bad_text = "/code: \"x1\" does not match pattern "
				    "\"^[A-Z]{3}$\"\n"
				    "/status: \"lost\" is not one of \"open\", "
				    "\"paid\"\n"
				    "/lines/1/qty: 0 is not greater than 0",
		};
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]),
				 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
	json_object_put(good);
	json_object_put(bad);
	schema_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(person_valid, person_setup,
						person_teardown),
		cmocka_unit_test_setup_teardown(person_each_violation,
						person_setup, person_teardown),
		cmocka_unit_test_setup_teardown(person_all_errors, person_setup,
						person_teardown),
		cmocka_unit_test_setup_teardown(buffer_too_small, person_setup,
						person_teardown),
		cmocka_unit_test_setup_teardown(schema_document_borrowed,
						person_setup, person_teardown),
		cmocka_unit_test(order_keywords),
		cmocka_unit_test(any_of_and_all_of),
		cmocka_unit_test(const_enum_equality),
		cmocka_unit_test(numbers),
		cmocka_unit_test(patterns),
		cmocka_unit_test(boolean_schemas),
		cmocka_unit_test(refs_local),
		cmocka_unit_test(recursive_tree),
		cmocka_unit_test(ref_chains),
		cmocka_unit_test(compile_errors),
		cmocka_unit_test(load_file_errors),
		cmocka_unit_test(bounded_messages),
		cmocka_unit_test(deep_instance),
		cmocka_unit_test(concurrent_validation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
