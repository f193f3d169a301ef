/*
 * jsonparse: see jsonparse.h.
 */
#include "jsonparse.h"

#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

static struct json_object *fail(struct jsonparse_error *err,
				enum jsonparse_fail why, size_t at)
{
	err->fail = why;
	err->at = at;
	return NULL;
}

struct json_object *jsonparse(struct json_tokener *tok, const char *s,
			      size_t len, struct jsonparse_error *err)
{
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t end;

	err->desc = NULL;
	if (len > (size_t)INT32_MAX)
		return fail(err, JSONPARSE_TOO_LONG, 0);
	json_tokener_reset(tok);
	obj = json_tokener_parse_ex(tok, s, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (!obj && jerr == json_tokener_continue)
		return fail(err, JSONPARSE_UNCLOSED, end);
	if (jerr != json_tokener_success) {
		json_object_put(obj);
		err->desc = json_tokener_error_desc(jerr);
		return fail(err, JSONPARSE_SYNTAX, end);
	}
	/* blanks may follow; strchr() also takes the NUL as one */
	while (end < len && strchr(" \t\r\n", s[end]))
		end++;
	if (end < len) {
		json_object_put(obj);
		return fail(err, JSONPARSE_TRAILING, end);
	}
	err->fail = JSONPARSE_OK;
	return obj;
}

struct json_object *jsonparse_once(const char *s, size_t len, int depth,
				   int flags, struct jsonparse_error *err)
{
	struct json_tokener *tok = json_tokener_new_ex(depth);
	struct json_object *obj;

	if (!tok) {
		err->desc = NULL;
		return fail(err, JSONPARSE_NOMEM, 0);
	}
	json_tokener_set_flags(tok, flags);
	obj = jsonparse(tok, s, len, err);
	json_tokener_free(tok);
	return obj;
}
