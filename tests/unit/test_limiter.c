/*
 * Unit tests for daemon/limiter: synthetic traces against a small
 * discrete-event simulation, in simulated time.
 *
 * The simulated provider is a server with `capacity` slots (0: as many
 * as asked) that serves each call in `service` ns, first come first
 * served (so latency is the queue wait plus the service: on a saturated
 * server, about service x in-flight / capacity), optionally behind a
 * token bucket of rpm requests a minute holding a minute's budget, as
 * OpenAI and llmsim enforce RPM: a call over it is answered 429 at once.
 * The answers may carry that bucket's rate headers. Each client keeps
 * limiter_limit() calls in flight and reports every call's end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "limiter.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#define MS 1000000LL
#define SEC 1000000000LL
#define MAX_CALLS 512
#define MAX_SLOTS 64
#define MAX_CLIENTS 3
#define LATENCY_429 (20 * MS)

struct call {
	int64_t sent, done;
	unsigned client, inflight;
	enum limiter_outcome outcome;
	int64_t left, reset;	/* rate headers; left -1: none */
};

struct client {
	struct limiter *l;
	unsigned inflight;
	unsigned lo, hi;	/* the limit's range since sim_mark() */
	int64_t entered;	/* when it first was in the band; -1: not */
	int64_t outside;	/* time out of the band since then */
	double area;		/* limit x time since sim_mark() */
};

struct sim {
	int64_t now, mark;
	unsigned capacity;	/* slots; 0: no queue */
	int64_t service;
	bool jitter;		/* service x 0.5 to 1.5, from seed */
	uint32_t seed;
	int64_t slot_free[MAX_SLOTS];
	int64_t timeout;	/* 0: none */
	double rpm, level;	/* the token bucket; rpm 0: none */
	int64_t level_at;
	bool headers;
	unsigned min, max;	/* the limiters' bounds */
	unsigned band_lo, band_hi;
	struct client clients[MAX_CLIENTS];
	unsigned nclients;
	struct call calls[MAX_CALLS];
	unsigned n;
	unsigned ok, limited, timeouts;	/* since sim_mark() */
};

static void sim_mark(struct sim *s)
{
	unsigned i;

	s->mark = s->now;
	s->ok = s->limited = s->timeouts = 0;
	for (i = 0; i < s->nclients; i++) {
		struct client *c = &s->clients[i];

		c->lo = c->hi = limiter_limit(c->l);
		c->entered = -1;
		c->outside = 0;
		c->area = 0;
	}
}

static void sim_init(struct sim *s, unsigned nclients, unsigned capacity,
		     int64_t service, unsigned min, unsigned max,
		     unsigned initial)
{
	unsigned i;

	memset(s, 0, sizeof(*s));
	s->capacity = capacity;
	s->service = service;
	s->nclients = nclients;
	s->min = min;
	s->max = max;
	s->band_lo = min;
	s->band_hi = max;
	for (i = 0; i < nclients; i++) {
		s->clients[i].l = limiter_new(min, max, initial);
		assert_non_null(s->clients[i].l);
	}
	sim_mark(s);
}

static void sim_done(struct sim *s)
{
	unsigned i;

	for (i = 0; i < s->nclients; i++)
		limiter_free(s->clients[i].l);
}

/* The provider's bucket lets one call through, or answers 429. */
static bool sim_bucket(struct sim *s, struct call *c)
{
	double per_ns = s->rpm / 60e9;
	bool pass;

	s->level += (double)(s->now - s->level_at) * per_ns;
	if (s->level > s->rpm)
		s->level = s->rpm;
	s->level_at = s->now;
	pass = s->level >= 1;
	if (pass)
		s->level -= 1;
	if (s->headers) {
		c->left = (int64_t)s->level;
		c->reset = (int64_t)((s->rpm - s->level) / per_ns);
	}
	return pass;
}

