/* Unit tests for daemon/admission: the pool.max_in_flight rule and the
 * queue of records waiting for a slot. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <cmocka.h>

#include "admission.h"

/* What the start function was given, in order. */
struct started {
	struct admission_link *links[64];
	int n;
};

static void record_start(struct admission_link *link, void *arg)
{
	struct started *s = arg;

	assert_true(s->n < 64);
	s->links[s->n++] = link;
}

/* Slots: max_in_flight records start, the others wait in the queue in
 * order; the queue says when it is full; a slot given back starts the
 * oldest waiting record. */
static void slots_and_queue(void **state)
{
	struct admission_link l[8];
	struct admission_link *next;
	struct started s = { 0 };
	struct admission *a = admission_new(3, 4, record_start, &s);
	int i;

	(void)state;
	assert_non_null(a);
	for (i = 0; i < 7; i++) {
		assert_true(admission_room(a));
		admission_queue(a, &l[i]);
	}
	assert_int_equal(s.n, 3);
	for (i = 0; i < 3; i++)
		assert_ptr_equal(s.links[i], &l[i]);
	assert_int_equal(admission_queued(a), 4);
	assert_false(admission_room(a));
	assert_false(admission_wait_room(a, 20));
	assert_int_equal(admission_free_slots(a), 0);

	/* A call ends; its worker may run another: it takes the oldest
	 * waiting record itself, nobody else is started. */
	assert_true(admission_call_done(a, true, &next));
	assert_ptr_equal(next, &l[3]);
	assert_int_equal(s.n, 3);
	assert_true(admission_call_done(a, true, &next));
	assert_ptr_equal(next, &l[4]);
	/* Down to half the queue: room again. */
	assert_int_equal(admission_queued(a), 2);
	assert_true(admission_wait_room(a, 20));
	/* The early window (3 answered jobs without a slot) full: the
	 * call's job keeps its slot, and nothing passes. */
	assert_true(admission_call_done(a, true, &next));
	assert_ptr_equal(next, &l[5]);
	assert_false(admission_call_done(a, true, &next));
	assert_null(next);
	assert_int_equal(admission_early(a), 3);
	assert_int_equal(admission_queued(a), 1);
	/* A job that kept its slot ends: the last waiting record starts
	 * through the start function. */
	admission_end(a, false);
	assert_int_equal(s.n, 4);
	assert_ptr_equal(s.links[3], &l[6]);
	assert_int_equal(admission_queued(a), 0);
	admission_free(NULL);
	admission_free(a);
}

/* A call that ends gives its slot back while the early window has room:
 * at most max_in_flight started jobs hold none, so at most
 * 2 x max_in_flight are started and not ended; a job keeping its slot
 * returns it at its end. */
