/* Unit tests for common/metrics: counters, the histogram, the lag table
 * (daemon/kafka_stats.c fills it: test_kafka_stats.c), and the text
 * format. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "llm.h"
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of the sample whose line starts with "series " in text, or
 * -1 when there is no such line. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, series, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

static char *render(struct metrics *m)
{
	size_t len = 0;
	char *text = metrics_render(m, "1.2.3", &len);

	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	assert_true(len > 0 && text[len - 1] == '\n');
	return text;
}

static void call(struct metrics *m, long status, const char *outcome,
		 double seconds, bool retry)
{
	struct llm_call c = { .status = status, .outcome = outcome,
			      .seconds = seconds, .will_retry = retry };

	metrics_llm_observe(m, &c);
}

static void zero_state(void **state)
{
	static const char *const families[] = {
		"extractd_records_total", "extractd_dead_letters_total",
		"extractd_llm_requests_total",
		"extractd_llm_request_duration_seconds",
		"extractd_llm_retries_total", "extractd_reasks_total",
		"extractd_inflight", "extractd_llm_tokens_total",
		"extractd_cost_usd_total", "extractd_consumer_lag",
		"extractd_build_info",
	};
	struct metrics *m = metrics_new();
	struct metrics_summary s;
	char *text, want[128];
	size_t i;

	(void)state;
	assert_non_null(m);
	text = render(m);
	for (i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		snprintf(want, sizeof(want), "# TYPE %s ", families[i]);
		assert_non_null(strstr(text, want));
		snprintf(want, sizeof(want), "# HELP %s ", families[i]);
		assert_non_null(strstr(text, want));
	}
	assert_true(sample(text, "extractd_records_total{result=\"ok\"}") ==
		    0);
	assert_true(sample(text, "extractd_records_total{result=\"dead_"
				 "letter\"}") == 0);
	assert_true(sample(text, "extractd_dead_letters_total{error="
				 "\"validation\"}") == 0);
	assert_true(sample(text, "extractd_llm_request_duration_seconds_"
				 "bucket{le=\"120\"}") == 0);
	assert_true(sample(text, "extractd_llm_request_duration_seconds_"
				 "count") == 0);
	assert_true(sample(text, "extractd_inflight") == 0);
	assert_true(sample(text, "extractd_build_info{version=\"1.2.3\"}") ==
		    1);
	/* No lag until statistics arrive. */
	assert_null(strstr(text, "extractd_consumer_lag{"));
	free(text);
	metrics_summary(m, &s);
	assert_true(s.records_ok == 0 && s.dead_letters == 0 &&
		    s.inflight == 0 && s.lag_parts == 0);
	metrics_free(m);
	metrics_free(NULL);
}

static void records(void **state)
{
	static const struct metrics_usage nothing = { .cost_usd = -1 };
	struct metrics *m = metrics_new();
	struct metrics_summary s;
	char *text;

	(void)state;
	metrics_record(m, NULL, 0, &(struct metrics_usage){ 100, 20, 0, 0,
							     0.25 });
	metrics_record(m, NULL, 2, &(struct metrics_usage){ 300, 60, 256, 16,
							     0.5 });
	metrics_record(m, "validation", 2, &(struct metrics_usage){ 50, 10, 0,
								   0, -1 });
	metrics_record(m, "llm_refusal", 0, &nothing);
	metrics_record(m, "input", 0, &nothing);
	metrics_record(m, "output_too_large", 0, &nothing);
	metrics_record(m, "something new", 0, &nothing);
	metrics_inflight_add(m, 5);
	metrics_inflight_add(m, -2);
	text = render(m);
	assert_true(sample(text, "extractd_records_total{result=\"ok\"}") ==
		    2);
	assert_true(sample(text, "extractd_records_total{result=\"dead_"
				 "letter\"}") == 5);
	assert_true(sample(text, "extractd_dead_letters_total{error="
				 "\"validation\"}") == 1);
	assert_true(sample(text, "extractd_dead_letters_total{error="
				 "\"output_too_large\"}") == 1);
	assert_true(sample(text, "extractd_dead_letters_total{error="
				 "\"llm_refusal\"}") == 1);
	assert_true(sample(text, "extractd_dead_letters_total{error="
				 "\"input\"}") == 1);
	assert_true(sample(text, "extractd_dead_letters_total{error="
				 "\"other\"}") == 1);
	assert_true(sample(text, "extractd_dead_letters_total{error="
				 "\"llm_http\"}") == 0);
	assert_true(sample(text, "extractd_reasks_total") == 4);
	assert_true(sample(text, "extractd_llm_tokens_total{kind="
				 "\"prompt\"}") == 450);
	assert_true(sample(text, "extractd_llm_tokens_total{kind="
				 "\"completion\"}") == 90);
	assert_true(sample(text, "extractd_llm_tokens_total{kind="
				 "\"cached\"}") == 256);
	assert_true(sample(text, "extractd_llm_tokens_total{kind="
				 "\"reasoning\"}") == 16);
	/* An unknown cost (no price) adds nothing. */
	assert_true(sample(text, "extractd_cost_usd_total") == 0.75);
	assert_true(sample(text, "extractd_inflight") == 3);
	free(text);
	metrics_summary(m, &s);
	assert_true(s.records_ok == 2 && s.dead_letters == 5 &&
		    s.inflight == 3);
	metrics_free(m);
}