static void sim_send(struct sim *s, unsigned client)
{
	struct call *c = &s->calls[s->n++];
	int64_t start;
	unsigned i, best = 0;

	assert_true(s->n <= MAX_CALLS);
	c->sent = s->now;
	c->client = client;
	c->inflight = ++s->clients[client].inflight;
	c->outcome = LIMITER_OK;
	c->left = c->reset = -1;
	if (s->rpm > 0 && !sim_bucket(s, c)) {
		c->outcome = LIMITER_RATE_LIMITED;
		c->done = s->now + LATENCY_429;
		return;
	}
	if (s->capacity == 0) {
		c->done = s->now + s->service;
		return;
	}
	for (i = 1; i < s->capacity; i++)
		if (s->slot_free[i] < s->slot_free[best])
			best = i;
	start = s->slot_free[best] > s->now ? s->slot_free[best] : s->now;
	c->done = start + s->service;
	if (s->jitter) {
		s->seed = s->seed * 1664525u + 1013904223u;
		c->done += (int64_t)((s->seed >> 8) % 1000) * s->service /
			   1000 - s->service / 2;
	}
	s->slot_free[best] = c->done;	/* a timed-out call still runs */
	if (s->timeout > 0 && c->done - s->now > s->timeout) {
		c->outcome = LIMITER_TIMEOUT;
		c->done = s->now + s->timeout;
	}
}

/* Client i's limit has been what it is since s->now; time passes. */
static void sim_track(struct sim *s, unsigned i, int64_t dt)
{
	struct client *c = &s->clients[i];
	unsigned limit = limiter_limit(c->l);
	bool in = limit >= s->band_lo && limit <= s->band_hi;

	assert_in_range(limit, s->min, s->max);
	if (limit < c->lo)
		c->lo = limit;
	if (limit > c->hi)
		c->hi = limit;
	if (in && c->entered < 0)
		c->entered = s->now;
	if (!in && c->entered >= 0)
		c->outside += dt;
	c->area += (double)limit * (double)dt;
}

/* Fill every client up to its limit, then end the earliest call. */
static void sim_step(struct sim *s)
{
	struct call c;
	struct client *cl;
	unsigned i, first = 0;

	for (i = 0; i < s->nclients; i++)
		while (s->clients[i].inflight < limiter_limit(s->clients[i].l))
			sim_send(s, i);
	for (i = 1; i < s->n; i++)
		if (s->calls[i].done < s->calls[first].done)
			first = i;
	c = s->calls[first];
	s->calls[first] = s->calls[--s->n];
	for (i = 0; i < s->nclients; i++)
		sim_track(s, i, c.done - s->now);
	s->now = c.done;
	cl = &s->clients[c.client];
	cl->inflight--;
	if (c.left >= 0)
		limiter_headers(cl->l, s->now, c.left, c.reset, -1, -1);
	limiter_observe(cl->l, s->now, c.outcome, s->now - c.sent,
			c.inflight, -1);
	s->ok += c.outcome == LIMITER_OK;
	s->limited += c.outcome == LIMITER_RATE_LIMITED;
	s->timeouts += c.outcome == LIMITER_TIMEOUT;
}

static void sim_run(struct sim *s, int64_t until)
{
	while (s->now < until)
		sim_step(s);
}

/* Client i's mean limit since sim_mark(). */
static double sim_mean(const struct sim *s, unsigned i)
{
	return s->clients[i].area / (double)(s->now - s->mark);
}

/* Seconds from sim_mark() until client 0's limit was first in the band
 * (the reaction time), and the share of the time since then it spent
 * out of it (probes, overshoots). */
static double sim_reaction(const struct sim *s)
{
	if (s->clients[0].entered < 0)
		return HUGE_VAL;
	return (double)(s->clients[0].entered - s->mark) / SEC;
}

static double sim_outside(const struct sim *s)
{
	const struct client *c = &s->clients[0];

	if (c->entered < 0 || c->entered == s->now)
		return 1;
	return (double)c->outside / (double)(s->now - c->entered);
}

