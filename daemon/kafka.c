/*
 * kafka: see kafka.h.
 *
 * The check's client is the real configuration with bootstrap.servers
 * emptied: rd_kafka_new() then validates what rd_kafka_conf_set() does
 * not (rules across properties, such as max.in.flight with idempotence;
 * SSL files, loaded at creation), without a connection. It takes a few
 * milliseconds.
 */
#include "kafka.h"

#include "log.h"

#include <pthread.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* librdkafka's syslog levels onto ours; its lines go to our log. A
 * broker failure ("FAIL") above debug level is also sent to the error
 * callback with the same text, which the consumer and the producer log:
 * written here too, each failure would read twice. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	enum log_level lvl = level <= 3 ? LOG_LVL_ERROR
			   : level == 4 ? LOG_LVL_WARN
			   : level <= 6 ? LOG_LVL_INFO
					: LOG_LVL_DEBUG;

	if (level < 7 && strcmp(fac, "FAIL") == 0)
		return;
	LOG_AT(lvl, "librdkafka", LOG_S("client", rd_kafka_name(rk)),
	       LOG_S("facility", fac), LOG_S("text", buf));
}

/*
 * librdkafka's main thread (2.0) waits for its next timer in whole
 * milliseconds, rounded down, then polls the clock without sleeping until
 * the timer is due: up to a millisecond of spinning before every timer
 * (the 1-s scan, the group's heartbeats and commits, the statistics). Idle,
 * that was 0.5-1.5 ms of CPU a second per client, more than the rest of
 * extractd. A timer slack of 2 ms on that thread alone lets its wait end
 * after the timer is due instead. Its timers pace periodic work
 * (heartbeats, commits, the topic scan, statistics) and retry backoffs:
 * they may now fire up to 2 ms late; an event (a rebalance, a request's
 * answer) or a timer due at once still runs at once. The broker threads
 * (linger.ms) keep the default slack.
 */
#define MAIN_TIMER_SLACK_NS 2000000UL

static rd_kafka_resp_err_t on_thread_start(rd_kafka_t *rk,
					   rd_kafka_thread_type_t type,
					   const char *name, void *opaque)
{
	(void)rk;
	(void)name;
	(void)opaque;
	if (type == RD_KAFKA_THREAD_MAIN &&
	    prctl(PR_SET_TIMERSLACK, MAIN_TIMER_SLACK_NS, 0, 0, 0) < 0)
		LOG_DEBUG("timer slack unchanged",
			  LOG_S("thread", "rdk:main"));
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf,
				  void *opaque, char *err, size_t err_size)
{
	(void)conf;
	(void)err;
	(void)err_size;
	return rd_kafka_interceptor_add_on_thread_start(
		rk, "extractd-timer-slack", on_thread_start, opaque);
}

rd_kafka_t *kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
		      char *err, size_t err_size)
{
	rd_kafka_t *rk;

	if (rd_kafka_conf_interceptor_add_on_new(conf, "extractd-timer-slack",
						 on_new, NULL)) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, err_size, "its thread hook was refused");
		return NULL;
	}
	rk = rd_kafka_new(type, conf, err, err_size);
	/* On failure the conf is not destroyed: librdkafka 2.0's failure
	 * path has freed its interceptors already, and destroying the conf
	 * would free them again (librdkafka issue 4142, fixed upstream in
	 * 2025). */
	return rk;
}

int kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
		   const char *value, char *err, size_t err_size)
{
	char why[256];

	if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) !=
	    RD_KAFKA_CONF_OK) {
		snprintf(err, err_size, "%s: %s", name, why);
		return -1;
	}
	return 0;
}

/* text with every occurrence of secret replaced by "(redacted)". */
static void scrub_one(char *text, size_t size, const char *secret)
{
	size_t len = strlen(secret), n = 0;
	const char *p = text;
	char out[1024];

	if (!len || !strstr(text, secret))
		return;
	while (*p && n + 1 < sizeof(out)) {
		if (strncmp(p, secret, len) == 0) {
			n += (size_t)snprintf(out + n, sizeof(out) - n,
					      "(redacted)");
			if (n >= sizeof(out))
				n = sizeof(out) - 1;
			p += len;
		} else {
			out[n++] = *p++;
		}
	}
	if (n >= size)
		n = size - 1;
	memcpy(text, out, n);
	text[n] = '\0';
}

/* librdkafka's words about a configuration as one line (some end in a
 * line break), without its secrets: a reason may quote a value. */
