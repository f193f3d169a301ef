/*
 * log: see log.h. The line is built in a fixed buffer and cut (with a
 * marker) when a field set is too long, so logging never allocates.
 * Secrets are redacted by secret.c, whose table is read-only once threads
 * run, so logging takes no lock.
 */
#include "log.h"

#include "clock.h"
#include "secret.h"
#include "str.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static enum log_level log_level = LOG_LVL_INFO;
static bool log_json = true;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_setup(enum log_level level, bool json)
{
	log_level = level;
	log_json = json;
}

bool log_limit(struct log_limit *l, unsigned burst, int64_t period_ns,
	       uint64_t *ret_held)
{
	int64_t now = mono_ns();
	bool ok;

	pthread_mutex_lock(&l->lock);
	if (!l->window_ns || now - l->window_ns >= period_ns) {
		l->window_ns = now;
		l->lines = 0;
	}
	ok = l->lines < burst;
	if (ok) {
		l->lines++;
		*ret_held = l->held;
		l->held = 0;
	} else {
		l->held++;
	}
	pthread_mutex_unlock(&l->lock);
	return ok;
}

bool log_enabled(enum log_level level)
{
	return level >= log_level;
}

const char *log_str(char *buf, size_t size, const char *s)
{
	struct textbuf t;

	if (size < 3) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	/* The closing quote's byte is kept out of the builder's reach; an
	 * escape is added whole, and a cut backs off a split character. */
	textbuf_init(&t, buf, size - 1, TEXTBUF_WHOLE);
	textbuf_add(&t, "\"", 1);
	for (; s && *s && !textbuf_full(&t); s++) {
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
		textbuf_add(&t, esc, len);
	}
	if (textbuf_full(&t))
		t.len = utf8_cut(buf, t.len);
	buf[t.len++] = '"';
	buf[t.len] = '\0';
	return buf;
}

void log_write(enum log_level level, const char *msg, const char *fields_fmt,
	       ...)
{
	char line[LOG_LINE_MAX + 2]; /* + '}' and '\n' */
	char fields[LOG_LINE_MAX];
	char ts[40], text[512], esc[512];
	int64_t now = wall_ms();
	time_t sec = (time_t)(now / 1000);
	struct tm tm;
	size_t n;
	int r;

	gmtime_r(&sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(now % 1000));

	secret_redact(msg, strlen(msg), text, sizeof(text));
	if (log_json)
		r = snprintf(line, LOG_LINE_MAX,
			     "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":%s", ts,
			     level_names[level], log_str(esc, sizeof(esc), text));
	else
		r = snprintf(line, LOG_LINE_MAX, "%s %-5s %s", ts,
			     level_names[level], text);
	n = (size_t)r < LOG_LINE_MAX ? (size_t)r : LOG_LINE_MAX - 1;

	if (fields_fmt && n < LOG_LINE_MAX - 1) {
		size_t room, len;
		va_list ap;

		line[n++] = log_json ? ',' : ' ';
		room = LOG_LINE_MAX - n;
		va_start(ap, fields_fmt);
		r = vsnprintf(fields, sizeof(fields), fields_fmt, ap);
		va_end(ap);
		if (r < 0)
			r = 0;
		/* The fields are redacted into the line: whoever formatted
		 * them, no secret is written. */
		len = (size_t)r < sizeof(fields)
			      ? secret_redact(fields, (size_t)r, line + n, room)
			      : room;
		if (len >= room) {
			/* Cut: drop the partial field set, say so. */
			line[--n] = '\0';
			r = snprintf(line + n, LOG_LINE_MAX - n,
				     log_json ? ",\"cut\":true" : " (cut)");
			len = (size_t)r;
		}
		n += len;
		if (n > LOG_LINE_MAX - 1)
			n = LOG_LINE_MAX - 1;
	}
	if (log_json)
		line[n++] = '}';
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
