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

/*
 * Sizes for records a topic may refuse as too large (pipeline.h says what
 * happens to them). Every Kafka topic takes PRODUCER_SAFE_BYTES (Kafka's
 * default max.message.bytes is 1 MiB); a record above it may be refused.
 * A bounded dead letter (job->cut) carries at most PRODUCER_CUT_VALUE
 * bytes of its input and PRODUCER_CUT_KEY of its key, so with its bounded
 * headers it stays well below PRODUCER_SAFE_BYTES.
 */
#define PRODUCER_SAFE_BYTES 65536
#define PRODUCER_CUT_VALUE 32768
#define PRODUCER_CUT_KEY 8192

/**
 * @brief Hand a job's record to librdkafka, once, the job as the opaque
 * (its delivery report calls pipeline_delivered()): the output, the dead
 * letter, or with job->cut the bounded dead letter. Never waits.
 * @returns 0: librdkafka holds the job now. Else the job stays the
 *          caller's:
 *          -ENOBUFS: the producer queue is full; producer_wait_space(),
 *          then try again;
 *          -EMSGSIZE: larger than librdkafka's message.max.bytes;
 *          -EFBIG: as large as a record the broker refused for that
 *          topic before (producer_refused);
 *          -ECANCELED: the open transaction must be aborted (the record
 *          is done again after the rewind);
 *          -EIO: a permanent error, logged, the stop requested.
 */
int producer_send(struct producer *p, struct job *job);

/** After -ENOBUFS: wait until a delivery report was served, at most ms. */
void producer_wait_space(struct producer *p, int ms);

/** About how many bytes the job's record takes on the wire: value, key,
 * headers. */
size_t producer_record_bytes(const struct job *job);

/** The topic the job's record goes to. */
const char *producer_topic(const struct producer *p, const struct job *job);

/** The broker refused the job's record (bytes as producer_record_bytes
 * says) as too large: from now on a record as large for that topic gets
 * -EFBIG from producer_send(), before it is produced. */
void producer_refused(struct producer *p, const struct job *job,
		      size_t bytes);

/*
 * exactly-once (output.delivery): outputs and input offsets go to Kafka in
 * transactions. Whoever produces holds the transaction lock, and so does
 * the committer, so a commit never splits a record's release (its
 * produce and the mark of its offset as produced). Lock order: the
 * transaction lock, then a partition's lock.
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
