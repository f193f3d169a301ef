/*
 * sim_util.c - see sim_util.h.
 */
#include "sim_util.h"

#include <stdarg.h>
#include <stdio.h>

void sim_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

bool sim_add(struct json_object *o, const char *key, struct json_object *v)
{
	if (!v)
		return false;
	if (json_object_object_add(o, key, v)) {
		json_object_put(v);
		return false;
	}
	return true;
}

bool sim_add_null(struct json_object *o, const char *key)
{
	return json_object_object_add(o, key, NULL) == 0;
}