static void sim_report(const struct sim *s, const char *what)
{
	print_message("%s: limit %u..%u, mean %.1f over %.0f s; in [%u, %u] "
		      "after %.2f s, out %.1f%% of the time since; "
		      "%.1f calls/s, %u 429s, %u timeouts\n", what,
		      s->clients[0].lo, s->clients[0].hi, sim_mean(s, 0),
		      (double)(s->now - s->mark) / SEC, s->band_lo,
		      s->band_hi, sim_reaction(s), 100 * sim_outside(s),
		      s->ok * (double)SEC / (double)(s->now - s->mark),
		      s->limited, s->timeouts);
}

/* (1) 8 slots, 50 ms a call: from 64 the limit comes down near 8 within
 * a few seconds and stays (but for probes), with the server kept busy. */
static void steady(void **state)
{
	struct sim s;

	(void)state;
	sim_init(&s, 1, 8, 50 * MS, 1, 64, 64);
	s.band_lo = 6;
	s.band_hi = 16;
	sim_run(&s, 120 * SEC);
	sim_report(&s, "steady, 0-120 s");
	assert_true(sim_reaction(&s) < 3);
	assert_true(sim_outside(&s) < 0.02);
	assert_in_range(sim_mean(&s, 0), 8, 14);
	sim_mark(&s);
	sim_run(&s, 180 * SEC);
	sim_report(&s, "steady, 120-180 s");
	assert_true(sim_outside(&s) < 0.02);
	/* 8 / 50 ms = 160 calls/s, less the probes' cost. */
	assert_true(s.ok >= 0.95 * 160 * 60);
	assert_true(s.clients[0].hi <= 16);
	sim_done(&s);
}

/* (2) capacity 16 -> 8 at 60 s: the limit follows down. */
static void halving(void **state)
{
	struct sim s;

	(void)state;
	sim_init(&s, 1, 16, 50 * MS, 1, 64, 64);
	s.band_lo = 12;
	s.band_hi = 32;
	sim_run(&s, 60 * SEC);
	sim_mark(&s);
	sim_run(&s, 90 * SEC);
	sim_report(&s, "capacity 16, 60-90 s");
	assert_true(sim_outside(&s) < 0.02);
	assert_true(s.ok >= 0.95 * 320 * 30);

	s.capacity = 8;
	s.band_lo = 6;
	s.band_hi = 16;
	sim_mark(&s);
	sim_run(&s, 150 * SEC);
	sim_report(&s, "capacity 8, 90-150 s");
	assert_true(sim_reaction(&s) < 2);
	assert_true(sim_outside(&s) < 0.02);
	assert_true(s.ok >= 0.95 * 160 * 60);
	sim_done(&s);
}

/* (3) the service time goes 50 -> 200 ms at the same 8 slots: the limit
 * stays near 8 (a probe tells a slower server from a queue). */
static void slow_server(void **state)
{
	struct sim s;

	(void)state;
	sim_init(&s, 1, 8, 50 * MS, 1, 64, 64);
	sim_run(&s, 60 * SEC);
	s.service = 200 * MS;
	s.band_lo = 6;
	s.band_hi = 16;
	sim_mark(&s);
	sim_run(&s, 120 * SEC);
	sim_report(&s, "service x4, 60-120 s");
	assert_true(sim_reaction(&s) < 5);
	assert_true(sim_outside(&s) < 0.05);
	assert_in_range(sim_mean(&s, 0), 8, 14);
	assert_true(s.ok >= 0.9 * 40 * 60);
	sim_done(&s);
}

/* (3b) 4 slots, 50 ms a call +-50% at random: noise neither drags the
 * limit below the capacity nor costs throughput. */
