/*
 * kafka-embedded: librdkafka's mock cluster as a stand-alone process.
 *
 *   kafka-embedded [--brokers N] [--topic NAME:PARTITIONS]...
 *                  [--control SOCKET]
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
 *
 * Control channel (--control SOCKET), for fault-injection tests: a Unix
 * stream socket, bound before the bootstrap line is printed (so it is ready
 * once that line is), removed at exit. A client writes one command a line
 * and reads one reply line per command: "ok" (some commands add a word),
 * or "error: REASON". Connections are served one at a time, in order, by a
 * thread of their own; the main thread stops it on SIGTERM before the
 * cluster goes. Every command and its reply are also logged to stderr.
 * Commands (rdkafka_mock.h names the functions behind them; brokers are
 * numbered 1..N, "all" is every broker):
 *
 *   ping                               ok (a round trip)
 *   push-errors API ERR [COUNT]        the next COUNT (default 1) requests
 *                                      of API, from any client to any
 *                                      broker, fail with ERR
 *   broker-push-errors ID API ERR [COUNT [RTT_MS]]
 *                                      same, on broker ID only, each reply
 *                                      delayed by RTT_MS
 *   broker-errors ID API               "ok N": N of the errors pushed on
 *                                      broker ID for API are still to come
 *   clear-errors API                   forget what push-errors queued
 *                                      for API
 *   broker-down ID|all                 disconnect, refuse connections (no
 *                                      leader change: see leader)
 *   broker-up ID|all                   accept connections again
 *   rtt ID|all MS                      delay every reply by MS
 *   leader TOPIC PARTITION ID          move the partition's leader (-1:
 *                                      none), as a real cluster's failover
 *   coordinator group|transaction KEY ID
 *                                      the coordinator for that key
 *   topic NAME PARTITIONS [REPLICAS]   create a topic at run time
 *
 * API is a request name (Produce, Fetch, ListOffsets, Metadata,
 * OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat,
 * LeaveGroup, SyncGroup, InitProducerId, AddPartitionsToTxn,
 * AddOffsetsToTxn, EndTxn, TxnOffsetCommit) or its number; ERR is an error
 * name as rd_kafka_err2name() spells it (NOT_LEADER_FOR_PARTITION,
 * REQUEST_TIMED_OUT, _TRANSPORT: disconnect, ...) or its number. From a
 * shell: echo 'broker-down 1' | socat - UNIX-CONNECT:SOCKET.
 *
 * Caveat for consumer groups: the mock (librdkafka 2.0) starts every
 * rebalance of a group it has seen with a wait of the last joiner's
 * session.timeout.ms less one second, even after the only member left
 * cleanly: with the default 45 s, a consumer that restarts in the same
 * group gets its partitions after about 44 s (the very first join waits
 * 3 s). The mock has no setting for this; consumers that set
 * session.timeout.ms = 6000 (a real broker's minimum) get them within
 * about 5 s (extractd: -s kafka.properties.session.timeout.ms=6000).
 *
 * Caveat for Produce errors: the mock (librdkafka 2.0) does not check an
 * idempotent producer's sequence numbers, so with several requests in
 * flight a batch behind a failed one is accepted, and the client then
 * counts the failed batch as written (a delivery report without an
 * offset). Clients under test need max.in.flight.requests.per.connection
 * = 1 to see what a real broker would make them see.
 */

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define KE_MAX_BROKERS 32      /* more is a mistake, not a test */
#define KE_MAX_PARTITIONS 1024 /* per topic */
#define KE_MAX_TOPIC_LEN 249   /* Kafka's own limit */
#define KE_CTL_LINE_MAX 1024   /* bytes per control command */
#define KE_CTL_ARGS_MAX 8      /* words per control command */
#define KE_CTL_ERRS_MAX 100000 /* COUNT of one push */

