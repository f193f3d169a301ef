/*
 * secret: see secret.h.
 *
 * DESIGN
 * ------
 * The table holds every form of every registered secret, longest first
 * (so "user:pass" wins over "pass"), and a map of the bytes they begin
 * with, so most positions of a text are passed over with one lookup. It
 * is written before threads start and only read afterwards: no lock.
 *
 * A text is scanned once, left to right, over the input only: at each
 * position the registered forms are tried, then the patterns (each begins
 * at a byte of "aAbB:"). A match gives a span to replace; the scan goes
 * on after it. The output is written through a textbuf (str.h) and cut only
 * once it is finished, so a cut never leaves a piece of a secret behind.
 */
#include "secret.h"

#include "str.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_MIN 4          /**< shorter secrets are not registered */
#define SECRET_FORMS_MAX 256  /**< forms: each secret has up to four */
#define REDACTED_LEN (sizeof(SECRET_REDACTED) - 1)
#define TOKEN_MIN 8           /**< bytes of a bare Bearer token */
#define SCHEME_MAX 20         /**< bytes of an Authorization scheme word */

/* Written before threads start, read-only afterwards. */
static char *forms[SECRET_FORMS_MAX];
static size_t form_len[SECRET_FORMS_MAX];
static size_t n_forms;
static bool first_byte[256];

/** A part of the input to replace: [start, end). */
struct span {
	size_t start, end;
};

/* ---- the table -------------------------------------------------------- */

/* s as it reads inside a JSON string: log.c's escapes, and with
 * slash "\/" too, as json-c writes it. A malloc'ed string, or NULL. */
static char *json_escaped(const char *s, bool slash)
{
	size_t n = 0;
	char *out = malloc(strlen(s) * 6 + 1);

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\' || (slash && c == '/')) {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(out + n, 7, "\\u%04x", c);
			n += 6;
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return out;
}

static void wipe_free(char *s)
{
	if (!s)
		return;
	memset(s, 0, strlen(s));
	free(s);
}

/* Add one form, unless known; the table stays sorted longest first. */
static int add_form(const char *form)
{
	size_t len = strlen(form), i, k;
	char *copy;

	for (i = 0; i < n_forms; i++)
		if (!strcmp(forms[i], form))
			return 0;
	if (n_forms == SECRET_FORMS_MAX)
		return -1;
	copy = strdup(form);
	if (!copy)
		return -1;
	for (k = n_forms; k > 0 && form_len[k - 1] < len; k--) {
		forms[k] = forms[k - 1];
		form_len[k] = form_len[k - 1];
	}
	forms[k] = copy;
	form_len[k] = len;
	n_forms++;
	first_byte[(unsigned char)form[0]] = true;
	return 0;
}

int secret_add(const char *secret)
{
	char *once = NULL, *slashed = NULL, *twice = NULL;
	int r = -1;

	if (!secret || strlen(secret) < SECRET_MIN)
		return 0;
	once = json_escaped(secret, false);
	slashed = json_escaped(secret, true);
	twice = once ? json_escaped(once, false) : NULL;
	if (once && slashed && twice && !add_form(secret) && !add_form(once) &&
	    !add_form(slashed) && !add_form(twice))
		r = 0;
	wipe_free(once);
	wipe_free(slashed);
	wipe_free(twice);
	return r;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..len) into out (len + 1 bytes at least). */
static void pct_decode(const char *s, size_t len, char *out)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		int hi, lo;

		if (s[i] == '%' && i + 2 < len &&
		    (hi = hex_value(s[i + 1])) >= 0 &&
		    (lo = hex_value(s[i + 2])) >= 0) {
			out[n++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[n++] = s[i];
		}
	}
	out[n] = '\0';
}

/* Base64 (RFC 4648, padded) of s into out (4 * (len + 2) / 3 + 1). */
static void base64(const char *s, size_t len, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)s;
	size_t i, n = 0;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
			     p[i + 2];

		out[n++] = abc[v >> 18 & 63];
		out[n++] = abc[v >> 12 & 63];
		out[n++] = abc[v >> 6 & 63];
		out[n++] = abc[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		out[n++] = abc[v >> 18 & 63];
		out[n++] = abc[v >> 12 & 63];
		out[n++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
		out[n++] = '=';
	}
	out[n] = '\0';
}

