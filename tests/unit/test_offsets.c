/* Unit tests for common/offsets: commit only the delivered prefix. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <cmocka.h>

#include "offsets.h"

static void out_of_order_completions(void **state)
{
	struct offtrack *t = offtrack_new();
	int64_t commit = -7;

	(void)state;
	assert_int_equal(offtrack_position(t), -1);
	assert_int_equal(offtrack_add(t, 5), 0);
	assert_int_equal(offtrack_add(t, 6), 0);
	assert_int_equal(offtrack_add(t, 7), 0);

	/* 7 then 5 delivered: the commit position is 6, not 8. */
	assert_int_equal(offtrack_done(t, 7, &commit), 0);
	assert_int_equal(commit, -7);
	assert_int_equal(offtrack_done(t, 5, &commit), 1);
	assert_int_equal(commit, 6);
	assert_int_equal(offtrack_pending(t), 2);

	/* The slow one arrives: everything up to 7 is done. */
	assert_int_equal(offtrack_done(t, 6, &commit), 1);
	assert_int_equal(commit, 8);
	assert_int_equal(offtrack_position(t), 8);
	assert_int_equal(offtrack_pending(t), 0);
	offtrack_free(t);
}

/* Offsets with holes (transaction markers, compaction): the position is
 * the offset after the last delivered one, never "previous + 1". */
static void gaps(void **state)
{
	struct offtrack *t = offtrack_new();
	int64_t commit = 0;

	(void)state;
	offtrack_add(t, 100);
	offtrack_add(t, 102); /* 101 was a transaction marker */
	offtrack_add(t, 250); /* compacted away in between */
	assert_int_equal(offtrack_done(t, 102, &commit), 0);
	assert_int_equal(offtrack_done(t, 100, &commit), 1);
	assert_int_equal(commit, 103);
	assert_int_equal(offtrack_done(t, 250, &commit), 1);
	assert_int_equal(commit, 251);
	offtrack_free(t);
}

static void errors(void **state)
{
	struct offtrack *t = offtrack_new();
	int64_t commit;

	(void)state;
	assert_int_equal(offtrack_done(t, 1, &commit), -ENOENT);
	offtrack_add(t, 1);
	assert_int_equal(offtrack_add(t, 1), -ERANGE);
	assert_int_equal(offtrack_done(t, 1, &commit), 1);
	/* Delivered twice (a duplicate report) is refused, not counted. */
	assert_int_equal(offtrack_done(t, 1, &commit), -ENOENT);
	/* Below the position: already committed. */
	assert_int_equal(offtrack_add(t, 0), -ERANGE);
	offtrack_free(t);
}

/* After a rebalance the partition may come back at an older offset (the
 * committed one) while work was in flight: reset forgets everything. */
static void reset_on_rebalance(void **state)
{
	struct offtrack *t = offtrack_new();
	int64_t commit = 0;

	(void)state;
	offtrack_add(t, 10);
	offtrack_add(t, 11);
	offtrack_done(t, 10, &commit);
	assert_int_equal(commit, 11);
	offtrack_reset(t);
	assert_int_equal(offtrack_position(t), -1);
	assert_int_equal(offtrack_pending(t), 0);
	assert_int_equal(offtrack_add(t, 11), 0);
	assert_int_equal(offtrack_done(t, 11, &commit), 1);
	assert_int_equal(commit, 12);
	offtrack_free(t);
}

/* Random delivery order against a model: the position is always one past
 * the longest delivered prefix, and only ever grows. */