/** One --topic NAME:PARTITIONS argument. */
struct ke_topic {
	char *name;       /**< copied out of argv, owned */
	int partitions;   /**< 1..KE_MAX_PARTITIONS */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kafka-embedded [--brokers N] [--topic NAME:PARTITIONS]...\n"
		"                      [--control SOCKET]\n"
		"\n"
		"Runs librdkafka's mock Kafka cluster until SIGTERM or SIGINT.\n"
		"Prints the bootstrap servers as the first line of stdout.\n"
		"\n"
		"  -b, --brokers N              number of brokers (1..%d, default 1)\n"
		"  -t, --topic NAME:PARTITIONS  create a topic (repeatable); other\n"
		"                               topics are auto-created on first use\n"
		"  -c, --control SOCKET         serve fault-injection commands on a\n"
		"                               Unix socket, one a line, one reply a\n"
		"                               line (\"ok...\" or \"error: ...\"):\n"
		"      ping\n"
		"      push-errors API ERR [COUNT]\n"
		"      broker-push-errors ID API ERR [COUNT [RTT_MS]]\n"
		"      broker-errors ID API  (\"ok N\": N pushed errors left)\n"
		"      clear-errors API\n"
		"      broker-down ID|all   broker-up ID|all   rtt ID|all MS\n"
		"      leader TOPIC PARTITION ID\n"
		"      coordinator group|transaction KEY ID\n"
		"      topic NAME PARTITIONS [REPLICAS]\n"
		"                               API: Produce, OffsetCommit, ... or a\n"
		"                               number; ERR: REQUEST_TIMED_OUT, ... or\n"
		"                               a number; brokers are 1..N\n"
		"  -h, --help                   this text\n"
		"\n"
		"A consumer that restarts in a group waits session.timeout.ms - 1 s\n"
		"(44 s by default) for its partitions here; with\n"
		"session.timeout.ms=6000 about 5 s (extractd:\n"
		"-s kafka.properties.session.timeout.ms=6000).\n",
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

/* ------------------------------------------------------------ control */

/** The control channel: its socket, its thread, the cluster it drives. */
struct ke_control {
	rd_kafka_mock_cluster_t *mcluster;
	int brokers;            /**< ids are 1..brokers */
	const char *path;       /**< the socket's path (argv's) */
	int listen_fd;
	int wake[2];            /**< main writes a byte: stop serving */
	pthread_t thread;
	bool bound;             /**< path is ours to unlink */
	bool started;           /**< thread runs */
};

/** Kafka protocol request names, for push-errors. */
static const struct {
	const char *name;
	int16_t key;
} ke_apis[] = {
	{ "Produce", 0 },           { "Fetch", 1 },
	{ "ListOffsets", 2 },       { "Metadata", 3 },
	{ "OffsetCommit", 8 },      { "OffsetFetch", 9 },
	{ "FindCoordinator", 10 },  { "JoinGroup", 11 },
	{ "Heartbeat", 12 },        { "LeaveGroup", 13 },
	{ "SyncGroup", 14 },        { "DescribeGroups", 15 },
	{ "ListGroups", 16 },       { "ApiVersions", 18 },
	{ "CreateTopics", 19 },     { "InitProducerId", 22 },
	{ "OffsetForLeaderEpoch", 23 }, { "AddPartitionsToTxn", 24 },
	{ "AddOffsetsToTxn", 25 },  { "EndTxn", 26 },
	{ "TxnOffsetCommit", 28 },
};

/** @returns 0 and the request type of a name or number, or -1. */
static int ctl_api(const char *s, int16_t *ret_key)
{
	size_t i;
	int v;

	for (i = 0; i < sizeof(ke_apis) / sizeof(ke_apis[0]); i++) {
		if (strcasecmp(s, ke_apis[i].name) == 0) {
			*ret_key = ke_apis[i].key;
			return 0;
		}
	}
	if (parse_int(s, 0, 100, &v) < 0)
		return -1;
	*ret_key = (int16_t)v;
	return 0;
}

/** @returns 0 and the error code of a name (with or without the
 *  RD_KAFKA_RESP_ERR_ prefix) or of a number, or -1. */
static int ctl_err(const char *s, rd_kafka_resp_err_t *ret_err)
{
	static const char prefix[] = "RD_KAFKA_RESP_ERR_";
	const struct rd_kafka_err_desc *descs;
	size_t cnt, i;
	int v;

	if (strncasecmp(s, prefix, sizeof(prefix) - 1) == 0)
		s += sizeof(prefix) - 1;
	rd_kafka_get_err_descs(&descs, &cnt);
	for (i = 0; i < cnt; i++) {
		if (descs[i].name && strcasecmp(s, descs[i].name) == 0) {
			*ret_err = descs[i].code;
			return 0;
		}
	}
	if (parse_int(s, -200, 1000, &v) < 0)
		return -1;
	*ret_err = (rd_kafka_resp_err_t)v;
	return 0;
}

/** @returns 0 and a broker id (1..N, or -1 for "all" when allowed). */
static int ctl_broker(const struct ke_control *ctl, const char *s,
		      bool all_ok, int32_t *ret_id)
{
	int v;

	if (all_ok && strcmp(s, "all") == 0) {
		*ret_id = -1;
		return 0;
	}
	if (parse_int(s, 1, ctl->brokers, &v) < 0)
		return -1;
	*ret_id = v;
	return 0;
}

/** Split line into at most KE_CTL_ARGS_MAX words (in place). */
static int ctl_split(char *line, char **argv)
{
	int argc = 0;
	char *p = line;

	for (;;) {
		while (*p && isspace((unsigned char)*p))
			*p++ = '\0';
		if (!*p)
			return argc;
		if (argc == KE_CTL_ARGS_MAX)
			return -1;
		argv[argc++] = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
	}
}

#define CTL_FAIL(...)                                      \
	do {                                               \
		snprintf(reply, reply_size, "error: " __VA_ARGS__); \
		return;                                    \
	} while (0)

/** Run one command line; the reply (no newline) goes to reply. */
static void ctl_run(struct ke_control *ctl, char *line, char *reply,
		    size_t reply_size)
{
	char *argv[KE_CTL_ARGS_MAX];
	rd_kafka_mock_cluster_t *mc = ctl->mcluster;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR, code;
	int argc = ctl_split(line, argv);
	int16_t api;
	int32_t id;
	int count = 1, rtt = 0, part, n;
	const char *cmd;

	if (argc < 0)
		CTL_FAIL("more than %d words", KE_CTL_ARGS_MAX);
	if (argc == 0)
		CTL_FAIL("empty command");
	cmd = argv[0];
	snprintf(reply, reply_size, "ok");

	if (strcmp(cmd, "ping") == 0 && argc == 1)
		return;
	if (strcmp(cmd, "push-errors") == 0 && (argc == 3 || argc == 4)) {
		rd_kafka_resp_err_t *errs;
		int i;

		if (ctl_api(argv[1], &api) < 0)
			CTL_FAIL("unknown request type '%s'", argv[1]);
		if (ctl_err(argv[2], &code) < 0)
			CTL_FAIL("unknown error '%s'", argv[2]);
		if (argc == 4 &&
		    parse_int(argv[3], 1, KE_CTL_ERRS_MAX, &count) < 0)
			CTL_FAIL("COUNT must be 1..%d", KE_CTL_ERRS_MAX);
		errs = malloc((size_t)count * sizeof(*errs));
		if (!errs)
			CTL_FAIL("out of memory");
		for (i = 0; i < count; i++)
			errs[i] = code;
		rd_kafka_mock_push_request_errors_array(mc, api, (size_t)count,
							errs);
		free(errs);
		return;
	}
	if (strcmp(cmd, "broker-push-errors") == 0 && argc >= 4 && argc <= 6) {
		int i;

		if (ctl_broker(ctl, argv[1], false, &id) < 0)
			CTL_FAIL("broker must be 1..%d", ctl->brokers);
		if (ctl_api(argv[2], &api) < 0)
			CTL_FAIL("unknown request type '%s'", argv[2]);
		if (ctl_err(argv[3], &code) < 0)
			CTL_FAIL("unknown error '%s'", argv[3]);
		if (argc >= 5 &&
		    parse_int(argv[4], 1, KE_CTL_ERRS_MAX, &count) < 0)
			CTL_FAIL("COUNT must be 1..%d", KE_CTL_ERRS_MAX);
		if (argc == 6 && parse_int(argv[5], 0, 3600000, &rtt) < 0)
			CTL_FAIL("RTT_MS must be 0..3600000");
		for (i = 0; i < count && !err; i++)
			err = rd_kafka_mock_broker_push_request_error_rtts(
				mc, id, api, 1, code, rtt);
	} else if (strcmp(cmd, "broker-errors") == 0 && argc == 3) {
		size_t left = 0;

		if (ctl_broker(ctl, argv[1], false, &id) < 0)
			CTL_FAIL("broker must be 1..%d", ctl->brokers);
		if (ctl_api(argv[2], &api) < 0)
			CTL_FAIL("unknown request type '%s'", argv[2]);
		err = rd_kafka_mock_broker_error_stack_cnt(mc, id, api, &left);
		if (!err) {
			snprintf(reply, reply_size, "ok %zu", left);
			return;
		}
	} else if (strcmp(cmd, "clear-errors") == 0 && argc == 2) {
		if (ctl_api(argv[1], &api) < 0)
			CTL_FAIL("unknown request type '%s'", argv[1]);
		rd_kafka_mock_clear_request_errors(mc, api);
		return;
	} else if ((strcmp(cmd, "broker-down") == 0 ||
		    strcmp(cmd, "broker-up") == 0) && argc == 2) {
		if (ctl_broker(ctl, argv[1], true, &id) < 0)
			CTL_FAIL("broker must be 1..%d or all", ctl->brokers);
		err = strcmp(cmd, "broker-down") == 0
			      ? rd_kafka_mock_broker_set_down(mc, id)
			      : rd_kafka_mock_broker_set_up(mc, id);
	} else if (strcmp(cmd, "rtt") == 0 && argc == 3) {
		if (ctl_broker(ctl, argv[1], true, &id) < 0)
			CTL_FAIL("broker must be 1..%d or all", ctl->brokers);
		if (parse_int(argv[2], 0, 3600000, &rtt) < 0)
			CTL_FAIL("MS must be 0..3600000");
		err = rd_kafka_mock_broker_set_rtt(mc, id, rtt);
	} else if (strcmp(cmd, "leader") == 0 && argc == 4) {
		if (!topic_name_ok(argv[1]))
			CTL_FAIL("bad topic name '%s'", argv[1]);
		if (parse_int(argv[2], 0, KE_MAX_PARTITIONS - 1, &part) < 0)
			CTL_FAIL("bad partition '%s'", argv[2]);
		if (strcmp(argv[3], "-1") == 0)
			id = -1;
		else if (ctl_broker(ctl, argv[3], false, &id) < 0)
			CTL_FAIL("broker must be 1..%d or -1", ctl->brokers);
		err = rd_kafka_mock_partition_set_leader(mc, argv[1], part, id);
	} else if (strcmp(cmd, "coordinator") == 0 && argc == 4) {
		if (strcmp(argv[1], "group") && strcmp(argv[1], "transaction"))
			CTL_FAIL("want coordinator group|transaction KEY ID");
		if (ctl_broker(ctl, argv[3], false, &id) < 0)
			CTL_FAIL("broker must be 1..%d", ctl->brokers);
		err = rd_kafka_mock_coordinator_set(mc, argv[1], argv[2], id);
	} else if (strcmp(cmd, "topic") == 0 && (argc == 3 || argc == 4)) {
		int replicas = ctl->brokers < 3 ? ctl->brokers : 3;

		if (!topic_name_ok(argv[1]))
			CTL_FAIL("bad topic name '%s'", argv[1]);
		if (parse_int(argv[2], 1, KE_MAX_PARTITIONS, &n) < 0)
			CTL_FAIL("PARTITIONS must be 1..%d", KE_MAX_PARTITIONS);
		if (argc == 4 &&
		    parse_int(argv[3], 1, ctl->brokers, &replicas) < 0)
			CTL_FAIL("REPLICAS must be 1..%d", ctl->brokers);
		err = rd_kafka_mock_topic_create(mc, argv[1], n, replicas);
	} else {
		CTL_FAIL("unknown command or wrong arguments: '%s' (see --help)",
			 cmd);
	}
	if (err)
		CTL_FAIL("%s", rd_kafka_err2str(err));
}

#undef CTL_FAIL

/** Write all of buf; @returns 0 or -1. */
static int ctl_write(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/**
 * @brief Serve one connection until the client closes it or stop is asked.
 * @returns true when stop was asked (the wake pipe became readable).
 */
static bool ctl_serve(struct ke_control *ctl, int fd)
{
	char buf[KE_CTL_LINE_MAX + 1], reply[600], out[KE_CTL_LINE_MAX + 700];
	size_t have = 0;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = ctl->wake[0], .events = POLLIN },
		};
		char *nl;
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (pfd[1].revents)
			return true;
		n = recv(fd, buf + have, KE_CTL_LINE_MAX - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		have += (size_t)n;
		buf[have] = '\0';
		while ((nl = memchr(buf, '\n', have)) != NULL) {
			size_t len = (size_t)(nl - buf) + 1;
			int m;

			*nl = '\0';
			if (nl > buf && nl[-1] == '\r')
				nl[-1] = '\0';
			fprintf(stderr, "kafka-embedded: control: %s\n", buf);
			ctl_run(ctl, buf, reply, sizeof(reply));
			fprintf(stderr, "kafka-embedded: control: -> %s\n",
				reply);
			m = snprintf(out, sizeof(out), "%s\n", reply);
			if (ctl_write(fd, out, (size_t)m) < 0)
				return false;
			have -= len;
			memmove(buf, buf + len, have);
			buf[have] = '\0';
		}
		if (have == KE_CTL_LINE_MAX) {
			static const char too_long[] =
				"error: line too long\n";

			(void)ctl_write(fd, too_long, sizeof(too_long) - 1);
			return false;
		}
	}
}

