/*
 * simproc: real llmsim processes (tools/llmsim) for the unit tests that
 * talk to an API (test_batch, test_llm). Each is started on an ephemeral
 * port and writes it to a file, as tests/lib/llmsim.py reads it; its
 * output goes to NAME.log in the test's directory. Stop each with
 * sim_stop() (SIGTERM, then reaped).
 *
 * Include after <cmocka.h>; the test defines LLMSIM_PATH
 * (tests/unit/CMakeLists.txt).
 */
#ifndef EXTRACTD_TEST_SIMPROC_H
#define EXTRACTD_TEST_SIMPROC_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef LLMSIM_PATH
#error "LLMSIM_PATH: the llmsim binary (tests/unit/CMakeLists.txt)"
#endif

struct sim {
	pid_t pid;
	unsigned port;
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Start llmsim in dir with extra arguments (NULL-terminated); wait for
 * its port file. */
static void sim_start(struct sim *s, const char *dir, const char *name, ...)
{
	char portfile[256], log[256], buf[32];
	const char *argv[16];
	size_t n = 0;
	va_list ap;
	FILE *f;
	int i, fd;

	snprintf(portfile, sizeof(portfile), "%s/%s.port", dir, name);
	snprintf(log, sizeof(log), "%s/%s.log", dir, name);
	argv[n++] = LLMSIM_PATH;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--port-file";
	argv[n++] = portfile;
	va_start(ap, name);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	s->port = 0;
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (!s->pid) {
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(LLMSIM_PATH, (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 1000; i++) {	/* 20 s */
		f = fopen(portfile, "r");
		if (f) {
			if (fgets(buf, sizeof(buf), f) && strchr(buf, '\n'))
				s->port = (unsigned)strtoul(buf, NULL, 10);
			fclose(f);
			if (s->port)
				return;
		}
		assert_int_equal(waitpid(s->pid, NULL, WNOHANG), 0);
		sleep_ms(20);
	}
	fail_msg("llmsim %s wrote no port file", name);
}

/* SIGTERM an llmsim and reap it; its wait status, or -1. */
static int sim_stop(struct sim *s)
{
	int status = -1;

	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	if (waitpid(s->pid, &status, 0) != s->pid)
		status = -1;
	s->pid = 0;
	return status;
}

#endif
