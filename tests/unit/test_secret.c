/* Unit tests for common/secret: registered secrets in every form, each
 * credential pattern, no redaction of ordinary words, the cut on a UTF-8
 * boundary, idempotence and a long text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* in redacted must read want; redacting that again changes nothing. */
static void expect(const char *in, const char *want)
{
	char *out = secret_redacted(in), *again;

	assert_non_null(out);
	if (strcmp(out, want))
		fail_msg("redacted\n  %s\ngave\n  %s\nwant\n  %s", in, out,
			 want);
	again = secret_redacted(out);
	assert_non_null(again);
	assert_string_equal(again, out);
	assert_int_equal(secret_found(in, strlen(in)), strcmp(in, want) != 0);
	free(again);
	free(out);
}

static void same(const char *in)
{
	expect(in, in);
}

static int teardown(void **state)
{
	(void)state;
	secret_clear();
	return 0;
}

static void registered(void **state)
{
	(void)state;
	assert_int_equal(secret_add("hunter2-pw"), 0);
	assert_int_equal(secret_add("k/\"q\\z-secret"), 0);
	assert_int_equal(secret_add("abc"), 0);  /* too short: ignored */
	assert_int_equal(secret_add(""), 0);
	assert_int_equal(secret_add(NULL), 0);
	assert_int_equal(secret_add("hunter2-pw"), 0); /* twice: once */

	expect("sasl.password = hunter2-pw, user = bob",
	       "sasl.password = (redacted), user = bob");
	expect("xhunter2-pwx and hunter2-pw", "x(redacted)x and (redacted)");
	expect("hunter2-p", "hunter2-p"); /* a piece is no match */
	expect("abc abcabc", "abc abcabc");
	/* Raw, JSON-escaped, with "\/", escaped twice. */
	expect("raw k/\"q\\z-secret", "raw (redacted)");
	expect("{\"v\":\"k/\\\"q\\\\z-secret\"}", "{\"v\":\"(redacted)\"}");
	expect("{\"v\":\"k\\/\\\"q\\\\z-secret\"}", "{\"v\":\"(redacted)\"}");
	expect("\"{\\\"v\\\":\\\"k/\\\\\\\"q\\\\\\\\z-secret\\\"}\"",
	       "\"{\\\"v\\\":\\\"(redacted)\\\"}\"");
	/* Secrets shorter than the marker: the text grows. */
	assert_int_equal(secret_add("w0rd"), 0);
	expect("a w0rd b", "a (redacted) b");

	secret_clear();
	same("sasl.password = hunter2-pw");
}

static void registered_longest_first(void **state)
{
	(void)state;
	assert_int_equal(secret_add("pass-1234"), 0);
	assert_int_equal(secret_add("bob:pass-1234"), 0);
	expect("bob:pass-1234 pass-1234", "(redacted) (redacted)");
}

static void header_lines(void **state)
{
	(void)state;
	expect("Authorization: Bearer sk-abc123",
	       "Authorization: Bearer (redacted)");
	expect("authorization: Basic dXNlcjpwYXNz",
	       "authorization: Basic (redacted)");
	expect("AUTHORIZATION:Bearer\tsk-x", "AUTHORIZATION:Bearer\t(redacted)");
	expect("Authorization: sk-no-scheme", "Authorization: (redacted)");
	expect("Proxy-Authorization: Basic YWxhZGRpbjpvcGVu",
	       "Proxy-Authorization: Basic (redacted)");
	expect("api-key: 0123abcd", "api-key: (redacted)");
	expect("X-API-Key:  k-9  ", "X-API-Key:  (redacted)  ");
	expect("x-api-key=k-9&model=gpt", "x-api-key=(redacted)&model=gpt");
	/* A request dump: only the values go, the other lines stay. */
	expect("POST /v1/chat/completions HTTP/1.1\r\n"
	       "Host: 127.0.0.1:8080\r\n"
	       "Authorization: Bearer sk-live-0123456789\r\n"
	       "api-key: azure-key-42\r\n"
	       "Content-Type: application/json\r\n\r\n{}",
	       "POST /v1/chat/completions HTTP/1.1\r\n"
	       "Host: 127.0.0.1:8080\r\n"
	       "Authorization: Bearer (redacted)\r\n"
	       "api-key: (redacted)\r\n"
	       "Content-Type: application/json\r\n\r\n{}");
	/* The same dump inside a JSON string (a log line's field). */
	expect("{\"detail\":\"Host: h\\nAuthorization: Bearer sk-1-x\\n"
	       "Accept: */*\"}",
	       "{\"detail\":\"Host: h\\nAuthorization: Bearer (redacted)\\n"
	       "Accept: */*\"}");
	expect("{\"h\":\"Authorization: Basic Zm9vOmJhcg==\"}",
	       "{\"h\":\"Authorization: Basic (redacted)\"}");
	/* As Go prints a header map. */
	expect("map[Authorization:[Bearer sk-go-1] Accept:[*/*]]",
	       "map[Authorization:[Bearer (redacted)] Accept:[*/*]]");
	/* A marker in front does not hide what follows it. */
	expect("Authorization: (redacted) sk-zz9",
	       "Authorization: (redacted)");
	/* Cut before the value ended. */
	expect("HTTP 400: Authorization: Bearer sk-cut-o",
	       "HTTP 400: Authorization: Bearer (redacted)");
}

