/*
 * ledger: one input partition's books, from the first offset admitted to
 * the last one committed.
 *
 * What it keeps: the offsets in flight and the contiguous delivered
 * prefix (offsets.h), stored for the next commit through the store
 * callback its owner gave it (the consumer's); in offset order the
 * sequencer (sequencer.h) that holds finished jobs until their turn, and
 * the releaser role (one thread at a time produces a partition's ready
 * jobs, so they are produced in offset order); whether the partition is
 * still ours (revoked) and whether its order is broken (a job was
 * abandoned, so nothing after it may be released); with exactly-once,
 * the position produced and the position committed in a transaction; in
 * key order the keys that have a record in flight (keyset.h), so that the
 * consumer admits at most one record of a key at a time.
 *
 * Who calls: the consumer makes a ledger at assignment, revokes it, waits
 * for it to drain, and reads and marks its transaction positions; the
 * pipeline tracks each admitted offset, completes, releases, and marks
 * each delivered or abandoned. In key order the consumer tracks each
 * offset as its record arrives (records are admitted out of offset order,
 * and the tracker takes offsets in order only), abandons those it drops
 * unadmitted, and takes a record's key at its admission; the job gives
 * the key back at its end, once delivered. A ledger is reference-counted (one
 * reference for the assignment, one per job), so a revoked partition's
 * ledger lives until its last job is gone.
 *
 * DESIGN
 * ------
 * One mutex guards everything in a ledger but its reference count (an
 * atomic) and its topic and id (set at creation). The store callback runs
 * under it (it only calls librdkafka, which is thread-safe). No other
 * lock of extractd is ever taken under it, and it is taken under only
 * one: the producer's transaction lock, which the releaser holds from
 * ledger_may_produce() to ledger_produced() and the committer holds
 * around ledger_uncommitted()/ledger_committed(), so a commit never
 * separates a record from its offset. The lock order is therefore:
 *
 *     producer transaction lock  →  a ledger's lock
 *
 * Nothing calls out (produce, HTTP) with a ledger's lock held.
 */
#ifndef EXTRACTD_LEDGER_H
#define EXTRACTD_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ledger;

/** Stores a partition's commit position (the next offset to read), with
 * the ledger's lock held. */
typedef void ledger_store_fn(void *arg, const char *topic, int32_t partition,
			     int64_t position);

/** How a partition's records are released (output.ordering). */
enum ledger_order {
	LEDGER_COMPLETION, /**< as they finish */
	LEDGER_OFFSET,     /**< in offset order: a sequencer */
	LEDGER_KEY,        /**< one record of a key in flight at a time */
};

/**
 * @brief The ledger of partition id of topic, with one reference; in
 * offset order it keeps a sequencer, in key order the keys in flight.
 * store (with arg) stores the delivered prefix; NULL stores nothing
 * (exactly-once: the offsets go with the transactions).
 * @returns the ledger, or NULL when out of memory.
 */
struct ledger *ledger_new(ledger_store_fn *store, void *arg,
			  const char *topic, int32_t id,
			  enum ledger_order order);
void ledger_ref(struct ledger *l);
/** Drop a reference; the last one frees. NULL is fine. */
void ledger_unref(struct ledger *l);

const char *ledger_topic(const struct ledger *l);
int32_t ledger_id(const struct ledger *l);
/** Whether it releases in offset order (it has a sequencer). */
bool ledger_ordered(const struct ledger *l);
/** Whether it keeps key order (it has the keys in flight). */
bool ledger_keyed(const struct ledger *l);

/**
 * @brief Key order: take a key (keyset_hash of it) for a record about to
 * be admitted.
 * @returns 1 taken, 0 when a record of the key is in flight (the record
 *          waits), -ENOMEM.
 */
int ledger_key_take(struct ledger *l, uint64_t hash);

/** Key order: a key taken is free again (its record was delivered, or
 * was not admitted after all). */
void ledger_key_give(struct ledger *l, uint64_t hash);

/**
 * @brief An offset was admitted.
 * @returns 0; -ERANGE when it is in flight already (fetched again after a
 *          pause or a rebalance: the running job covers it); another
 *          negative errno when it cannot be tracked (out of memory).
 */
int ledger_track(struct ledger *l, int64_t offset);

/** Its record was delivered: the delivered prefix may move, and is
 * stored unless the partition was revoked. */
void ledger_delivered(struct ledger *l, int64_t offset);

/** Its job ended undelivered: the offset is given up (never committed
 * past, waited for by nobody). */
void ledger_abandon(struct ledger *l, int64_t offset);

/** Offset order: a finished job takes its place in the sequencer. -1
 * when the sequencer lost the offset: the order is broken now, and the
 * caller abandons the job. */
int ledger_complete(struct ledger *l, int64_t offset, void *job);

/** Offset order: take the releaser role if no thread has it. */
bool ledger_release_begin(struct ledger *l);

/**
 * @brief With the releaser role: the next job whose turn it is, or NULL
 * (the role is given up with it, so no job completed meanwhile is left
 * behind). prev_gone says the previous job was abandoned (the order
 * breaks); *broken says whether the job returned must be abandoned too.
 */
void *ledger_release_next(struct ledger *l, bool prev_gone, bool *broken);

/** Exactly-once: whether a record may still be produced (not broken; with
 * transactions, not revoked: its next owner redoes it). */
bool ledger_may_produce(struct ledger *l, bool txn);

/** Offset order: the record of offset was produced. */
void ledger_produced(struct ledger *l, int64_t offset);

/** Exactly-once: the position produced, if it is past the one committed
 * (then true). */
bool ledger_uncommitted(struct ledger *l, int64_t *position);

/** Exactly-once: position was committed in a transaction. */
void ledger_committed(struct ledger *l, int64_t position);

/** The partition is no longer ours: store nothing more. */
void ledger_revoke(struct ledger *l);

/** After an aborted transaction: no longer ours, and nothing of it is
 * released any more (its jobs produce nothing). */
void ledger_rewound(struct ledger *l);

/** Wait until no offset is waiting for delivery, or the deadline
 * (CLOCK_MONOTONIC ns) passes; returns how many still wait. */
size_t ledger_wait_idle(struct ledger *l, int64_t deadline_ns);

#endif
