/*
 * stop: the request to stop, the exit status, and the shutdown deadline
 * every step of stopping bounds its waits by.
 *
 * Any thread may ask extractd to stop (stop_request: a fatal error marks
 * the exit status 1); main waits for that request beside the stop signals
 * (stop_fd() turns readable), and no thread signals the process itself.
 * Once main begins stopping (stop_begin), the deadline is set and every
 * wait on the way out asks stop_left_ms() how long it may still take;
 * each step names itself (stop_step) for the shutdown watchdog's last
 * line.
 *
 * DESIGN
 * ------
 * A leaf: it calls nothing of extractd's but the log. Everything in it is
 * an atomic or the eventfd, so any thread calls any function without a
 * lock; main owns the object (stop_new, stop_free after every thread).
 */
#ifndef EXTRACTD_STOP_H
#define EXTRACTD_STOP_H

#include <stdbool.h>
#include <stdint.h>

struct stop;

/** A new stop, not requested; NULL with errno set when it cannot. */
struct stop *stop_new(void);

/** Free; NULL is fine. */
void stop_free(struct stop *s);

/** Ask main to stop (any thread, any number of times); failed marks the
 * exit status 1. */
void stop_request(struct stop *s, bool failed);

/** A descriptor that turns readable at the first stop_request(). */
int stop_fd(const struct stop *s);

/** Whether a fatal error was reported: the exit status is 1. */
bool stop_failed(const struct stop *s);

/** Stopping begins: admission ends, and every step of stopping must be
 * over within timeout_ms. */
void stop_begin(struct stop *s, unsigned timeout_ms);

/** Whether stopping began. */
bool stop_stopping(const struct stop *s);

/** While stopping: the ms left until the deadline (0 once it passed);
 * before, cap. Every wait on the way out is bounded by it. */
unsigned stop_left_ms(const struct stop *s, unsigned cap);

/** While stopping: name the step under way (a constant string). */
void stop_step(struct stop *s, const char *step);

/** The step under way, "starting" when none was named. */
const char *stop_step_name(const struct stop *s);

#endif