static void early_window(void **state)
{
	struct admission_link l[8];
	struct admission_link *next;
	struct started s = { 0 };
	struct admission *a = admission_new(2, 8, record_start, &s);
	bool early[8];
	int i;

	(void)state;
	for (i = 0; i < 8; i++)
		admission_queue(a, &l[i]);
	assert_int_equal(s.n, 2);
	/* Every call ends at once, no job ends (they all wait for an older
	 * offset, say), and the workers take what waits. */
	early[0] = admission_call_done(a, true, &next);
	assert_ptr_equal(next, &l[2]);
	early[1] = admission_call_done(a, true, &next);
	assert_ptr_equal(next, &l[3]);
	early[2] = admission_call_done(a, true, &next);
	early[3] = admission_call_done(a, true, &next);
	assert_true(early[0] && early[1]);
	assert_false(early[2] || early[3]);
	assert_null(next);
	assert_int_equal(admission_early(a), 2);
	assert_int_equal(admission_free_slots(a), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(admission_queued(a), 4);

	/* A job that kept its slot ends: the next waiting one starts. */
	admission_end(a, early[3]);
	assert_int_equal(s.n, 3);
	assert_ptr_equal(s.links[2], &l[4]);
	/* An early job ends: the window has room again, no new slot. */
	admission_end(a, early[0]);
	assert_int_equal(admission_early(a), 1);
	assert_int_equal(s.n, 3);
	assert_true(admission_call_done(a, true, &next)); /* l[4]'s */
	assert_ptr_equal(next, &l[5]);
	assert_int_equal(admission_early(a), 2);

	/* Jobs end: an early one's end starts nothing, a slot's end
	 * starts the next waiting record. */
	admission_end(a, true);
	admission_end(a, early[1]);
	assert_int_equal(s.n, 3);
	admission_end(a, early[2]);
	assert_int_equal(s.n, 4);
	assert_ptr_equal(s.links[3], &l[6]);
	assert_int_equal(admission_queued(a), 1);
	assert_int_equal(admission_early(a), 0);
	assert_int_equal(admission_free_slots(a), 0);
	admission_free(a);
}

/* A live limit below max_in_flight gives fewer slots; slots held over a
 * lowered limit stay held, a worker over it does not pass its slot on,
 * and none is given until they are under it. */
static void live_limit(void **state)
{
	struct admission_link l[8];
	struct admission_link *next;
	struct started s = { 0 };
	struct admission *a = admission_new(4, 8, record_start, &s);
	int i;

	(void)state;
	admission_set_limit(a, 2);
	for (i = 0; i < 8; i++)
		admission_queue(a, &l[i]);
	assert_int_equal(s.n, 2);
	admission_set_limit(a, 4); /* raised: two more start */
	assert_int_equal(s.n, 4);
	assert_int_equal(admission_held(a), 4);
	admission_set_limit(a, 1); /* lowered under what is held */
	assert_true(admission_call_done(a, true, &next));
	assert_null(next); /* 4 held > 1: the slot goes back */
	assert_int_equal(admission_held(a), 3);
	admission_end(a, false);
	admission_end(a, false);
	assert_int_equal(s.n, 4);
	admission_end(a, false);
	assert_int_equal(s.n, 5); /* 0 held: one may start */
	admission_end(a, true);
	assert_int_equal(s.n, 5);
	assert_int_equal(admission_held(a), 1);
	admission_set_limit(a, 0);   /* at least 1 */
	assert_int_equal(admission_free_slots(a), 0);
	admission_set_limit(a, 100); /* at most max_in_flight */
	assert_int_equal(s.n, 8);
	assert_int_equal(admission_free_slots(a), 0);
	admission_free(a);
}

static bool odd(const struct admission_link *link, void *arg)
{
	const struct admission_link *base = arg;

	return (link - base) % 2;
}

/* Held, nothing starts (nor passes from a worker that saw the pause:
 * go false holds as well); lifted, the queue starts on the free slots.
 * Removing takes the matching records out in order, and the queue keeps
 * the rest in order. */
static void hold_and_remove(void **state)
{
	struct admission_link l[8];
	struct admission_link *next, *out;
	struct started s = { 0 };
	struct admission *a = admission_new(2, 8, record_start, &s);
	int i;

	(void)state;
	admission_queue(a, &l[0]);
	admission_hold(a, true);
	for (i = 1; i < 8; i++)
		admission_queue(a, &l[i]);
	assert_int_equal(s.n, 1);
	assert_true(admission_call_done(a, false, &next));
	assert_null(next);
	assert_int_equal(admission_free_slots(a), 2);
	assert_int_equal(s.n, 1);

	out = admission_remove(a, odd, l);
	for (i = 1; i < 8; i += 2) {
		assert_ptr_equal(out, &l[i]);
		out = out->next;
	}
	assert_null(out);
	assert_int_equal(admission_queued(a), 3);
	admission_hold(a, false);
	assert_int_equal(s.n, 3);
	assert_ptr_equal(s.links[1], &l[2]);
	assert_ptr_equal(s.links[2], &l[4]);
	admission_queue(a, &l[1]);
	assert_int_equal(admission_queued(a), 2);
	out = admission_remove(a, odd, l);
	assert_ptr_equal(out, &l[1]);
	assert_null(out->next);
	/* l0 ends. l2's call ends in a pause: its worker holds admission
	 * itself, and the slot goes back to no one. l4's ends with no
	 * pause: its worker lifts the hold and takes l6. */
	admission_end(a, true);
	assert_true(admission_call_done(a, false, &next));
	assert_null(next);
	assert_int_equal(s.n, 3);
	assert_int_equal(admission_free_slots(a), 1);
	assert_true(admission_call_done(a, true, &next));
	assert_ptr_equal(next, &l[6]);
	assert_int_equal(admission_queued(a), 0);
	admission_free(a);
}

/*
 * Threads queueing records and workers running them concurrently never
 * pass the bounds (calls open <= max, started jobs <= 2 x max, queued <=
 * its size, plus one for each other thread that saw room at the same
 * time), and every record runs once.
 */
#define MAX 4
#define QUEUE 8
#define QUEUERS 3
#define WORKERS 8
#define ROUNDS 20000

struct item {
	struct admission_link link;
	atomic_int runs;
};

static struct item items[QUEUERS * ROUNDS];
static atomic_int calls, jobs, worst_calls, worst_jobs, worst_queued;
static atomic_int done;
static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static struct admission_link *ready; /* started, for a worker */

static void raise_to(atomic_int *worst, int v)
{
	int w = atomic_load(worst);

	while (v > w && !atomic_compare_exchange_weak(worst, &w, v))
		;
}

static void to_worker(struct admission_link *link, void *arg)
{
	(void)arg;
	raise_to(&worst_jobs, atomic_fetch_add(&jobs, 1) + 1);
	pthread_mutex_lock(&ready_lock);
	link->next = ready;
	ready = link;
	pthread_cond_signal(&ready_cond);
	pthread_mutex_unlock(&ready_lock);
}

static void *queuer(void *arg)
{
	struct admission *a = arg;
	static atomic_int next_item;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		struct item *it = &items[atomic_fetch_add(&next_item, 1)];

		while (!admission_room(a))
			admission_wait_room(a, 1000);
		admission_queue(a, &it->link);
		raise_to(&worst_queued, (int)admission_queued(a));
	}
	return NULL;
}

