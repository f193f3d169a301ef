/*
 * sequencer: releases items in the order of their Kafka offsets, whatever
 * order they complete in.
 *
 * One sequencer per input partition. Offsets are added in the order they
 * are consumed (strictly increasing, gaps allowed: transaction markers and
 * compaction leave holes, so nothing assumes previous + 1). Each added
 * offset later completes with an item; seq_pop() hands out the oldest
 * offset's item once it has completed, so items leave in offset order.
 *
 * The offset tracker (offsets.h) is the same window with "delivered" as
 * the item. Not thread-safe: the owner's lock guards it.
 */
#ifndef EXTRACTD_SEQUENCER_H
#define EXTRACTD_SEQUENCER_H

#include <stddef.h>
#include <stdint.h>

struct sequencer;

/** A new, empty sequencer, or NULL on out of memory. */
struct sequencer *seq_new(void);

/** Free a sequencer and its window (not the items); NULL is fine. */
void seq_free(struct sequencer *seq);

/**
 * @brief Append an offset that will complete later.
 * @returns 0, -ERANGE when offset is not above every offset added before,
 *          -ENOMEM.
 */
int seq_add(struct sequencer *seq, int64_t offset);

/**
 * @brief Complete an added offset with its item (not NULL).
 * @returns 0, -ENOENT when the offset is not waiting, -EINVAL for a NULL
 *          item.
 */
int seq_complete(struct sequencer *seq, int64_t offset, void *item);

/**
 * @brief Take the item of the oldest offset if it has completed.
 * @param ret_offset set to that offset when an item is returned (may be
 *        NULL)
 * @returns the item, or NULL when the oldest offset is still waiting or
 *          nothing is left.
 */
void *seq_pop(struct sequencer *seq, int64_t *ret_offset);

/** Offsets added and not yet popped. */
size_t seq_pending(const struct sequencer *seq);

/**
 * @brief Forget every offset (rebalance), handing each completed item to
 * drop (when drop is not NULL).
 */
void seq_clear(struct sequencer *seq, void (*drop)(void *item));

#endif
