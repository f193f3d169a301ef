/*
 * batchstate: the batches in flight of a consumer group, kept in a Kafka
 * topic (batch.state_topic, compacted) so that whoever owns a partition
 * next (a restart, another instance) finds the batches its records are
 * in, and downloads them instead of paying for them again.
 *
 * One record per batch: key "GROUP/TOPIC/PARTITION/FIRST", value a JSON
 * object (the batch id, its input file, the offset range it covers, the
 * request format), written when the batch is created; a tombstone (null
 * value) once the group's committed offset has passed the range, so
 * compaction forgets it. Every instance tails the whole topic in a thread
 * of its own and keeps the entries of its group and input topic in a
 * table; a partition's new owner waits (batchstate_sync) until the table
 * holds everything written before its assignment.
 *
 * DESIGN
 * ------
 * The tail thread owns the reader (a consumer outside any group, assigned
 * every partition of the state topic from the start); the writer (an
 * idempotent producer, acks=all) is the caller's: one thread at a time
 * (the batcher's). One mutex guards the table and the positions read;
 * nothing calls out under it. A condition variable wakes syncs when the
 * tail moves. Entries are copied out, never lent.
 */
#ifndef EXTRACTD_BATCHSTATE_H
#define EXTRACTD_BATCHSTATE_H

#include "batch.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batchstate;

/** One batch in flight. */
struct batchstate_entry {
	char topic[256];                 /**< the input topic */
	int32_t partition;
	int64_t first, last;             /**< the offsets it covers */
	uint64_t count;                  /**< requests in it */
	char batch_id[BATCH_ID_MAX];
	char input_file[BATCH_ID_MAX];
	enum cfg_llm_mode mode;          /**< the request format its lines
					   *  were written in */
};

/**
 * @brief The state of cfg's group in cfg->batch.state_topic: its reader
 * and writer (not yet reading: batchstate_start()).
 * @returns it, or NULL with err set.
 */
struct batchstate *batchstate_new(const struct extractd_config *cfg,
				  char *err, size_t err_size);

/** Start the tail thread; -1 with err set. */
int batchstate_start(struct batchstate *bs, char *err, size_t err_size);

/** Stop and join the tail thread, close both clients; NULL is fine. */
void batchstate_free(struct batchstate *bs);

/**
 * @brief Wait until the table holds every record written to the topic
 * before this call (the topic's end now), at most timeout_ms.
 * @returns 0, or -1 (the topic cannot be read: no such topic, no broker)
 *          with the reason in err.
 */
int batchstate_sync(struct batchstate *bs, unsigned timeout_ms, char *err,
		    size_t err_size);

/** @brief The entry covering offset of topic's partition, if any: true
 * with it in *ret. */
bool batchstate_find(struct batchstate *bs, const char *topic,
		     int32_t partition, int64_t offset,
		     struct batchstate_entry *ret);

/**
 * @brief The entries of topic's partition whose range ends before
 * position (its records are committed: the batch is over), at most max
 * of them into ret.
 * @returns how many.
 */
size_t batchstate_passed(struct batchstate *bs, const char *topic,
			 int32_t partition, int64_t position,
			 struct batchstate_entry *ret, size_t max);

/**
 * @brief Write an entry (a batch was created) and wait for the brokers to
 * have it, at most timeout_ms; the table has it at once.
 * @returns 0, or -1 with the reason in err.
 */
int batchstate_put(struct batchstate *bs, const struct batchstate_entry *e,
		   unsigned timeout_ms, char *err, size_t err_size);

/** @brief Forget an entry: a tombstone for it, waited for as
 * batchstate_put() waits. */
int batchstate_drop(struct batchstate *bs, const struct batchstate_entry *e,
		    unsigned timeout_ms, char *err, size_t err_size);

/** The entries in the table now (for metrics and tests). */
size_t batchstate_count(struct batchstate *bs);

#endif
