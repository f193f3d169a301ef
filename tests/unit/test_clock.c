/*
 * Unit tests for common/clock.c: the readings move the right way and the
 * deadlines land where they should.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"

#define NS_PER_S 1000000000LL

static int64_t ts_ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void test_mono_moves_forward(void **state)
{
	int64_t a = mono_ns(), b;

	(void)state;
	nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);
	b = mono_ns();
	assert_true(a > 0);
	assert_true(b - a >= 2000000);
}

static void test_wall_ms_is_realtime(void **state)
{
	struct timespec now;
	int64_t ms = wall_ms(), then;

	(void)state;
	clock_gettime(CLOCK_REALTIME, &now);
	then = ts_ns(now) / 1000000;
	assert_true(then >= ms);
	assert_true(then - ms < 1000);
	assert_true(ms > 1600000000000LL); /* after 2020 */
}

static void test_mono_timespec(void **state)
{
	struct timespec ts = mono_timespec(3 * NS_PER_S + 250);

	(void)state;
	assert_int_equal(ts.tv_sec, 3);
	assert_int_equal(ts.tv_nsec, 250);
	ts = mono_timespec(999999999);
	assert_int_equal(ts.tv_sec, 0);
	assert_int_equal(ts.tv_nsec, 999999999);
}

static void test_realtime_in(void **state)
{
	struct timespec now;
	int64_t before, at, after;

	(void)state;
	clock_gettime(CLOCK_REALTIME, &now);
	before = ts_ns(now);
	at = ts_ns(realtime_in_ns(1500 * 1000000LL));
	clock_gettime(CLOCK_REALTIME, &now);
	after = ts_ns(now);
	assert_true(at >= before + 1500 * 1000000LL);
	assert_true(at <= after + 1500 * 1000000LL);
	assert_true(realtime_in_ns(0).tv_nsec < NS_PER_S);

	/* a deadline already past is now, not earlier */
	at = ts_ns(realtime_in_ns(-5 * NS_PER_S));
	assert_true(at >= after);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mono_moves_forward),
		cmocka_unit_test(test_wall_ms_is_realtime),
		cmocka_unit_test(test_mono_timespec),
		cmocka_unit_test(test_realtime_in),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
