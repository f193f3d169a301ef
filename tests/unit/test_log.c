/* Unit tests for common/log: one JSON object a line, and registered
 * secrets never written, whoever formats the line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"
#include "secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Run fn with stderr going to a temp file; returns what it wrote. */
static char *capture(void (*fn)(void))
{
	char path[] = "/tmp/test_log.XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	char *text = calloc(1, 65536);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0 && text);
	unlink(path);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	fn();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	n = pread(fd, text, 65535, 0);
	assert_true(n >= 0);
	close(fd);
	return text;
}

static void lines_with_secrets(void)
{
	char buf[512];

	LOG_INFO("plain", "\"n\":%d", 1);
	/* As librdkafka's debug output might say it. */
	LOG_DEBUG("librdkafka", "\"text\":%s",
		  log_str(buf, sizeof(buf),
			  "Client config: sasl.password = hunter2-pw, "
			  "sasl.username = bob"));
	LOG_WARN("request", "\"header\":%s",
		 log_str(buf, sizeof(buf),
			 "Authorization: Bearer sk-test-SECRET\"x\\y"));
	LOG_ERROR("twice", "\"a\":\"hunter2-pw\",\"b\":\"xhunter2-pwx\"");
	LOG_INFO("short", "\"a\":\"abcd\"");
	/* Not registered: redacted by its shape. */
	LOG_WARN("echo", "\"detail\":%s",
		 log_str(buf, sizeof(buf),
			 "HTTP 400: Host: h\nAuthorization: Bearer "
			 "sk-unregistered-123\nAccept: */*"));
	/* The redaction makes the fields too long: cut, still JSON. */
	{
		static char many[3501];
		int i;

		for (i = 0; i < 700; i++)
			memcpy(many + i * 5, "abcd,", 5);
		LOG_INFO("grows", "\"a\":\"%s\"", many);
	}
}

static void redaction(void **state)
{
	char *text;

	(void)state;
	log_setup(LOG_LVL_DEBUG, true);
	assert_int_equal(secret_add("hunter2-pw"), 0);
	assert_int_equal(secret_add("sk-test-SECRET\"x\\y"), 0);
	assert_int_equal(secret_add("abcd"), 0);
	assert_int_equal(secret_add("abc"), 0); /* too short: ignored */
	assert_int_equal(secret_add(NULL), 0);
	text = capture(lines_with_secrets);

	assert_null(strstr(text, "hunter2"));
	assert_null(strstr(text, "sk-test-SECRET"));
	assert_null(strstr(text, "abcd"));
	assert_non_null(strstr(text, "sasl.password = (redacted), "
				     "sasl.username = bob"));
	assert_non_null(strstr(text, "Authorization: Bearer (redacted)\""));
	assert_non_null(strstr(text, "\"a\":\"(redacted)\",\"b\":"
				     "\"x(redacted)x\""));
	/* A secret shorter than the marker: the line grows. */
	assert_non_null(strstr(text, "\"msg\":\"short\",\"a\":\"(redacted)\""));
	assert_null(strstr(text, "sk-unregistered"));
	assert_non_null(strstr(text, "Host: h\\nAuthorization: Bearer "
				     "(redacted)\\nAccept: */*"));
	assert_non_null(strstr(text, "\"msg\":\"grows\",\"cut\":true}"));
	/* Every line is still one JSON object. */
	{
		char *line, *save = NULL;
		int n = 0;

		for (line = strtok_r(text, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save), n++)
			assert_true(line[0] == '{' &&
				    line[strlen(line) - 1] == '}');
		assert_int_equal(n, 7);
	}
	free(text);
	secret_clear();
	text = capture(lines_with_secrets);
	assert_non_null(strstr(text, "hunter2-pw"));
	free(text);
}

/* At most burst lines a period; the next line written says how many were
 * held back. */
static void rate_limit(void **state)
{
	struct log_limit l = LOG_LIMIT_INIT;
	uint64_t held = 99;
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_true(log_limit(&l, 3, 200000000LL, &held));
		assert_int_equal(held, 0);
	}
	for (i = 0; i < 5; i++)
		assert_false(log_limit(&l, 3, 200000000LL, &held));
	usleep(250000);
	assert_true(log_limit(&l, 3, 200000000LL, &held));
	assert_int_equal(held, 5);
	assert_true(log_limit(&l, 3, 200000000LL, &held));
	assert_int_equal(held, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(redaction),
		cmocka_unit_test(rate_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
