/*
 * sequencer: see sequencer.h.
 *
 * DESIGN
 * ------
 * A ring buffer of (offset, item) slots in consumption order; head is the
 * oldest. Offsets increase along the ring, so completing an offset finds
 * its slot by binary search (no hash, no per-offset allocation). The ring
 * doubles when full; its size is bounded by what the caller admits
 * (pool.max_in_flight per process), so it never grows with the backlog.
 */
#include "sequencer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#define SEQ_MIN_CAP 16

struct seq_slot {
	int64_t offset;
	void *item; /**< NULL while waiting */
};

struct sequencer {
	struct seq_slot *ring;
	size_t cap;   /**< power of two */
	size_t head;  /**< index of the oldest slot */
	size_t count; /**< slots in use */
	int64_t last; /**< the highest offset added, when any */
	bool any;     /**< an offset was added since new or clear */
};

static struct seq_slot *seq_at(const struct sequencer *seq, size_t i)
{
	return &seq->ring[(seq->head + i) & (seq->cap - 1)];
}

struct sequencer *seq_new(void)
{
	struct sequencer *seq = calloc(1, sizeof(*seq));

	if (!seq)
		return NULL;
	seq->ring = calloc(SEQ_MIN_CAP, sizeof(*seq->ring));
	if (!seq->ring) {
		free(seq);
		return NULL;
	}
	seq->cap = SEQ_MIN_CAP;
	return seq;
}

void seq_free(struct sequencer *seq)
{
	if (!seq)
		return;
	free(seq->ring);
	free(seq);
}

static int seq_grow(struct sequencer *seq)
{
	size_t cap = seq->cap * 2, i;
	struct seq_slot *ring = malloc(cap * sizeof(*ring));

	if (!ring)
		return -ENOMEM;
	for (i = 0; i < seq->count; i++)
		ring[i] = *seq_at(seq, i);
	free(seq->ring);
	seq->ring = ring;
	seq->cap = cap;
	seq->head = 0;
	return 0;
}

int seq_add(struct sequencer *seq, int64_t offset)
{
	struct seq_slot *slot;

	if (seq->any && offset <= seq->last)
		return -ERANGE;
	if (seq->count == seq->cap && seq_grow(seq) < 0)
		return -ENOMEM;
	seq->last = offset;
	seq->any = true;
	slot = seq_at(seq, seq->count++);
	slot->offset = offset;
	slot->item = NULL;
	return 0;
}

/* The slot holding offset, or NULL: binary search over the ring. */
static struct seq_slot *seq_find(const struct sequencer *seq, int64_t offset)
{
	size_t lo = 0, hi = seq->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct seq_slot *slot = seq_at(seq, mid);

		if (slot->offset == offset)
			return slot;
		if (slot->offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int seq_complete(struct sequencer *seq, int64_t offset, void *item)
{
	struct seq_slot *slot;

	if (!item)
		return -EINVAL;
	slot = seq_find(seq, offset);
	if (!slot || slot->item)
		return -ENOENT;
	slot->item = item;
	return 0;
}

void *seq_pop(struct sequencer *seq, int64_t *ret_offset)
{
	struct seq_slot *slot;
	void *item;

	if (!seq->count)
		return NULL;
	slot = seq_at(seq, 0);
	if (!slot->item)
		return NULL;
	item = slot->item;
	if (ret_offset)
		*ret_offset = slot->offset;
	seq->head = (seq->head + 1) & (seq->cap - 1);
	seq->count--;
	return item;
}

size_t seq_pending(const struct sequencer *seq)
{
	return seq->count;
}

void seq_clear(struct sequencer *seq, void (*drop)(void *item))
{
	size_t i;

	for (i = 0; i < seq->count; i++) {
		struct seq_slot *slot = seq_at(seq, i);

		if (slot->item && drop)
			drop(slot->item);
	}
	seq->head = 0;
	seq->count = 0;
	seq->any = false;
}
