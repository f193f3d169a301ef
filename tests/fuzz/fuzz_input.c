/*
 * fuzz_input: input_check() against a reference written here from the
 * Unicode standard's table of well-formed UTF-8 byte sequences (Unicode
 * 15, table 3-7), byte range by byte range, rather than by decoding.
 *
 * Input: byte 0 picks max_bytes (byte0 * 4: 0..1020, so the length limit
 * is hit both ways) and byte 1 the detail buffer size (byte1 % 128: 0
 * included); the rest is the text.
 *
 * Checked: accepted iff the reference accepts; on refusal the detail is
 * non-empty and NUL-terminated inside its buffer and names the reason,
 * and for a NUL or bad UTF-8 the byte the reference found first.
 */
#include "input.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                    \
	do {                                                                \
		if (!(cond))                                                \
			__builtin_trap();                                   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum verdict { V_OK, V_LONG, V_NUL, V_UTF8, V_EMPTY, V_BLANK };

static bool in(uint8_t b, uint8_t lo, uint8_t hi)
{
	return b >= lo && b <= hi;
}

/*
 * Length of the well-formed sequence at s (n bytes left), 0 if none.
 * Table 3-7: 00..7F | C2..DF 80..BF | E0 A0..BF 80..BF |
 * E1..EC 80..BF 80..BF | ED 80..9F 80..BF | EE..EF 80..BF 80..BF |
 * F0 90..BF 80..BF 80..BF | F1..F3 80..BF 80..BF 80..BF |
 * F4 80..8F 80..BF 80..BF.
 */
static size_t well_formed(const uint8_t *s, size_t n)
{
	uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
	size_t len, i;

	if (s[0] <= 0x7F)
		return 1;
	if (in(s[0], 0xC2, 0xDF))
		len = 2;
	else if (in(s[0], 0xE0, 0xEF))
		len = 3;
	else if (in(s[0], 0xF0, 0xF4))
		len = 4;
	else
		return 0;
	if (s[0] == 0xE0)
		lo = 0xA0;
	else if (s[0] == 0xED)
		hi = 0x9F;
	else if (s[0] == 0xF0)
		lo = 0x90;
	else if (s[0] == 0xF4)
		hi = 0x8F;
	if (n < 2 || !in(s[1], lo, hi))
		return 0;
	for (i = 2; i < len; i++)
		if (i >= n || !in(s[i], 0x80, 0xBF))
			return 0;
	return len;
}

static enum verdict reference(const uint8_t *s, size_t len, size_t max,
			      size_t *ret_at)
{
	bool blank = true;
	size_t i = 0, n;

	if (len > max)
		return V_LONG;
	while (i < len) {
		*ret_at = i;
		if (s[i] == 0)
			return V_NUL;
		n = well_formed(s + i, len - i);
		if (!n)
			return V_UTF8;
		if (!strchr(" \t\n\r\v\f", s[i]))
			blank = false;
		i += n;
	}
	if (!len)
		return V_EMPTY;
	return blank ? V_BLANK : V_OK;
}

/* The N of "at byte N" in a detail, or SIZE_MAX. */
static size_t byte_named(const char *detail)
{
	const char *p = strstr(detail, "at byte ");
	size_t n;

	if (!p || sscanf(p + 8, "%zu", &n) != 1)
		return SIZE_MAX;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t max, detail_size, at = 0;
	enum verdict want;
	char *detail;
	const char *text;
	int r;

	if (size < 2)
		return 0;
	max = (size_t)data[0] * 4;
	detail_size = data[1] % 128;
	text = (const char *)data + 2;
	size -= 2;

	/* Exactly detail_size bytes, so a write past it is an ASan report;
	 * one byte more so malloc(0) is not a question. */
	detail = malloc(detail_size + 1);
	FUZZ_CHECK(detail);
	memset(detail, 'x', detail_size + 1);
	r = input_check(text, size, max, detail, detail_size);
	want = reference((const uint8_t *)text, size, max, &at);
	FUZZ_CHECK(r == 0 || r == -1);
	FUZZ_CHECK((r == 0) == (want == V_OK));
	FUZZ_CHECK(detail[detail_size] == 'x');
	if (r == 0 || detail_size == 0)
		goto out;
	FUZZ_CHECK(memchr(detail, '\0', detail_size));
	if (detail_size == 1)
		goto out;
	FUZZ_CHECK(detail[0] != '\0');
	if (detail_size < 96)
		goto out; /* cut: the words below may be missing */
	switch (want) {
	case V_LONG:
		FUZZ_CHECK(strstr(detail, "longer than"));
		break;
	case V_NUL:
		FUZZ_CHECK(strstr(detail, "NUL"));
		FUZZ_CHECK(byte_named(detail) == at);
		break;
	case V_UTF8:
		FUZZ_CHECK(strstr(detail, "UTF-8"));
		FUZZ_CHECK(byte_named(detail) == at);
		break;
	case V_EMPTY:
		FUZZ_CHECK(strstr(detail, "empty"));
		break;
	case V_BLANK:
		FUZZ_CHECK(strstr(detail, "blank"));
		break;
	case V_OK:
		break;
	}
out:
	free(detail);
	return 0;
}