int secret_add_url(const char *url)
{
	const char *auth = url ? strstr(url, "://") : NULL, *end, *at, *colon;
	size_t len;
	char *buf = NULL, *pair, *pass, *plain, *basic;
	int r = -1;

	if (!auth)
		return 0;
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	for (at = end; at > auth && at[-1] != '@'; at--)
		;
	if (at == auth)
		return 0; /* no userinfo */
	len = (size_t)(at - 1 - auth);
	colon = memchr(auth, ':', len);
	if (!colon)
		return 0; /* a user name alone: no secret to look for */
	/* pair, plain (decoded pair), basic: len + 1, len + 1, 2 * len + 8 */
	buf = calloc(1, 4 * len + 16);
	if (!buf)
		return -1;
	pair = buf;
	plain = pair + len + 1;
	basic = plain + len + 1;
	memcpy(pair, auth, len);
	pass = pair + (colon - auth) + 1;
	if (secret_add(pair) < 0 || secret_add(pass) < 0)
		goto out;
	/* As curl sends it: each part decoded, then "user:password". */
	pct_decode(pair, (size_t)(colon - auth), plain);
	strcat(plain, ":");
	pct_decode(pass, strlen(pass), plain + strlen(plain));
	base64(plain, strlen(plain), basic);
	if (secret_add(plain) < 0 ||
	    secret_add(strchr(plain, ':') + 1) < 0 || secret_add(basic) < 0)
		goto out;
	r = 0;
out:
	memset(buf, 0, 4 * len + 16);
	free(buf);
	return r;
}

void secret_clear(void)
{
	size_t i;

	for (i = 0; i < n_forms; i++) {
		wipe_free(forms[i]);
		forms[i] = NULL;
		form_len[i] = 0;
	}
	n_forms = 0;
	memset(first_byte, 0, sizeof(first_byte));
}

/* ---- the patterns ----------------------------------------------------- */

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static bool alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* Whether s[i] is inside a word, where no name begins. '-' may precede
 * one ("x-api-key", "Proxy-Authorization"), and so may an escape such as
 * the "\n" of a JSON string. A marker stands for the word it replaced,
 * so a second redaction sees what the first one saw. */
static bool inside_word(const char *s, size_t i)
{
	if (i >= REDACTED_LEN &&
	    !memcmp(s + i - REDACTED_LEN, SECRET_REDACTED, REDACTED_LEN))
		return true;
	if (!i || (i >= 2 && s[i - 2] == '\\'))
		return false;
	return alnum((unsigned char)s[i - 1]) || s[i - 1] == '_';
}

/* Whether s[i..len) begins with word (lower case), in any case. */
static bool starts_ci(const char *s, size_t len, size_t i, const char *word)
{
	size_t k, n = strlen(word);

	if (len - i < n)
		return false;
	for (k = 0; k < n; k++)
		if (lower((unsigned char)s[i + k]) != word[k])
			return false;
	return true;
}

static bool redacted_at(const char *s, size_t len, size_t i)
{
	return len - i >= REDACTED_LEN &&
	       !memcmp(s + i, SECRET_REDACTED, REDACTED_LEN);
}

static size_t skip_blanks(const char *s, size_t len, size_t j)
{
	while (j < len && (s[j] == ' ' || s[j] == '\t'))
		j++;
	return j;
}

/* The quote opening at s[j], as its length: 1 for " or ', 2 for \" (a
 * quote inside a JSON string), 0 for none. */
static size_t quote_at(const char *s, size_t len, size_t j)
{
	if (j < len && (s[j] == '"' || s[j] == '\''))
		return 1;
	if (j + 1 < len && s[j] == '\\' && s[j + 1] == '"')
		return 2;
	return 0;
}

/* Where a value quoted by q (qlen bytes) and starting at s[j] ends: at
 * its closing quote, or at len when the text was cut before it. */
