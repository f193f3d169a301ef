/* Unit tests for common/sequencer: release in offset order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <cmocka.h>

#include "sequencer.h"

static int items[4096];

static void in_order_release(void **state)
{
	struct sequencer *seq = seq_new();
	int64_t off = -1;

	(void)state;
	assert_non_null(seq);
	assert_int_equal(seq_add(seq, 10), 0);
	assert_int_equal(seq_add(seq, 11), 0);
	assert_int_equal(seq_add(seq, 15), 0); /* a gap: markers, compaction */
	assert_null(seq_pop(seq, &off));

	/* 15 and 11 complete first: nothing leaves before 10. */
	assert_int_equal(seq_complete(seq, 15, &items[2]), 0);
	assert_int_equal(seq_complete(seq, 11, &items[1]), 0);
	assert_null(seq_pop(seq, &off));
	assert_int_equal(seq_pending(seq), 3);

	assert_int_equal(seq_complete(seq, 10, &items[0]), 0);
	assert_ptr_equal(seq_pop(seq, &off), &items[0]);
	assert_int_equal(off, 10);
	assert_ptr_equal(seq_pop(seq, &off), &items[1]);
	assert_int_equal(off, 11);
	assert_ptr_equal(seq_pop(seq, &off), &items[2]);
	assert_int_equal(off, 15);
	assert_null(seq_pop(seq, &off));
	assert_int_equal(seq_pending(seq), 0);
	seq_free(seq);
}

static void rejects_bad_calls(void **state)
{
	struct sequencer *seq = seq_new();

	(void)state;
	assert_int_equal(seq_add(seq, 5), 0);
	assert_int_equal(seq_add(seq, 5), -ERANGE);
	assert_int_equal(seq_add(seq, 4), -ERANGE);
	assert_int_equal(seq_complete(seq, 6, &items[0]), -ENOENT);
	assert_int_equal(seq_complete(seq, 5, NULL), -EINVAL);
	assert_int_equal(seq_complete(seq, 5, &items[0]), 0);
	assert_int_equal(seq_complete(seq, 5, &items[1]), -ENOENT);
	/* Drained, the window still refuses what it has seen. */
	assert_ptr_equal(seq_pop(seq, NULL), &items[0]);
	assert_int_equal(seq_pending(seq), 0);
	assert_int_equal(seq_add(seq, 3), -ERANGE);
	assert_int_equal(seq_add(seq, 5), -ERANGE);
	assert_int_equal(seq_add(seq, 6), 0);
	seq_free(seq);
}

/* A window much larger than the initial ring, completed in reverse after
 * wrapping the ring around: exercises growth and wrap-around. */
static void grows_and_wraps(void **state)
{
	struct sequencer *seq = seq_new();
	int64_t off;
	int i;

	(void)state;
	for (i = 0; i < 10; i++) {
		assert_int_equal(seq_add(seq, i), 0);
		assert_int_equal(seq_complete(seq, i, &items[i]), 0);
		assert_ptr_equal(seq_pop(seq, NULL), &items[i]);
	}
	for (i = 100; i < 1100; i++)
		assert_int_equal(seq_add(seq, i * 2), 0);
	for (i = 1099; i >= 100; i--) {
		assert_int_equal(seq_complete(seq, i * 2, &items[i]), 0);
		if (i > 100)
			assert_null(seq_pop(seq, NULL));
	}
	for (i = 100; i < 1100; i++) {
		assert_ptr_equal(seq_pop(seq, &off), &items[i]);
		assert_int_equal(off, i * 2);
	}
	assert_int_equal(seq_pending(seq), 0);
	seq_free(seq);
}

static int dropped;
static void count_drop(void *item)
{
	(void)item;
	dropped++;
}

static void clear_drops_completed(void **state)
{
	struct sequencer *seq = seq_new();

	(void)state;
	seq_add(seq, 1);
	seq_add(seq, 2);
	seq_add(seq, 3);
	seq_complete(seq, 2, &items[2]);
	seq_complete(seq, 3, &items[3]);
	dropped = 0;
	seq_clear(seq, count_drop);
	assert_int_equal(dropped, 2);
	assert_int_equal(seq_pending(seq), 0);
	/* After a clear (rebalance) any offset may start the window again. */
	assert_int_equal(seq_add(seq, 0), 0);
	seq_free(seq);
}

/* Random completion orders against a model: release order is always the
 * add order, and nothing is released before all older offsets completed. */
static void random_against_model(void **state)
{
	enum { N = 2000 };
	static int64_t offsets[N];
	static int perm[N];
	struct sequencer *seq = seq_new();
	int64_t next = 0, off, base = 1000;
	int i, released = 0;
	static char done[N];

	(void)state;
	srand(7);
	for (i = 0; i < N; i++) {
		base += 1 + rand() % 3;
		offsets[i] = base;
		perm[i] = i;
		done[i] = 0;
		assert_int_equal(seq_add(seq, base), 0);
	}
	for (i = N - 1; i > 0; i--) {
		int j = rand() % (i + 1), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (i = 0; i < N; i++) {
		int *item;

		done[perm[i]] = 1;
		assert_int_equal(seq_complete(seq, offsets[perm[i]],
					      &items[perm[i] % 4096]), 0);
		while ((item = seq_pop(seq, &off))) {
			assert_int_equal(off, offsets[next]);
			assert_true(done[next]);
			next++;
			released++;
		}
		/* Everything older than the first waiting offset is out. */
		assert_true(next == N || !done[next]);
	}
	assert_int_equal(released, N);
	seq_free(seq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(in_order_release),
		cmocka_unit_test(rejects_bad_calls),
		cmocka_unit_test(grows_and_wraps),
		cmocka_unit_test(clear_drops_completed),
		cmocka_unit_test(random_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
