/*
 * log: one line per event on stderr, as a JSON object (ts, level, msg, then
 * the fields) or as text for people at a terminal.
 *
 * The level is checked before anything is formatted. Fields are given as a
 * printf-style format of `"key":value` pairs already in JSON form, built
 * with log_str() for strings, so the caller decides the types:
 *
 *   LOG_INFO("record delivered", "\"partition\":%d,\"offset\":%lld", p, o);
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

/**
 * @brief Write one line.
 * @param msg constant text, no newline
 * @param fields_fmt printf format producing `"k":v,...` JSON pairs, or NULL
 */
void log_write(enum log_level level, const char *msg, const char *fields_fmt,
	       ...) __attribute__((format(printf, 3, 4)));

/**
 * @brief Escape a string for a JSON field value (quotes included) into buf.
 * @returns buf, cut to fit (never a partial escape).
 */
const char *log_str(char *buf, size_t size, const char *s);

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

#define LOG_AT(lvl, ...)                                                     \
	do {                                                                 \
		if (log_enabled(lvl))                                        \
			log_write(lvl, __VA_ARGS__);                         \
	} while (0)
#define LOG_DEBUG(...) LOG_AT(LOG_LVL_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT(LOG_LVL_INFO, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT(LOG_LVL_WARN, __VA_ARGS__)
#define LOG_ERROR(...) LOG_AT(LOG_LVL_ERROR, __VA_ARGS__)

#endif
