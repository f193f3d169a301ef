/*
 * fuzz_config: cfg_load() on a config file and "-s" overrides taken from
 * the input.
 *
 * Input: two header bytes, then "FILE\0OVERRIDE\0OVERRIDE...".
 * - byte 0: bits 0-6 % 5 = how many overrides are used (0..4, fewer when
 *   the input has fewer NUL-separated pieces); bit 7 = no file (path NULL,
 *   built-in defaults plus the overrides).
 * - byte 1: below 64, the error buffer is byte1 + 1 bytes (truncation);
 *   else 1024 bytes.
 * The file text is written to a regular file in a private directory on
 * tmpfs (/dev/shm, else $TMPDIR, else /tmp), extractd-fuzz-PID, made once
 * per process (and removed at exit, or by the next run after a crash):
 * libconfig reads paths, so fmemopen would not do. The directory also
 * holds inc.cfg, so "@include \"inc.cfg\"" is followed; an input that
 * would @include anything but the files listed at includes_local() is
 * not run.
 *
 * Checked, beyond the sanitizers:
 * - the return is 0 or -1; on -1 the error is non-empty (when the buffer
 *   has room), one line, NUL-terminated inside its buffer, and ret_cfg is
 *   left alone;
 * - on 0, every setting prints with cfg_value_text() (small buffer: 0 or
 *   -1, never an overflow), has an origin, and the printed values read
 *   back: loading them all as "-s path=value" succeeds and prints the same
 *   (but for kafka.properties holding a secret or "${").
 * "${file:PATH}" values read any regular file (bounded, never blocking).
 * cfg_free() always.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                    \
	do {                                                                \
		if (!(cond))                                                \
			__builtin_trap();                                   \
	} while (0)

#define FUZZ_MAX_OVERRIDES 4
#define FUZZ_ERR_LARGE 1024
#define FUZZ_VALUE_MAX 4096
#define FUZZ_MAX_SETTINGS 128

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/*
 * LeakSanitizer's built-in suppressions for this program (third-party
 * only). libconfig before 1.7.3 leaks the text of a string token that
 * the parser throws away while recovering from a syntax error, e.g.
 * 'a "b"' (hyperrealm/libconfig#142, fixed by #155; Debian 12 has 1.5).
 * The scanner made that text: strbuf_append() for a string, a calloc()
 * in libconfig_yylex() for "" (the stacks stop there: libconfig has no
 * frame pointers).
 */
const char *__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static char cfg_path[512]; /* DIR/extractd.cfg */
static char dir_path[480];  /* BASE/extractd-fuzz-PID */

/* Remove one of our directories: our two files, then the directory. */
static void remove_dir(const char *dir)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/extractd.cfg", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/inc.cfg", dir);
	unlink(p);
	rmdir(dir);
}

static void cleanup(void)
{
	remove_dir(dir_path);
}

/*
 * A run that crashes leaves its directory behind (atexit does not run):
 * remove those whose process is gone.
 */
static void remove_stale(const char *base)
{
	DIR *d = opendir(base);
	struct dirent *e;
	char p[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		int pid, end = 0;

		if (sscanf(e->d_name, "extractd-fuzz-%d%n", &pid, &end) != 1 ||
		    e->d_name[end] != '\0' || pid <= 0 || pid == getpid())
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(p, sizeof(p), "%s/%s", base, e->d_name);
		remove_dir(p);
	}
	closedir(d);
}

static void write_file(const char *path, const void *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *p = text;

	FUZZ_CHECK(fd >= 0);
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		FUZZ_CHECK(n > 0);
		p += n;
		len -= (size_t)n;
	}
	FUZZ_CHECK(close(fd) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char inc[] = "pool: { workers = 4; };\n";
	const char *base = "/dev/shm", *tmp = getenv("TMPDIR");
	char p[512];

	(void)argc;
	(void)argv;
	if (access(base, W_OK) != 0)
		base = tmp && *tmp ? tmp : "/tmp";
	remove_stale(base);
	snprintf(dir_path, sizeof(dir_path), "%s/extractd-fuzz-%d", base,
		 (int)getpid());
	remove_dir(dir_path); /* a stale one with our pid */
	FUZZ_CHECK(mkdir(dir_path, 0700) == 0);
	atexit(cleanup);
	snprintf(cfg_path, sizeof(cfg_path), "%s/extractd.cfg", dir_path);
	snprintf(p, sizeof(p), "%s/inc.cfg", dir_path);
	write_file(p, inc, sizeof(inc) - 1);
	return 0;
}

/*
 * True when every @include in text names a regular file of the private
 * directory (or none), so libconfig reads nothing else: "inc.cfg",
 * "extractd.cfg" (itself: libconfig stops at 10 levels) or "missing.cfg".
 * Not a directory: libconfig 1.5 then exit()s ("input in flex scanner
 * failed"), reported; not a device either (/dev/zero never ends).
 */
static bool includes_local(const char *text, size_t len)
{
	static const char dir[] = "@include";
	static const char *const ok[] = { "inc.cfg", "extractd.cfg",
					  "missing.cfg" };
	const size_t dlen = sizeof(dir) - 1;
	size_t i, j, k, n;

	for (i = 0; i + dlen <= len; i++) {
		if (memcmp(text + i, dir, dlen) != 0)
			continue;
		for (j = i + dlen; j < len && (text[j] == ' ' ||
					       text[j] == '\t'); j++)
			;
		if (j == len || text[j] != '"')
			continue; /* not a directive: libconfig sees '@' */
		for (k = j + 1; k < len && text[k] != '"'; k++)
			if (text[k] == '\\')
				return false;
		if (k == len)
			return false;
		for (n = 0; n < sizeof(ok) / sizeof(ok[0]); n++)
			if (k - j - 1 == strlen(ok[n]) &&
			    memcmp(text + j + 1, ok[n], k - j - 1) == 0)
				break;
		if (n == sizeof(ok) / sizeof(ok[0]))
			return false;
	}
	return true;
}

