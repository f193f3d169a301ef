/*
 * consumer: one consumer thread with its own rd_kafka_t in the group.
 *
 * It polls and hands each message to the pipeline, which queues it in
 * admission for a slot (while that queue is full the consumer holds
 * messages, pausing its partitions and polling on, so the group session
 * and max.poll.interval.ms stay satisfied however slow the LLM is). Its rebalance callback owns the partition
 * table: states are made on assign, and on revoke the delivered prefix is
 * committed synchronously before the partitions are let go.
 */
#ifndef EXTRACTD_CONSUMER_H
#define EXTRACTD_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pipeline;
struct consumer;
struct extractd_config;
struct kafka_props;

/**
 * @brief The consumer's own librdkafka properties (kafka.h), as
 * consumer_new() sets them; --check-config reads the same. The caller
 * frees them (kafka_props_free); NULL when out of memory.
 */
struct kafka_props *consumer_kafka_props(const struct extractd_config *cfg);

/** A consumer subscribed to the input topic, or NULL with err set. */
struct consumer *consumer_new(struct pipeline *pl, unsigned index, char *err,
			      size_t err_size);

/** Start its thread; -1 with err set when it cannot. */
int consumer_start(struct consumer *c, char *err, size_t err_size);

/**
 * @brief Wait for the thread: it leaves once pipeline stopping is set and
 * its work has drained, after a final synchronous commit and close.
 */
void consumer_join(struct consumer *c);

/**
 * @brief End the consumer loop's wait for a message now (it waits up to
 * a second when nothing is held), so that it sees the stop at once. Any
 * thread, after stop_begin(); NULL is fine.
 */
void consumer_wake(struct consumer *c);

/** Free a joined (or never started) consumer; NULL is fine. */
void consumer_free(struct consumer *c);

/**
 * @brief When the consumer loop last turned (CLOCK_MONOTONIC ns; set at
 * consumer_start). Any thread.
 */
int64_t consumer_heartbeat_ns(const struct consumer *c);

/** Partitions assigned to it now. Any thread. */
unsigned consumer_assigned(const struct consumer *c);

/**
 * @brief Whether librdkafka reported all brokers down since the consumer
 * last heard from one (an assignment, or a broker UP in its statistics).
 * Any thread.
 */
bool consumer_brokers_down(const struct consumer *c);

#endif
