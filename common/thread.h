/*
 * thread: what every thread extractd starts does first.
 */
#ifndef EXTRACTD_THREAD_H
#define EXTRACTD_THREAD_H

/**
 * Block every signal in the calling thread (the main thread alone takes
 * SIGTERM/SIGINT, in sigtimedwait) and name it, printf-style (at most 15
 * bytes are kept), for top -H, perf and /proc/PID/task/TID/comm.
 */
void thread_enter(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
