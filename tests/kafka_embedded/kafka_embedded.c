/*
 * kafka-embedded: librdkafka's mock cluster as a stand-alone process.
 *
 *   kafka-embedded [--brokers N] [--topic NAME:PARTITIONS]...
 *
 * DESIGN
 * ------
 * librdkafka ships an in-process mock Kafka cluster (rdkafka_mock.h): a few
 * localhost listeners that speak enough of the Kafka protocol for producers,
 * idempotent and transactional producers, and balanced consumer groups with
 * offset commits. A mock cluster hangs off an rd_kafka_t instance, so this
 * program creates a bare producer handle, builds the cluster on it, creates
 * the topics asked for, and prints the bootstrap servers as the first line of
 * stdout (flushed, so a parent reading a pipe sees it at once). Topics that
 * were not listed are created on first use with the mock's default partition
 * count, as a broker with auto-creation on would do. The Admin API's
 * CreateTopics is not implemented by the mock: list topics here instead.
 *
 * SIGTERM and SIGINT are blocked before any librdkafka thread exists, so every
 * thread inherits the mask and the main thread alone takes them, in
 * sigwait(): no handler, no polling. On either signal the cluster is torn
 * down and the process exits 0. Bad arguments exit 2 with a message on
 * stderr; a failure to build the cluster exits 1.
 */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define KE_MAX_BROKERS 32      /* more is a mistake, not a test */
#define KE_MAX_PARTITIONS 1024 /* per topic */
#define KE_MAX_TOPIC_LEN 249   /* Kafka's own limit */

/** One --topic NAME:PARTITIONS argument. */
struct ke_topic {
	char *name;       /**< copied out of argv, owned */
	int partitions;   /**< 1..KE_MAX_PARTITIONS */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kafka-embedded [--brokers N] [--topic NAME:PARTITIONS]...\n"
		"\n"
		"Runs librdkafka's mock Kafka cluster until SIGTERM or SIGINT.\n"
		"Prints the bootstrap servers as the first line of stdout.\n"
		"\n"
		"  -b, --brokers N              number of brokers (1..%d, default 1)\n"
		"  -t, --topic NAME:PARTITIONS  create a topic (repeatable); other\n"
		"                               topics are auto-created on first use\n"
		"  -h, --help                   this text\n",
		KE_MAX_BROKERS);
}

/**
 * @brief Parse a decimal integer in [min, max] that fills the whole string.
 * @returns 0 and sets *ret_val, or -1 (and *ret_val is untouched).
 */
static int parse_int(const char *s, int min, int max, int *ret_val)
{
	char *end;
	long v;

	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*ret_val = (int)v;
	return 0;
}