static void noisy_server(void **state)
{
	struct sim s;

	(void)state;
	sim_init(&s, 1, 4, 50 * MS, 1, 64, 64);
	s.jitter = true;
	s.band_lo = 3;
	s.band_hi = 10;
	sim_run(&s, 60 * SEC);
	sim_mark(&s);
	sim_run(&s, 180 * SEC);
	sim_report(&s, "4 slots, 50 ms +-50%, 60-180 s");
	assert_in_range(sim_mean(&s, 0), 4, 8);
	assert_true(sim_outside(&s) < 0.05);
	assert_true(s.ok >= 0.95 * 80 * 120);
	sim_done(&s);
}

/* (4) a provider of 600 requests a minute (10/s) that answers 429 with
 * no rate headers, 1 s a call: 64 at once drain its bucket; after the
 * first minute 429s stay under 1% of calls. */
static void bursts_of_429(void **state)
{
	struct sim s;

	(void)state;
	sim_init(&s, 1, 0, 1 * SEC, 1, 64, 64);
	s.rpm = s.level = 600;
	sim_run(&s, 60 * SEC);
	sim_report(&s, "429s, 0-60 s");
	assert_true(limiter_limit(s.clients[0].l) <= 12);
	sim_mark(&s);
	sim_run(&s, 660 * SEC);
	sim_report(&s, "429s, 60-660 s");
	assert_true(s.limited * 100 < s.ok + s.limited);
	assert_true(s.ok >= 0.85 * 10 * 600);
	assert_true(s.clients[0].hi <= 12);
	sim_done(&s);
}

/* (5a) the same provider sending rate headers: the cap paces the limit
 * to the refill rate, with next to no 429s. */
static void rate_headers_pace(void **state)
{
	struct sim s;

	(void)state;
	sim_init(&s, 1, 0, 1 * SEC, 1, 64, 64);
	s.rpm = s.level = 600;
	s.headers = true;
	sim_run(&s, 60 * SEC);
	sim_report(&s, "headers, 0-60 s");
	sim_mark(&s);
	sim_run(&s, 660 * SEC);
	sim_report(&s, "headers, 60-660 s");
	assert_true(s.limited * 1000 <= 10 * (s.ok + s.limited));
	assert_true(s.ok >= 0.95 * 10 * 600);
	sim_done(&s);
}

/* (5b) three instances on one account: each reads the same headers, so
 * the sum of their limits tracks the provider's 10 calls in flight. */
static void rate_headers_shared(void **state)
{
	struct sim s;
	double sum = 0;
	unsigned i;

	(void)state;
	sim_init(&s, 3, 0, 1 * SEC, 1, 64, 64);
	s.rpm = s.level = 600;
	s.headers = true;
	sim_run(&s, 60 * SEC);
	sim_mark(&s);
	sim_run(&s, 660 * SEC);
	for (i = 0; i < 3; i++)
		sum += sim_mean(&s, i);
	print_message("3 instances, 60-660 s: limits %.1f + %.1f + %.1f, "
		      "%.1f calls/s, %u 429s\n", sim_mean(&s, 0),
		      sim_mean(&s, 1), sim_mean(&s, 2),
		      s.ok * (double)SEC / (double)(s.now - s.mark),
		      s.limited);
	assert_true(sum >= 9 && sum <= 13);
	assert_true(s.limited * 1000 <= 10 * (s.ok + s.limited));
	assert_true(s.ok >= 0.95 * 10 * 600);
	sim_done(&s);
}

/* Five answers of 1 s at the floor end the start probe. */
static struct limiter *probed(unsigned min, unsigned max, unsigned initial)
{
	struct limiter *l = limiter_new(min, max, initial);
	int i;

	assert_non_null(l);
	assert_int_equal(limiter_limit(l), min);
	assert_string_equal(limiter_reason(l), "start");
	for (i = 1; i <= 5; i++)
		limiter_observe(l, i * SEC, LIMITER_OK, SEC, min, -1);
	assert_int_equal(limiter_limit(l), initial);
	assert_string_equal(limiter_reason(l), "probe");
	assert_int_equal(limiter_latency_ns(l), SEC);
	return l;
}

