/*
 * sim_util.h - small helpers the simulator's modules share.
 */
#ifndef LLMSIM_SIM_UTIL_H
#define LLMSIM_SIM_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/** printf into @p err (of @p errlen bytes); nothing when @p err is NULL. */
void sim_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** Adds @p v under @p key; false on out of memory (v is released; a NULL
 *  v is taken for an allocation that failed). */
bool sim_add(struct json_object *o, const char *key, struct json_object *v);

/** Like sim_add() for a value that is JSON null. */
bool sim_add_null(struct json_object *o, const char *key);

#endif
