/* Unit tests for daemon/ledger: one partition's books. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "clock.h"
#include "keyset.h"
#include "ledger.h"

struct stored {
	int calls;
	int64_t last;
	int32_t partition;
	char topic[32];
};

static void store(void *arg, const char *topic, int32_t partition,
		  int64_t position)
{
	struct stored *s = arg;

	s->calls++;
	s->last = position;
	s->partition = partition;
	snprintf(s->topic, sizeof(s->topic), "%s", topic);
}

/* Delivered out of order: the contiguous prefix is stored, and only it. */
static void stores_the_delivered_prefix(void **state)
{
	struct stored st = { 0 };
	struct ledger *l = ledger_new(store, &st, "texts", 3,
				      LEDGER_COMPLETION);
	int64_t off;

	(void)state;
	assert_non_null(l);
	assert_string_equal(ledger_topic(l), "texts");
	assert_int_equal(ledger_id(l), 3);
	assert_false(ledger_ordered(l));
	for (off = 10; off <= 12; off++)
		assert_int_equal(ledger_track(l, off), 0);
	assert_int_equal(ledger_track(l, 11), -ERANGE); /* in flight */

	ledger_delivered(l, 12);
	assert_int_equal(st.calls, 0);
	ledger_delivered(l, 10);
	assert_int_equal(st.calls, 1);
	assert_int_equal(st.last, 11);
	assert_int_equal(st.partition, 3);
	assert_string_equal(st.topic, "texts");
	ledger_delivered(l, 11);
	assert_int_equal(st.calls, 2);
	assert_int_equal(st.last, 13);
	assert_int_equal(ledger_wait_idle(l, mono_ns()), 0);
	ledger_unref(l);
}

/* An abandoned offset is never committed past, and nobody waits for it;
 * a revoked partition stores nothing more. */
static void abandon_and_revoke(void **state)
{
	struct stored st = { 0 };
	struct ledger *l = ledger_new(store, &st, "t", 0, LEDGER_COMPLETION);

	(void)state;
	assert_int_equal(ledger_track(l, 0), 0);
	assert_int_equal(ledger_track(l, 1), 0);
	assert_int_equal(ledger_track(l, 2), 0);
	/* Two wait; the deadline passes at once. */
	ledger_delivered(l, 2);
	assert_int_equal(ledger_wait_idle(l, mono_ns() + 20000000), 2);

	ledger_abandon(l, 0);
	ledger_delivered(l, 1);
	assert_int_equal(st.calls, 0);
	assert_int_equal(ledger_wait_idle(l, mono_ns()), 0);

	ledger_ref(l); /* a job's reference outlives the assignment's */
	ledger_revoke(l);
	ledger_unref(l);
	assert_int_equal(ledger_track(l, 3), 0);
	ledger_delivered(l, 3);
	assert_int_equal(st.calls, 0);
	ledger_unref(l);
}

/* Exactly-once: nothing stored (the offsets go in the transaction). */
static void no_store_callback(void **state)
{
	struct ledger *l = ledger_new(NULL, NULL, "t", 1, LEDGER_OFFSET);
	int64_t position = 0;

	(void)state;
	assert_int_equal(ledger_track(l, 5), 0);
	ledger_delivered(l, 5);
	assert_false(ledger_uncommitted(l, &position));
	ledger_produced(l, 5);
	assert_true(ledger_uncommitted(l, &position));
	assert_int_equal(position, 6);
	ledger_committed(l, 6);
	assert_false(ledger_uncommitted(l, &position));
	ledger_unref(l);
}

static int jobs[8];

/* Offset order: jobs leave in offset order whatever order they finish
 * in; one releaser at a time; none is left behind when the role goes. */
static void releases_in_offset_order(void **state)
{
	struct ledger *l = ledger_new(NULL, NULL, "t", 0, LEDGER_OFFSET);
	bool broken = true;
	int i;

	(void)state;
	assert_true(ledger_ordered(l));
	for (i = 0; i < 4; i++)
		assert_int_equal(ledger_track(l, 100 + i), 0);
	assert_int_equal(ledger_complete(l, 102, &jobs[2]), 0);
	assert_true(ledger_release_begin(l));
	assert_null(ledger_release_next(l, false, &broken)); /* 100 first */
	assert_false(broken);

	assert_int_equal(ledger_complete(l, 100, &jobs[0]), 0);
	assert_true(ledger_release_begin(l));
	assert_false(ledger_release_begin(l)); /* the role is taken */
	assert_ptr_equal(ledger_release_next(l, false, &broken), &jobs[0]);
	/* 101 finishes while the releaser produces 100: it is left to the
	 * releaser, which takes it before it lets the role go. */
	assert_int_equal(ledger_complete(l, 101, &jobs[1]), 0);
	assert_false(ledger_release_begin(l));
	assert_ptr_equal(ledger_release_next(l, false, &broken), &jobs[1]);
	assert_ptr_equal(ledger_release_next(l, false, &broken), &jobs[2]);
	assert_null(ledger_release_next(l, false, &broken));
	assert_true(ledger_release_begin(l)); /* the role was given up */
	assert_null(ledger_release_next(l, false, &broken));
	ledger_unref(l);
}