/* (5c) remaining requests falling toward 0 before the reset cap the
 * limit; the cap lapses at the reset. */
static void rate_headers_cap(void **state)
{
	struct limiter *l = probed(1, 64, 40);

	(void)state;
	/* 100 left, full in 1 s: nothing to pace. */
	limiter_headers(l, 6 * SEC, 100, SEC, -1, -1);
	assert_int_equal(limiter_limit(l), 40);
	/* 20 left for 10 s at 1 s a call, spent at 8 x 20 / 10 s: 16 in
	 * flight. */
	limiter_headers(l, 6 * SEC, 20, 10 * SEC, -1, -1);
	assert_int_equal(limiter_limit(l), 16);
	assert_string_equal(limiter_reason(l), "rate headers");
	/* 10 left for 10 s: 8; then 1 left: the floor. */
	limiter_headers(l, 6 * SEC, 10, 10 * SEC, -1, -1);
	assert_int_equal(limiter_limit(l), 8);
	limiter_headers(l, 6 * SEC, 1, 10 * SEC, -1, -1);
	assert_int_equal(limiter_limit(l), 1);
	/* Tokens: 1,000 a call, 3,000 left for 10 s: 2.4, so 2. */
	limiter_observe(l, 7 * SEC, LIMITER_OTHER, SEC, 1, -1);
	limiter_observe(l, 7 * SEC, LIMITER_OK, SEC, 1, 1000);
	limiter_headers(l, 7 * SEC, -1, -1, 3000, 10 * SEC);
	assert_int_equal(limiter_limit(l), 2);
	/* The reset passes: the cap lapses at the next report. */
	limiter_observe(l, 18 * SEC, LIMITER_OTHER, SEC, 1, -1);
	assert_int_equal(limiter_limit(l), 40);
	limiter_free(l);
}

/* (5d) the same headers give a pace between call starts: T / (8 x R) of
 * the tighter budget, T / 8 when nothing is left; none without a reset;
 * it lapses at the reset. */
static void rate_headers_pace_between_starts(void **state)
{
	struct limiter *l = probed(1, 64, 40);
	int64_t until;

	(void)state;
	assert_int_equal(limiter_pace_ns(l, 6 * SEC, &until), 0);
	/* Full (reset 0): nothing to pace. */
	limiter_headers(l, 6 * SEC, 180, 0, -1, -1);
	assert_int_equal(limiter_pace_ns(l, 6 * SEC, &until), 0);
	/* 20 left, full in 10 s: spent at 8 x 20 / 10 s, one call every
	 * 62.5 ms until then. */
	limiter_headers(l, 6 * SEC, 20, 10 * SEC, -1, -1);
	assert_int_equal(limiter_pace_ns(l, 6 * SEC, &until), 62500 * 1000);
	assert_int_equal(until, 16 * SEC);
	/* Nothing left: as for one call left. */
	limiter_headers(l, 7 * SEC, 0, 2 * SEC, -1, -1);
	assert_int_equal(limiter_pace_ns(l, 7 * SEC, &until), 250 * MS);
	/* Tokens the tighter budget: 1,000 a call, 4,000 left for 2 s. */
	limiter_observe(l, 8 * SEC, LIMITER_OK, SEC, 1, 1000);
	limiter_headers(l, 8 * SEC, 100, SEC, 4000, 2 * SEC);
	assert_int_equal(limiter_pace_ns(l, 8 * SEC, &until), 62500 * 1000);
	/* Past the reset, no new headers: no pace. */
	assert_int_equal(limiter_pace_ns(l, 11 * SEC, &until), 0);
	limiter_free(l);
}

