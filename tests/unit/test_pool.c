/* Unit tests for common/pool: every job runs once, on a bounded set of
 * threads, each with its own context. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <cmocka.h>

#include "pool.h"

static atomic_int running, peak, ran, contexts;
static int done[10000];

static void *init(void *arg, unsigned index)
{
	(void)arg;
	atomic_fetch_add(&contexts, 1);
	return calloc(1, sizeof(unsigned) + index * 0);
}

static void run(void *job, void *ctx)
{
	int now = atomic_fetch_add(&running, 1) + 1, p;

	(*(unsigned *)ctx)++;
	while ((p = atomic_load(&peak)) < now &&
	       !atomic_compare_exchange_weak(&peak, &p, now))
		;
	done[(int *)job - done]++;
	atomic_fetch_add(&ran, 1);
	atomic_fetch_sub(&running, 1);
}

static void fini(void *ctx)
{
	atomic_fetch_sub(&contexts, 1);
	free(ctx);
}

static void runs_every_job_once(void **state)
{
	const struct pool_ops ops = { init, run, fini };
	char err[128];
	struct pool *pool = pool_new(4, 8, &ops, NULL, err, sizeof(err));
	int i;

	(void)state;
	assert_non_null(pool);
	assert_int_equal(atomic_load(&contexts), 4);
	for (i = 0; i < 10000; i++)
		assert_int_equal(pool_submit(pool, &done[i]), 0);
	pool_free(pool); /* runs what is queued, then joins */
	assert_int_equal(atomic_load(&ran), 10000);
	for (i = 0; i < 10000; i++)
		assert_int_equal(done[i], 1);
	assert_true(atomic_load(&peak) <= 4);
	assert_int_equal(atomic_load(&contexts), 0);
}

static void *failing_init(void *arg, unsigned index)
{
	(void)arg;
	return index == 2 ? NULL : calloc(1, 1);
}

static void init_failure_is_reported(void **state)
{
	const struct pool_ops ops = { failing_init, run, free };
	char err[128];

	(void)state;
	assert_null(pool_new(4, 8, &ops, NULL, err, sizeof(err)));
	assert_string_equal(err, "worker 2 could not set up its context");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(runs_every_job_once),
		cmocka_unit_test(init_failure_is_reported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
