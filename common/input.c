/*
 * input: see input.h.
 */
#include "input.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		len = 2;
		cp = s[0] & 0x1F;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		len = 3;
		cp = s[0] & 0x0F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

int input_check(const char *text, size_t len, size_t max_bytes,
		char *detail, size_t detail_size)
{
	const unsigned char *s = (const unsigned char *)text;
	bool blank = true;
	size_t i = 0;

	if (len > max_bytes) {
		snprintf(detail, detail_size,
			 "text of %zu bytes is longer than input.max_bytes "
			 "(%zu)", len, max_bytes);
		return -1;
	}
	while (i < len) {
		size_t n;

		if (s[i] == 0) {
			snprintf(detail, detail_size,
				 "text contains a NUL byte at byte %zu", i);
			return -1;
		}
		n = utf8_seq(s + i, len - i);
		if (!n) {
			snprintf(detail, detail_size,
				 "text is not valid UTF-8 at byte %zu", i);
			return -1;
		}
		if (n > 1 || (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' &&
			      s[i] != '\r' && s[i] != '\v' && s[i] != '\f'))
			blank = false;
		i += n;
	}
	if (blank) {
		snprintf(detail, detail_size, len ? "text is blank"
						  : "text is empty");
		return -1;
	}
	return 0;
}

int input_utf8_check(const char *text, size_t len, size_t *ret_bad_at)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq(s + i, len - i);

		if (!n) {
			*ret_bad_at = i;
			return -1;
		}
		i += n;
	}
	return 0;
}