static size_t quote_end(const char *s, size_t len, size_t j, char q,
			size_t qlen)
{
	while (j < len) {
		if (s[j] == '\\' && j + 1 < len) {
			if (qlen == 2 && s[j + 1] == '"')
				return j;
			j += 2; /* an escaped byte */
			continue;
		}
		if (qlen == 1 && s[j] == q)
			return j;
		j++;
	}
	return len;
}

/* Whether c ends an unquoted header value: a line end, a quote or escape
 * (the end of the JSON string holding the text), or what cannot be in a
 * credential; after '=' also a blank or '&' (a query string). */
static bool value_stop(unsigned char c, bool eq)
{
	if (strchr("\r\n\"'\\]}),;<>", c)) /* NUL included */
		return true;
	return eq && (c == ' ' || c == '\t' || c == '&');
}

/*
 * The value of a header whose name ended at s[j]: "NAME: value" up to
 * the line's end, or quoted ("NAME": "value", 'NAME': 'value',
 * \"NAME\": \"value\", "NAME": ["value"]); ':' or '='. With auth, a
 * scheme word ("Bearer ", "Basic ") stays.
 */
static bool header_at(const char *s, size_t len, size_t j, bool auth,
		      struct span *sp)
{
	size_t q, start, end;
	bool eq;

	j += quote_at(s, len, j); /* the name's closing quote */
	j = skip_blanks(s, len, j);
	if (j >= len || (s[j] != ':' && s[j] != '='))
		return false;
	eq = s[j] == '=';
	j = skip_blanks(s, len, j + 1);
	if (j < len && s[j] == '[')
		j = skip_blanks(s, len, j + 1);
	q = quote_at(s, len, j);
	start = j + q;
	if (auth) {
		size_t w = start, b;

		while (w < len && w - start <= SCHEME_MAX &&
		       ((s[w] >= 'a' && s[w] <= 'z') ||
			(s[w] >= 'A' && s[w] <= 'Z')))
			w++;
		b = skip_blanks(s, len, w);
		if (w > start && w - start <= SCHEME_MAX && b > w && b < len &&
		    !value_stop((unsigned char)s[b], false))
			start = b;
	}
	if (q) {
		end = quote_end(s, len, start, s[j], q);
	} else {
		/* A marker is one unit: its ')' does not end the value. */
		end = redacted_at(s, len, start) ? start + REDACTED_LEN
						 : start;
		while (end < len && !value_stop((unsigned char)s[end], eq))
			end++;
		while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
			end--;
	}
	if (end <= start ||
	    (end - start == REDACTED_LEN && redacted_at(s, len, start)))
		return false; /* nothing there, or redacted already */
	sp->start = start;
	sp->end = end;
	return true;
}

static bool token_char(unsigned char c)
{
	return alnum(c) || (c && strchr("-._~+/", c));
}

/* "Bearer <token>" anywhere: a token of TOKEN_MIN bytes or more with a
 * digit or punctuation in it (so "bearer authentication" stays). */
static bool bearer_at(const char *s, size_t len, size_t i, struct span *sp)
{
	size_t j = i + 6, k;
	bool mark = false;

	if (inside_word(s, i) || !starts_ci(s, len, i, "bearer") ||
	    j >= len || (s[j] != ' ' && s[j] != '\t'))
		return false;
	j = skip_blanks(s, len, j);
	for (k = j; k < len;) {
		unsigned char c = (unsigned char)s[k];

		if (c == '\\' && k + 1 < len && s[k + 1] == '/') {
			k += 2; /* "\/", as json-c writes '/' */
			mark = true;
			continue;
		}
		if (!token_char(c))
			break;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			mark = true;
		k++;
	}
	while (k < len && s[k] == '=')
		k++;
	if (k - j < TOKEN_MIN || !mark)
		return false;
	sp->start = j;
	sp->end = k;
	return true;
}

static bool userinfo_char(unsigned char c)
{
	return alnum(c) || (c && strchr("-._~%!$&()*+,;=:", c));
}

/* "scheme://userinfo@host" (or ":\/\/", JSON-escaped): the userinfo. */
static bool userinfo_at(const char *s, size_t len, size_t i,
			struct span *sp)
{
	size_t j, k;

