/*
 * kafka: what the consumer and the producer configure alike (brokers,
 * kafka.properties, logging and error callbacks).
 */
#ifndef EXTRACTD_KAFKA_H
#define EXTRACTD_KAFKA_H

#include "config.h"

#include <librdkafka/rdkafka.h>

/**
 * @brief A librdkafka configuration: the brokers, then defaults (name,
 * value pairs, NULL-terminated) that kafka.properties may change, then
 * kafka.properties, then the settings extractd's guarantees rest on,
 * which nothing overrides; and our log callback.
 * @returns the conf (the caller owns it), or NULL with err set.
 */
rd_kafka_conf_t *kafka_conf_new(const struct extractd_config *cfg,
				const char *const *defaults,
				const char *const *required, char *err,
				size_t err_size);

/** Set one property, with librdkafka's reason in err on failure. */
int kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
		   const char *value, char *err, size_t err_size);

#endif
