/*
 * Unit tests for common/jsonparse: one whole value or an error saying
 * what and where (trailing bytes, depth, an empty or cut text).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "jsonparse.h"

#include <json-c/json.h>
#include <string.h>

static enum jsonparse_fail parse(const char *s, int depth, int flags,
				 size_t *ret_at)
{
	struct jsonparse_error e;
	struct json_object *v = jsonparse_once(s, strlen(s), depth, flags, &e);

	if (v) {
		assert_int_equal(e.fail, JSONPARSE_OK);
		json_object_put(v);
	}
	if (ret_at)
		*ret_at = e.at;
	return e.fail;
}

static void test_whole_values(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"a\":[1,2,{\"b\":null}]}", 8, 0, NULL),
			 JSONPARSE_OK);
	assert_int_equal(parse("  [1]\n\t ", 8, 0, NULL), JSONPARSE_OK);
	assert_int_equal(parse("\"x\"", 8, 0, NULL), JSONPARSE_OK);
	assert_int_equal(parse("42 ", 8, 0, NULL), JSONPARSE_OK);
	/* json-c cannot tell a number is whole until a byte follows it */
	assert_int_equal(parse("42", 8, 0, NULL), JSONPARSE_UNCLOSED);
}

static void test_trailing(void **state)
{
	size_t at = 0;

	(void)state;
	assert_int_equal(parse("{} x", 8, 0, &at), JSONPARSE_TRAILING);
	assert_int_equal(at, 3);
	assert_int_equal(parse("[1]]", 8, 0, &at), JSONPARSE_TRAILING);
	assert_int_equal(at, 3);
	assert_int_equal(parse("{}{}", 8, 0, &at), JSONPARSE_TRAILING);
	assert_int_equal(at, 2);
}

static void test_empty_and_cut(void **state)
{
	(void)state;
	assert_int_equal(parse("", 8, 0, NULL), JSONPARSE_UNCLOSED);
	assert_int_equal(parse("   ", 8, 0, NULL), JSONPARSE_UNCLOSED);
	assert_int_equal(parse("{\"a\":[1,", 8, 0, NULL),
			 JSONPARSE_UNCLOSED);
	assert_int_equal(parse("\"abc", 8, 0, NULL), JSONPARSE_UNCLOSED);
}

static void test_depth(void **state)
{
	size_t at = 0;

	(void)state;
	/* depth counts the value inside the arrays too */
	assert_int_equal(parse("[[[1]]]", 4, 0, NULL), JSONPARSE_OK);
	assert_int_equal(parse("[[[1]]]", 3, 0, &at), JSONPARSE_SYNTAX);
	assert_int_equal(at, 3);
}

static void test_syntax(void **state)
{
	struct jsonparse_error e;
	size_t at = 0;

	(void)state;
	assert_int_equal(parse("{\"a\" 1}", 8, 0, &at), JSONPARSE_SYNTAX);
	assert_int_equal(at, 5);
	assert_null(jsonparse_once("[x]", 3, 8, 0, &e));
	assert_int_equal(e.fail, JSONPARSE_SYNTAX);
	assert_non_null(e.desc);
	/* the tokener's flags decide the rest */
	assert_int_equal(parse("[1,]", 8, 0, NULL), JSONPARSE_OK);
	assert_int_equal(parse("[1,]", 8, JSON_TOKENER_STRICT, NULL),
			 JSONPARSE_SYNTAX);
	assert_int_equal(parse("\"\xff\"", 8, JSON_TOKENER_VALIDATE_UTF8,
			       NULL), JSONPARSE_SYNTAX);
}

/* One tokener for many parses (as each LLM worker keeps one): an error
 * leaves nothing behind for the next parse. */
static void test_reused_tokener(void **state)
{
	struct json_tokener *tok = json_tokener_new_ex(8);
	struct jsonparse_error e;
	struct json_object *v;

	(void)state;
	assert_null(jsonparse(tok, "{\"a\":", 5, &e));
	assert_int_equal(e.fail, JSONPARSE_UNCLOSED);
	v = jsonparse(tok, "{\"b\":2}", 7, &e);
	assert_non_null(v);
	assert_int_equal(e.fail, JSONPARSE_OK);
	assert_true(json_object_object_get_ex(v, "b", NULL));
	json_object_put(v);
	assert_null(jsonparse(tok, "1 2", 3, &e));
	assert_int_equal(e.fail, JSONPARSE_TRAILING);
	json_tokener_free(tok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_values),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_empty_and_cut),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_reused_tokener),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
