/*
 * Unit tests for common/spend: the cost arithmetic, its decimal form, and
 * the caps' sliding windows on a synthetic clock (a 60 s window in 1 s
 * steps stands for an hour in minutes): a cap stops at the spend that
 * reaches it, resumes once that spend has left the window, not before,
 * and says so once each way.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "spend.h"

#define S 1000000000LL /* ns a second */
#define T0 (1000 * S)  /* the clock's start: any monotonic time */

static void cost(void **state)
{
	const struct cfg_price mini = { .input = 0.15, .cached_input = 0.075,
					.output = 0.6 };
	const struct cfg_price no_cached = { .input = 2.5, .output = 10 };

	(void)state;
	/* 1000 prompt tokens, 400 of them cached, 200 completion. */
	assert_true(fabs(spend_cost(&mini, 1000, 400, 200) -
			 (600 * 0.15 + 400 * 0.075 + 200 * 0.6) / 1e6) < 1e-15);
	/* Without a cached price, cached tokens bill as input. */
	assert_true(fabs(spend_cost(&no_cached, 1000, 400, 200) -
			 (1000 * 2.5 + 200 * 10) / 1e6) < 1e-15);
	/* More cached than prompt (a confused server): at most prompt. */
	assert_true(fabs(spend_cost(&mini, 100, 500, 0) - 100 * 0.075 / 1e6) <
		    1e-15);
	assert_true(spend_cost(&mini, 0, 0, 0) == 0);
}

/* A batch answer's tokens at batch_factor of the price, the live rest at
 * the price. */
static void cost_batched(void **state)
{
	const struct cfg_price mini = { .input = 0.15, .cached_input = 0.075,
					.output = 0.6, .batch_factor = 0.5 };
	double batch = spend_cost(&mini, 1000, 400, 200);
	double live = spend_cost(&mini, 1500, 0, 250);

	(void)state;
	/* The batch's first answer (1000/400/200), then a live re-ask
	 * (1500/0/250): the totals are their sums. */
	assert_true(fabs(spend_cost_batched(&mini, 2500, 400, 450, 1000, 400,
					    200) -
			 (live + 0.5 * batch)) < 1e-15);
	/* All from the batch: half price. */
	assert_true(fabs(spend_cost_batched(&mini, 1000, 400, 200, 1000, 400,
					    200) -
			 0.5 * batch) < 1e-15);
	/* Nothing from a batch: spend_cost(). */
	assert_true(spend_cost_batched(&mini, 1500, 0, 250, 0, 0, 0) == live);
	/* A batch part past its total counts as the total. */
	assert_true(fabs(spend_cost_batched(&mini, 1000, 400, 200, 5000, 900,
					    300) -
			 0.5 * batch) < 1e-15);
	/* batch_factor 1: no discount. */
	{
		struct cfg_price full = mini;

		full.batch_factor = 1;
		assert_true(fabs(spend_cost_batched(&full, 2500, 400, 450,
						    1000, 400, 200) -
				 (live + batch)) < 1e-15);
	}
}

static void format(void **state)
{
	char buf[32];

	(void)state;
	spend_format(0.000043, buf, sizeof(buf));
	assert_string_equal(buf, "0.000043");
	spend_format(27e-6 + 1e-18, buf, sizeof(buf));
	assert_string_equal(buf, "0.000027");
	spend_format(3e-10, buf, sizeof(buf));
	assert_string_equal(buf, "0.0000000003");
	spend_format(0, buf, sizeof(buf));
	assert_string_equal(buf, "0.0");
	spend_format(12.5, buf, sizeof(buf));
	assert_string_equal(buf, "12.5");
}

static void caps_refused(void **state)
{
	struct spend *s = spend_new();

	(void)state;
	assert_int_equal(spend_cap(s, "a", 60 * S, 0), -1);
	assert_int_equal(spend_cap(s, "a", 0, 1), -1);
	assert_int_equal(spend_cap(s, "a", 60 * S, 1), 0);
	assert_int_equal(spend_cap(s, "b", 3600 * S, 1), 0);
	assert_int_equal(spend_cap(s, "c", 60 * S, 1), -1);
	spend_free(s);
	spend_free(NULL);
}

/* A cap of $1 over 60 s: spend in steps, stop at the cap, resume when
 * the spend that reached it has left the window. */
static void window_stops_and_resumes(void **state)
{
	struct spend *s = spend_new();
	char why[256];
	bool over;

	(void)state;
	assert_int_equal(spend_cap(s, "rate.usd_per_hour", 60 * S, 1.0), 0);
	assert_int_equal(spend_check(s, T0, &over, why, sizeof(why)),
			 SPEND_SAME);
	assert_false(over);
	assert_string_equal(why, "");

	spend_add(s, T0, 0.5);            /* step 1000 */
	spend_add(s, T0 + 10 * S, 0.25);  /* step 1010 */
	assert_false(spend_over(s, T0 + 10 * S, why, sizeof(why)));
	spend_add(s, T0 + 20 * S, 0.25);  /* step 1020: $1, the cap */
	assert_int_equal(spend_check(s, T0 + 20 * S, &over, why, sizeof(why)),
			 SPEND_STOPPED);
	assert_true(over);
	assert_non_null(strstr(why, "rate.usd_per_hour: $1 spent in the "
				    "window, cap $1"));
	/* The first $0.5 leaves at 1000 + 60 = 1060 s: 40 s from now. */
	assert_non_null(strstr(why, "about 41 s until"));
	/* Still over, told once. */
	assert_int_equal(spend_check(s, T0 + 30 * S, &over, why, sizeof(why)),
			 SPEND_SAME);
	assert_true(over);
	/* Just before the first step leaves, still over... */
	assert_true(spend_over(s, T0 + 60 * S - 1, why, sizeof(why)));
	/* ...and as it leaves, $0.5 remain: under the cap again. */
	assert_int_equal(spend_check(s, T0 + 60 * S, &over, why, sizeof(why)),
			 SPEND_RESUMED);
	assert_false(over);
	/* Long after, the window is empty: spend again up to the cap. */
	spend_add(s, T0 + 500 * S, 0.999);
	assert_false(spend_over(s, T0 + 500 * S, why, sizeof(why)));
	spend_add(s, T0 + 501 * S, 0.002);
	assert_true(spend_over(s, T0 + 501 * S, why, sizeof(why)));
	assert_non_null(strstr(why, "about 60 s until"));
	spend_free(s);
}

/* Two caps: the day's is reached while the hour's is not; the one
 * reached is the one named. */
static void two_windows(void **state)
{
	struct spend *s = spend_new();
	char why[256];
	int i;

	(void)state;
	assert_int_equal(spend_cap(s, "rate.usd_per_hour", 60 * S, 2.0), 0);
	assert_int_equal(spend_cap(s, "rate.usd_per_day", 1440 * S, 5.0), 0);
	/* $1.5 a "minute" for four minutes: never $2 in one, $6 in four. */
	for (i = 0; i < 4; i++) {
		assert_false(spend_over(s, T0 + i * 61 * S, why, sizeof(why)));
		spend_add(s, T0 + i * 61 * S, 1.5);
	}
	assert_true(spend_over(s, T0 + 4 * 61 * S, why, sizeof(why)));
	assert_non_null(strstr(why, "rate.usd_per_day:"));
	spend_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cost),
		cmocka_unit_test(cost_batched),
		cmocka_unit_test(format),
		cmocka_unit_test(caps_refused),
		cmocka_unit_test(window_stops_and_resumes),
		cmocka_unit_test(two_windows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
