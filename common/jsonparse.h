/*
 * jsonparse: the one way extractd parses a JSON text it is given whole
 * (an LLM answer, a schema file, librdkafka's statistics).
 *
 * DESIGN
 * ------
 * Strict in what json-c alone is not: the text must hold exactly one JSON
 * value, with nothing after it but blanks ("{} x" is refused, where
 * json_tokener_parse_ex() stops after "{}"), and it must be complete.
 * What else is refused (nesting depth, non-strict syntax, invalid UTF-8)
 * is the tokener's setting, made by the caller with json_tokener_new_ex()
 * and json_tokener_set_flags(): a caller that parses often keeps one
 * tokener per thread (a new one costs two allocations) and jsonparse()
 * resets it; jsonparse_once() makes one for a single parse. Failures are
 * returned as data (what, where), and each caller words them for its
 * readers. No state, no lock; a tokener is one thread's at a time.
 */
#ifndef EXTRACTD_JSONPARSE_H
#define EXTRACTD_JSONPARSE_H

#include <stddef.h>

struct json_object;
struct json_tokener;

enum jsonparse_fail {
	JSONPARSE_OK,
	JSONPARSE_UNCLOSED,	/**< the text ends inside the value (or is
				  *  empty) */
	JSONPARSE_SYNTAX,	/**< json-c refuses it at byte at */
	JSONPARSE_TRAILING,	/**< something follows the value at byte at */
	JSONPARSE_TOO_LONG,	/**< longer than json-c takes (INT32_MAX) */
	JSONPARSE_NOMEM,	/**< no memory for a tokener */
};

struct jsonparse_error {
	enum jsonparse_fail fail;
	size_t at;		/**< the byte it happened at */
	const char *desc;	/**< json-c's words, for JSONPARSE_SYNTAX */
};

/**
 * @brief Parse s[0..len) as exactly one JSON value with tok (reset here).
 * @returns the value (caller puts it), or NULL with *err filled in
 */
struct json_object *jsonparse(struct json_tokener *tok, const char *s,
			      size_t len, struct jsonparse_error *err);

/**
 * @brief jsonparse() with a tokener made for this parse: nesting at most
 * depth deep, json-c's JSON_TOKENER_* flags.
 */
struct json_object *jsonparse_once(const char *s, size_t len, int depth,
				   int flags, struct jsonparse_error *err);

#endif
