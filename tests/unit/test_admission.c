/* Unit tests for daemon/admission: the pool.max_in_flight rule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <cmocka.h>

#include "admission.h"

/* Slots: max_in_flight of them, no more; a cancelled one comes back. */
static void slots_bound_admission(void **state)
{
	struct admission *a = admission_new(3);
	int i;

	(void)state;
	assert_non_null(a);
	for (i = 0; i < 3; i++)
		assert_true(admission_try(a));
	assert_false(admission_try(a));
	assert_false(admission_wait(a, 20));
	admission_cancel(a);
	assert_int_equal(admission_free_slots(a), 1);
	assert_true(admission_wait(a, 20));
	assert_false(admission_try(a));
	admission_free(a);
}

/* A call that ends gives its slot back while the early window has room:
 * at most max_in_flight jobs hold none, so at most 2 x max_in_flight
 * jobs exist; a job keeping its slot returns it at its end. */
static void early_window(void **state)
{
	struct admission *a = admission_new(2);
	unsigned jobs = 0;
	bool early[8];
	int i;

	(void)state;
	/* Admit while a slot is free, end every call at once, never end a
	 * job (they all wait for an older offset, say). */
	for (i = 0; i < 8 && admission_try(a); i++) {
		jobs++;
		early[i] = admission_call_done(a);
	}
	assert_int_equal(jobs, 4);
	assert_true(early[0] && early[1]);
	assert_false(early[2] || early[3]);
	assert_int_equal(admission_early(a), 2);
	assert_int_equal(admission_free_slots(a), 0);

	/* A job that kept its slot ends: one more may come in. */
	admission_end(a, early[3]);
	assert_int_equal(admission_free_slots(a), 1);
	/* An early job ends: the window has room again, no new slot. */
	admission_end(a, early[0]);
	assert_int_equal(admission_early(a), 1);
	assert_int_equal(admission_free_slots(a), 1);
	assert_true(admission_try(a));
	assert_true(admission_call_done(a));
	assert_int_equal(admission_early(a), 2);
	assert_int_equal(admission_free_slots(a), 1);

	/* Everything ends: all slots free, the window empty. */
	admission_end(a, true);
	admission_end(a, early[1]);
	admission_end(a, early[2]);
	assert_true(admission_try(a));
	admission_cancel(a);
	assert_int_equal(admission_early(a), 0);
	assert_int_equal(admission_free_slots(a), 2);
	admission_free(a);
}

/* A live limit below max_in_flight gives fewer slots; slots held over a
 * lowered limit stay held, and none is given until they are under it. */
static void live_limit(void **state)
{
	struct admission *a = admission_new(4);
	int i;

	(void)state;
	admission_set_limit(a, 2);
	assert_true(admission_try(a));
	assert_true(admission_try(a));
	assert_false(admission_try(a));
	admission_set_limit(a, 4); /* raised: two more */
	assert_true(admission_wait(a, 20));
	assert_true(admission_try(a));
	assert_int_equal(admission_held(a), 4);
	admission_set_limit(a, 1); /* lowered under what is held */
	for (i = 0; i < 3; i++) {
		admission_cancel(a);
		assert_false(admission_try(a));
	}
	admission_cancel(a);
	assert_true(admission_try(a)); /* 0 held < 1 */
	assert_false(admission_try(a));
	admission_set_limit(a, 0);   /* at least 1 */
	admission_set_limit(a, 100); /* at most max_in_flight */
	assert_int_equal(admission_free_slots(a), 3);
	admission_cancel(a);
	admission_free(a);
}

/* Threads admitting, calling and ending concurrently never pass the
 * bounds: calls open <= max, jobs alive <= 2 x max. */
#define MAX 4
#define THREADS 8
#define ROUNDS 20000

static atomic_int calls, jobs, worst_calls, worst_jobs;

static void raise_to(atomic_int *worst, int v)
{
	int w = atomic_load(worst);

	while (v > w && !atomic_compare_exchange_weak(worst, &w, v))
		;
}

static void *churn(void *arg)
{
	struct admission *a = arg;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		bool early;

		if (!admission_wait(a, 1000))
			continue;
		raise_to(&worst_jobs, atomic_fetch_add(&jobs, 1) + 1);
		raise_to(&worst_calls, atomic_fetch_add(&calls, 1) + 1);
		atomic_fetch_sub(&calls, 1);
		early = admission_call_done(a);
		atomic_fetch_sub(&jobs, 1);
		admission_end(a, early);
	}
	return NULL;
}

static void concurrent_bounds(void **state)
{
	struct admission *a = admission_new(MAX);
	pthread_t t[THREADS];
	int i;

	(void)state;
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, churn, a), 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_true(atomic_load(&worst_calls) <= MAX);
	assert_true(atomic_load(&worst_jobs) <= 2 * MAX);
	assert_int_equal(admission_free_slots(a), MAX);
	assert_int_equal(admission_early(a), 0);
	admission_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(slots_bound_admission),
		cmocka_unit_test(early_window),
		cmocka_unit_test(live_limit),
		cmocka_unit_test(concurrent_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