static void *ctl_main(void *arg)
{
	struct ke_control *ctl = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = ctl->listen_fd, .events = POLLIN },
			{ .fd = ctl->wake[0], .events = POLLIN },
		};
		int fd;
		bool stop;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "kafka-embedded: control: poll: %s\n",
				strerror(errno));
			return NULL;
		}
		if (pfd[1].revents)
			return NULL;
		fd = accept(ctl->listen_fd, NULL, NULL);
		if (fd < 0)
			continue; /* EINTR, ECONNABORTED, ...: try again */
		stop = ctl_serve(ctl, fd);
		close(fd);
		if (stop)
			return NULL;
	}
}

/**
 * @brief Bind the control socket at path and start its thread.
 * @returns 0, or -1 with a message in errstr.
 */
static int ctl_start(struct ke_control *ctl, char *errstr,
		     size_t errstr_size)
{
	struct sockaddr_un addr;
	struct stat st;
	int r;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (strlen(ctl->path) >= sizeof(addr.sun_path)) {
		snprintf(errstr, errstr_size,
			 "--control '%s': a socket path is at most %zu bytes",
			 ctl->path, sizeof(addr.sun_path) - 1);
		return -1;
	}
	memcpy(addr.sun_path, ctl->path, strlen(ctl->path) + 1);
	/* A socket left by an earlier run is replaced; anything else is
	 * not ours to remove. */
	if (lstat(ctl->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(errstr, errstr_size,
				 "--control '%s' exists and is not a socket",
				 ctl->path);
			return -1;
		}
		unlink(ctl->path);
	}
	ctl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl->listen_fd < 0 ||
	    bind(ctl->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		snprintf(errstr, errstr_size, "--control '%s': %s", ctl->path,
			 strerror(errno));
		return -1;
	}
	ctl->bound = true;
	if (listen(ctl->listen_fd, 16) < 0 || pipe(ctl->wake) < 0) {
		snprintf(errstr, errstr_size, "--control '%s': %s", ctl->path,
			 strerror(errno));
		return -1;
	}
	r = pthread_create(&ctl->thread, NULL, ctl_main, ctl);
	if (r) {
		snprintf(errstr, errstr_size, "control thread: %s",
			 strerror(r));
		return -1;
	}
	ctl->started = true;
	return 0;
}

