/*
 * str: small string helpers shared by the modules.
 */
#ifndef EXTRACTD_STR_H
#define EXTRACTD_STR_H

/** A malloc'ed formatted string, or NULL when out of memory. */
char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
