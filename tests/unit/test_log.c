/* Unit tests for common/log: one JSON object a line with typed fields
 * the logger escapes, the text format, and registered secrets never
 * written, whoever formats the line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"
#include "secret.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Run fn with stderr going to a temp file; returns what it wrote. */
static char *capture(void (*fn)(void))
{
	char path[] = "/tmp/test_log.XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	char *text = calloc(1, 65536);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0 && text);
	unlink(path);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	fn();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	n = pread(fd, text, 65535, 0);
	assert_true(n >= 0);
	close(fd);
	return text;
}

static void lines_with_secrets(void)
{
	LOG_INFO("plain", LOG_I("n", 1));
	/* As librdkafka's debug output might say it. */
	LOG_DEBUG("librdkafka",
		  LOG_S("text", "Client config: sasl.password = hunter2-pw, "
				"sasl.username = bob"));
	LOG_WARN("request",
		 LOG_S("header", "Authorization: Bearer sk-test-SECRET\"x\\y"));
	LOG_ERROR("twice", LOG_S("a", "hunter2-pw"), LOG_S("b", "xhunter2-pwx"));
	LOG_INFO("short", LOG_S("a", "abcd"));
	/* Not registered: redacted by its shape. */
	LOG_WARN("echo", LOG_S("detail", "HTTP 400: Host: h\nAuthorization: "
					 "Bearer sk-unregistered-123\n"
					 "Accept: */*"));
	/* The redaction makes the fields too long: cut, still JSON. */
	{
		static char many[1001];
		int i;

		for (i = 0; i < 200; i++)
			memcpy(many + i * 5, "abcd,", 5);
		LOG_INFO("grows", LOG_S("a", many), LOG_S("b", many),
			 LOG_S("c", many));
	}
}

static void redaction(void **state)
{
	char *text;

	(void)state;
	log_setup(LOG_LVL_DEBUG, true);
	assert_int_equal(secret_add("hunter2-pw"), 0);
	assert_int_equal(secret_add("sk-test-SECRET\"x\\y"), 0);
	assert_int_equal(secret_add("abcd"), 0);
	assert_int_equal(secret_add("abc"), 0); /* too short: ignored */
	assert_int_equal(secret_add(NULL), 0);
	text = capture(lines_with_secrets);

	assert_null(strstr(text, "hunter2"));
	assert_null(strstr(text, "sk-test-SECRET"));
	assert_null(strstr(text, "abcd"));
	assert_non_null(strstr(text, "sasl.password = (redacted), "
				     "sasl.username = bob"));
	assert_non_null(strstr(text, "Authorization: Bearer (redacted)\""));
	assert_non_null(strstr(text, "\"a\":\"(redacted)\",\"b\":"
				     "\"x(redacted)x\""));
	/* A secret shorter than the marker: the line grows. */
	assert_non_null(strstr(text, "\"msg\":\"short\",\"a\":\"(redacted)\""));
	assert_null(strstr(text, "sk-unregistered"));
	assert_non_null(strstr(text, "Host: h\\nAuthorization: Bearer "
				     "(redacted)\\nAccept: */*"));
	assert_non_null(strstr(text, "\"msg\":\"grows\",\"cut\":true}"));
	/* Every line is still one JSON object. */
	{
		char *line, *save = NULL;
		int n = 0;

		for (line = strtok_r(text, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save), n++)
			assert_true(line[0] == '{' &&
				    line[strlen(line) - 1] == '}');
		assert_int_equal(n, 7);
	}
	free(text);
	secret_clear();
	text = capture(lines_with_secrets);
	assert_non_null(strstr(text, "hunter2-pw"));
	assert_null(strstr(text, "\"cut\""));
	free(text);
}

static char *long_text(const char *unit, size_t n)
{
	size_t len = strlen(unit), i;
	char *s = malloc(len * n + 1);

	assert_non_null(s);
	for (i = 0; i < n; i++)
		memcpy(s + i * len, unit, len);
	s[len * n] = '\0';
	return s;
}

static void typed_lines(void)
{
	char *a = long_text("a", 3000), *euro = long_text("\xe2\x82\xac", 900);
	char *quote = long_text("\"", 900), *ctl = long_text("\x01", 900);

	LOG_INFO("strings",
		 LOG_S("s", "q\"b\\n\nt\tc\x01" "d\x7f" "u\xc3\xa9"
			    "bad\xff" "x\xc3"),
		 LOG_S("null", NULL), LOG_S("empty", ""));
	LOG_WARN("numbers", LOG_I("i", -5), LOG_I("imin", INT64_MIN),
		 LOG_U("u", UINT64_MAX), LOG_D("d", 2.0 / 3, 2),
		 LOG_D("whole", 3, 0), LOG_D("nan", NAN, 1),
		 LOG_D("inf", INFINITY, 1), LOG_B("t", true),
		 LOG_B("f", false));
	LOG_ERROR("long", LOG_S("a", a), LOG_S("euro", euro));
	LOG_ERROR("escapes", LOG_S("quote", quote), LOG_S("ctl", ctl));
	LOG_DEBUG("below the level", LOG_I("n", 1));
	LOG_INFO("no fields");
	free(a);
	free(euro);
	free(quote);
	free(ctl);
}