static void random_against_model(void **state)
{
	enum { N = 3000 };
	static int64_t offs[N];
	static int perm[N];
	static char done[N];
	struct offtrack *t = offtrack_new();
	int64_t commit = -1, last = -1, o = 0;
	int i, prefix = 0;

	(void)state;
	srand(11);
	for (i = 0; i < N; i++) {
		o += 1 + rand() % 2;
		offs[i] = o;
		perm[i] = i;
		offtrack_add(t, o);
	}
	for (i = N - 1; i > 0; i--) {
		int j = rand() % (i + 1), tmp = perm[i];

		perm[i] = perm[j];
		perm[j] = tmp;
	}
	for (i = 0; i < N; i++) {
		int r = offtrack_done(t, offs[perm[i]], &commit);

		done[perm[i]] = 1;
		assert_true(r >= 0);
		while (prefix < N && done[prefix])
			prefix++;
		if (prefix == 0) {
			assert_int_equal(offtrack_position(t), -1);
		} else {
			assert_int_equal(offtrack_position(t),
					 offs[prefix - 1] + 1);
			assert_true(offtrack_position(t) >= last);
			last = offtrack_position(t);
		}
		assert_int_equal(offtrack_pending(t), (size_t)(N - prefix));
	}
	offtrack_free(t);
}

/* A record given up at shutdown: nothing waits for its offset any more,
 * and the commit position never passes it, whatever comes after. */
static void abandon_stops_the_prefix(void **state)
{
	struct offtrack *t = offtrack_new();
	int64_t commit = -7;
	int64_t o;

	(void)state;
	for (o = 1; o <= 5; o++)
		assert_int_equal(offtrack_add(t, o), 0);
	assert_int_equal(offtrack_waiting(t), 5);
	assert_int_equal(offtrack_done(t, 1, &commit), 1);
	assert_int_equal(commit, 2);

	assert_int_equal(offtrack_abandon(t, 2), 0);
	assert_int_equal(offtrack_waiting(t), 3);
	assert_int_equal(offtrack_pending(t), 4);
	commit = -7;
	assert_int_equal(offtrack_done(t, 4, &commit), 0);
	assert_int_equal(offtrack_done(t, 3, &commit), 0);
	assert_int_equal(offtrack_done(t, 5, &commit), 0);
	assert_int_equal(commit, -7);
	assert_int_equal(offtrack_position(t), 2);
	assert_int_equal(offtrack_waiting(t), 0);
	/* Nothing waits, yet nothing from 2 on may be committed. */
	assert_int_equal(offtrack_pending(t), 4);

	/* Later offsets still come and go; the position stays. */
	assert_int_equal(offtrack_add(t, 6), 0);
	assert_int_equal(offtrack_waiting(t), 1);
	assert_int_equal(offtrack_done(t, 6, &commit), 0);
	assert_int_equal(offtrack_position(t), 2);
	assert_int_equal(offtrack_waiting(t), 0);
	offtrack_free(t);
}

/* Abandoned behind older offsets still in flight: they move the position
 * up to it, not past it. */
static void abandon_in_the_middle(void **state)
{
	struct offtrack *t = offtrack_new();
	int64_t commit = 0;

	(void)state;
	offtrack_add(t, 10);
	offtrack_add(t, 11);
	offtrack_add(t, 12);
	assert_int_equal(offtrack_abandon(t, 11), 0);
	assert_int_equal(offtrack_position(t), -1);
	assert_int_equal(offtrack_waiting(t), 2);
	assert_int_equal(offtrack_done(t, 12, &commit), 0);
	assert_int_equal(offtrack_done(t, 10, &commit), 1);
	assert_int_equal(commit, 11);
	assert_int_equal(offtrack_waiting(t), 0);
	assert_int_equal(offtrack_pending(t), 2);
	offtrack_free(t);
}

