/*
 * Unit tests for daemon/kafka_stats: the lag and the broker state read
 * from librdkafka's statistics, as the metrics then show them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kafka_stats.h"
#include "metrics.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Shaped like librdkafka's statistics (STATISTICS.md), cut down. */
static const char stats_one[] =
	"{\"name\":\"rdkafka#consumer-1\",\"type\":\"consumer\","
	"\"brokers\":{"
	" \"localhost:9092/bootstrap\":{\"name\":\"b\",\"nodeid\":-1,"
	"  \"state\":\"INIT\"},"
	" \"localhost:9092/1\":{\"nodeid\":1,\"state\":\"UP\"}},"
	"\"topics\":{"
	" \"texts\":{\"topic\":\"texts\",\"partitions\":{"
	"  \"0\":{\"partition\":0,\"desired\":true,\"consumer_lag\":7},"
	"  \"1\":{\"partition\":1,\"desired\":true,\"consumer_lag\":-1},"
	"  \"2\":{\"partition\":2,\"desired\":false,\"consumer_lag\":99},"
	"  \"3\":{\"partition\":3,\"desired\":true,\"consumer_lag\":0},"
	"  \"-1\":{\"partition\":-1,\"desired\":false,\"consumer_lag\":-1}"
	" }},"
	" \"we\\\"ird\":{\"partitions\":{"
	"  \"0\":{\"partition\":0,\"desired\":true,\"consumer_lag\":5}}}"
	"}}";

static const char stats_two[] =
	"{\"brokers\":{\"localhost:9092/1\":{\"nodeid\":1,\"state\":\"DOWN\"}},"
	"\"topics\":{\"texts\":{\"partitions\":{"
	"  \"1\":{\"partition\":1,\"desired\":true,\"consumer_lag\":40}}}}}";

static int take(struct metrics *m, unsigned owner, const char *json,
		bool *up)
{
	return kafka_stats_take(m, owner, json, strlen(json), up);
}

static bool rendered(struct metrics *m, const char *line)
{
	size_t len;
	char *text = metrics_render(m, "test", &len);
	bool found;

	assert_non_null(text);
	found = strstr(text, line) != NULL;
	free(text);
	return found;
}

static void lag_and_brokers(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_summary s;
	bool up = false;

	(void)state;
	assert_int_equal(take(m, 0, stats_one, &up), 0);
	assert_true(up);
	assert_true(rendered(m, "extractd_consumer_lag{topic=\"texts\","
				"partition=\"0\"} 7\n"));
	assert_true(rendered(m, "extractd_consumer_lag{topic=\"texts\","
				"partition=\"3\"} 0\n"));
	/* Unknown lag and partitions not ours are not shown. */
	assert_false(rendered(m, "partition=\"1\""));
	assert_false(rendered(m, "partition=\"2\""));
	assert_false(rendered(m, "partition=\"-1\""));
	assert_true(rendered(m, "extractd_consumer_lag{topic=\"we\\\"ird\","
				"partition=\"0\"} 5\n"));
	metrics_summary(m, &s);
	assert_int_equal(s.lag, 12);
	assert_int_equal(s.lag_parts, 3);

	/* Another consumer's report adds to it; a new report from the same
	 * consumer replaces its old one. */
	assert_int_equal(take(m, 1, stats_two, &up), 0);
	assert_false(up);
	metrics_summary(m, &s);
	assert_int_equal(s.lag, 52);
	assert_int_equal(s.lag_parts, 4);
	assert_int_equal(take(m, 0, stats_two, &up), 0);
	metrics_summary(m, &s);
	assert_int_equal(s.lag, 80);
	assert_int_equal(s.lag_parts, 2);
	metrics_free(m);
}

static void broken_documents(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_summary s;
	bool up = false;

	(void)state;
	assert_int_equal(take(m, 0, stats_two, &up), 0);

	/* A broken document changes nothing, the broker state included. */
	up = true;
	assert_int_equal(take(m, 0, "{\"brokers\":", &up), -1);
	assert_int_equal(take(m, 0, "[1,2]", &up), -1);
	assert_int_equal(take(m, 0, "", &up), -1);
	assert_int_equal(take(m, 0, "{\"topics\":{}} x", &up), -1);
	assert_true(up);
	metrics_summary(m, &s);
	assert_int_equal(s.lag, 40);

	/* No topics, no brokers: no lag, no broker up. */
	assert_int_equal(take(m, 0, "{}", &up), 0);
	assert_false(up);
	metrics_summary(m, &s);
	assert_int_equal(s.lag_parts, 0);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lag_and_brokers),
		cmocka_unit_test(broken_documents),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
