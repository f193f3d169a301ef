/* Unit tests for common/llmgate: the pause, the probe role, the streak of
 * doubtful failures and the canary's verdict. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <pthread.h>

#include "clock.h"
#include "config.h"
#include "llmgate.h"

static struct extractd_config cfg(void)
{
	struct extractd_config c;

	memset(&c, 0, sizeof(c));
	c.retry.max_delay_ms = 200;
	return c;
}

struct heard {
	int calls;
	enum llm_fault last;
	char reason[256];
};

static void on_pause(void *arg, enum llm_fault fault, const char *reason)
{
	struct heard *h = arg;

	h->calls++;
	h->last = fault;
	snprintf(h->reason, sizeof(h->reason), "%s", reason ? reason : "");
}

static void pause_and_resume(void **state)
{
	struct extractd_config c = cfg();
	struct llmgate *g = llmgate_new(&c);
	struct heard heard = { 0 };
	char reason[128];
	int64_t since, paused_ns = 0;
	unsigned delay;

	(void)state;
	llmgate_set_pause_handler(g, on_pause, &heard);
	assert_int_equal(llmgate_paused(g, reason, sizeof(reason), &since),
			 LLM_FAULT_NONE);
	assert_false(llmgate_probe_take(g, &delay));

	llmgate_pause(g, LLM_FAULT_UNREACHABLE, "cannot connect");
	assert_int_equal(heard.calls, 1);
	assert_int_equal(heard.last, LLM_FAULT_UNREACHABLE);
	assert_string_equal(heard.reason, "cannot connect");
	/* The same fault again: no second call, the reason follows. */
	llmgate_pause(g, LLM_FAULT_UNREACHABLE, "cannot connect, again");
	assert_int_equal(heard.calls, 1);
	assert_int_equal(llmgate_paused(g, reason, sizeof(reason), &since),
			 LLM_FAULT_UNREACHABLE);
	assert_string_equal(reason, "cannot connect, again");
	assert_true(since > 0);

	/* One prober; its delay is the probe period (max_delay_ms). */
	assert_true(llmgate_probe_take(g, &delay));
	assert_int_equal(delay, 200);
	assert_false(llmgate_probe_take(g, &delay));
	/* A probe may pass the pause. */
	assert_int_equal(llmgate_enter(g, 1, true, &paused_ns), 0);

	/* A failed canary changes the fault: heard once more. */
	llmgate_canary_done(g, mono_ns(), LLM_FAULT_TLS, "TLS");
	assert_int_equal(heard.calls, 2);
	assert_int_equal(heard.last, LLM_FAULT_TLS);
	/* A passing one resumes everyone. */
	llmgate_canary_done(g, mono_ns(), LLM_FAULT_NONE, NULL);
	assert_int_equal(heard.calls, 3);
	assert_int_equal(heard.last, LLM_FAULT_NONE);
	assert_int_equal(llmgate_paused(g, NULL, 0, &since), LLM_FAULT_NONE);
	assert_int_equal(since, 0);
	llmgate_probe_release(g);
	assert_int_equal(llmgate_enter(g, 1, false, &paused_ns), 0);
	llmgate_free(g);
}

/* A canary that was sent before the pause began does not end it. */
static void stale_canary(void **state)
{
	struct extractd_config c = cfg();
	struct llmgate *g = llmgate_new(&c);
	struct heard heard = { 0 };
	int64_t before = mono_ns();

	(void)state;
	llmgate_set_pause_handler(g, on_pause, &heard);
	llmgate_pause(g, LLM_FAULT_UNREACHABLE, "cannot connect");
	llmgate_canary_done(g, before, LLM_FAULT_NONE, NULL);
	assert_int_equal(llmgate_paused(g, NULL, 0, NULL),
			 LLM_FAULT_UNREACHABLE);
	assert_int_equal(heard.calls, 1);
	assert_int_equal(heard.last, LLM_FAULT_UNREACHABLE);
	llmgate_canary_done(g, mono_ns(), LLM_FAULT_NONE, NULL);
	assert_int_equal(llmgate_paused(g, NULL, 0, NULL), LLM_FAULT_NONE);
	assert_int_equal(heard.last, LLM_FAULT_NONE);
	llmgate_free(g);
}

/* Pauses and resumes from two threads at once: the handler always ends
 * having heard the state the gate is in. */
struct flipper {
	struct llmgate *g;
	bool pause;
};

static void *flip(void *arg)
{
	struct flipper *f = arg;
	int i;

	for (i = 0; i < 2000; i++) {
		if (f->pause)
			llmgate_pause(f->g, LLM_FAULT_UNREACHABLE, "down");
		else
			llmgate_canary_done(f->g, mono_ns(), LLM_FAULT_NONE,
					    NULL);
	}
	return NULL;
}

static void told_in_order(void **state)
{
	struct extractd_config c = cfg();
	struct llmgate *g = llmgate_new(&c);
	struct heard heard = { 0 };
	struct flipper a = { g, true }, b = { g, false };
	pthread_t ta, tb;
	int round;

	(void)state;
	llmgate_set_pause_handler(g, on_pause, &heard);
	for (round = 0; round < 20; round++) {
		pthread_create(&ta, NULL, flip, &a);
		pthread_create(&tb, NULL, flip, &b);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		assert_int_equal(heard.calls ? heard.last : LLM_FAULT_NONE,
				 llmgate_paused(g, NULL, 0, NULL));
	}
	llmgate_free(g);
}