/* A job that could not be released breaks the order: every later one
 * must be abandoned, and a broken partition produces nothing. */
static void an_abandoned_job_breaks_the_order(void **state)
{
	struct ledger *l = ledger_new(NULL, NULL, "t", 0, LEDGER_OFFSET);
	bool broken = false;
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_int_equal(ledger_track(l, i), 0);
		assert_int_equal(ledger_complete(l, i, &jobs[i]), 0);
	}
	assert_true(ledger_may_produce(l, false));
	assert_true(ledger_release_begin(l));
	assert_ptr_equal(ledger_release_next(l, false, &broken), &jobs[0]);
	assert_false(broken);
	/* jobs[0] was abandoned: */
	assert_ptr_equal(ledger_release_next(l, true, &broken), &jobs[1]);
	assert_true(broken);
	assert_ptr_equal(ledger_release_next(l, false, &broken), &jobs[2]);
	assert_true(broken);
	assert_null(ledger_release_next(l, false, &broken));
	assert_false(ledger_may_produce(l, false));
	ledger_unref(l);
}

/* With transactions a revoked partition produces nothing (its next owner
 * redoes it); without, it still may. A rewind breaks it either way. */
static void revoked_and_rewound(void **state)
{
	struct ledger *l = ledger_new(NULL, NULL, "t", 0, LEDGER_OFFSET);

	(void)state;
	ledger_revoke(l);
	assert_true(ledger_may_produce(l, false));
	assert_false(ledger_may_produce(l, true));
	ledger_unref(l);

	l = ledger_new(NULL, NULL, "t", 0, LEDGER_OFFSET);
	ledger_rewound(l);
	assert_false(ledger_may_produce(l, false));
	ledger_unref(l);
}

/*
 * Key order: a key is taken by one record at a time; other keys are not
 * held up; given back, it is free again. Offsets tracked as they arrive
 * and delivered out of order store only the delivered prefix, and a
 * record dropped unadmitted (abandoned) stops it.
 */
static void keys_in_flight(void **state)
{
	struct stored st = { 0 };
	struct ledger *l = ledger_new(store, &st, "t", 0, LEDGER_KEY);
	uint64_t a = keyset_hash("a", 1), b = keyset_hash("b", 1);

	(void)state;
	assert_true(ledger_keyed(l));
	assert_false(ledger_ordered(l));
	assert_int_equal(ledger_key_take(l, a), 1);
	assert_int_equal(ledger_key_take(l, a), 0);
	assert_int_equal(ledger_key_take(l, b), 1);
	ledger_key_give(l, a);
	assert_int_equal(ledger_key_take(l, a), 1);
	ledger_key_give(l, a);
	ledger_key_give(l, b);

	assert_int_equal(ledger_track(l, 0), 0); /* a, in flight */
	assert_int_equal(ledger_track(l, 1), 0); /* a, held */
	assert_int_equal(ledger_track(l, 2), 0); /* b, in flight */
	ledger_delivered(l, 2);
	assert_int_equal(st.calls, 0);
	ledger_delivered(l, 0);
	assert_int_equal(st.last, 1);
	ledger_abandon(l, 1); /* dropped at a revoke */
	assert_int_equal(ledger_wait_idle(l, mono_ns()), 0);
	assert_int_equal(st.last, 1);
	ledger_unref(l);

	l = ledger_new(NULL, NULL, "t", 0, LEDGER_OFFSET);
	assert_false(ledger_keyed(l));
	ledger_unref(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stores_the_delivered_prefix),
		cmocka_unit_test(abandon_and_revoke),
		cmocka_unit_test(no_store_callback),
		cmocka_unit_test(releases_in_offset_order),
		cmocka_unit_test(an_abandoned_job_breaks_the_order),
		cmocka_unit_test(revoked_and_rewound),
		cmocka_unit_test(keys_in_flight),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