static void scrub(const struct extractd_config *cfg, char *text, size_t size)
{
	size_t i, len;

	for (i = 0; i < cfg->kafka.n_properties; i++) {
		const struct cfg_property *p = &cfg->kafka.properties[i];

		if (cfg_secret_property(p->name))
			scrub_one(text, size, p->value);
	}
	len = strlen(text);
	while (len > 0 && (unsigned char)text[len - 1] <= ' ')
		text[--len] = '\0';
	for (i = 0; i < len; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			text[i] = '?';
}

/* Where a kafka.properties entry was set ("FILE:LINE", "-s:N"). */
static const char *prop_origin(const struct extractd_config *cfg,
			       const char *name)
{
	char path[320];

	if ((size_t)snprintf(path, sizeof(path), "kafka.properties.%s",
			     name) >= sizeof(path))
		return cfg_origin(cfg, "kafka.properties");
	return cfg_origin(cfg, path);
}

#define KAFKA_PAIRS_MAX 16 /**< (name, value) pairs in each list */

struct kafka_props {
	const char *role;     /**< "consumer" or "producer", for messages */
	rd_kafka_type_t type;
	bool transactional;   /**< gets a transactional.id (exactly-once) */
	bool failed;          /**< a setting could not be kept */
	/** Name, value pairs (copies), NULL-terminated. */
	char *defaults[2 * KAFKA_PAIRS_MAX + 1];
	char *required[2 * KAFKA_PAIRS_MAX + 1];
};

struct kafka_props *kafka_props_new(const char *role, rd_kafka_type_t type,
				    bool transactional)
{
	struct kafka_props *props = calloc(1, sizeof(*props));

	if (!props)
		return NULL;
	props->role = role;
	props->type = type;
	props->transactional = transactional;
	return props;
}

static void add_pair(struct kafka_props *props, char **pairs,
		     const char *name, const char *value)
{
	size_t n = 0;

	while (pairs[n])
		n += 2;
	if (n == 2 * KAFKA_PAIRS_MAX) {
		props->failed = true;
		return;
	}
	pairs[n] = strdup(name);
	pairs[n + 1] = strdup(value);
	if (!pairs[n] || !pairs[n + 1]) {
		free(pairs[n]);
		free(pairs[n + 1]);
		pairs[n] = pairs[n + 1] = NULL;
		props->failed = true;
	}
}

void kafka_props_default(struct kafka_props *props, const char *name,
			 const char *value)
{
	add_pair(props, props->defaults, name, value);
}

void kafka_props_require(struct kafka_props *props, const char *name,
			 const char *value)
{
	add_pair(props, props->required, name, value);
}

void kafka_props_free(struct kafka_props *props)
{
	size_t i;

	if (!props)
		return;
	for (i = 0; props->defaults[i]; i++)
		free(props->defaults[i]);
	for (i = 0; props->required[i]; i++)
		free(props->required[i]);
	free(props);
}

/* extractd's own pairs: a refusal is ours, not the user's. */
static int set_pairs(rd_kafka_conf_t *conf, char *const *pairs,
		     const char *role, char *err, size_t err_size)
{
	char why[512];
	size_t i;

	for (i = 0; pairs[i]; i += 2) {
		if (kafka_conf_set(conf, pairs[i], pairs[i + 1], why,
				   sizeof(why)) < 0) {
			snprintf(err, err_size, "cannot configure the %s: %s",
				 role, why);
			return -1;
		}
	}
	return 0;
}

rd_kafka_conf_t *kafka_conf_new(const struct extractd_config *cfg,
				const struct kafka_props *props, char *err,
				size_t err_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char why[512];
	size_t i;

	if (props->failed) {
		snprintf(err, err_size, "cannot configure the %s: out of memory",
			 props->role);
		goto fail;
	}
	if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka.brokers,
			      why, sizeof(why)) != RD_KAFKA_CONF_OK) {
		snprintf(err, err_size, "%s: kafka.brokers: %s",
			 cfg_origin(cfg, "kafka.brokers"), why);
		goto fail;
	}
	if (set_pairs(conf, props->defaults, props->role, err, err_size) < 0)
		goto fail;
	for (i = 0; i < cfg->kafka.n_properties; i++) {
		const struct cfg_property *p = &cfg->kafka.properties[i];

		if (rd_kafka_conf_set(conf, p->name, p->value, why,
				      sizeof(why)) != RD_KAFKA_CONF_OK) {
			scrub(cfg, why, sizeof(why));
			snprintf(err, err_size, "%s: kafka.properties: %s: %s",
				 prop_origin(cfg, p->name), p->name, why);
			goto fail;
		}
	}
	if (set_pairs(conf, props->required, props->role, err, err_size) < 0)
		goto fail;
	rd_kafka_conf_set_log_cb(conf, on_log);
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

/*
 * The check: a kafka.properties entry that a required setting replaces
 * (they are set after kafka.properties) is reported. Compared as
 * librdkafka reads them back, so an alias ("request.required.acks" for
 * "acks") or another spelling of the same value counts right.
 */
