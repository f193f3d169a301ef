/*
 * log: see log.h. The line is built in a fixed buffer and cut (with a
 * marker) when a field set is too long, so logging never allocates.
 * The secrets table is written by log_add_secret() before threads start
 * and only read afterwards, so it needs no lock.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096
#define LOG_SECRETS_MAX 64     /* forms: a secret and its escaped form */
#define LOG_SECRET_MIN 4
#define LOG_REDACTED "(redacted)"

static enum log_level log_level = LOG_LVL_INFO;
static bool log_json = true;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

/* Written before threads start, read-only afterwards. */
static char *log_secrets[LOG_SECRETS_MAX];
static size_t log_n_secrets;

static int log_add_form(const char *form)
{
	size_t i;

	for (i = 0; i < log_n_secrets; i++)
		if (!strcmp(log_secrets[i], form))
			return 0;
	if (log_n_secrets == LOG_SECRETS_MAX)
		return -1;
	log_secrets[log_n_secrets] = strdup(form);
	if (!log_secrets[log_n_secrets])
		return -1;
	log_n_secrets++;
	return 0;
}

int log_add_secret(const char *secret)
{
	size_t len, size;
	char *esc;
	int r;

	if (!secret || (len = strlen(secret)) < LOG_SECRET_MIN)
		return 0;
	if (log_add_form(secret) < 0)
		return -1;
	/* Also as it reads inside a JSON string (log_str's escapes: at
	 * most 6 bytes a byte, plus the quotes). */
	size = len * 6 + 3;
	esc = malloc(size);
	if (!esc)
		return -1;
	log_str(esc, size, secret);
	esc[strlen(esc) - 1] = '\0'; /* the closing quote */
	r = log_add_form(esc + 1);  /* a duplicate when nothing escaped */
	memset(esc, 0, size);
	free(esc);
	return r;
}

void log_clear_secrets(void)
{
	size_t i;

	for (i = 0; i < log_n_secrets; i++) {
		memset(log_secrets[i], 0, strlen(log_secrets[i]));
		free(log_secrets[i]);
		log_secrets[i] = NULL;
	}
	log_n_secrets = 0;
}

/* Copy line[0..n) to out (as large), each secret replaced by
 * LOG_REDACTED, or "***" when the secret is shorter: the line never
 * grows, so it is never cut. Returns out's length. */
static size_t log_redact(const char *line, size_t n, char *out)
{
	size_t i = 0, o = 0, k;

	while (i < n) {
		for (k = 0; k < log_n_secrets; k++) {
			size_t len = strlen(log_secrets[k]);

			if (len <= n - i &&
			    !memcmp(line + i, log_secrets[k], len))
				break;
		}
		if (k < log_n_secrets) {
			size_t len = strlen(log_secrets[k]);
			const char *with = len >= strlen(LOG_REDACTED)
						   ? LOG_REDACTED
						   : "***";

			memcpy(out + o, with, strlen(with));
			o += strlen(with);
			i += len;
		} else {
			out[o++] = line[i++];
		}
	}
	return o;
}

/* Whether line[0..n) holds any secret. */
static bool log_has_secret(const char *line, size_t n)
{
	size_t k;

	for (k = 0; k < log_n_secrets; k++) {
		const char *s = log_secrets[k], *p = line;
		size_t len = strlen(s);

		while ((size_t)(line + n - p) >= len &&
		       (p = memchr(p, s[0], (size_t)(line + n - p)))) {
			if ((size_t)(line + n - p) >= len &&
			    !memcmp(p, s, len))
				return true;
			p++;
		}
	}
	return false;
}

void log_setup(enum log_level level, bool json)
{
	log_level = level;
	log_json = json;
}

bool log_enabled(enum log_level level)
{
	return level >= log_level;
}

const char *log_str(char *buf, size_t size, const char *s)
{
	size_t n = 0;

	if (size < 3) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	buf[n++] = '"';
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		size_t len;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			len = 2;
		} else if (c == '\n') {
			memcpy(esc, "\\n", 2);
			len = 2;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			len = 6;
		} else {
			esc[0] = (char)c;
			len = 1;
		}
		if (n + len + 2 > size)
			break;
		memcpy(buf + n, esc, len);
		n += len;
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

void log_write(enum log_level level, const char *msg, const char *fields_fmt,
	       ...)
{
	char line[LOG_LINE_MAX + 2]; /* + '}' and '\n' */
	char clean[LOG_LINE_MAX + 2];
	char ts[40], esc[512];
	struct timespec now;
	struct tm tm;
	size_t n;
	int r;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);

	if (log_json)
		r = snprintf(line, LOG_LINE_MAX,
			     "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":%s", ts,
			     level_names[level], log_str(esc, sizeof(esc), msg));
	else
		r = snprintf(line, LOG_LINE_MAX, "%s %-5s %s", ts,
			     level_names[level], msg);
	n = (size_t)r < LOG_LINE_MAX ? (size_t)r : LOG_LINE_MAX - 1;

	if (fields_fmt && n < LOG_LINE_MAX - 1) {
		va_list ap;

		line[n++] = log_json ? ',' : ' ';
		va_start(ap, fields_fmt);
		r = vsnprintf(line + n, LOG_LINE_MAX - n, fields_fmt, ap);
		va_end(ap);
		if (r < 0)
			r = 0;
		if ((size_t)r >= LOG_LINE_MAX - n) {
			/* Cut: drop the partial field set, say so. */
			line[--n] = '\0';
			r = snprintf(line + n, LOG_LINE_MAX - n,
				     log_json ? ",\"cut\":true" : " (cut)");
		}
		n += (size_t)r;
		if (n > LOG_LINE_MAX - 1)
			n = LOG_LINE_MAX - 1;
	}
	if (log_n_secrets && log_has_secret(line, n)) {
		n = log_redact(line, n, clean);
		memcpy(line, clean, n);
	}
	if (log_json)
		line[n++] = '}';
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