/* (6) bounds, and a burst of 429s cuts once per latency. */
static void bounds_and_bursts(void **state)
{
	struct limiter *l = probed(2, 10, 10);
	int64_t t = 6 * SEC;
	int i;

	(void)state;
	/* A burst of 20 429s for calls sent before the first: one cut. */
	for (i = 0; i < 20; i++)
		limiter_observe(l, t + i * MS, LIMITER_RATE_LIMITED,
				20 * MS + i * MS, 10, -1);
	assert_int_equal(limiter_limit(l), 6);
	assert_string_equal(limiter_reason(l), "429");
	/* One sent after the cut, but within a latency of it: no cut. */
	limiter_observe(l, t + 500 * MS, LIMITER_RATE_LIMITED, 10 * MS, 6,
			-1);
	assert_int_equal(limiter_limit(l), 6);
	/* Timeouts a latency apart halve it, down to the floor. */
	for (i = 1; i <= 4; i++)
		limiter_observe(l, t + i * 2 * SEC, LIMITER_TIMEOUT, SEC, 6,
				-1);
	assert_int_equal(limiter_limit(l), 2);
	assert_string_equal(limiter_reason(l), "timeout");
	/* Answers at the no-load latency: growth, +1 a window, to one
	 * under the limit the 429 came at; a quiet minute after the 429,
	 * one more, never above max. */
	for (t = 20 * SEC; t < 60 * SEC; t += 100 * MS)
		limiter_observe(l, t, LIMITER_OK, SEC, 10, -1);
	assert_int_equal(limiter_limit(l), 9);
	for (; t < 900 * SEC; t += 100 * MS) {
		limiter_observe(l, t, LIMITER_OK, SEC, 10, -1);
		assert_true(limiter_limit(l) <= 10);
	}
	assert_int_equal(limiter_limit(l), 10);
	assert_string_equal(limiter_reason(l), "growth");
	limiter_free(l);
}

/* Workers report concurrently (run under TSan): the limit stays in its
 * bounds. */
struct worker {
	struct limiter *l;
	unsigned seed;
	unsigned lo, hi;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	int64_t t;
	unsigned n;

	w->lo = ~0u;
	w->hi = 0;
	for (t = 0; t < 20000; t++) {
		w->seed = w->seed * 1103515245 + 12345;
		switch (w->seed >> 28) {
		case 0:
			limiter_observe(w->l, t * MS, LIMITER_RATE_LIMITED,
					MS, 4, -1);
			break;
		case 1:
			limiter_headers(w->l, t * MS, w->seed % 50, SEC,
					-1, -1);
			break;
		default:
			limiter_observe(w->l, t * MS, LIMITER_OK,
					(int64_t)(w->seed % 100 + 1) * MS,
					w->seed % 16 + 1, 500);
		}
		n = limiter_limit(w->l);
		w->lo = n < w->lo ? n : w->lo;
		w->hi = n > w->hi ? n : w->hi;
		(void)limiter_reason(w->l);
		(void)limiter_latency_ns(w->l);
	}
	return NULL;
}

static void concurrent_reports(void **state)
{
	struct limiter *l = limiter_new(3, 16, 16);
	struct worker w[4];
	pthread_t th[4];
	int i;

	(void)state;
	assert_non_null(l);
	for (i = 0; i < 4; i++) {
		w[i].l = l;
		w[i].seed = (unsigned)i + 1;
		assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_true(w[i].lo >= 3 && w[i].hi <= 16);
	}
	limiter_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(steady),
		cmocka_unit_test(halving),
		cmocka_unit_test(slow_server),
		cmocka_unit_test(noisy_server),
		cmocka_unit_test(bursts_of_429),
		cmocka_unit_test(rate_headers_pace),
		cmocka_unit_test(rate_headers_shared),
		cmocka_unit_test(rate_headers_cap),
		cmocka_unit_test(rate_headers_pace_between_starts),
		cmocka_unit_test(bounds_and_bursts),
		cmocka_unit_test(concurrent_reports),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