static void calls_and_histogram(void **state)
{
	struct metrics *m = metrics_new();
	char *text;

	(void)state;
	call(m, 200, "ok", 0.03, false);          /* le 0.05 */
	call(m, 200, "ok", 0.05, false);          /* le 0.05 (inclusive) */
	call(m, 200, "malformed", 0.07, true);    /* le 0.1 */
	call(m, 429, "http_error", 0.2, true);    /* le 0.25 */
	call(m, 503, "http_error", 3, true);      /* le 5 */
	call(m, 500, "http_error", 3, false);     /* no retry: given up */
	call(m, 401, "paused", 0.01, true);
	call(m, 0, "timeout", 30, true);          /* le 30 */
	call(m, 0, "transport", 0.001, true);
	call(m, 0, "too_large", 0.5, false);
	call(m, 0, "something new", 1, false);
	call(m, 200, "ok", 500, false);           /* +Inf only */
	text = render(m);
	assert_true(sample(text, "extractd_llm_requests_total{status="
				 "\"200\"}") == 4);
	assert_true(sample(text, "extractd_llm_requests_total{status="
				 "\"429\"}") == 1);
	assert_true(sample(text, "extractd_llm_requests_total{status="
				 "\"503\"}") == 1);
	assert_true(sample(text, "extractd_llm_requests_total{status="
				 "\"500\"}") == 1);
	assert_true(sample(text, "extractd_llm_requests_total{status="
				 "\"401\"}") == 1);
	assert_true(sample(text, "extractd_llm_requests_total{status="
				 "\"timeout\"}") == 1);
	assert_true(sample(text, "extractd_llm_requests_total{status="
				 "\"transport\"}") == 1);
	assert_true(sample(text, "extractd_llm_requests_total{status="
				 "\"too_large\"}") == 1);
	assert_true(sample(text, "extractd_llm_requests_total{status="
				 "\"other\"}") == 1);
	assert_true(sample(text, "extractd_llm_requests_total{status="
				 "\"404\"}") == -1);

	assert_true(sample(text, "extractd_llm_retries_total{reason="
				 "\"rate_limited\"}") == 1);
	assert_true(sample(text, "extractd_llm_retries_total{reason="
				 "\"server_error\"}") == 1);
	assert_true(sample(text, "extractd_llm_retries_total{reason="
				 "\"timeout\"}") == 1);
	assert_true(sample(text, "extractd_llm_retries_total{reason="
				 "\"transport\"}") == 1);
	assert_true(sample(text, "extractd_llm_retries_total{reason="
				 "\"malformed\"}") == 1);
	assert_true(sample(text, "extractd_llm_retries_total{reason="
				 "\"paused\"}") == 1);
	assert_true(sample(text, "extractd_llm_retries_total{reason="
				 "\"other\"}") == 0);

#define BUCKET(le) "extractd_llm_request_duration_seconds_bucket{le=\"" le \
		   "\"}"
	/* 0.05: 0.001 0.01 0.03 0.05 (inclusive); then 0.07; 0.2; 0.5;
	 * 1; 3 and 3; 30; and 500 in +Inf only. */
	assert_true(sample(text, BUCKET("0.05")) == 4);
	assert_true(sample(text, BUCKET("0.1")) == 5);
	assert_true(sample(text, BUCKET("0.25")) == 6);
	assert_true(sample(text, BUCKET("0.5")) == 7);
	assert_true(sample(text, BUCKET("1")) == 8);
	assert_true(sample(text, BUCKET("2.5")) == 8);
	assert_true(sample(text, BUCKET("5")) == 10);
	assert_true(sample(text, BUCKET("20")) == 10);
	assert_true(sample(text, BUCKET("30")) == 11);
	assert_true(sample(text, BUCKET("120")) == 11);
	assert_true(sample(text, BUCKET("+Inf")) == 12);
#undef BUCKET
	assert_true(sample(text, "extractd_llm_request_duration_seconds_"
				 "count") == 12);
	{
		double sum = sample(text, "extractd_llm_request_duration_"
					  "seconds_sum");
		double want = 0.03 + 0.05 + 0.07 + 0.2 + 3 + 3 + 0.01 + 30 +
			      0.001 + 0.5 + 1 + 500;

		assert_true(sum > want - 1e-5 && sum < want + 1e-5);
	}
	free(text);
	metrics_free(m);
}