static void check_error(const char *err, size_t err_size)
{
	const char *nul = memchr(err, '\0', err_size);

	FUZZ_CHECK(nul);
	if (err_size > 1)
		FUZZ_CHECK(err[0] != '\0');
	FUZZ_CHECK(!memchr(err, '\n', (size_t)(nul - err)));
	FUZZ_CHECK(!memchr(err, '\r', (size_t)(nul - err)));
}

/* Print every setting, and check the printed values read back. */
static void check_loaded(const struct extractd_config *cfg)
{
	static char text[FUZZ_MAX_SETTINGS][FUZZ_VALUE_MAX];
	static char *overrides[FUZZ_MAX_SETTINGS];
	const char *path;
	struct extractd_config *again = NULL;
	char small[8], err[FUZZ_ERR_LARGE], back[FUZZ_VALUE_MAX];
	size_t i, n = 0;
	int r;

	FUZZ_CHECK(cfg_mode_name(cfg->llm.mode));
	FUZZ_CHECK(cfg_ordering_name(cfg->output.ordering));
	FUZZ_CHECK(cfg_origin(cfg, "no.such_setting"));
	FUZZ_CHECK(cfg_origin(cfg, "kafka.properties.no.such"));
	for (i = 0; (path = cfg_setting_path(i)); i++) {
		FUZZ_CHECK(i < FUZZ_MAX_SETTINGS);
		FUZZ_CHECK(cfg_origin(cfg, path));
		r = cfg_value_text(cfg, path, small, sizeof(small));
		FUZZ_CHECK(r == 0 || r == -1);
		if (r == 0)
			FUZZ_CHECK(memchr(small, '\0', sizeof(small)));
		r = cfg_value_text(cfg, path, text[i], sizeof(text[i]));
		FUZZ_CHECK(r == 0 || r == -1);
		if (r < 0) {
			/* Only a value too long for the buffer may fail. */
			text[i][0] = '\0';
			continue;
		}
		FUZZ_CHECK(memchr(text[i], '\0', sizeof(text[i])));
		FUZZ_CHECK(!strchr(text[i], '\n'));
		/* Not read back: a secret shows as "(redacted)", which "-s"
		 * refuses (a secret on the command line), and a value read
		 * through ${env:}/${file:} may itself look like one. */
		if (strstr(text[i], "\"(redacted)\"") ||
		    strstr(text[i], "${")) {
			text[i][0] = '\0';
			continue;
		}
		overrides[n] = malloc(strlen(path) + strlen(text[i]) + 2);
		FUZZ_CHECK(overrides[n]);
		snprintf(overrides[n], strlen(path) + strlen(text[i]) + 2,
			 "%s=%s", path, text[i]);
		n++;
	}

	/* Read back: every printed value, given as an override. */
	r = cfg_load(NULL, (const char *const *)overrides, n, &again, err,
		     sizeof(err));
	FUZZ_CHECK(r == 0);
	for (i = 0; (path = cfg_setting_path(i)); i++) {
		if (!text[i][0])
			continue;
		r = cfg_value_text(again, path, back, sizeof(back));
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(strcmp(back, text[i]) == 0);
	}
	cfg_free(again);
	for (i = 0; i < n; i++)
		free(overrides[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct extractd_config sentinel_cfg;
	struct extractd_config *cfg, *const sentinel = &sentinel_cfg;
	const char *overrides[FUZZ_MAX_OVERRIDES];
	const uint8_t *p, *end, *nul;
	size_t file_len, n_over = 0, want, err_size;
	bool use_file;
	char *err;
	int r;

	if (size < 2)
		return 0;
	want = (data[0] & 0x7F) % (FUZZ_MAX_OVERRIDES + 1);
	use_file = !(data[0] & 0x80);
	err_size = data[1] < 64 ? (size_t)data[1] + 1 : FUZZ_ERR_LARGE;
	p = data + 2;
	end = data + size;

	nul = memchr(p, '\0', (size_t)(end - p));
	file_len = nul ? (size_t)(nul - p) : (size_t)(end - p);
	if (use_file) {
		if (!includes_local((const char *)p, file_len))
			return -1;
		write_file(cfg_path, p, file_len);
	}
	/* Overrides: the NUL-terminated pieces after the file text. The last
	 * one may end at the end of the input: it is copied to terminate it. */
	p = nul ? nul + 1 : end;
	while (n_over < want && p < end) {
		nul = memchr(p, '\0', (size_t)(end - p));
		overrides[n_over] = nul ? strdup((const char *)p)
				       : strndup((const char *)p,
						 (size_t)(end - p));
		FUZZ_CHECK(overrides[n_over]);
		n_over++;
		p = nul ? nul + 1 : end;
	}

	err = malloc(err_size);
	FUZZ_CHECK(err);
	memset(err, 'x', err_size);
	cfg = sentinel;
	r = cfg_load(use_file ? cfg_path : NULL, overrides, n_over, &cfg, err,
		     err_size);
	FUZZ_CHECK(r == 0 || r == -1);
	if (r == 0) {
		FUZZ_CHECK(cfg && cfg != sentinel);
		check_loaded(cfg);
		cfg_free(cfg);
	} else {
		FUZZ_CHECK(cfg == sentinel);
		check_error(err, err_size);
	}
	free(err);
	while (n_over > 0)
		free((char *)overrides[--n_over]);
	return 0;
}
