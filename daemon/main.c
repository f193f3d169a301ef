/*
 * extractd: free text from a Kafka topic in, schema-valid JSON records out,
 * by asking an OpenAI-compatible chat-completions API.
 *
 * main owns start-up and shutdown. It loads and checks everything before
 * any thread starts (a bad config or schema, or a kafka.properties entry
 * librdkafka refuses, exits 2 with "FILE:LINE: setting: what is wrong";
 * --check-config runs the same checks), then starts, in order: the
 * pipeline (its worker pool and producer), the consumers; and waits for
 * SIGTERM/SIGINT on a signalfd, with every signal blocked in every
 * thread, or for a thread's stop request (stop.h: a fatal error). Shutdown
 * runs backwards: the consumers stop admitting and drain the work in
 * flight (committing what was delivered), the pool joins, the producer
 * flushes.
 *
 * Operations: the HTTP endpoint (http.listen) binds first, so a taken
 * port fails start-up at once (exit 2); it stops once the consumers are
 * joined. The main thread wakes every second from its signal wait for
 * health_tick(): the systemd watchdog and the progress line. systemd
 * hears READY=1 once the consumers run and STOPPING=1 at the first step
 * of shutdown. Every secret is registered (secret.h) before any thread
 * starts, so no line, header or metric shows it, whatever wrote it.
 *
 * Every thread runs under SCHED_BATCH (set before the first thread starts;
 * threads inherit it): see batch_scheduling().
 */
#define _GNU_SOURCE /* SCHED_BATCH */
#include "batcher.h"
#include "config.h"
#include "consumer.h"
#include "health.h"
#include "http.h"
#include "httpd.h"
#include "kafka.h"
#include "llm.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "pipeline.h"
#include "producer.h"
#include "schema.h"
#include "secret.h"
#include "shutdown.h"
#include "spend.h"
#include "stop.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define EXIT_CONFIG 2
#define MAX_OVERRIDES 256
#define MAX_KEY_BYTES 4096

static void usage(FILE *out)
{
	fputs("Usage: extractd [-c FILE] [-s path=value]... [--check-config]\n"
	      "Turn free text on a Kafka topic into schema-valid JSON records "
	      "on another,\nby asking an OpenAI-compatible LLM API.\n\n"
	      "  -c, --config FILE     libconfig file (default: built-in "
	      "defaults)\n"
	      "  -s, --set PATH=VALUE  override one setting, e.g. -s "
	      "pool.max_in_flight=64\n"
	      "      --check-config    check the configuration and the schema,"
	      " then exit\n"
	      "  -V, --version         print the version and exit\n"
	      "  -h, --help            print this help and exit\n\n"
	      "The API key is read from the variable named by llm.api_key_env"
	      " or the file\nllm.api_key_file, never from the config text.\n"
	      "Exit status: 0 after a clean shutdown, 1 after a fatal error, "
	      "2 for a bad\ncommand line, configuration or schema.\n",
	      out);
}

/* Read the API key: the file wins over the environment. NULL and "" in
 * err when there is none; NULL with err set when the file cannot be read. */
static char *read_api_key(const struct extractd_config *cfg, char *err,
			  size_t err_size)
{
	const char *env;
	char *key;
	size_t n;
	FILE *f;

	err[0] = '\0';
	if (*cfg->llm.api_key_file) {
		f = fopen(cfg->llm.api_key_file, "re");
		if (!f) {
			snprintf(err, err_size, "%s: llm.api_key_file: cannot "
				 "read '%s': %s",
				 cfg_origin(cfg, "llm.api_key_file"),
				 cfg->llm.api_key_file, strerror(errno));
			return NULL;
		}
		key = calloc(1, MAX_KEY_BYTES + 1);
		n = key ? fread(key, 1, MAX_KEY_BYTES, f) : 0;
		fclose(f);
		if (!key) {
			snprintf(err, err_size, "out of memory");
			return NULL;
		}
		while (n && (key[n - 1] == '\n' || key[n - 1] == '\r' ||
			     key[n - 1] == ' '))
			key[--n] = '\0';
		if (!n) {
			free(key);
			snprintf(err, err_size, "%s: llm.api_key_file: '%s' is "
				 "empty", cfg_origin(cfg, "llm.api_key_file"),
				 cfg->llm.api_key_file);
			return NULL;
		}
		return key;
	}
	if (*cfg->llm.api_key_env && (env = getenv(cfg->llm.api_key_env)) &&
	    *env)
		return strdup(env);
	return NULL;
}

