/*
 * kafka: what the consumer and the producer configure alike (brokers,
 * kafka.properties, logging and error callbacks), and the check that
 * librdkafka takes their configurations, run before any client starts
 * (--check-config and start-up alike).
 *
 * Each client's own properties come from one place, its kafka_props
 * (consumer_kafka_props(), producer_kafka_props()): the client is made
 * from them, and the check reads the same lists.
 */
#ifndef EXTRACTD_KAFKA_H
#define EXTRACTD_KAFKA_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

/** What one client sets besides kafka.properties. */
struct kafka_props;

/**
 * @brief Empty lists for a client of type; role ("consumer",
 * "producer") names it in messages; a transactional one gets a
 * transactional.id (exactly-once).
 * @returns the lists, or NULL when out of memory.
 */
struct kafka_props *kafka_props_new(const char *role, rd_kafka_type_t type,
				    bool transactional);

/** A setting made before kafka.properties, which may change it. Copied;
 * a failure (out of memory) shows in kafka_conf_new(). */
void kafka_props_default(struct kafka_props *props, const char *name,
			 const char *value);

/** A setting made after kafka.properties: extractd's guarantees rest on
 * it, so nothing overrides it. Copied, as kafka_props_default(). */
void kafka_props_require(struct kafka_props *props, const char *name,
			 const char *value);

/** Free; NULL is fine. */
void kafka_props_free(struct kafka_props *props);

/**
 * @brief A librdkafka configuration: the brokers, then props' defaults,
 * then kafka.properties, then props' required settings; and our log
 * callback, which leaves broker failures to the error callback the
 * caller must set (they would otherwise be logged twice).
 * @returns the conf (the caller owns it), or NULL with err set; a refused
 *          kafka.properties entry reads "ORIGIN: kafka.properties: NAME:
 *          librdkafka's reason", secrets never shown.
 */
rd_kafka_conf_t *kafka_conf_new(const struct extractd_config *cfg,
				const struct kafka_props *props, char *err,
				size_t err_size);

/**
 * @brief rd_kafka_new() with extractd's thread hook: librdkafka's main
 * thread gets a 2-ms timer slack (it would otherwise spin up to a
 * millisecond before each of its timers). Takes conf in every case: the
 * client owns it, or on failure it is given up without being destroyed,
 * because librdkafka 2.0 frees a failed client's interceptors with the
 * conf's own (destroying the conf would free them twice): a small leak on
 * a path that ends the program. kafka_check() does without the hook, so
 * that its failures, which are config errors, cost nothing.
 * @returns the client, or NULL with librdkafka's reason in err
 */
rd_kafka_t *kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
		      char *err, size_t err_size);

/** Set one property, with librdkafka's reason in err on failure. */
int kafka_conf_set(rd_kafka_conf_t *conf, const char *name,
		   const char *value, char *err, size_t err_size);

/** Where kafka_check() sends a warning (one line, no secret). */
typedef void kafka_warn_fn(const char *msg, void *arg);

/**
 * @brief Check that librdkafka takes the configuration props' client is
 * made with: kafka_conf_new() (each name and value), then rd_kafka_new()
 * on it (rules across properties, SSL files), without brokers so that
 * nothing connects, and destroyed at once. For exactly-once it carries
 * kafka.properties' transactional.id or a stand-in (the producer makes
 * the instance's own at start). Each kafka.properties entry that a
 * required setting replaces goes to warn, with what extractd sets.
 * @returns 0, or -1 with "ORIGIN: kafka.properties: NAME: reason" (or
 *          "ORIGIN: setting: reason") in err.
 */
int kafka_check(const struct extractd_config *cfg,
		const struct kafka_props *props, kafka_warn_fn *warn,
		void *arg, char *err, size_t err_size);

#endif