/* Two consumers' partitions, as daemon/kafka_stats.c hands them over. */
static const struct metrics_lag lag_one[] = {
	{ "texts", 0, 7 },
	{ "texts", 3, 0 },
	{ "we\"ird", 0, 5 },
};
static const struct metrics_lag lag_two[] = {
	{ "texts", 1, 40 },
};

/* The adaptive limiter's reason, latency and pace. */
static void limiter_gauges(void **state)
{
	struct metrics *m = metrics_new();
	char *text;

	(void)state;
	text = render(m);
	assert_true(sample(text, "extractd_concurrency_limit_reason{reason="
				 "\"429\"}") == 0);
	assert_true(sample(text, "extractd_llm_pace_seconds") == 0);
	free(text);
	metrics_concurrency_limit(m, 3);
	metrics_limiter(m, "rate headers", 250000000, 1500000000);
	text = render(m);
	assert_true(sample(text, "extractd_concurrency_limit") == 3);
	assert_true(sample(text, "extractd_concurrency_limit_reason{reason="
				 "\"rate headers\"}") == 1);
	assert_true(sample(text, "extractd_concurrency_limit_reason{reason="
				 "\"429\"}") == 0);
	assert_true(sample(text, "extractd_llm_latency_seconds") == 0.25);
	assert_true(sample(text, "extractd_llm_pace_seconds") == 1.5);
	free(text);
	/* A reason it does not know leaves the last one shown. */
	metrics_limiter(m, "something else", 0, 0);
	text = render(m);
	assert_true(sample(text, "extractd_concurrency_limit_reason{reason="
				 "\"rate headers\"}") == 1);
	assert_true(sample(text, "extractd_llm_pace_seconds") == 0);
	free(text);
	metrics_free(m);
}

