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

#include <inttypes.h>
#include <math.h>
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

/* Append s as a JSON string of at most cap bytes, quotes included: every
 * escape whole, a character never split, a byte that is not UTF-8 as
 * U+FFFD. NULL is null. secret.c finds a secret inside a line by these
 * same escapes. */
static void add_string(struct textbuf *t, const char *s, size_t cap)
{
	size_t used = 2, n;

	if (!s) {
		textbuf_add(t, "null", 4);
		return;
	}
	textbuf_add(t, "\"", 1);
	for (; *s; s += n) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		const char *out = esc;
		size_t len;

		n = c < 0x80 ? 1 : utf8_seq(s, strnlen(s, 4), NULL);
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
		} else if (n) {
			out = s;
			len = n;
		} else {
			memcpy(esc, "\\ufffd", 6);
			len = 6;
			n = 1;
		}
		if (used + len > cap)
			break;
		textbuf_add(t, out, len);
		used += len;
	}
	textbuf_add(t, "\"", 1);
}

static void add_field(struct textbuf *t, const struct log_field *f)
{
	textbuf_addf(t, "\"%s\":", f->key);
	switch (f->type) {
	case LOG_T_STR:
		add_string(t, f->v.s, LOG_VALUE_MAX);
		break;
	case LOG_T_INT:
		textbuf_addf(t, "%" PRId64, f->v.i);
		break;
	case LOG_T_UINT:
		textbuf_addf(t, "%" PRIu64, f->v.u);
		break;
	case LOG_T_DOUBLE:
		/* JSON has no NaN nor infinity. */
		if (isfinite(f->v.d))
			textbuf_addf(t, "%.*f", f->prec, f->v.d);
		else
			textbuf_add(t, "null", 4);
		break;
	case LOG_T_BOOL:
		textbuf_adds(t, f->v.b ? "true" : "false");
		break;
	}
}

void log_write(enum log_level level, const char *msg,
	       const struct log_field *fields, size_t n_fields)
{
	char line[LOG_LINE_MAX + 2]; /* + '}' and '\n' */
	char fields_text[LOG_LINE_MAX];
	char ts[40], text[512], esc[512];
	int64_t now = wall_ms();
	time_t sec = (time_t)(now / 1000);
	struct textbuf t;
	struct tm tm;
	size_t n, i;
	int r;

	gmtime_r(&sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(now % 1000));

	secret_redact(msg, strlen(msg), text, sizeof(text));
	textbuf_init(&t, esc, sizeof(esc), TEXTBUF_WHOLE);
	add_string(&t, text, sizeof(esc) - 1);
	if (log_json)
		r = snprintf(line, LOG_LINE_MAX,
			     "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":%s", ts,
			     level_names[level], esc);
	else
		r = snprintf(line, LOG_LINE_MAX, "%s %-5s %s", ts,
			     level_names[level], text);
	n = (size_t)r < LOG_LINE_MAX ? (size_t)r : LOG_LINE_MAX - 1;

	if (n_fields && n < LOG_LINE_MAX - 1) {
		size_t room, len;

		line[n++] = log_json ? ',' : ' ';
		room = LOG_LINE_MAX - n;
		textbuf_init(&t, fields_text, sizeof(fields_text),
			     TEXTBUF_WHOLE);
		for (i = 0; i < n_fields; i++) {
			if (i)
				textbuf_add(&t, ",", 1);
			add_field(&t, &fields[i]);
		}
		/* The fields are redacted into the line: whatever they
		 * hold, no secret is written. */
		len = textbuf_full(&t) ? room
				       : secret_redact(fields_text, t.len,
						       line + n, room);
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
