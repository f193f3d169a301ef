/* Unit tests for common/keyset: a set of key hashes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "keyset.h"

static void add_has_remove(void **state)
{
	struct keyset *s = keyset_new();
	uint64_t a = keyset_hash("user-1", 6), b = keyset_hash("user-2", 6);

	(void)state;
	assert_non_null(s);
	assert_false(keyset_has(s, a));
	assert_int_equal(keyset_remove(s, a), -ENOENT);
	assert_int_equal(keyset_add(s, a), 0);
	assert_int_equal(keyset_add(s, a), -EEXIST);
	assert_true(keyset_has(s, a));
	assert_false(keyset_has(s, b));
	assert_int_equal(keyset_add(s, b), 0);
	assert_int_equal(keyset_count(s), 2);
	assert_int_equal(keyset_remove(s, a), 0);
	assert_false(keyset_has(s, a));
	assert_true(keyset_has(s, b));
	keyset_clear(s);
	assert_int_equal(keyset_count(s), 0);
	assert_false(keyset_has(s, b));
	assert_int_equal(keyset_add(s, b), 0);
	keyset_free(s);
	keyset_free(NULL);
}

/* The same key hashes the same, every time; no hash is 0 (empty). */
static void hash_is_stable(void **state)
{
	(void)state;
	assert_true(keyset_hash("k", 1) == keyset_hash("k", 1));
	assert_true(keyset_hash("k", 1) != keyset_hash("K", 1));
	assert_true(keyset_hash("", 0) != 0);
}

/* The model's i-th hash: a third of them share their low 8 bits (0), so
 * they have one home cell in any table of up to 256 cells. */
static uint64_t model_hash(int i)
{
	return (uint64_t)(i + 1) << (i % 3 == 0 ? 8 : 0);
}

/*
 * Hashes that share their low bits make long runs in the table: removing
 * from the middle of a run keeps every other one findable. Checked against
 * a plain array through a few thousand random adds and removes, across
 * growth.
 */
static void runs_and_growth_match_a_model(void **state)
{
	enum { N = 300 };
	struct keyset *s = keyset_new();
	bool in[N] = { false };
	size_t count = 0;
	int i, step;

	(void)state;
	srand(7);
	for (step = 0; step < 20000; step++) {
		uint64_t h;

		i = rand() % N;
		h = model_hash(i);
		if (rand() % 2) {
			assert_int_equal(keyset_add(s, h), in[i] ? -EEXIST : 0);
			count += !in[i];
			in[i] = true;
		} else {
			assert_int_equal(keyset_remove(s, h),
					 in[i] ? 0 : -ENOENT);
			count -= in[i];
			in[i] = false;
		}
		if (step % 997 == 0) {
			int j;

			for (j = 0; j < N; j++)
				assert_int_equal(keyset_has(s, model_hash(j)),
						 in[j]);
		}
		assert_int_equal(keyset_count(s), count);
	}
	keyset_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(add_has_remove),
		cmocka_unit_test(hash_is_stable),
		cmocka_unit_test(runs_and_growth_match_a_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