static void warn_replaced(const struct extractd_config *cfg,
			  const struct kafka_props *props,
			  const rd_kafka_conf_t *conf, kafka_warn_fn *warn,
			  void *arg)
{
	rd_kafka_conf_t *mine = rd_kafka_conf_new();
	char want[256], got[256], why[256], msg[1024];
	size_t i, j, wn, gn;

	for (i = 0; i < cfg->kafka.n_properties; i++) {
		const struct cfg_property *p = &cfg->kafka.properties[i];

		wn = sizeof(want);
		gn = sizeof(got);
		if (rd_kafka_conf_set(mine, p->name, p->value, why,
				      sizeof(why)) != RD_KAFKA_CONF_OK ||
		    rd_kafka_conf_get(mine, p->name, want, &wn) !=
			    RD_KAFKA_CONF_OK ||
		    rd_kafka_conf_get(conf, p->name, got, &gn) !=
			    RD_KAFKA_CONF_OK ||
		    wn > sizeof(want) || gn > sizeof(got) ||
		    strcmp(want, got) == 0)
			continue;
		/* got is extractd's own value (no secret), as librdkafka
		 * reads it back; as written in the list when named so. */
		for (j = 0; props->required[j]; j += 2)
			if (strcmp(props->required[j], p->name) == 0)
				snprintf(got, sizeof(got), "%s",
					 props->required[j + 1]);
		snprintf(msg, sizeof(msg), "%s: kafka.properties: %s: ignored "
			 "by the %s, which extractd runs with \"%s\" (its "
			 "delivery guarantees rest on it)",
			 prop_origin(cfg, p->name), p->name, props->role, got);
		warn(msg, arg);
	}
	rd_kafka_conf_destroy(mine);
}

/* The first error line librdkafka logs while the check's client is made
 * (an SSL file's reason, say). Any librdkafka thread may log. */
struct check_log {
	pthread_mutex_t lock;
	char line[512];
};

static void on_check_log(const rd_kafka_t *rk, int level, const char *fac,
			 const char *buf)
{
	struct check_log *cl = rd_kafka_opaque(rk);

	(void)fac;
	if (level > 3 || !cl)
		return;
	pthread_mutex_lock(&cl->lock);
	if (!cl->line[0])
		snprintf(cl->line, sizeof(cl->line), "%s", buf);
	pthread_mutex_unlock(&cl->lock);
}

/* The kafka.properties entry a reason names (the longest), or NULL. */
static const struct cfg_property *named_in(const struct extractd_config *cfg,
					   const char *reason)
{
	const struct cfg_property *best = NULL;
	size_t i;

	for (i = 0; i < cfg->kafka.n_properties; i++) {
		const struct cfg_property *p = &cfg->kafka.properties[i];

		if (strstr(reason, p->name) &&
		    (!best || strlen(p->name) > strlen(best->name)))
			best = p;
	}
	return best;
}

int kafka_check(const struct extractd_config *cfg,
		const struct kafka_props *props, kafka_warn_fn *warn,
		void *arg, char *err, size_t err_size)
{
	struct check_log cl = { .line = "" };
	const struct cfg_property *named;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char why[512], more[600] = "", log_line[sizeof(cl.line)];
	size_t i;

	conf = kafka_conf_new(cfg, props, err, err_size);
	if (!conf)
		return -1;
	if (warn)
		warn_replaced(cfg, props, conf, warn, arg);
	for (i = 0; props->transactional && i < cfg->kafka.n_properties; i++)
		if (!strcmp(cfg->kafka.properties[i].name, "transactional.id"))
			break;
	/* No brokers: the client connects nowhere, so a transactional.id
	 * fences no one. */
	if ((props->transactional && i == cfg->kafka.n_properties &&
	     kafka_conf_set(conf, "transactional.id", "extractd-check", why,
			    sizeof(why)) < 0) ||
	    kafka_conf_set(conf, "bootstrap.servers", "", why,
			   sizeof(why)) < 0) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, err_size, "cannot configure the %s: %s",
			 props->role, why);
		return -1;
	}
	pthread_mutex_init(&cl.lock, NULL);
	rd_kafka_conf_set_log_cb(conf, on_check_log);
	rd_kafka_conf_set_opaque(conf, &cl);
	rk = rd_kafka_new(props->type, conf, why, sizeof(why));
	if (rk) {
		rd_kafka_destroy(rk); /* joins its threads: cl is ours again */
		pthread_mutex_destroy(&cl.lock);
		return 0;
	}
	rd_kafka_conf_destroy(conf);
	pthread_mutex_lock(&cl.lock); /* a failed rd_kafka_new() joins */
	memcpy(log_line, cl.line, sizeof(log_line));
	pthread_mutex_unlock(&cl.lock);
	pthread_mutex_destroy(&cl.lock);
	scrub(cfg, why, sizeof(why));
	if (log_line[0]) {
		const char *line = log_line;

		scrub(cfg, log_line, sizeof(log_line));
		/* "[thrd:app]: " says nothing to the reader. */
		if (line[0] == '[' && strstr(line, "]: "))
			line = strstr(line, "]: ") + 3;
		snprintf(more, sizeof(more), " (%s)", line);
	}
	named = named_in(cfg, why);
	if (named)
		snprintf(err, err_size, "%s: kafka.properties: %s: %s%s",
			 prop_origin(cfg, named->name), named->name, why, more);
	else if (cfg->kafka.n_properties)
		snprintf(err, err_size, "%s: kafka.properties: the %s refuses "
			 "them: %s%s", cfg_origin(cfg, "kafka.properties"),
			 props->role, why, more);
	else
		snprintf(err, err_size, "cannot create the %s: %s%s",
			 props->role, why, more);
	return -1;
}
