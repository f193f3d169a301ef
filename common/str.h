/*
 * str: small string helpers shared by the modules.
 *
 * DESIGN
 * ------
 * What lives here is written once: a number's decimal text and a bounded
 * copy (what every record's headers need, without snprintf's cost), UTF-8
 * (how long a character is, whether bytes are valid, where a cut may
 * fall) and the capped text builder, struct textbuf, that every bounded
 * message in common/ and daemon/ is written with. A textbuf writes into
 * the caller's fixed buffer, never allocates, never overflows, and keeps
 * its text NUL-terminated and a prefix of what was appended: once an
 * append does not fit, that append is cut (on a character boundary) or
 * dropped whole, as the builder was set up, and every later append keeps
 * nothing. It still counts what was appended, as snprintf() does. No
 * state, no lock: a textbuf belongs to its caller.
 */
#ifndef EXTRACTD_STR_H
#define EXTRACTD_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

/** A malloc'ed formatted string, or NULL when out of memory. */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Room for any str_u64() text and its NUL. */
#define STR_U64_SIZE 21

/**
 * @brief v in decimal into buf (STR_U64_SIZE bytes at least), NUL-ended:
 * snprintf's "%" PRIu64 without its cost, for what a record writes.
 * @returns the digits written (1 to 20)
 */
size_t str_u64(char *buf, uint64_t v);

/**
 * @brief src into dst (size > 0 bytes), cut to size - 1 bytes and
 * NUL-ended: snprintf(dst, size, "%s", src) without its cost.
 * @returns the bytes copied
 */
size_t str_copy(char *dst, size_t size, const char *src);

/* ---- UTF-8 -------------------------------------------------------------- */

/**
 * @brief The length of the valid UTF-8 sequence at s (n > 0 bytes left),
 * its code point in *ret_cp when ret_cp is not NULL.
 * @returns 1 to 4, or 0 when the bytes are not valid UTF-8 (overlong
 *          forms, surrogates and values past U+10FFFF included)
 */
size_t utf8_seq(const char *s, size_t n, uint32_t *ret_cp);

/**
 * @brief Check that s[0..n) is valid UTF-8.
 * @returns 0, or -1 with the offset of the first bad byte in *ret_bad_at
 */
int utf8_check(const char *s, size_t n, size_t *ret_bad_at);

/** The number of code points in s[0..n) (bytes that start one). */
size_t utf8_count(const char *s, size_t n);

/**
 * @brief Where to cut s[0..n) so that no character is split: n, or less
 * when the last character's sequence needs more bytes than are there.
 */
size_t utf8_cut(const char *s, size_t n);

/* ---- the capped text builder -------------------------------------------- */

/** What an append that does not fit keeps. */
enum textbuf_fit {
	TEXTBUF_CUT,	/**< as much as fits, cut on a character boundary */
	TEXTBUF_WHOLE,	/**< nothing: every append is all or nothing */
};

struct textbuf {
	char *buf;		/**< the caller's buffer */
	size_t size;		/**< its size, NUL included (0: count only) */
	size_t len;		/**< bytes kept, NUL excluded */
	size_t total;		/**< bytes appended, kept or not */
	enum textbuf_fit fit;
};

/** Start an empty text in buf (size bytes; buf may be NULL when 0). */
void textbuf_init(struct textbuf *t, char *buf, size_t size,
		  enum textbuf_fit fit);

/** Append n bytes of s. */
void textbuf_add(struct textbuf *t, const char *s, size_t n);

/** Append the string s. */
void textbuf_adds(struct textbuf *t, const char *s);

/** Append formatted text. */
void textbuf_addf(struct textbuf *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void textbuf_vaddf(struct textbuf *t, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/**
 * @brief Go on in size bytes of the same buffer (no fewer than before),
 * forgetting what did not fit: for a caller that kept room at the end
 * for a mark such as "...", to write once the text is full.
 */
void textbuf_resume(struct textbuf *t, size_t size);

/** True once something appended was not kept (whole or in part). */
static inline bool textbuf_full(const struct textbuf *t)
{
	return t->total > t->len;
}

#endif