	if (len - i >= 3 && !memcmp(s + i, "://", 3))
		j = i + 3;
	else if (len - i >= 5 && !memcmp(s + i, ":\\/\\/", 5))
		j = i + 5;
	else
		return false;
	for (k = j; k < len && userinfo_char((unsigned char)s[k]); k++)
		;
	if (k == j || k == len || s[k] != '@' ||
	    (k - j == REDACTED_LEN && redacted_at(s, len, j)))
		return false;
	sp->start = j;
	sp->end = k;
	return true;
}

/* The length of the longest registered form at s[i], or 0. */
static size_t form_at(const char *s, size_t len, size_t i)
{
	size_t k;

	if (first_byte[(unsigned char)s[i]])
		for (k = 0; k < n_forms; k++)
			if (form_len[k] <= len - i &&
			    !memcmp(s + i, forms[k], form_len[k]))
				return form_len[k];
	return 0;
}

/* A pattern's span grows over a registered form that begins inside it
 * and ends after it (a value cut at a quote the secret holds). */
static bool with_forms(const char *s, size_t len, struct span *sp)
{
	size_t p, n;

	for (p = sp->start; p < sp->end; p++)
		if ((n = form_at(s, len, p)) && p + n > sp->end)
			sp->end = p + n;
	return true;
}

/* The span to replace that begins its match at s[i], if any. */
static bool match_at(const char *s, size_t len, size_t i, struct span *sp)
{
	size_t n = form_at(s, len, i);

	if (n) {
		sp->start = i;
		sp->end = i + n;
		return true;
	}
	switch (s[i]) {
	case 'a':
	case 'A':
		if (inside_word(s, i))
			return false;
		if (starts_ci(s, len, i, "authorization"))
			return header_at(s, len, i + 13, true, sp) &&
			       with_forms(s, len, sp);
		if (starts_ci(s, len, i, "api-key"))
			return header_at(s, len, i + 7, false, sp) &&
			       with_forms(s, len, sp);
		return false;
	case 'b':
	case 'B':
		return bearer_at(s, len, i, sp) && with_forms(s, len, sp);
	case ':':
		return userinfo_at(s, len, i, sp) && with_forms(s, len, sp);
	default:
		return false;
	}
}

/* ---- redaction -------------------------------------------------------- */

size_t secret_redact(const char *s, size_t len, char *out, size_t size)
{
	size_t i = 0, from = 0;
	struct textbuf o;
	struct span sp;

	textbuf_init(&o, out, size, TEXTBUF_CUT);

	while (i < len) {
		if (!match_at(s, len, i, &sp)) {
			i++;
			continue;
		}
		textbuf_add(&o, s + from, sp.start - from);
		textbuf_add(&o, SECRET_REDACTED, REDACTED_LEN);
		from = i = sp.end;
	}
	textbuf_add(&o, s + from, len - from);
	return o.total;
}

bool secret_found(const char *s, size_t len)
{
	struct span sp;
	size_t i;

	for (i = 0; i < len; i++)
		if (match_at(s, len, i, &sp))
			return true;
	return false;
}

void secret_redact_buf(char *buf, size_t size)
{
	const char *nul;
	size_t len;
	char *copy;

	if (!buf || !size)
		return;
	nul = memchr(buf, '\0', size);
	len = nul ? (size_t)(nul - buf) : size - 1;
	if (!secret_found(buf, len)) {
		buf[len] = '\0';
		return;
	}
	/* The scan reads the input as it was: redact from a copy. */
	copy = malloc(len + 1);
	if (!copy) {
		snprintf(buf, size, "%s", SECRET_REDACTED); /* all of it */
		return;
	}
	memcpy(copy, buf, len);
	copy[len] = '\0';
	secret_redact(copy, len, buf, size);
	memset(copy, 0, len);
	free(copy);
}

char *secret_redacted(const char *s)
{
	size_t len = strlen(s), n = secret_redact(s, len, NULL, 0);
	char *out = malloc(n + 1);

	if (!out)
		return NULL;
	secret_redact(s, len, out, n + 1);
	return out;
}
