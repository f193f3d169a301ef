/*
 * thread: see thread.h.
 */
#include "thread.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/prctl.h>

void thread_enter(const char *fmt, ...)
{
	char name[16]; /* the kernel's limit, with the NUL */
	sigset_t all;
	va_list ap;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	prctl(PR_SET_NAME, name, 0, 0, 0);
}