/** @returns true when name is a legal Kafka topic name. */
static bool topic_name_ok(const char *name)
{
	size_t len = strlen(name);
	size_t i;

	if (len == 0 || len > KE_MAX_TOPIC_LEN)
		return false;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

/**
 * @brief Parse "NAME:PARTITIONS" (argv stays as it was, for ps).
 * @param ret_topic set on success; its name is malloc'ed, caller frees
 * @returns 0, or -1 with a message in errstr.
 */
static int parse_topic(const char *arg, struct ke_topic *ret_topic,
		       char *errstr, size_t errstr_size)
{
	const char *colon = strrchr(arg, ':');
	char *name;
	int partitions;

	if (!colon) {
		snprintf(errstr, errstr_size,
			 "--topic '%s': expected NAME:PARTITIONS", arg);
		return -1;
	}
	name = strndup(arg, (size_t)(colon - arg));
	if (!name) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	if (!topic_name_ok(name)) {
		snprintf(errstr, errstr_size,
			 "--topic '%s': a topic name is 1..%d of [a-zA-Z0-9._-]",
			 name, KE_MAX_TOPIC_LEN);
		free(name);
		return -1;
	}
	if (parse_int(colon + 1, 1, KE_MAX_PARTITIONS, &partitions) < 0) {
		snprintf(errstr, errstr_size,
			 "--topic '%s': partitions '%s' is not an integer in 1..%d",
			 name, colon + 1, KE_MAX_PARTITIONS);
		free(name);
		return -1;
	}
	ret_topic->name = name;
	ret_topic->partitions = partitions;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, 'b' },
		{ "topic", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ke_topic *topics = NULL; /* one per --topic, argc bounds it */
	size_t topic_cnt = 0;
	int brokers = 1;
	rd_kafka_conf_t *conf = NULL;            /* until rd_kafka_new() */
	rd_kafka_t *rk = NULL;                   /* hosts the mock cluster */
	rd_kafka_mock_cluster_t *mcluster = NULL;
	char errstr[512];
	sigset_t stop_sigs;
	int exit_code = 1;
	int opt;
	int sig;
	size_t i;

	topics = calloc((size_t)argc, sizeof(*topics));
	if (!topics) {
		fprintf(stderr, "kafka-embedded: out of memory\n");
		return 1;
	}

	while ((opt = getopt_long(argc, argv, "b:t:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			if (parse_int(optarg, 1, KE_MAX_BROKERS, &brokers) < 0) {
				fprintf(stderr,
					"kafka-embedded: --brokers '%s' is not an integer in 1..%d\n",
					optarg, KE_MAX_BROKERS);
				exit_code = 2;
				goto out;
			}
			break;
		case 't':
			if (parse_topic(optarg, &topics[topic_cnt], errstr,
					sizeof(errstr)) < 0) {
				fprintf(stderr, "kafka-embedded: %s\n", errstr);
				exit_code = 2;
				goto out;
			}
			topic_cnt++;
			break;
		case 'h':
			usage(stdout);
			exit_code = 0;
			goto out;
		default:
			usage(stderr);
			exit_code = 2;
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kafka-embedded: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		exit_code = 2;
		goto out;
	}

	/* Before any librdkafka thread starts: they inherit this mask, so
	 * the stop signals reach only sigwait() below. A reader that closed
	 * our stdout must not kill us with SIGPIPE either. */
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL) != 0) {
		fprintf(stderr, "kafka-embedded: pthread_sigmask failed\n");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);

	conf = rd_kafka_conf_new();
	/* The host handle never connects anywhere; without a bootstrap list
	 * it would warn about that once, so hush warnings up to errors. */
	if (rd_kafka_conf_set(conf, "log_level", "3", errstr,
			      sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "kafka-embedded: %s\n", errstr);
		goto out;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "kafka-embedded: rd_kafka_new: %s\n", errstr);
		goto out;
	}
	conf = NULL; /* now owned by rk */

	mcluster = rd_kafka_mock_cluster_new(rk, brokers);
	if (!mcluster) {
		fprintf(stderr,
			"kafka-embedded: cannot create a mock cluster of %d broker(s)\n",
			brokers);
		goto out;
	}

	for (i = 0; i < topic_cnt; i++) {
		rd_kafka_resp_err_t err;

		err = rd_kafka_mock_topic_create(mcluster, topics[i].name,
						 topics[i].partitions,
						 brokers < 3 ? brokers : 3);
		if (err) {
			fprintf(stderr,
				"kafka-embedded: cannot create topic '%s': %s\n",
				topics[i].name, rd_kafka_err2str(err));
			goto out;
		}
	}

	if (printf("%s\n", rd_kafka_mock_cluster_bootstraps(mcluster)) < 0 ||
	    fflush(stdout) != 0) {
		fprintf(stderr, "kafka-embedded: cannot write to stdout\n");
		goto out;
	}

	/* Only SIGTERM or SIGINT can end this wait: they are the set. */
	if (sigwait(&stop_sigs, &sig) != 0) {
		fprintf(stderr, "kafka-embedded: sigwait failed\n");
		goto out;
	}
	exit_code = 0;

out:
	if (mcluster)
		rd_kafka_mock_cluster_destroy(mcluster);
	if (rk)
		rd_kafka_destroy(rk);
	if (conf)
		rd_kafka_conf_destroy(conf);
	for (i = 0; i < topic_cnt; i++)
		free(topics[i].name);
	free(topics);
	return exit_code;
}
