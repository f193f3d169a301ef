/*
 * kafka: see kafka.h.
 */
#include "kafka.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

/* librdkafka's syslog levels onto ours; its lines go to our log. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	enum log_level lvl = level <= 3 ? LOG_LVL_ERROR
			   : level == 4 ? LOG_LVL_WARN
			   : level <= 6 ? LOG_LVL_INFO
					: LOG_LVL_DEBUG;
	char name[128], facility[64], text[1024];

	if (!log_enabled(lvl))
		return;
	log_write(lvl, "librdkafka", "\"client\":%s,\"facility\":%s,\"text\":%s",
		  log_str(name, sizeof(name), rd_kafka_name(rk)),
		  log_str(facility, sizeof(facility), fac),
		  log_str(text, sizeof(text), buf));
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

static int set_pairs(rd_kafka_conf_t *conf, const char *const *pairs,
		     char *err, size_t err_size)
{
	size_t i;

	for (i = 0; pairs && pairs[i]; i += 2) {
		if (kafka_conf_set(conf, pairs[i], pairs[i + 1], err,
				   err_size) < 0)
			return -1;
	}
	return 0;
}

rd_kafka_conf_t *kafka_conf_new(const struct extractd_config *cfg,
				const char *const *defaults,
				const char *const *required, char *err,
				size_t err_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	size_t i;

	if (kafka_conf_set(conf, "bootstrap.servers", cfg->kafka.brokers, err,
			   err_size) < 0 ||
	    set_pairs(conf, defaults, err, err_size) < 0)
		goto fail;
	for (i = 0; i < cfg->kafka.n_properties; i++) {
		const struct cfg_property *p = &cfg->kafka.properties[i];

		if (kafka_conf_set(conf, p->name, p->value, err, err_size) < 0)
			goto fail;
	}
	if (set_pairs(conf, required, err, err_size) < 0)
		goto fail;
	rd_kafka_conf_set_log_cb(conf, on_log);
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}
