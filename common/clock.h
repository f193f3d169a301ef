/*
 * clock: the time readings extractd uses, in the units it uses them.
 *
 * DESIGN
 * ------
 * Durations and deadlines are monotonic nanoseconds (mono_ns): they do
 * not jump when the wall clock is set. Wall-clock milliseconds (wall_ms)
 * are for what people and other programs read (timestamps in records,
 * log lines, metrics). pthread_cond_timedwait() and sem_timedwait() take
 * an absolute CLOCK_REALTIME time unless the condition variable was made
 * with CLOCK_MONOTONIC: realtime_in_ns() gives the first, mono_timespec()
 * the second. No state, no lock: every function is thread-safe.
 */
#ifndef EXTRACTD_CLOCK_H
#define EXTRACTD_CLOCK_H

#include <stdint.h>
#include <time.h>

/** CLOCK_MONOTONIC in nanoseconds. */
int64_t mono_ns(void);

/** CLOCK_REALTIME in milliseconds since the epoch. */
int64_t wall_ms(void);

/**
 * @brief The CLOCK_REALTIME time ns nanoseconds from now, for a timed
 * wait on a CLOCK_REALTIME condition variable or semaphore. ns <= 0 is
 * now. A monotonic deadline d reads realtime_in_ns(d - mono_ns()).
 */
struct timespec realtime_in_ns(int64_t ns);

/** A monotonic time in ns as a timespec (for a CLOCK_MONOTONIC wait). */
struct timespec mono_timespec(int64_t ns);

#endif
