/*
 * str: see str.h.
 */
#include "str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *str_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

size_t str_u64(char *buf, uint64_t v)
{
	char tmp[STR_U64_SIZE];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
	return n;
}

size_t str_copy(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}

/* ---- UTF-8 -------------------------------------------------------------- */

/* The sequence length a first byte announces; 0 for a continuation byte
 * or a byte that never starts one. */
static size_t lead_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef)
		return 3;
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	return 0;
}

size_t utf8_seq(const char *s, size_t n, uint32_t *ret_cp)
{
	const unsigned char *u = (const unsigned char *)s;
	static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t len = lead_len(u[0]), i;
	uint32_t cp;

	if (!len || n < len)
		return 0;
	cp = len == 1 ? u[0] : u[0] & (0x7f >> len);
	for (i = 1; i < len; i++) {
		if ((u[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (u[i] & 0x3f);
	}
	if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	if (ret_cp)
		*ret_cp = cp;
	return len;
}

int utf8_check(const char *s, size_t n, size_t *ret_bad_at)
{
	size_t i = 0;

	while (i < n) {
		size_t len = utf8_seq(s + i, n - i, NULL);

		if (!len) {
			*ret_bad_at = i;
			return -1;
		}
		i += len;
	}
	return 0;
}

size_t utf8_count(const char *s, size_t n)
{
	size_t i, count = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			count++;
	return count;
}

size_t utf8_cut(const char *s, size_t n)
{
	size_t i = n, back;

	/* the last character starts at most three bytes before the end */
	for (back = 0; back < 4 && i; back++) {
		unsigned char c = (unsigned char)s[--i];

		if ((c & 0xc0) != 0x80) {
			size_t len = lead_len(c);

			return len > n - i ? i : n;
		}
	}
	return n;
}

/* ---- the capped text builder -------------------------------------------- */

void textbuf_init(struct textbuf *t, char *buf, size_t size,
		  enum textbuf_fit fit)
{
	t->buf = buf;
	t->size = size;
	t->len = 0;
	t->total = 0;
	t->fit = fit;
	if (size)
		buf[0] = '\0';
}

void textbuf_resume(struct textbuf *t, size_t size)
{
	t->size = size;
	t->total = t->len;
}

/* What an append that did not fit leaves: the room was filled with its
 * first bytes (TEXTBUF_CUT), which are cut back to a whole character. */
static void overflow(struct textbuf *t, size_t room)
{
	if (t->fit == TEXTBUF_CUT)
		t->len = utf8_cut(t->buf, t->len + room);
	t->buf[t->len] = '\0';
}

void textbuf_add(struct textbuf *t, const char *s, size_t n)
{
	bool full = textbuf_full(t);
	size_t room = t->size ? t->size - 1 - t->len : 0;

	t->total += n;
	if (full || !t->size)
		return;
	if (n <= room) {
		memcpy(t->buf + t->len, s, n);
		t->len += n;
		t->buf[t->len] = '\0';
		return;
	}
	memcpy(t->buf + t->len, s, room);
	overflow(t, room);
}

void textbuf_adds(struct textbuf *t, const char *s)
{
	textbuf_add(t, s, strlen(s));
}

void textbuf_vaddf(struct textbuf *t, const char *fmt, va_list ap)
{
	size_t room = t->size ? t->size - 1 - t->len : 0;
	int r;

	if (textbuf_full(t) || !t->size) {
		r = vsnprintf(NULL, 0, fmt, ap);
		t->total += r > 0 ? (size_t)r : 0;
		return;
	}
	r = vsnprintf(t->buf + t->len, room + 1, fmt, ap);
	if (r < 0) {
		t->buf[t->len] = '\0';
		return;
	}
	t->total += (size_t)r;
	if ((size_t)r <= room)
		t->len += (size_t)r;
	else
		overflow(t, room);
}

void textbuf_addf(struct textbuf *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	textbuf_vaddf(t, fmt, ap);
	va_end(ap);
}