/* Rules across settings that only the daemon knows. */
static int check_supported(const struct extractd_config *cfg, char *err,
			   size_t err_size)
{
	if (cfg->output.delivery == CFG_DELIVERY_EXACTLY_ONCE &&
	    cfg->kafka.consumer_threads > 1) {
		/* A transaction carries one consumer's group metadata. */
		snprintf(err, err_size, "%s: kafka.consumer_threads: must be 1 "
			 "with output.delivery = exactly-once (run more "
			 "instances instead)",
			 cfg_origin(cfg, "kafka.consumer_threads"));
		return -1;
	}
	return 0;
}

/* kafka_check()'s warnings: on stderr for --check-config, in the log at
 * start. */
static void warn_stderr(const char *msg, void *arg)
{
	(void)arg;
	fprintf(stderr, "%s\n", msg);
}

static void warn_log(const char *msg, void *arg)
{
	(void)arg;
	LOG_WARN("kafka property ignored", LOG_S("detail", msg));
}

/* Both librdkafka configurations, built as the consumer and the producer
 * build theirs, must be accepted: a bad property is a config error
 * (exit 2 with FILE:LINE), before any thread starts. */
static int check_kafka(const struct extractd_config *cfg, bool check_only,
		       char *err, size_t err_size)
{
	kafka_warn_fn *warn = check_only ? warn_stderr : warn_log;
	struct kafka_props *props[2] = { consumer_kafka_props(cfg),
					 producer_kafka_props(cfg) };
	int i, r = 0;

	for (i = 0; i < 2 && !r; i++) {
		if (!props[i]) {
			snprintf(err, err_size, "out of memory");
			r = -1;
		} else {
			r = kafka_check(cfg, props[i], warn, NULL, err,
					err_size);
		}
	}
	kafka_props_free(props[0]);
	kafka_props_free(props[1]);
	return r;
}

/* Register every secret we know, before any thread starts, so that no
 * log line, header or metric shows it (secret.h): the API key, the
 * userinfo of llm.base_url and the secret kafka.properties values
 * (librdkafka's debug output may echo its configuration). */
static int register_secrets(const struct extractd_config *cfg,
			    const char *api_key)
{
	size_t i;

	if (api_key && secret_add(api_key) < 0)
		return -1;
	if (secret_add_url(cfg->llm.base_url) < 0)
		return -1;
	for (i = 0; i < cfg->kafka.n_properties; i++) {
		const struct cfg_property *p = &cfg->kafka.properties[i];

		if (cfg_secret_property(p->name) && secret_add(p->value) < 0)
			return -1;
	}
	return 0;
}

/*
 * SCHED_BATCH: a woken thread does not preempt the running one. extractd
 * is hundreds of threads that each wake a few times a record (a job, an
 * answer, a slot, a delivery report), and on a busy machine half of those
 * wake-ups preempted the thread that caused them: ~1.2 involuntary context
 * switches a record. Records wait 50 ms to a minute for the LLM, so the
 * few ms a woken thread may now wait cost nothing; the switches saved are
 * 6-12% of the CPU per record (scripts/bench.sh, C = 64 and 256). The
 * share of CPU the kernel gives extractd is unchanged (same nice level).
 * Refused (a seccomp filter, as the systemd unit's, which sets the same
 * policy with CPUSchedulingPolicy=batch instead): nothing else changes.
 */