static void quoted(void **state)
{
	(void)state;
	expect("{\"authorization\": \"Bearer sk-1\", \"n\": 1}",
	       "{\"authorization\": \"Bearer (redacted)\", \"n\": 1}");
	expect("{\"Authorization\":\"Basic dXNlcjpw\"}",
	       "{\"Authorization\":\"Basic (redacted)\"}");
	expect("{\"api-key\":\"k-\\\"quoted\\\"-1\",\"x\":2}",
	       "{\"api-key\":\"(redacted)\",\"x\":2}");
	expect("{'Authorization': 'Bearer tok-1', 'X-Api-Key': 'k2'}",
	       "{'Authorization': 'Bearer (redacted)', "
	       "'X-Api-Key': '(redacted)'}");
	/* JSON inside a JSON string. */
	expect("{\"msg\":\"{\\\"x-api-key\\\": \\\"abc-1\\\"}\"}",
	       "{\"msg\":\"{\\\"x-api-key\\\": \\\"(redacted)\\\"}\"}");
	/* Go's http.Header as JSON. */
	expect("{\"Authorization\":[\"Bearer sk-1\"],\"Accept\":[\"*/*\"]}",
	       "{\"Authorization\":[\"Bearer (redacted)\"],"
	       "\"Accept\":[\"*/*\"]}");
	/* The value is cut before its closing quote. */
	expect("{\"authorization\": \"Bearer sk-cu",
	       "{\"authorization\": \"Bearer (redacted)");
	/* The registered key holds a quote: the value's end is found by
	 * the key, not the quote. */
	assert_int_equal(secret_add("sk-q\"uote"), 0);
	expect("{\"authorization\": \"Bearer sk-q\\\"uote\"}",
	       "{\"authorization\": \"Bearer (redacted)\"}");
	expect("{\"h\":\"Authorization: Bearer sk-q\\\"uote\"}",
	       "{\"h\":\"Authorization: Bearer (redacted)\"}");
}

static void bare_bearer(void **state)
{
	(void)state;
	expect("sent Bearer sk-abc12345 to it", "sent Bearer (redacted) to it");
	expect("bearer eyJhbGciOi.eyJzdWIi.SflKxw",
	       "bearer (redacted)");
	expect("Bearer abc\\/def12345==\"", "Bearer (redacted)\"");
	same("Bearer YOURTOKEN");   /* letters only: a placeholder */
	same("Bearer sk-1");        /* too short to be a token */
}

static void url_userinfo(void **state)
{
	(void)state;
	expect("https://user:pass@host/v1", "https://(redacted)@host/v1");
	expect("POST http://u:p%40ss@127.0.0.1:8080/v1/chat",
	       "POST http://(redacted)@127.0.0.1:8080/v1/chat");
	expect("postgres://bob@db:5432", "postgres://(redacted)@db:5432");
	expect("{\"url\":\"http:\\/\\/u:pw@h\\/v1\"}",
	       "{\"url\":\"http:\\/\\/(redacted)@h\\/v1\"}");
	same("https://host/path@x");
	same("http://127.0.0.1:8080/v1");
}

static void ordinary_words(void **state)
{
	(void)state;
	same("The bearer of this letter needs authorization to use the "
	     "API key; see the api-key docs.");
	same("Bearer authentication, bearer bonds, a bearer token.");
	same("authorization required; authorizations pending; "
	     "Authorization header missing");
	same("x-api-key-id: 7, api-keys: 2, my_authorization: x");
	same("You didn't provide an API key. You need to provide your API "
	     "key in an Authorization header using Bearer auth.");
	same("mail bob@example.com at 12:30, ratio 3:4, see "
	     "https://example.com/a@b or http://host:8080/v1");
	same("Sarah Johnson is a 25-year-old data scientist");
	same("Zoë Müller is a 30-year-old café owner, 翻訳者 и электрик");
	same("");
}

