/* Unit tests for common/slot: the lowest free slot, held by a lock file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "slot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char err[512];

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_slot.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

/* Remove whatever a test left in dir (one level deep), then dir. */
static int remove_dir(void **state)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	(void)state;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) < 0)
			rmdir(path);
	}
	if (d)
		closedir(d);
	return rmdir(dir);
}

static struct slot *claim(const char *name)
{
	struct slot *s = slot_claim(dir, name, err, sizeof(err));

	if (!s)
		fail_msg("slot_claim: %s", err);
	return s;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Claims in one process exclude each other (one open file description
 * each); a freed slot is the next one claimed, and its file is gone. */
static void lowest_free(void **state)
{
	struct slot *a, *b, *c, *d;
	char path[PATH_MAX], want[PATH_MAX];

	(void)state;
	a = claim("extractd-g-h");
	b = claim("extractd-g-h");
	c = claim("extractd-g-h");
	assert_int_equal(slot_number(a), 0);
	assert_int_equal(slot_number(b), 1);
	assert_int_equal(slot_number(c), 2);
	snprintf(want, sizeof(want), "%s/extractd-g-h-1.lock", dir);
	assert_string_equal(slot_path(b), want);
	assert_true(exists(want));

	slot_free(b);
	assert_false(exists(want));
	d = claim("extractd-g-h");
	assert_int_equal(slot_number(d), 1);

	snprintf(path, sizeof(path), "%s", slot_path(a));
	slot_free(a);
	assert_false(exists(path));
	a = claim("extractd-g-h");
	assert_int_equal(slot_number(a), 0);
	b = claim("extractd-g-h");
	assert_int_equal(slot_number(b), 3);
	slot_free(a);
	slot_free(b);
	slot_free(c);
	slot_free(d);
	slot_free(NULL);
}

/* Names (groups) do not share slots. */
static void names_apart(void **state)
{
	struct slot *a, *b;

	(void)state;
	a = claim("extractd-g1-h");
	b = claim("extractd-g2-h");
	assert_int_equal(slot_number(a), 0);
	assert_int_equal(slot_number(b), 0);
	assert_string_not_equal(slot_path(a), slot_path(b));
	slot_free(a);
	slot_free(b);
}

/* A process's slot is free once it is SIGKILLed, though its file stays:
 * the next claim takes that slot back. */
static void dies_with_its_process(void **state)
{
	struct slot *mine, *again;
	int pipefd[2], status;
	unsigned child_slot = 99;
	char path[PATH_MAX];
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct slot *s = slot_claim(dir, "extractd-g-h", err,
					    sizeof(err));
		unsigned n = s ? slot_number(s) : 1000;

		alarm(60); /* should the parent fail before its kill */
		if (write(pipefd[1], &n, sizeof(n)) != sizeof(n))
			_exit(1);
		for (;;)
			pause();
	}
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &child_slot, sizeof(child_slot)),
			 sizeof(child_slot));
	close(pipefd[0]);
	assert_int_equal(child_slot, 0);

	mine = claim("extractd-g-h");
	assert_int_equal(slot_number(mine), 1);

	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	snprintf(path, sizeof(path), "%s/extractd-g-h-0.lock", dir);
	assert_true(exists(path)); /* left behind by the kill */
	again = claim("extractd-g-h");
	assert_int_equal(slot_number(again), 0);
	assert_string_equal(slot_path(again), path);
	slot_free(mine);
	slot_free(again);
}

/* The file name keeps [A-Za-z0-9._-]; long names are cut, and told
 * apart by their hash. */
static void file_names(void **state)
{
	char want[PATH_MAX], name1[301], name2[301];
	struct slot *a, *b;
	const char *base1, *base2;

	(void)state;
	a = claim("extractd-my group/x\xc3\xa9-h.1");
	snprintf(want, sizeof(want), "%s/extractd-my_group_x__-h.1-0.lock",
		 dir);
	assert_string_equal(slot_path(a), want);
	slot_free(a);

	memset(name1, 'x', 300);
	name1[300] = '\0';
	memcpy(name2, name1, sizeof(name2));
	name2[299] = 'y';
	a = claim(name1);
	b = claim(name2);
	assert_int_equal(slot_number(a), 0);
	assert_int_equal(slot_number(b), 0);
	base1 = strrchr(slot_path(a), '/') + 1;
	base2 = strrchr(slot_path(b), '/') + 1;
	assert_true(strlen(base1) <= NAME_MAX);
	assert_string_not_equal(base1, base2);
	slot_free(a);
	slot_free(b);
}