/* The string value of key in line, its length in *len. */
static const char *string_at(const char *line, const char *key,
			     size_t *len)
{
	char pat[64];
	const char *p, *end;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(line, pat);
	assert_non_null(p);
	p += strlen(pat) - 1;
	for (end = p + 1; *end != '"'; end++)
		if (*end == '\\')
			end++;
	*len = (size_t)(end + 1 - p);
	return p;
}

/* Every type written as JSON: strings escaped (invalid UTF-8 as U+FFFD),
 * NULL as null, numbers as numbers, long strings cut whole. */
static void typed_fields(void **state)
{
	char *text, *line, *save = NULL;
	struct json_object *o, *v;
	const char *p;
	size_t len;
	int n = 0;

	(void)state;
	log_setup(LOG_LVL_INFO, true);
	text = capture(typed_lines);

	assert_non_null(strstr(text,
		"\"msg\":\"strings\",\"s\":\"q\\\"b\\\\n\\nt\\u0009c"
		"\\u0001d\\u007fu\xc3\xa9" "bad\\ufffdx\\ufffd\","
		"\"null\":null,\"empty\":\"\"}\n"));
	assert_non_null(strstr(text,
		"\"msg\":\"numbers\",\"i\":-5,"
		"\"imin\":-9223372036854775808,"
		"\"u\":18446744073709551615,\"d\":0.67,\"whole\":3,"
		"\"nan\":null,\"inf\":null,\"t\":true,\"f\":false}\n"));
	assert_null(strstr(text, "below the level"));
	assert_non_null(strstr(text, "\"level\":\"info\","
				     "\"msg\":\"no fields\"}\n"));

	/* Cut to LOG_VALUE_MAX bytes, quotes included, never inside a
	 * character or an escape. */
	p = string_at(text, "a", &len);
	assert_int_equal(len, LOG_VALUE_MAX);
	p = string_at(text, "euro", &len);
	assert_int_equal(len, 2 + (LOG_VALUE_MAX - 2) / 3 * 3);
	assert_memory_equal(p + len - 4, "\xe2\x82\xac\"", 4);
	p = string_at(text, "quote", &len);
	assert_int_equal(len, 2 + (LOG_VALUE_MAX - 2) / 2 * 2);
	assert_memory_equal(p + len - 3, "\\\"\"", 3);
	p = string_at(text, "ctl", &len);
	assert_int_equal(len, 2 + (LOG_VALUE_MAX - 2) / 6 * 6);
	assert_memory_equal(p + len - 7, "\\u0001\"", 7);

	/* Every line parses, with the types given. */
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save), n++) {
		o = json_tokener_parse(line);
		assert_non_null(o);
		if (json_object_object_get_ex(o, "s", &v))
			assert_int_equal(json_object_get_type(v),
					 json_type_string);
		if (json_object_object_get_ex(o, "null", &v))
			assert_null(v);
		if (json_object_object_get_ex(o, "imin", &v))
			assert_true(json_object_get_int64(v) == INT64_MIN);
		if (json_object_object_get_ex(o, "u", &v))
			assert_true(json_object_get_uint64(v) == UINT64_MAX);
		if (json_object_object_get_ex(o, "d", &v))
			assert_int_equal(json_object_get_type(v),
					 json_type_double);
		if (json_object_object_get_ex(o, "t", &v))
			assert_int_equal(json_object_get_type(v),
					 json_type_boolean);
		json_object_put(o);
	}
	assert_int_equal(n, 5);
	free(text);
}

static void text_lines(void)
{
	LOG_WARN("hello world", LOG_S("s", "a\"b\nc"), LOG_I("n", 3),
		 LOG_S("none", NULL));
	LOG_INFO("bare");
}

/* log.format = text: timestamp, level, the message as it is, then the
 * same fields as in JSON. */
static void text_format(void **state)
{
	char *text;

	(void)state;
	log_setup(LOG_LVL_INFO, false);
	text = capture(text_lines);
	log_setup(LOG_LVL_INFO, true);
	assert_true(text[0] >= '0' && text[0] <= '9');
	assert_non_null(strstr(text, "Z warn  hello world \"s\":\"a\\\"b\\nc\","
				     "\"n\":3,\"none\":null\n"));
	assert_non_null(strstr(text, "Z info  bare\n"));
	assert_null(strchr(text, '{'));
	free(text);
}

/* At most burst lines a period; the next line written says how many were
 * held back. */
static void rate_limit(void **state)
{
	struct log_limit l = LOG_LIMIT_INIT;
	uint64_t held = 99;
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_true(log_limit(&l, 3, 200000000LL, &held));
		assert_int_equal(held, 0);
	}
	for (i = 0; i < 5; i++)
		assert_false(log_limit(&l, 3, 200000000LL, &held));
	usleep(250000);
	assert_true(log_limit(&l, 3, 200000000LL, &held));
	assert_int_equal(held, 5);
	assert_true(log_limit(&l, 3, 200000000LL, &held));
	assert_int_equal(held, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(redaction),
		cmocka_unit_test(typed_fields),
		cmocka_unit_test(text_format),
		cmocka_unit_test(rate_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
