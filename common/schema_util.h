/*
 * schema_util: private helpers of the schema module (schema.c), not an API
 * for the rest of extractd.
 *
 * - JSON numbers compared exactly whatever json-c stored them as (int64 or
 *   double), so 1 == 1.0 and 9007199254740993 != 9007199254740992.0;
 * - deep JSON equality for const and enum;
 * - a bounded text builder over a caller's buffer, with writers that quote
 *   strings as JSON, cut long values with "...", escape RFC 6901 pointer
 *   tokens, and never split a UTF-8 sequence or an escape.
 *
 * Nothing here allocates, and nothing writes to a json_object (json-c's
 * json_object_to_json_string() caches its output inside the object, so it
 * must not be called on a schema shared between threads).
 */
#ifndef EXTRACTD_SCHEMA_UTIL_H
#define EXTRACTD_SCHEMA_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

struct json_object;

/** A JSON number as json-c holds it. */
struct schema_num {
	bool is_int;	/**< true: the value is i exactly; false: d */
	int64_t i;	/**< the value, when is_int */
	double d;	/**< the value, when !is_int */
};

/**
 * @brief Read a number.
 * Integers beyond int64 (json-c keeps them as uint64) become doubles.
 * @returns false when o is not a number (ret untouched).
 */
bool schema_num_get(const struct json_object *o, struct schema_num *ret);

/** @returns -1, 0 or 1 as a <, == or > b, exactly (no rounding). */
int schema_num_cmp(const struct schema_num *a, const struct schema_num *b);

/** @returns true when n has no fractional part (1.0 is an integer). */
bool schema_num_is_integer(const struct schema_num *n);

/**
 * @brief Is x a multiple of m (m > 0)?
 * Exact for integers and for integral doubles; for fractions the quotient
 * must be an integer within the rounding error of the division.
 */
bool schema_num_is_multiple(const struct schema_num *x,
			    const struct schema_num *m);

/**
 * @brief Deep JSON equality: numbers by value (1 == 1.0), strings by bytes,
 * objects whatever their key order. true never equals 1.
 */
bool schema_json_equal(const struct json_object *a,
		       const struct json_object *b);

/**
 * @brief Rewrite ECMA-262 general category escapes PCRE2 does not know
 * (\p{Letter}, \P{gc=Lu}, \p{General_Category=Decimal_Number}) to its
 * short names (\p{L}, \P{Lu}, \p{Nd}). The result is never longer.
 * @returns a new NUL-terminated pattern (its length in ret_len) when
 *          something changed; NULL when nothing did or out of memory
 */
char *schema_ecma_properties(const char *pat, size_t len, size_t *ret_len);

/*
 * The writers below append to a struct textbuf (str.h) set up with
 * TEXTBUF_WHOLE, so that a message never ends in a partial escape.
 */

/** Append a number as JSON would write it ("3", "1.5", "2.0"). */
void schema_out_num(struct textbuf *o, const struct schema_num *n);

/**
 * @brief Append s (n bytes) as a JSON string in double quotes; after
 * max_cp code points the rest is replaced by "..." inside the quotes.
 * Invalid UTF-8 is written as \ufffd.
 */
void schema_out_quoted(struct textbuf *o, const char *s, size_t n,
		       size_t max_cp);

/**
 * @brief Append one RFC 6901 token (~ as ~0, / as ~1), at most max_cp code
 * points then "...". Control characters are written \uXXXX so a message
 * stays on one line.
 */
void schema_out_token(struct textbuf *o, const char *s, size_t n,
		      size_t max_cp);

/**
 * @brief Append any JSON value compactly, cut with "..." after about
 * SCHEMA_VALUE_MAX bytes.
 */
void schema_out_value(struct textbuf *o, const struct json_object *v);

/** Bytes of one rendered value before it is cut. */
#define SCHEMA_VALUE_MAX 96
/** Code points of a quoted string before it is cut. */
#define SCHEMA_STRING_MAX 48

#endif