/** Stop the thread, close and remove the socket. */
static void ctl_stop(struct ke_control *ctl)
{
	if (ctl->started) {
		ssize_t n;

		do
			n = write(ctl->wake[1], "x", 1);
		while (n < 0 && errno == EINTR);
		pthread_join(ctl->thread, NULL);
		ctl->started = false;
	}
	if (ctl->listen_fd >= 0)
		close(ctl->listen_fd);
	if (ctl->wake[0] >= 0)
		close(ctl->wake[0]);
	if (ctl->wake[1] >= 0)
		close(ctl->wake[1]);
	if (ctl->bound)
		unlink(ctl->path);
	ctl->listen_fd = ctl->wake[0] = ctl->wake[1] = -1;
	ctl->bound = false;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, 'b' },
		{ "topic", required_argument, NULL, 't' },
		{ "control", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ke_topic *topics = NULL; /* one per --topic, argc bounds it */
	size_t topic_cnt = 0;
	int brokers = 1;
	rd_kafka_conf_t *conf = NULL;            /* until rd_kafka_new() */
	rd_kafka_t *rk = NULL;                   /* hosts the mock cluster */
	rd_kafka_mock_cluster_t *mcluster = NULL;
	struct ke_control ctl = { .listen_fd = -1, .wake = { -1, -1 } };
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

	while ((opt = getopt_long(argc, argv, "b:t:c:h", longopts, NULL)) !=
	       -1) {
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
		case 'c':
			ctl.path = optarg;
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

	if (ctl.path) {
		ctl.mcluster = mcluster;
		ctl.brokers = brokers;
		if (ctl_start(&ctl, errstr, sizeof(errstr)) < 0) {
			fprintf(stderr, "kafka-embedded: %s\n", errstr);
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
	ctl_stop(&ctl); /* before the cluster it drives */
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
