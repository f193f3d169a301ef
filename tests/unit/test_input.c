/* Unit tests for common/input: what reaches the model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "input.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_text),
		cmocka_unit_test(refuses_bad_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
