/*
 * offsets: which input offset of one partition may be committed.
 *
 * Outputs are delivered out of order; committing offset N tells Kafka
 * that everything below N is done. So the tracker commits only the
 * contiguous prefix of delivered offsets: with 5, 6, 7 consumed and 5, 7
 * delivered, the commit position is 6 (5 is done, 6 is not), and becomes
 * 8 when 6 is delivered. Offsets are those received, gaps allowed.
 *
 * An offset can also be abandoned: its record will not be delivered now
 * (cut short at shutdown, or dropped behind one that was), and is done
 * again by whoever reads the partition next. Nothing waits for it any
 * more (offtrack_waiting), but the commit position never passes it: the
 * prefix stops there until the tracker is reset.
 *
 * Not thread-safe: the owner's lock guards it.
 */
#ifndef EXTRACTD_OFFSETS_H
#define EXTRACTD_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

struct offtrack;

/** A new tracker, or NULL on out of memory. */
struct offtrack *offtrack_new(void);

/** Free a tracker; NULL is fine. */
void offtrack_free(struct offtrack *t);

/**
 * @brief Note an offset handed to processing.
 * @returns 0, -ERANGE when not above every offset added, -ENOMEM.
 */
int offtrack_add(struct offtrack *t, int64_t offset);

/**
 * @brief Note that an added offset's output (or dead letter) is delivered.
 * @param ret_commit set to the new commit position (the next offset to
 *        read) when it moved, else left alone
 * @returns 1 when the commit position moved, 0 when it did not, -ENOENT
 *          for an offset that is not pending.
 */
int offtrack_done(struct offtrack *t, int64_t offset, int64_t *ret_commit);

/**
 * @brief Note that an added offset will not be delivered: it stops the
 * commit position for good (until offtrack_reset), and nobody waits for
 * it.
 * @returns 0, -ENOENT for an offset that is not waiting (never added,
 *          delivered, or abandoned before).
 */
int offtrack_abandon(struct offtrack *t, int64_t offset);

/** Offsets added and not yet behind the commit position. */
size_t offtrack_pending(const struct offtrack *t);

/** Offsets added and neither delivered nor abandoned: what a wait for the
 * partition's work in flight waits for. */
size_t offtrack_waiting(const struct offtrack *t);

/** The commit position, or -1 when nothing was delivered yet. */
int64_t offtrack_position(const struct offtrack *t);

/** Forget everything (the partition was revoked and assigned again). */
void offtrack_reset(struct offtrack *t);

#endif