static void *worker(void *arg)
{
	struct admission *a = arg;

	for (;;) {
		struct admission_link *l;

		pthread_mutex_lock(&ready_lock);
		while (!ready && atomic_load(&done) < QUEUERS * ROUNDS)
			pthread_cond_wait(&ready_cond, &ready_lock);
		l = ready;
		if (l)
			ready = l->next;
		pthread_mutex_unlock(&ready_lock);
		if (!l)
			break;
		while (l) {
			struct item *it = (struct item *)l;
			struct admission_link *next;
			bool early;

			atomic_fetch_add(&it->runs, 1);
			raise_to(&worst_calls,
				 atomic_fetch_add(&calls, 1) + 1);
			atomic_fetch_sub(&calls, 1);
			early = admission_call_done(a, true, &next);
			if (next)
				raise_to(&worst_jobs,
					 atomic_fetch_add(&jobs, 1) + 1);
			atomic_fetch_sub(&jobs, 1);
			admission_end(a, early);
			if (atomic_fetch_add(&done, 1) + 1 ==
			    QUEUERS * ROUNDS) {
				pthread_mutex_lock(&ready_lock);
				pthread_cond_broadcast(&ready_cond);
				pthread_mutex_unlock(&ready_lock);
			}
			l = next;
		}
	}
	return NULL;
}

static void concurrent_bounds(void **state)
{
	struct admission *a = admission_new(MAX, QUEUE, to_worker, NULL);
	pthread_t q[QUEUERS], w[WORKERS];
	int i;

	(void)state;
	for (i = 0; i < WORKERS; i++)
		assert_int_equal(pthread_create(&w[i], NULL, worker, a), 0);
	for (i = 0; i < QUEUERS; i++)
		assert_int_equal(pthread_create(&q[i], NULL, queuer, a), 0);
	for (i = 0; i < QUEUERS; i++)
		pthread_join(q[i], NULL);
	for (i = 0; i < WORKERS; i++)
		pthread_join(w[i], NULL);
	assert_true(atomic_load(&worst_calls) <= MAX);
	assert_true(atomic_load(&worst_jobs) <= 2 * MAX);
	assert_true(atomic_load(&worst_queued) <= QUEUE + QUEUERS - 1);
	for (i = 0; i < QUEUERS * ROUNDS; i++)
		assert_int_equal(atomic_load(&items[i].runs), 1);
	assert_int_equal(admission_free_slots(a), MAX);
	assert_int_equal(admission_early(a), 0);
	assert_int_equal(admission_queued(a), 0);
	admission_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(slots_and_queue),
		cmocka_unit_test(early_window),
		cmocka_unit_test(live_limit),
		cmocka_unit_test(hold_and_remove),
		cmocka_unit_test(concurrent_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
