/*
 * producer: the idempotent producer (acks=all) shared by every worker,
 * and the thread that serves its delivery reports.
 *
 * It produces records it is given (a value, a key, headers and an opaque
 * for the delivery report); it knows nothing of jobs. Its caller is the
 * pipeline; the consumer drives its transactions (exactly-once).
 */
#ifndef EXTRACTD_PRODUCER_H
#define EXTRACTD_PRODUCER_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct producer;
struct extractd_config;
struct kafka_props;
struct stop;

/** Where a record goes: kafka.output_topic or kafka.dlq_topic. */
enum producer_dest {
	PRODUCER_OUTPUT,
	PRODUCER_DLQ,
};

/** A record's delivery report (the producer's poll thread, or the one
 * that flushes): opaque is what producer_send() was given. */
typedef void producer_delivered_fn(void *opaque, rd_kafka_resp_err_t err);

/** The input partition a record comes from (output.partitioning =
 * source, and auto in offset order for a record without a key). */
typedef int32_t producer_source_fn(const void *opaque);

/**
 * @brief The producer's own librdkafka properties (kafka.h), as
 * producer_new() sets them; --check-config reads the same. The caller
 * frees them (kafka_props_free); NULL when out of memory.
 */
struct kafka_props *producer_kafka_props(const struct extractd_config *cfg);

/**
 * @brief The producer and its poll thread, or NULL with err set. A fatal
 * producer error requests the stop (stop.h) with status 1.
 */
struct producer *producer_new(const struct extractd_config *cfg,
			      struct stop *stop,
			      producer_delivered_fn *delivered,
			      producer_source_fn *source, char *err,
			      size_t err_size);

/*
 * Sizes for records a topic may refuse as too large (pipeline.c says what
 * happens to them). Every Kafka topic takes PRODUCER_SAFE_BYTES (Kafka's
 * default max.message.bytes is 1 MiB); a record above it may be refused.
 * A bounded dead letter carries at most PRODUCER_CUT_VALUE bytes of its
 * input and PRODUCER_CUT_KEY of its key, so with its bounded headers it
 * stays well below PRODUCER_SAFE_BYTES.
 */
#define PRODUCER_SAFE_BYTES 65536
#define PRODUCER_CUT_VALUE 32768
#define PRODUCER_CUT_KEY 8192

/**
 * @brief Hand a record to librdkafka, once, with opaque for its delivery
 * report. Never waits. The value and key must live until the report; the
 * headers are the producer's in every case.
 * @returns 0: librdkafka holds the record now. Else nothing was produced:
 *          -ENOBUFS: the producer queue is full; producer_wait_space(),
 *          then try again;
 *          -EMSGSIZE: larger than librdkafka's message.max.bytes;
 *          -ECANCELED: the open transaction must be aborted (the record
 *          is done again after the rewind);
 *          -EIO: a permanent error, *ret_err says which.
 */
int producer_send(struct producer *p, enum producer_dest dest,
		  const void *value, size_t len, const void *key,
		  size_t key_len, rd_kafka_headers_t *headers, void *opaque,
		  rd_kafka_resp_err_t *ret_err);

/**
 * @brief The headers of an input message, for its output or dead letter
 * to carry (librdkafka's: borrowed, valid while msg lives), or NULL when
 * it has none.
 */
const rd_kafka_headers_t *producer_input_headers(rd_kafka_message_t *msg);

/** After -ENOBUFS: wait until a delivery report was served, at most ms. */
void producer_wait_space(struct producer *p, int ms);

/** The topic name of dest. */
const char *producer_topic(const struct producer *p, enum producer_dest dest);

/** The broker refused a record of bytes (value, key and headers) for
 * dest as too large: producer_too_large() says so from now on for a
 * record as large. */
void producer_refused(struct producer *p, enum producer_dest dest,
		      size_t bytes);

/** Whether a record of bytes is as large as one dest refused before. */
bool producer_too_large(struct producer *p, enum producer_dest dest,
			size_t bytes);

/*
 * exactly-once (output.delivery): outputs and input offsets go to Kafka in
 * transactions. Whoever produces holds the transaction lock, and so does
 * the committer, so a commit never splits a record's release (its
 * produce and the mark of its offset as produced). Lock order: the
 * transaction lock, then a ledger's (ledger.h).
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
 * deadline (stop_left_ms), stop the poll thread, destroy; NULL is fine.
 * @returns the number of messages left undelivered.
 */
int producer_free(struct producer *p);

#endif