static void url_registered(void **state)
{
	(void)state;
	assert_int_equal(secret_add_url("https://user:Pa55word-xyz@host/v1"),
			 0);
	/* The pair, the password, and the Basic credentials curl sends. */
	expect("as user:Pa55word-xyz or Pa55word-xyz",
	       "as (redacted) or (redacted)");
	expect("Basic dXNlcjpQYTU1d29yZC14eXo=", "Basic (redacted)");
	/* The user name alone is no secret. */
	same("user");
	/* Percent-encoded in the URL: both forms. */
	assert_int_equal(secret_add_url("http://me:p%3Ass-w0rd@h:1/"), 0);
	expect("p%3Ass-w0rd p:ss-w0rd", "(redacted) (redacted)");
	/* No userinfo, a user only, no URL: nothing registered. */
	assert_int_equal(secret_add_url("https://api.openai.com/v1"), 0);
	assert_int_equal(secret_add_url("https://token-user-only@h/v1"), 0);
	assert_int_equal(secret_add_url("no url"), 0);
	assert_int_equal(secret_add_url(NULL), 0);
	same("token-user-only");
}

static void cut_on_boundary(void **state)
{
	char buf[64];
	size_t n;

	(void)state;
	assert_int_equal(secret_add("k123"), 0);
	/* "(redacted) éé" is 15 bytes; a 15-byte buffer holds 14, which
	 * would cut the second "é" in half: it goes whole. */
	snprintf(buf, 15, "%s", "k123 \xc3\xa9\xc3\xa9");
	secret_redact_buf(buf, 15);
	assert_string_equal(buf, "(redacted) \xc3\xa9");
	/* The length of the whole result comes back, as snprintf's. */
	n = secret_redact("k123 \xc3\xa9\xc3\xa9", 9, buf, 15);
	assert_int_equal(n, 15);
	assert_string_equal(buf, "(redacted) \xc3\xa9");
	n = secret_redact("k123", 4, NULL, 0);
	assert_int_equal(n, 10);
	/* A cut never leaves part of a secret: it is redacted, then cut. */
	snprintf(buf, sizeof(buf), "%s", "k123 k123");
	secret_redact_buf(buf, 16);
	assert_string_equal(buf, "(redacted) (red");
	/* It fits: in place, nothing cut. */
	snprintf(buf, sizeof(buf), "%s", "Authorization: Bearer sk-zz");
	secret_redact_buf(buf, sizeof(buf));
	assert_string_equal(buf, "Authorization: Bearer (redacted)");
	/* Nothing to redact: untouched. */
	snprintf(buf, sizeof(buf), "%s", "plain \xc3\xa9");
	secret_redact_buf(buf, sizeof(buf));
	assert_string_equal(buf, "plain \xc3\xa9");
	/* No NUL within size: cut to size - 1 on a boundary. */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "k123 ", 5);
	secret_redact_buf(buf, 8);
	assert_string_equal(buf, "(redact");
}

/* About 1 MiB of UTF-8 prose with a secret of each kind every so often:
 * each goes, everything else stays. */
static void long_text(void **state)
{
	static const char *const words[] = {
		"Zoë", "is", "a", "30-year-old", "café", "owner", "bearer",
		"authorization", "翻訳者", "api", "key", "user@host", "12:30",
		"https://example.com/v1",
	};
	static const char *const secrets[][2] = {
		{ "sk-long-Key-0123456789", "(redacted)" },
		{ "Authorization: Bearer tok-77", "Authorization: Bearer "
						  "(redacted)" },
		{ "\"api-key\": \"k-88\"", "\"api-key\": \"(redacted)\"" },
		{ "https://u:pw@h/v1", "https://(redacted)@h/v1" },
	};
	size_t cap = 1 << 20, n = 0, m = 0, i, k = 0, placed = 0;
	char *in = malloc(cap + 256), *want = malloc(cap * 2), *out;
	char *count;

	(void)state;
	assert_non_null(in);
	assert_non_null(want);
	assert_int_equal(secret_add("sk-long-Key-0123456789"), 0);
	for (i = 0; n < cap; i++) {
		const char *w = words[(i * 5) % 14];
		const char *sin = NULL, *sout = NULL;

		if (i % 97 == 13) {
			sin = secrets[k % 4][0];
			sout = secrets[k % 4][1];
			k++;
		}
		n += (size_t)sprintf(in + n, "%s\n", sin ? sin : w);
		m += (size_t)sprintf(want + m, "%s\n", sout ? sout : w);
	}
	out = secret_redacted(in);
	assert_non_null(out);
	assert_int_equal(strlen(out), m);
	assert_memory_equal(out, want, m);
	for (count = out; (count = strstr(count, "(redacted)")); count++)
		placed++;
	assert_int_equal(placed, k);
	assert_true(k > 100);
	free(out);
	free(want);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(registered, teardown),
		cmocka_unit_test_teardown(registered_longest_first, teardown),
		cmocka_unit_test_teardown(header_lines, teardown),
		cmocka_unit_test_teardown(quoted, teardown),
		cmocka_unit_test_teardown(bare_bearer, teardown),
		cmocka_unit_test_teardown(url_userinfo, teardown),
		cmocka_unit_test_teardown(ordinary_words, teardown),
		cmocka_unit_test_teardown(url_registered, teardown),
		cmocka_unit_test_teardown(cut_on_boundary, teardown),
		cmocka_unit_test_teardown(long_text, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
