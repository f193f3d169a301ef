/*
 * log: one line per event on stderr, as a JSON object (ts, level, msg, then
 * the fields) or as text for people at a terminal.
 *
 * The level is checked before anything is formatted. Fields are typed
 * values, each made by a LOG_x macro with its key; the logger writes them
 * in order, escaping strings itself:
 *
 *   LOG_INFO("record delivered", LOG_I("partition", p),
 *            LOG_I("offset", o), LOG_S("result", "ok"));
 *
 * A string value is written as a JSON string (escaped, invalid UTF-8 as
 * U+FFFD, cut to LOG_VALUE_MAX bytes on a character boundary), a NULL one
 * as null. The text format writes the same fields after the message, for
 * people: ts level msg "key":value,...
 *
 * Thread-safe: each line is written with one write(2).
 *
 * Secrets: every line, whoever formats it (librdkafka's debug output
 * included), goes through secret_redact() (secret.h) before it is
 * written: the secrets registered with secret_add() and whatever looks
 * like a credential read "(redacted)". A line the redaction makes too
 * long loses its fields, as any line that is too long does.
 */
#ifndef EXTRACTD_LOG_H
#define EXTRACTD_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/** Set once at start-up, before threads start. */
void log_setup(enum log_level level, bool json);

/** True when lines at this level are written. */
bool log_enabled(enum log_level level);

/** The bytes a string value takes at most, quotes and escapes included. */
#define LOG_VALUE_MAX 1200

enum log_type {
	LOG_T_STR,	/**< v.s: a JSON string, or null when NULL */
	LOG_T_INT,	/**< v.i */
	LOG_T_UINT,	/**< v.u */
	LOG_T_DOUBLE,	/**< v.d with prec digits after the point */
	LOG_T_BOOL,	/**< v.b */
};

/** One field of a line; made by the LOG_x macros below. */
struct log_field {
	const char *key;	/**< a constant name, written as it is */
	enum log_type type;
	int prec;		/**< LOG_T_DOUBLE: digits after the point */
	union {
		const char *s;
		int64_t i;
		uint64_t u;
		double d;
		bool b;
	} v;
};

#define LOG_S(k, x)                                                          \
	((struct log_field){ .key = (k), .type = LOG_T_STR, .v.s = (x) })
#define LOG_I(k, x)                                                          \
	((struct log_field){ .key = (k), .type = LOG_T_INT, .v.i = (x) })
#define LOG_U(k, x)                                                          \
	((struct log_field){ .key = (k), .type = LOG_T_UINT, .v.u = (x) })
#define LOG_D(k, x, digits)                                                  \
	((struct log_field){ .key = (k), .type = LOG_T_DOUBLE,               \
			     .prec = (digits), .v.d = (x) })
#define LOG_B(k, x)                                                          \
	((struct log_field){ .key = (k), .type = LOG_T_BOOL, .v.b = (x) })

/**
 * @brief Write one line.
 * @param msg constant text, no newline
 * @param fields n fields, written in order
 */
void log_write(enum log_level level, const char *msg,
	       const struct log_field *fields, size_t n);

/**
 * A rate limit for a kind of line that can come by the thousand (a dead
 * letter each, say): at most burst lines per period, and the next line
 * written says how many were held back. Thread-safe; define one per kind
 * with LOG_LIMIT_INIT.
 */
struct log_limit {
	pthread_mutex_t lock;
	int64_t window_ns;   /**< start of the current period (monotonic) */
	unsigned lines;      /**< written in it */
	uint64_t held;       /**< held back since the last line written */
};
#define LOG_LIMIT_INIT { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0 }

/**
 * @brief Whether a line may be written now.
 * @param ret_held set to the lines held back before this one (to say in
 *        it), when true is returned
 */
bool log_limit(struct log_limit *l, unsigned burst, int64_t period_ns,
	       uint64_t *ret_held);

/*
 * LOG_AT(level, msg, fields...): the fields go into an array on the
 * stack only when the level is on. The empty argument LOG_AT adds lets a
 * line have no field in C11; the array ends with an unused element so
 * that it is never empty.
 */
#define LOG_AT(lvl, ...) LOG_AT_(lvl, __VA_ARGS__, )
#define LOG_AT_(lvl, msg, ...)                                               \
	do {                                                                 \
		if (log_enabled(lvl)) {                                      \
			const struct log_field log_fields_[] = {             \
				__VA_ARGS__ { .key = NULL }                  \
			};                                                   \
			size_t log_n_ = sizeof(log_fields_) /                \
					sizeof(log_fields_[0]) - 1;          \
			log_write(lvl, msg, log_fields_, log_n_);            \
		}                                                            \
	} while (0)
#define LOG_DEBUG(...) LOG_AT(LOG_LVL_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT(LOG_LVL_INFO, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT(LOG_LVL_WARN, __VA_ARGS__)
#define LOG_ERROR(...) LOG_AT(LOG_LVL_ERROR, __VA_ARGS__)

#endif