static void abandon_errors(void **state)
{
	struct offtrack *t = offtrack_new();
	int64_t commit;

	(void)state;
	assert_int_equal(offtrack_abandon(t, 3), -ENOENT);
	offtrack_add(t, 3);
	offtrack_add(t, 4);
	offtrack_add(t, 5);
	assert_int_equal(offtrack_abandon(t, 4), 0);
	/* Abandoned twice, or delivered after: refused, not counted. */
	assert_int_equal(offtrack_abandon(t, 4), -ENOENT);
	assert_int_equal(offtrack_done(t, 4, &commit), -ENOENT);
	assert_int_equal(offtrack_done(t, 5, &commit), 0);
	assert_int_equal(offtrack_abandon(t, 5), -ENOENT);
	assert_int_equal(offtrack_waiting(t), 1);
	assert_int_equal(offtrack_done(t, 3, &commit), 1);
	assert_int_equal(commit, 4);
	/* Popped already (behind the stop): still not waiting. */
	assert_int_equal(offtrack_abandon(t, 5), -ENOENT);
	assert_int_equal(offtrack_add(t, 2), -ERANGE);
	assert_int_equal(offtrack_waiting(t), 0);
	offtrack_free(t);
}

/* The partition is assigned again: the abandoned offset is read again
 * and may now be delivered. */
static void reset_after_abandon(void **state)
{
	struct offtrack *t = offtrack_new();
	int64_t commit = 0;

	(void)state;
	offtrack_add(t, 7);
	offtrack_add(t, 8);
	offtrack_abandon(t, 7);
	offtrack_done(t, 8, &commit);
	offtrack_reset(t);
	assert_int_equal(offtrack_position(t), -1);
	assert_int_equal(offtrack_pending(t), 0);
	assert_int_equal(offtrack_waiting(t), 0);
	assert_int_equal(offtrack_add(t, 7), 0);
	assert_int_equal(offtrack_add(t, 8), 0);
	assert_int_equal(offtrack_done(t, 7, &commit), 1);
	assert_int_equal(commit, 8);
	assert_int_equal(offtrack_done(t, 8, &commit), 1);
	assert_int_equal(commit, 9);
	offtrack_free(t);
}

/* Random order, a few offsets abandoned, against a model: the position
 * is one past the longest delivered prefix that reaches no abandoned
 * offset; waiting counts the undecided ones. */
static void random_abandons_against_model(void **state)
{
	enum { N = 3000 };
	static int64_t offs[N];
	static int perm[N];
	static char fate[N]; /* 0 undecided, 1 delivered, 2 abandoned */
	struct offtrack *t = offtrack_new();
	int64_t commit, o = 0;
	int i, prefix = 0;
	size_t undecided = N;

	(void)state;
	srand(23);
	for (i = 0; i < N; i++) {
		o += 1 + rand() % 3;
		offs[i] = o;
		perm[i] = i;
		assert_int_equal(offtrack_add(t, o), 0);
	}
	for (i = N - 1; i > 0; i--) {
		int j = rand() % (i + 1), tmp = perm[i];

		perm[i] = perm[j];
		perm[j] = tmp;
	}
	for (i = 0; i < N; i++) {
		int k = perm[i];

		if (rand() % 200 == 0) {
			assert_int_equal(offtrack_abandon(t, offs[k]), 0);
			fate[k] = 2;
		} else {
			assert_true(offtrack_done(t, offs[k], &commit) >= 0);
			fate[k] = 1;
		}
		undecided--;
		while (prefix < N && fate[prefix] == 1)
			prefix++;
		assert_int_equal(offtrack_position(t),
				 prefix ? offs[prefix - 1] + 1 : -1);
		assert_int_equal(offtrack_waiting(t), undecided);
	}
	assert_true(prefix < N); /* the seed abandons at least one */
	offtrack_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(out_of_order_completions),
		cmocka_unit_test(gaps),
		cmocka_unit_test(errors),
		cmocka_unit_test(reset_on_rebalance),
		cmocka_unit_test(random_against_model),
		cmocka_unit_test(abandon_stops_the_prefix),
		cmocka_unit_test(abandon_in_the_middle),
		cmocka_unit_test(abandon_errors),
		cmocka_unit_test(reset_after_abandon),
		cmocka_unit_test(random_abandons_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