static void lag_table(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_summary s;
	char topic[] = "texts";
	struct metrics_lag mine = { topic, 9, 1 };
	char *text;

	(void)state;
	metrics_summary(m, &s);
	assert_int_equal(s.lag_parts, 0);
	assert_int_equal(metrics_lag_set(m, 0, lag_one, 3), 0);
	text = render(m);
	assert_true(sample(text, "extractd_consumer_lag{topic=\"texts\","
				 "partition=\"0\"}") == 7);
	assert_true(sample(text, "extractd_consumer_lag{topic=\"texts\","
				 "partition=\"3\"}") == 0);
	assert_true(sample(text, "extractd_consumer_lag{topic=\"texts\","
				 "partition=\"1\"}") == -1);
	/* Label values are escaped. */
	assert_true(sample(text, "extractd_consumer_lag{topic=\"we\\\"ird\","
				 "partition=\"0\"}") == 5);
	free(text);
	metrics_summary(m, &s);
	assert_int_equal(s.lag, 12);
	assert_int_equal(s.lag_parts, 3);

	/* Another consumer's report adds to it; a new report from the same
	 * consumer replaces its old one. */
	assert_int_equal(metrics_lag_set(m, 1, lag_two, 1), 0);
	metrics_summary(m, &s);
	assert_int_equal(s.lag, 52);
	assert_int_equal(s.lag_parts, 4);
	assert_int_equal(metrics_lag_set(m, 0, lag_two, 1), 0);
	metrics_summary(m, &s);
	assert_int_equal(s.lag, 80);
	assert_int_equal(s.lag_parts, 2);

	/* The topic is copied: the caller's string may go. */
	assert_int_equal(metrics_lag_set(m, 2, &mine, 1), 0);
	memcpy(topic, "xxxxx", 5);
	text = render(m);
	assert_true(sample(text, "extractd_consumer_lag{topic=\"texts\","
				 "partition=\"9\"}") == 1);
	free(text);
	assert_int_equal(metrics_lag_set(m, 2, NULL, 0), 0);

	metrics_lag_forget(m, 0);
	metrics_summary(m, &s);
	assert_int_equal(s.lag, 40);
	assert_int_equal(s.lag_parts, 1);
	metrics_lag_forget(m, 7); /* nothing of its: fine */
	metrics_free(m);
}

#define THREADS 4
#define ROUNDS 20000

static void *writer(void *arg)
{
	struct metrics *m = arg;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		call(m, 200, "ok", 0.3, false);
		call(m, 429, "http_error", 2, true);
		metrics_record(m, i % 2 ? NULL : "validation", 1,
			       &(struct metrics_usage){ 3, 2, 1, 1, 0.125 });
		metrics_inflight_add(m, 1);
		metrics_inflight_add(m, -1);
	}
	return NULL;
}

static void *lag_writer(void *arg)
{
	struct metrics *m = arg;
	int i;

	for (i = 0; i < 200; i++)
		metrics_lag_set(m, (unsigned)(i % 2), lag_one, 3);
	return NULL;
}

/* Writers and a reader at once (run it under TSan): totals are exact,
 * and every scrape is self-consistent. */
static void concurrent(void **state)
{
	struct metrics *m = metrics_new();
	pthread_t t[THREADS + 1];
	char *text;
	int i;

	(void)state;
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer, m), 0);
	assert_int_equal(pthread_create(&t[THREADS], NULL, lag_writer, m), 0);
	for (i = 0; i < 50; i++) {
		double count, inf;

		text = render(m);
		count = sample(text, "extractd_llm_request_duration_seconds_"
				     "count");
		inf = sample(text, "extractd_llm_request_duration_seconds_"
				   "bucket{le=\"+Inf\"}");
		assert_true(count == inf);
		assert_true(sample(text, "extractd_llm_request_duration_"
					 "seconds_bucket{le=\"0.5\"}") <=
			    sample(text, "extractd_llm_request_duration_"
					 "seconds_bucket{le=\"2.5\"}"));
		free(text);
	}
	for (i = 0; i <= THREADS; i++)
		pthread_join(t[i], NULL);
	text = render(m);
	assert_true(sample(text, "extractd_llm_requests_total{status="
				 "\"200\"}") == THREADS * ROUNDS);
	assert_true(sample(text, "extractd_llm_retries_total{reason="
				 "\"rate_limited\"}") == THREADS * ROUNDS);
	assert_true(sample(text, "extractd_llm_request_duration_seconds_"
				 "count") == 2.0 * THREADS * ROUNDS);
	assert_true(sample(text, "extractd_records_total{result=\"ok\"}") ==
		    THREADS * ROUNDS / 2);
	assert_true(sample(text, "extractd_reasks_total") == THREADS * ROUNDS);
	assert_true(sample(text, "extractd_llm_tokens_total{kind="
				 "\"prompt\"}") == 3.0 * THREADS * ROUNDS);
	assert_true(sample(text, "extractd_cost_usd_total") ==
		    0.125 * THREADS * ROUNDS);
	assert_true(sample(text, "extractd_inflight") == 0);
	free(text);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(zero_state),
		cmocka_unit_test(records),
		cmocka_unit_test(calls_and_histogram),
		cmocka_unit_test(limiter_gauges),
		cmocka_unit_test(lag_table),
		cmocka_unit_test(concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
