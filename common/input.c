/*
 * input: see input.h.
 */
#include "input.h"

#include "str.h"

#include <stdbool.h>
#include <stdio.h>

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
		n = utf8_seq(text + i, len - i, NULL);
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
