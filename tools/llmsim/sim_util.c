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
