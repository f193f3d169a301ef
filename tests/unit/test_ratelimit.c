/* Unit tests for common/ratelimit: reservations against a fake clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ratelimit.h"

#define SEC 1000000000LL

static void burst_then_steady_rate(void **state)
{
	/* 600 a minute = 10 a second, a burst of 10. */
	struct ratelimit *rl = ratelimit_new(600, 10, 0);
	int64_t t = 0, wait;
	int i, calls = 0;

	(void)state;
	for (i = 0; i < 10; i++)
		assert_int_equal(ratelimit_reserve(rl, 1, 0), 0);
	/* The eleventh waits a tenth of a second. */
	wait = ratelimit_reserve(rl, 1, 0);
	assert_true(wait > SEC / 10 - 1000 && wait <= SEC / 10 + 1000);

	/* Callers that each wait what they are told, over 60 s of a
	 * backlog, make 10 calls a second. */
	t = wait;
	for (;;) {
		wait = ratelimit_reserve(rl, 1, t);
		t += wait;
		if (t > 61 * SEC)
			break;
		if (t > SEC)
			calls++;
	}
	assert_in_range(calls, 595, 605);
	ratelimit_free(rl);
}

static void debt_and_refund(void **state)
{
	struct ratelimit *rl = ratelimit_new(60, 1, 0); /* 1 a second */

	(void)state;
	assert_int_equal(ratelimit_reserve(rl, 1, 0), 0);
	/* A 3-token estimate: 3 s of debt. */
	assert_in_range(ratelimit_reserve(rl, 3, 0), 3 * SEC, 3 * SEC + 1000);
	/* usage said 1 token: 2 are given back. */
	ratelimit_adjust(rl, -2, 0);
	assert_in_range(ratelimit_reserve(rl, 1, 0), 2 * SEC, 2 * SEC + 1000);
	/* A refund never fills past the burst. */
	ratelimit_adjust(rl, -100, 100 * SEC);
	assert_int_equal(ratelimit_reserve(rl, 1, 100 * SEC), 0);
	assert_true(ratelimit_reserve(rl, 1, 100 * SEC) > 0);
	ratelimit_free(rl);
}

static void zero_rate_is_no_limiter(void **state)
{
	(void)state;
	assert_null(ratelimit_new(0, 10, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(burst_then_steady_rate),
		cmocka_unit_test(debt_and_refund),
		cmocka_unit_test(zero_rate_is_no_limiter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
