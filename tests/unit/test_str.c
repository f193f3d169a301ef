/*
 * Unit tests for common/str.c: the number and copy helpers, UTF-8
 * validation and cuts, and the capped text builder (its cap, its cut on a
 * character boundary, its count).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "str.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static size_t seq(const char *s)
{
	return utf8_seq(s, strlen(s), NULL);
}

/* str_u64 writes what snprintf's PRIu64 does, at the edges too. */
static void test_u64(void **state)
{
	static const uint64_t v[] = { 0, 1, 9, 10, 99, 100, 4294967295u,
				      4294967296u, 10000000000000000000u,
				      UINT64_MAX };
	char got[STR_U64_SIZE], want[32];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		memset(got, 'x', sizeof(got));
		n = str_u64(got, v[i]);
		snprintf(want, sizeof(want), "%" PRIu64, v[i]);
		assert_string_equal(got, want);
		assert_int_equal(n, strlen(want));
	}
}

/* str_copy copies what fits, always ends the text, and says how much. */
static void test_copy(void **state)
{
	char buf[6];

	(void)state;
	assert_int_equal(str_copy(buf, sizeof(buf), "stop"), 4);
	assert_string_equal(buf, "stop");
	assert_int_equal(str_copy(buf, sizeof(buf), "length"), 5);
	assert_string_equal(buf, "lengt");
	assert_int_equal(str_copy(buf, sizeof(buf), ""), 0);
	assert_string_equal(buf, "");
	assert_int_equal(str_copy(buf, 1, "x"), 0);
	assert_string_equal(buf, "");
}

