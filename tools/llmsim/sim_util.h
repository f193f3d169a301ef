/*
 * sim_util.h - small helpers the simulator's modules share.
 */
#ifndef LLMSIM_SIM_UTIL_H
#define LLMSIM_SIM_UTIL_H

#include <stddef.h>

/** printf into @p err (of @p errlen bytes); nothing when @p err is NULL. */
void sim_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