static void batch_scheduling(void)
{
	const struct sched_param param = { .sched_priority = 0 };

	if (sched_setscheduler(0, SCHED_BATCH, &param) < 0)
		LOG_DEBUG("scheduling policy unchanged",
			  LOG_S("error", strerror(errno)));
}

/*
 * Wait until SIGTERM or SIGINT comes (signals: a signalfd for them) or a
 * thread asks to stop (stop_fd), waking every second for health_tick().
 * Returns the signal, or 0 for a request.
 */
static int wait_for_stop(int signals, struct stop *stop, struct health *h)
{
	struct pollfd fds[2] = {
		{ .fd = signals, .events = POLLIN },
		{ .fd = stop_fd(stop), .events = POLLIN },
	};
	struct signalfd_siginfo info;

	for (;;) {
		int n = poll(fds, 2, 1000);

		if (n < 0 && errno != EINTR) {
			LOG_ERROR("cannot wait for signals: stopping",
				  LOG_S("error", strerror(errno)));
			return 0;
		}
		if (n > 0 && (fds[0].revents & POLLIN) &&
		    read(signals, &info, sizeof(info)) == sizeof(info))
			return (int)info.ssi_signo;
		if (n > 0 && (fds[1].revents & POLLIN))
			return 0;
		health_tick(h);
	}
}

/* Start, serve until a signal or a stop request, stop. Returns the exit
 * status. */
#define HOUR_NS (3600LL * 1000000000)

/* The spending caps (rate.usd_per_hour, rate.usd_per_day) as a struct
 * spend; *ret NULL when none is set. -1 when out of memory. */
static int spend_caps(const struct extractd_config *cfg, struct spend **ret)
{
	const double hour = cfg->rate.usd_per_hour, day = cfg->rate.usd_per_day;

	*ret = NULL;
	if (!(hour > 0) && !(day > 0))
		return 0;
	*ret = spend_new();
	if (!*ret)
		return -1;
	/* Both are positive, and at most two: spend_cap() cannot refuse. */
	if (hour > 0)
		spend_cap(*ret, "rate.usd_per_hour", HOUR_NS, hour);
	if (day > 0)
		spend_cap(*ret, "rate.usd_per_day", 24 * HOUR_NS, day);
	return 0;
}