static void test_utf8_seq(void **state)
{
	uint32_t cp = 0;

	(void)state;
	assert_int_equal(utf8_seq("a", 1, &cp), 1);
	assert_int_equal(cp, 'a');
	assert_int_equal(utf8_seq("\xc3\xa9", 2, &cp), 2);
	assert_int_equal(cp, 0xe9);
	assert_int_equal(utf8_seq("\xe2\x82\xac", 3, &cp), 3);
	assert_int_equal(cp, 0x20ac);
	assert_int_equal(utf8_seq("\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1f600);
	assert_int_equal(utf8_seq("\xf4\x8f\xbf\xbf", 4, &cp), 4);
	assert_int_equal(cp, 0x10ffff);

	assert_int_equal(seq("\x80"), 0);             /* continuation */
	assert_int_equal(seq("\xc0\xaf"), 0);         /* overlong / */
	assert_int_equal(seq("\xc1\xbf"), 0);
	assert_int_equal(seq("\xe0\x80\xaf"), 0);     /* overlong */
	assert_int_equal(seq("\xf0\x80\x80\xaf"), 0); /* overlong */
	assert_int_equal(seq("\xed\xa0\x80"), 0);     /* surrogate */
	assert_int_equal(seq("\xf4\x90\x80\x80"), 0); /* past U+10FFFF */
	assert_int_equal(seq("\xf5\x80\x80\x80"), 0);
	assert_int_equal(seq("\xc3("), 0);            /* bad continuation */
	assert_int_equal(utf8_seq("\xe2\x82\xac", 2, NULL), 0); /* short */
}

static void test_utf8_check(void **state)
{
	size_t bad = 99;

	(void)state;
	assert_int_equal(utf8_check("", 0, &bad), 0);
	assert_int_equal(utf8_check("caf\xc3\xa9 \xe2\x82\xac", 9, &bad), 0);
	assert_int_equal(utf8_check("a\0b", 3, &bad), 0); /* NUL is fine */
	assert_int_equal(utf8_check("ab\xff" "cd", 5, &bad), -1);
	assert_int_equal(bad, 2);
	assert_int_equal(utf8_check("caf\xc3", 4, &bad), -1); /* cut */
	assert_int_equal(bad, 3);
}

static void test_utf8_count(void **state)
{
	(void)state;
	assert_int_equal(utf8_count("", 0), 0);
	assert_int_equal(utf8_count("abc", 3), 3);
	assert_int_equal(utf8_count("caf\xc3\xa9", 5), 4);
	assert_int_equal(utf8_count("\xf0\x9f\x98\x80\xe2\x82\xac", 7), 2);
}

static void test_utf8_cut(void **state)
{
	const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";

	(void)state;
	assert_int_equal(utf8_cut(s, 0), 0);
	assert_int_equal(utf8_cut(s, 1), 1);
	assert_int_equal(utf8_cut(s, 2), 1);  /* inside é */
	assert_int_equal(utf8_cut(s, 3), 3);
	assert_int_equal(utf8_cut(s, 4), 3);  /* inside € */
	assert_int_equal(utf8_cut(s, 5), 3);
	assert_int_equal(utf8_cut(s, 6), 6);
	assert_int_equal(utf8_cut(s, 9), 6);  /* inside the emoji */
	assert_int_equal(utf8_cut(s, 10), 10);
	/* bytes that are not UTF-8 are left as they are */
	assert_int_equal(utf8_cut("ab\x80\x80\x80\x80", 6), 6);
	assert_int_equal(utf8_cut("ab\xff", 3), 3);
}

static void test_textbuf_fits(void **state)
{
	char buf[16];
	struct textbuf t;

	(void)state;
	textbuf_init(&t, buf, sizeof(buf), TEXTBUF_CUT);
	assert_string_equal(buf, "");
	textbuf_adds(&t, "abc");
	textbuf_add(&t, "defgh", 2);
	textbuf_addf(&t, "-%d-", 42);
	assert_string_equal(buf, "abcde-42-");
	assert_int_equal(t.len, 9);
	assert_int_equal(t.total, 9);
	assert_false(textbuf_full(&t));

	/* exactly full: 15 bytes and the NUL */
	textbuf_adds(&t, "123456");
	assert_string_equal(buf, "abcde-42-123456");
	assert_false(textbuf_full(&t));
	textbuf_adds(&t, "");
	assert_false(textbuf_full(&t));
	textbuf_adds(&t, "x");
	assert_true(textbuf_full(&t));
	assert_string_equal(buf, "abcde-42-123456");
	assert_int_equal(t.total, 16);
}

static void test_textbuf_cut(void **state)
{
	char buf[8];
	struct textbuf t;

	(void)state;
	/* 7 bytes of room: "ab" + "\xe2\x82\xac" + 2 of the next € */
	textbuf_init(&t, buf, sizeof(buf), TEXTBUF_CUT);
	textbuf_adds(&t, "ab\xe2\x82\xac\xe2\x82\xac");
	assert_string_equal(buf, "ab\xe2\x82\xac");
	assert_true(textbuf_full(&t));
	assert_int_equal(t.total, 8);
	/* once full, nothing more is kept, even what would fit */
	textbuf_adds(&t, "z");
	assert_string_equal(buf, "ab\xe2\x82\xac");
	assert_int_equal(t.total, 9);

	/* a formatted append is cut the same way */
	textbuf_init(&t, buf, sizeof(buf), TEXTBUF_CUT);
	textbuf_addf(&t, "%s%s", "abcd", "\xc3\xa9\xc3\xa9");
	assert_string_equal(buf, "abcd\xc3\xa9");
	assert_int_equal(t.total, 8);
	textbuf_addf(&t, "%d", 12345);
	assert_int_equal(t.total, 13);
	assert_string_equal(buf, "abcd\xc3\xa9");

	/* a cut across two appends backs off the split character */
	textbuf_init(&t, buf, sizeof(buf), TEXTBUF_CUT);
	textbuf_adds(&t, "abcde\xf0");
	textbuf_adds(&t, "\x9f\x98\x80");
	assert_string_equal(buf, "abcde");
}

static void test_textbuf_whole(void **state)
{
	char buf[8];
	struct textbuf t;

	(void)state;
	textbuf_init(&t, buf, sizeof(buf), TEXTBUF_WHOLE);
	textbuf_adds(&t, "abc");
	textbuf_adds(&t, "defgh"); /* does not fit: dropped whole */
	assert_string_equal(buf, "abc");
	assert_true(textbuf_full(&t));
	textbuf_adds(&t, "d"); /* would fit, but the text stays a prefix */
	assert_string_equal(buf, "abc");
	textbuf_addf(&t, "%s", "x");
	assert_string_equal(buf, "abc");

	/* room kept for a mark, used once full */
	textbuf_init(&t, buf, 5, TEXTBUF_WHOLE);
	textbuf_adds(&t, "ab");
	textbuf_adds(&t, "cdef");
	assert_true(textbuf_full(&t));
	textbuf_resume(&t, sizeof(buf));
	assert_false(textbuf_full(&t));
	textbuf_adds(&t, "...");
	assert_string_equal(buf, "ab...");
}

static void test_textbuf_count_only(void **state)
{
	struct textbuf t;

	(void)state;
	textbuf_init(&t, NULL, 0, TEXTBUF_CUT);
	textbuf_adds(&t, "abc");
	textbuf_addf(&t, "%05d", 7);
	assert_int_equal(t.len, 0);
	assert_int_equal(t.total, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_utf8_seq),
		cmocka_unit_test(test_utf8_check),
		cmocka_unit_test(test_utf8_count),
		cmocka_unit_test(test_utf8_cut),
		cmocka_unit_test(test_textbuf_fits),
		cmocka_unit_test(test_textbuf_cut),
		cmocka_unit_test(test_textbuf_whole),
		cmocka_unit_test(test_textbuf_count_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
