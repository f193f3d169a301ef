/*
 * producer: the idempotent producer (acks=all) shared by every worker,
 * and the thread that serves its delivery reports.
 */
#ifndef EXTRACTD_PRODUCER_H
#define EXTRACTD_PRODUCER_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

struct pipeline;
struct producer;
struct job;
struct extractd_config;
struct kafka_props;

/**
 * @brief The producer's own librdkafka properties (kafka.h), as
 * producer_new() sets them; --check-config reads the same.
 */
void producer_kafka_props(const struct extractd_config *cfg,
			  struct kafka_props *props);

/** The producer and its poll thread, or NULL with err set. */
struct producer *producer_new(struct pipeline *pl, char *err,
			      size_t err_size);

/**
 * @brief Produce a job's output or dead letter, the job as the opaque:
 * its delivery report calls pipeline_delivered(). Waits while the
 * producer queue is full.
 * @returns 0 (librdkafka holds the job now), -1 on a permanent error
 *          (the job stays the caller's).
 */
int producer_send(struct producer *p, struct job *job);

/*
 * exactly-once (output.delivery): outputs and input offsets go to Kafka in
 * transactions. Whoever produces holds the transaction lock, and so does
 * the committer, so a commit never splits a record's release.
 */
bool producer_transactional(const struct producer *p);
void producer_txn_lock(struct producer *p);
void producer_txn_unlock(struct producer *p);

/**
 * @brief With the transaction lock held: add the input offsets (the next
 * offset to read, per partition) to the transaction, commit it, begin the
 * next.
 * @returns 0 when committed; 1 when it had to be aborted (a new one is
 *          open: the caller rewinds to the committed offsets); -1 when
 *          fatal (fenced: the stop is requested).
 */
int producer_txn_commit(struct producer *p, rd_kafka_t *consumer,
			rd_kafka_topic_partition_list_t *offsets,
			unsigned timeout_ms);

/** With the lock held: abort the open transaction, begin the next;
 * 0, or -1 when fatal. Each librdkafka call waits at most timeout_ms. */
int producer_txn_abort(struct producer *p, unsigned timeout_ms);

/**
 * @brief Abort an open transaction and flush, within the shutdown
 * deadline (pipeline_stop_left_ms), stop the poll thread, destroy; NULL
 * is fine.
 * @returns the number of messages left undelivered.
 */
int producer_free(struct producer *p);

#endif