static int run(struct extractd_config *cfg, struct schema *schema,
	       char *api_key)
{
	struct pipeline *pl = NULL;
	struct http_share *share = NULL;
	struct metrics *metrics = NULL;
	struct stop *stop = stop_new();
	struct llm *llm = NULL;
	struct consumer **consumers;
	struct shutdown *sd;
	struct health *health = NULL;
	struct spend *spend = NULL;
	struct httpd *httpd = NULL;
	struct batcher *batcher = NULL;
	unsigned i, n_consumers = 0;
	char err[1024], addr[300];
	sigset_t signals;
	int sig, left = 0, status = 1, sigfd;

	batch_scheduling();
	consumers = calloc(cfg->kafka.consumer_threads, sizeof(*consumers));
	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	sigfd = signalfd(-1, &signals, SFD_CLOEXEC);

	if (!stop || sigfd < 0) {
		LOG_ERROR("cannot start", LOG_S("error", strerror(errno)));
		free(consumers);
		stop_free(stop);
		return 1;
	}
	if (!consumers || http_global_init() < 0 ||
	    !(share = http_share_new()) || !(metrics = metrics_new()) ||
	    spend_caps(cfg, &spend) < 0) {
		LOG_ERROR("cannot start", LOG_S("error", "out of memory"));
		goto out;
	}
	llm = llm_new(cfg, schema, err, sizeof(err));
	if (!llm)
		goto fail;
	health = health_new(stop, llm, metrics, cfg->kafka.consumer_threads);
	if (!health) {
		LOG_ERROR("cannot start", LOG_S("error", "out of memory"));
		goto out;
	}
	health_set_spend(health, spend);
	if (*cfg->http.listen) {
		char why[512];

		httpd = httpd_start(cfg->http.listen, health_healthy,
				    health_ready, health_metrics, health,
				    addr, sizeof(addr), why, sizeof(why));
		if (!httpd) {
			snprintf(err, sizeof(err), "%s: http.listen: %s",
				 cfg_origin(cfg, "http.listen"), why);
			status = EXIT_CONFIG;
			goto fail;
		}
		LOG_INFO("http listening", LOG_S("address", addr),
			 LOG_S("endpoints", "/metrics /healthz /readyz"));
	}
	pl = pipeline_new(cfg, llm, api_key, share, metrics, stop,
			  rd_kafka_message_destroy, err, sizeof(err));
	if (!pl)
		goto fail;
	pipeline_set_spend(pl, spend);
	pipeline_observe_calls(pl, health_llm_observe, health);
	if (llm_check_start(llm, api_key, share, err, sizeof(err)) < 0)
		goto fail;
	if (pipeline_start(pl, err, sizeof(err)) < 0)
		goto fail;
	if (cfg->batch.mode != CFG_BATCH_OFF) {
		batcher = batcher_new(cfg, pl, llm, api_key, share, err,
				      sizeof(err));
		if (!batcher || batcher_start(batcher, err, sizeof(err)) < 0)
			goto fail;
		pipeline_set_batcher(pl, batcher);
	}
	for (i = 0; i < cfg->kafka.consumer_threads; i++) {
		consumers[i] = consumer_new(pl, i, err, sizeof(err));
		if (!consumers[i] || consumer_start(consumers[i], err,
						    sizeof(err)) < 0)
			goto fail;
		n_consumers++;
		health_add_consumer(health, consumers[i]);
	}
	/* Where it reads, writes and asks, in one line. base_url's
	 * userinfo was registered as a secret: the log redacts it. */
	LOG_INFO("started", LOG_S("version", EXTRACTD_VERSION),
		 LOG_S("brokers", cfg->kafka.brokers),
		 LOG_S("group", cfg->kafka.group),
		 LOG_S("input_topic", cfg->kafka.input_topic),
		 LOG_S("output_topic", cfg->kafka.output_topic),
		 LOG_S("dlq_topic", cfg->kafka.dlq_topic),
		 LOG_S("base_url", cfg->llm.base_url),
		 LOG_S("model", cfg->llm.model),
		 LOG_S("mode", cfg_mode_name(cfg->llm.mode)),
		 LOG_S("ordering", cfg_ordering_name(cfg->output.ordering)),
		 LOG_U("workers", cfg->pool.workers),
		 LOG_U("max_in_flight", cfg->pool.max_in_flight));
	notify_ready();

	sig = wait_for_stop(sigfd, stop, health);
	LOG_INFO("stopping", LOG_I("signal", sig),
		 LOG_I("failed", stop_failed(stop)));
	status = 0;
	goto out;

fail:
	LOG_ERROR("cannot start", LOG_S("error", err));
out:
	/* Every step below is bounded by shutdown.timeout_ms (shutdown.h). */
	notify_stopping();
	sd = shutdown_begin(stop, llm, metrics, cfg->shutdown.timeout_ms,
			    &signals);
	batcher_stop(batcher);
	for (i = 0; i < n_consumers; i++)
		consumer_wake(consumers[i]);
	for (i = 0; i < n_consumers; i++)
		consumer_join(consumers[i]);
	/* No consumer hands it records any more: its thread gives what it
	 * holds up (the batches stay in the state topic) and leaves. */
	stop_step(stop, "closing the batcher");
	batcher_free(batcher);
	httpd_stop(httpd); /* its probes read the consumers */
	/* Consumers' handles stay open until here: late delivery reports
	 * still store offsets through them (harmlessly, once closed). */
	if (pl)
		left = pipeline_shutdown(pl);
	if (left)
		LOG_WARN("records left undelivered at exit; their offsets "
			 "are not committed", LOG_I("count", left));
	/* No worker calls any more: a start-up check still out ends now,
	 * so llm_free() joins it at once. */
	if (llm)
		llm_cut(llm);
	stop_step(stop, "closing the consumers");
	for (i = 0; i < cfg->kafka.consumer_threads && consumers; i++)
		consumer_free(consumers[i]);
	shutdown_end(sd); /* its watchdog may cut the llm's calls: first */
	llm_free(llm); /* waits for the start-up check, cut above */
	/* The llm observer is health's: freed once no call can end. */
	health_free(health);
	free(consumers);
	http_share_free(share);
	http_global_cleanup();
	if (pl)
		pipeline_log_summary(pl, left);
	pipeline_free(pl);
	spend_free(spend);
	metrics_free(metrics);
	close(sigfd);
	if (stop_failed(stop))
		status = 1;
	stop_free(stop);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "set", required_argument, NULL, 's' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *overrides[MAX_OVERRIDES];
	size_t n_overrides = 0;
	const char *path = NULL;
	bool check_only = false;
	struct extractd_config *cfg = NULL;
	struct schema *schema = NULL;
	char *api_key = NULL;
	char err[2048], why[1024];
	sigset_t stop;
	int opt, status;

	while ((opt = getopt_long(argc, argv, "c:s:Vh", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 's':
			if (n_overrides == MAX_OVERRIDES) {
				fprintf(stderr, "extractd: more than %d -s "
					"options\n", MAX_OVERRIDES);
				return EXIT_CONFIG;
			}
			overrides[n_overrides++] = optarg;
			break;
		case 'C':
			check_only = true;
			break;
		case 'V':
			printf("extractd %s\n", EXTRACTD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_CONFIG;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "extractd: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return EXIT_CONFIG;
	}

	if (cfg_load(path, overrides, n_overrides, &cfg, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "%s\n", err);
		return EXIT_CONFIG;
	}
	if (check_supported(cfg, err, sizeof(err)) < 0)
		goto config_error;
	schema = schema_load_file(cfg->schema.file, why, sizeof(why));
	if (!schema) {
		snprintf(err, sizeof(err), "%s: schema.file: %s",
			 cfg_origin(cfg, "schema.file"), why);
		goto config_error;
	}
	if (cfg_check_carry_schema(cfg, schema_document(schema), err,
				   sizeof(err)) < 0)
		goto config_error;
	api_key = read_api_key(cfg, err, sizeof(err));
	if (!api_key && *err)
		goto config_error;
	if (!check_only) {
		log_setup((enum log_level)cfg->log.level,
			  cfg->log.format == CFG_LOG_JSON);
		if (register_secrets(cfg, api_key) < 0) {
			snprintf(err, sizeof(err), "out of memory");
			goto config_error;
		}
	}
	if (check_kafka(cfg, check_only, err, sizeof(err)) < 0)
		goto config_error;
	if (check_only) {
		printf("%s: configuration OK\n", path ? path : "(defaults)");
		status = 0;
		goto out;
	}
	if (!api_key)
		LOG_WARN("no API key: requests carry no Authorization header",
			 LOG_S("api_key_env", cfg->llm.api_key_env));

	/* Every thread inherits this mask; main takes the signals in
	 * sigtimedwait(). curl (NOSIGNAL) and librdkafka never need SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	status = run(cfg, schema, api_key);
	goto out;

config_error:
	fprintf(stderr, "%s\n", err);
	status = EXIT_CONFIG;
out:
	secret_clear();
	if (api_key) {
		memset(api_key, 0, strlen(api_key));
		free(api_key);
	}
	schema_free(schema);
	cfg_free(cfg);
	return status;
}
