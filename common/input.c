/*
 * input: see input.h.
 */
#include "input.h"

#include "jsonparse.h"
#include "str.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INPUT_JSON_DEPTH 64 /**< nesting a JSON record may have */
#define INPUT_TRACESTATE_MAX 512 /**< W3C: at most 512 bytes */

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

int input_pointer_check(const char *ptr, char *why, size_t why_size)
{
	const char *p;

	if (*ptr && *ptr != '/') {
		snprintf(why, why_size, "a JSON Pointer is \"\" or starts "
			 "with \"/\"");
		return -1;
	}
	for (p = ptr; *p; p++) {
		if (*p == '~' && p[1] != '0' && p[1] != '1') {
			snprintf(why, why_size, "\"~\" at byte %zu: in a JSON "
				 "Pointer it is only \"~0\" (~) or \"~1\" "
				 "(/)", (size_t)(p - ptr));
			return -1;
		}
	}
	return 0;
}

/* Unescape the token at *p (up to the next '/' or the end) into buf,
 * which holds at least as many bytes as the token plus one; move *p past
 * it. */
static void next_token(const char **p, char *buf)
{
	const char *s = *p;
	size_t n = 0;

	for (; *s && *s != '/'; s++) {
		if (*s == '~') {
			s++;
			buf[n++] = *s == '0' ? '~' : '/';
		} else {
			buf[n++] = *s;
		}
	}
	buf[n] = '\0';
	*p = s;
}

int input_pointer_last(const char *ptr, char *buf, size_t size)
{
	const char *last = strrchr(ptr, '/');

	if (!last || strlen(last) > size)
		return -1;
	last++;
	next_token(&last, buf);
	return 0;
}

/* An array index token: "0" or digits without a leading zero. */
static bool array_index(const char *tok, size_t *ret)
{
	size_t i = 0;

	if (!*tok || (tok[0] == '0' && tok[1]))
		return false;
	for (; *tok; tok++) {
		if (*tok < '0' || *tok > '9' || i > (SIZE_MAX - 9) / 10)
			return false;
		i = i * 10 + (size_t)(*tok - '0');
	}
	*ret = i;
	return true;
}

bool input_pointer_get(struct json_object *doc, const char *ptr,
		       struct json_object **ret_value)
{
	char *tok = malloc(strlen(ptr) + 1);
	const char *p = ptr;
	bool found = true;
	size_t i;

	if (!tok)
		return false;
	while (found && *p == '/') {
		p++;
		next_token(&p, tok);
		if (json_object_is_type(doc, json_type_object))
			found = json_object_object_get_ex(doc, tok, &doc);
		else if (json_object_is_type(doc, json_type_array) &&
			 array_index(tok, &i) &&
			 i < json_object_array_length(doc))
			doc = json_object_array_get_idx(doc, i);
		else
			found = false;
	}
	free(tok);
	if (found)
		*ret_value = doc;
	return found;
}

static const char *type_words(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
	case json_type_int:
		return "a number";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	default:
		return "a string";
	}
}

struct json_object *input_json(const char *rec, size_t len,
			       const char *pointer, size_t max_bytes,
			       const char **ret_text, size_t *ret_len,
			       char *detail, size_t detail_size)
{
	struct jsonparse_error err;
	struct json_object *doc, *v;
	char why[256];

	if (len > max_bytes) {
		snprintf(detail, detail_size,
			 "input of %zu bytes is longer than input.max_bytes "
			 "(%zu)", len, max_bytes);
		return NULL;
	}
	doc = jsonparse_once(rec, len, INPUT_JSON_DEPTH,
			     JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8,
			     &err);
	if (!doc) {
		switch (err.fail) {
		case JSONPARSE_UNCLOSED:
			snprintf(detail, detail_size, len ? "input is not "
				 "JSON: it ends inside a value at byte %zu"
				 : "input is not JSON: it is empty", err.at);
			break;
		case JSONPARSE_TRAILING:
			snprintf(detail, detail_size, "input is not JSON: "
				 "more follows the value at byte %zu", err.at);
			break;
		case JSONPARSE_SYNTAX:
			snprintf(detail, detail_size, "input is not JSON: %s "
				 "at byte %zu", err.desc, err.at);
			break;
		default:
			snprintf(detail, detail_size, "input could not be "
				 "parsed: out of memory");
			break;
		}
		return NULL;
	}
	if (!input_pointer_get(doc, pointer, &v)) {
		snprintf(detail, detail_size, "no %s in the input", pointer);
		json_object_put(doc);
		return NULL;
	}
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(detail, detail_size, "%s is %s, not a string",
			 *pointer ? pointer : "the input", type_words(v));
		json_object_put(doc);
		return NULL;
	}
	*ret_text = json_object_get_string(v);
	*ret_len = (size_t)json_object_get_string_len(v);
	if (input_check(*ret_text, *ret_len, max_bytes, why,
			sizeof(why)) < 0) {
		snprintf(detail, detail_size, "%s: %s",
			 *pointer ? pointer : "the input", why);
		json_object_put(doc);
		return NULL;
	}
	return doc;
}

int input_carry(struct json_object *doc, const char *const *pointers,
		size_t n, struct json_object *out)
{
	char name[256];
	size_t i;

	for (i = 0; i < n; i++) {
		struct json_object *v;

		if (!input_pointer_get(doc, pointers[i], &v) ||
		    input_pointer_last(pointers[i], name, sizeof(name)) < 0)
			continue;
		/* The output takes a reference (none for a JSON null); doc
		 * keeps its own. */
		if (json_object_object_add(out, name, json_object_get(v)) < 0) {
			json_object_put(v);
			return -1;
		}
	}
	return 0;
}

static bool lower_hex(const char *s, size_t n, bool nonzero)
{
	bool zero = true;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
		if (s[i] != '0')
			zero = false;
	}
	return !(nonzero && zero);
}

bool input_traceparent_ok(const char *v, size_t len)
{
	return len == 55 && !memcmp(v, "00-", 3) &&
	       lower_hex(v + 3, 32, true) && v[35] == '-' &&
	       lower_hex(v + 36, 16, true) && v[52] == '-' &&
	       lower_hex(v + 53, 2, false);
}

bool input_tracestate_ok(const char *v, size_t len)
{
	size_t i;

	if (len < 1 || len > INPUT_TRACESTATE_MAX)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
			return false;
	return true;
}
