/*
 * input: the checks an input record passes before any LLM call, and what
 * of it goes to the model. A record that fails one becomes a dead letter
 * with extractd.error=input.
 *
 * With input.format = "json" the record is one JSON document and the text
 * is the string its input.text_pointer names (a JSON Pointer, RFC 6901:
 * "/a/0/b~1c" is member "a", element 0, member "b/c"). The same pointers
 * name the fields output.carry copies into each output (input_carry()).
 * A W3C traceparent (and tracestate) header on a record is passed on to
 * the LLM request when its shape is right (input_traceparent_ok()).
 */
#ifndef EXTRACTD_INPUT_H
#define EXTRACTD_INPUT_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

/**
 * @brief Check a text: not empty or blank, at most max_bytes, valid UTF-8
 * (no overlong forms, no surrogates, nothing above U+10FFFF), no NUL.
 * (utf8_check() in str.h checks UTF-8 alone, by the same rules.)
 * @param detail receives the reason when the text is refused
 * @returns 0 when the text may go to the model, -1 when refused.
 */
int input_check(const char *text, size_t len, size_t max_bytes,
		char *detail, size_t detail_size);

/**
 * @brief Check a JSON Pointer's syntax: "" (the whole document) or
 * "/"-separated tokens in which "~" is only ever "~0" or "~1".
 * @returns 0, or -1 with the reason in why.
 */
int input_pointer_check(const char *ptr, char *why, size_t why_size);

/**
 * @brief The last token of a checked pointer, unescaped ("/a/b~1c" gives
 * "b/c"), into buf.
 * @returns 0, or -1 when ptr is "" (no token) or buf is too small.
 */
int input_pointer_last(const char *ptr, char *buf, size_t size);

/**
 * @brief Find the value a checked pointer names in doc. An array token is
 * "0" or a number without leading zeros; "-" (past the end) names nothing.
 * @param ret_value set to the value (borrowed: doc keeps it; NULL is
 *        JSON null) when there is one
 * @returns true when there is one.
 */
bool input_pointer_get(struct json_object *doc, const char *ptr,
		       struct json_object **ret_value);

/**
 * @brief Parse a JSON record (all of it at most max_bytes) and find its
 * text at pointer: a string that passes input_check().
 * @param ret_text set to the text, inside the document; ret_len its bytes
 * @returns the document (the caller puts it), or NULL with the reason in
 *          detail ("input is not JSON: ... at byte N", "no /body in the
 *          input", "/body is a number, not a string", "/body: text is
 *          blank").
 */
struct json_object *input_json(const char *rec, size_t len,
			       const char *pointer, size_t max_bytes,
			       const char **ret_text, size_t *ret_len,
			       char *detail, size_t detail_size);

/**
 * @brief Copy each field that pointers[] names in doc into out (an
 * object) under its pointer's last token; a field doc lacks is left out.
 * @returns 0, or -1 when out of memory.
 */
int input_carry(struct json_object *doc, const char *const *pointers,
		size_t n, struct json_object *out);

/** Whether a traceparent header value is W3C's version 00 shape:
 *  00-<32 hex>-<16 hex>-<2 hex>, lowercase, ids not all zeros. */
bool input_traceparent_ok(const char *v, size_t len);

/** Whether a tracestate header value may be passed on: 1 to 512
 *  printable ASCII bytes. */
bool input_tracestate_ok(const char *v, size_t len);

#endif
