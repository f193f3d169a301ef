/* Unit tests for common/backoff: delays and the server's hints. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"

static void full_jitter_bounds(void **state)
{
	uint64_t rng = 42;
	unsigned attempt, i, max_seen;

	(void)state;
	for (attempt = 0; attempt < 12; attempt++) {
		unsigned ceiling = 100u << attempt;

		if (ceiling > 5000)
			ceiling = 5000;
		max_seen = 0;
		for (i = 0; i < 2000; i++) {
			unsigned d = backoff_delay_ms(attempt, 100, 5000, &rng);

			assert_true(d <= ceiling);
			if (d > max_seen)
				max_seen = d;
		}
		/* The draw spreads over the whole range. */
		assert_true(max_seen > ceiling * 9 / 10);
	}
	/* A huge attempt number does not overflow the ceiling. */
	assert_true(backoff_delay_ms(1000, 500, 30000, &rng) <= 30000);
}

static void retry_after(void **state)
{
	unsigned ms = 0;

	(void)state;
	assert_int_equal(backoff_parse_retry_after("7", 0, &ms), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(backoff_parse_retry_after(" 0 ", 0, &ms), 0);
	assert_int_equal(ms, 0);
	/* 1994-11-06 08:49:37 UTC is 784111777. */
	assert_int_equal(backoff_parse_retry_after(
				 "Sun, 06 Nov 1994 08:49:37 GMT", 784111770,
				 &ms), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(backoff_parse_retry_after(
				 "Sun, 06 Nov 1994 08:49:37 GMT", 784111800,
				 &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(backoff_parse_retry_after("soon", 0, &ms), -1);
	assert_int_equal(backoff_parse_retry_after("5x", 0, &ms), -1);
}

static void durations(void **state)
{
	unsigned ms = 0;

	(void)state;
	assert_int_equal(backoff_parse_duration("20ms", &ms), 0);
	assert_int_equal(ms, 20);
	assert_int_equal(backoff_parse_duration("1s", &ms), 0);
	assert_int_equal(ms, 1000);
	assert_int_equal(backoff_parse_duration("6m0s", &ms), 0);
	assert_int_equal(ms, 360000);
	assert_int_equal(backoff_parse_duration("1.5s", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(backoff_parse_duration("0.0005s", &ms), 0);
	assert_int_equal(ms, 1); /* rounded up: never retry early */
	assert_int_equal(backoff_parse_duration("1h2m3s", &ms), 0);
	assert_int_equal(ms, 3723000);
	assert_int_equal(backoff_parse_duration("", &ms), -1);
	assert_int_equal(backoff_parse_duration("5", &ms), -1);
	assert_int_equal(backoff_parse_duration("5d", &ms), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(full_jitter_bounds),
		cmocka_unit_test(retry_after),
		cmocka_unit_test(durations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