static void streak_of_doubts(void **state)
{
	struct extractd_config c = cfg();
	struct llmgate *g = llmgate_new(&c);
	int i;

	(void)state;
	for (i = 0; i < 4; i++)
		assert_false(llmgate_doubt(g));
	assert_true(llmgate_doubt(g));
	/* Any answer ends the streak. */
	llmgate_alive(g);
	for (i = 0; i < 4; i++)
		assert_false(llmgate_doubt(g));
	/* So does a canary that passes. */
	llmgate_canary_done(g, mono_ns(), LLM_FAULT_NONE, NULL);
	assert_false(llmgate_doubt(g));
	llmgate_free(g);
}

static void verdicts(void **state)
{
	struct extractd_config c = cfg();
	struct llmgate *g = llmgate_new(&c);
	int64_t failed_at = mono_ns(), started;

	(void)state;
	/* No canary yet: the caller runs one. */
	assert_int_equal(llmgate_verdict(g, failed_at), LLM_VERDICT_RUN);
	started = mono_ns();
	llmgate_canary_done(g, started, LLM_FAULT_NONE, NULL);
	/* It started after the failure: the record is to blame, for this
	 * failure and any earlier one, without another canary. */
	assert_int_equal(llmgate_verdict(g, failed_at), LLM_VERDICT_RECORD);
	assert_int_equal(llmgate_verdict(g, failed_at - 1000),
			 LLM_VERDICT_RECORD);
	/* A failure after that canary needs a new one; it fails: paused. */
	assert_int_equal(llmgate_verdict(g, mono_ns()), LLM_VERDICT_RUN);
	llmgate_canary_done(g, mono_ns(), LLM_FAULT_REFUSED, "HTTP 400");
	assert_int_equal(llmgate_verdict(g, mono_ns()), LLM_VERDICT_PAUSED);
	llmgate_stop(g);
	assert_int_equal(llmgate_verdict(g, mono_ns()), LLM_VERDICT_STOPPED);
	llmgate_free(g);
}

/* A second caller that wants a verdict while a canary runs waits for it
 * and shares its result. */
struct waiter {
	struct llmgate *g;
	int64_t since;
	enum llm_verdict v;
};

static void *wait_verdict(void *arg)
{
	struct waiter *w = arg;

	w->v = llmgate_verdict(w->g, w->since);
	return NULL;
}

static void shared_canary(void **state)
{
	struct extractd_config c = cfg();
	struct llmgate *g = llmgate_new(&c);
	struct waiter w = { .g = g };
	pthread_t t;

	(void)state;
	w.since = mono_ns();
	assert_int_equal(llmgate_verdict(g, w.since), LLM_VERDICT_RUN);
	assert_int_equal(pthread_create(&t, NULL, wait_verdict, &w), 0);
	llmgate_wait(g, 50); /* it waits: no second canary */
	llmgate_canary_done(g, mono_ns(), LLM_FAULT_FAILING, "HTTP 503");
	pthread_join(t, NULL);
	assert_int_equal(w.v, LLM_VERDICT_PAUSED);
	llmgate_free(g);
}

static void stop_and_cut(void **state)
{
	struct extractd_config c = cfg();
	struct llmgate *g = llmgate_new(&c);
	int64_t paused_ns = 0;

	(void)state;
	assert_false(atomic_load(llmgate_cut_flag(g)));
	llmgate_stop(g);
	assert_int_equal(llmgate_wait(g, 60000), -1);
	assert_int_equal(llmgate_enter(g, 1, false, &paused_ns), -1);
	assert_false(atomic_load(llmgate_cut_flag(g)));
	llmgate_cut(g);
	assert_true(atomic_load(llmgate_cut_flag(g)));
	/* Stopped: a pause is no longer announced. */
	llmgate_pause(g, LLM_FAULT_DNS, "dns");
	assert_int_equal(llmgate_paused(g, NULL, 0, NULL), LLM_FAULT_NONE);
	llmgate_free(g);
}

/* A pace spaces call starts: each caller takes the next start; a canary
 * is not paced; a pace that lapsed or was set to 0 spaces nothing. */
static void paced_starts(void **state)
{
	struct extractd_config c = cfg();
	struct llmgate *g = llmgate_new(&c);
	int64_t paused_ns = 0, t0, pace = 40 * 1000000LL;
	int i;

	(void)state;
	llmgate_set_pace(g, pace, mono_ns() + 60 * 1000000000LL);
	t0 = mono_ns();
	for (i = 0; i < 4; i++)
		assert_int_equal(llmgate_enter(g, 1, false, &paused_ns), 0);
	/* Starts at t0, +40, +80, +120 ms: at least 120 ms went by, and
	 * the waits count as the gate's, not the record's. */
	assert_true(mono_ns() - t0 >= 3 * pace);
	assert_true(paused_ns >= 3 * pace - 1000000);
	t0 = mono_ns();
	assert_int_equal(llmgate_enter(g, 1, true, &paused_ns), 0);
	llmgate_set_pace(g, 0, 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(llmgate_enter(g, 1, false, &paused_ns), 0);
	llmgate_set_pace(g, 10 * pace, mono_ns() - 1);
	for (i = 0; i < 4; i++)
		assert_int_equal(llmgate_enter(g, 1, false, &paused_ns), 0);
	assert_true(mono_ns() - t0 < 10 * pace);
	llmgate_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pause_and_resume),
		cmocka_unit_test(paced_starts),
		cmocka_unit_test(stale_canary),
		cmocka_unit_test(told_in_order),
		cmocka_unit_test(streak_of_doubts),
		cmocka_unit_test(verdicts),
		cmocka_unit_test(shared_canary),
		cmocka_unit_test(stop_and_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