/* A symbolic link, a directory or a FIFO where a lock file would be is
 * taken, never followed, created through or waited on. */
static void skips_what_is_not_a_lock_file(void **state)
{
	char path[PATH_MAX], target[PATH_MAX];
	struct slot *s;

	(void)state;
	snprintf(target, sizeof(target), "%s/target", dir);
	snprintf(path, sizeof(path), "%s/n-0.lock", dir);
	assert_int_equal(symlink(target, path), 0);
	snprintf(path, sizeof(path), "%s/n-1.lock", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/n-2.lock", dir);
	assert_int_equal(mkfifo(path, 0600), 0);

	s = claim("n");
	assert_int_equal(slot_number(s), 3);
	assert_false(exists(target));
	slot_free(s);
}

/* A file we may not open (another user's, mode 0600) is taken. */
static void skips_another_users_file(void **state)
{
	char path[PATH_MAX];
	struct slot *s;
	int fd;

	(void)state;
	if (geteuid() == 0)
		skip(); /* root opens anything */
	snprintf(path, sizeof(path), "%s/n-0.lock", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0000);
	assert_true(fd >= 0);
	close(fd);
	s = claim("n");
	assert_int_equal(slot_number(s), 1);
	slot_free(s);
}

static void bad_dirs(void **state)
{
	char path[PATH_MAX];
	int fd;

	(void)state;
	assert_null(slot_claim("/nonexistent/extractd", "n", err,
			       sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/extractd"));
	assert_non_null(strstr(err, strerror(ENOENT)));

	snprintf(path, sizeof(path), "%s/file", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_null(slot_claim(path, "n", err, sizeof(err)));
	assert_non_null(strstr(err, strerror(ENOTDIR)));
}

static void restore(const char *name, const char *value)
{
	if (value)
		setenv(name, value, 1);
	else
		unsetenv(name);
}

/* $RUNTIME_DIRECTORY (its first entry), /run/extractd, $TMPDIR, /tmp:
 * the first writable one. */
static void default_dir(void **state)
{
	char *rt = getenv("RUNTIME_DIRECTORY"), *tmp = getenv("TMPDIR");
	bool run_ok = access("/run/extractd", W_OK | X_OK) == 0;
	char buf[PATH_MAX], both[PATH_MAX + 16], small[4];

	(void)state;
	rt = rt ? strdup(rt) : NULL;
	tmp = tmp ? strdup(tmp) : NULL;

	snprintf(both, sizeof(both), "%s:/somewhere/else", dir);
	setenv("RUNTIME_DIRECTORY", both, 1);
	assert_int_equal(slot_default_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, dir);

	setenv("RUNTIME_DIRECTORY", "/nonexistent/run", 1);
	setenv("TMPDIR", dir, 1);
	assert_int_equal(slot_default_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, run_ok ? "/run/extractd" : dir);

	unsetenv("RUNTIME_DIRECTORY");
	setenv("TMPDIR", "/nonexistent/tmp", 1);
	assert_int_equal(slot_default_dir(buf, sizeof(buf)), 0);
	assert_string_equal(buf, run_ok ? "/run/extractd" : "/tmp");

	/* Nothing fits the buffer. */
	assert_int_equal(slot_default_dir(small, sizeof(small)), -1);

	restore("RUNTIME_DIRECTORY", rt);
	restore("TMPDIR", tmp);
	free(rt);
	free(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(lowest_free, make_dir,
						remove_dir),
		cmocka_unit_test_setup_teardown(names_apart, make_dir,
						remove_dir),
		cmocka_unit_test_setup_teardown(dies_with_its_process,
						make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(file_names, make_dir,
						remove_dir),
		cmocka_unit_test_setup_teardown(skips_what_is_not_a_lock_file,
						make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(skips_another_users_file,
						make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(bad_dirs, make_dir,
						remove_dir),
		cmocka_unit_test_setup_teardown(default_dir, make_dir,
						remove_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
