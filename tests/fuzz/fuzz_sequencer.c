/*
 * fuzz_sequencer: the sequencer (sequencer.h) and the offset tracker
 * (offsets.h), driven by a byte-coded event stream and checked step by
 * step against a model written here as plain arrays.
 *
 * Both see the same offsets: the input partition's records, consumed in
 * offset order with gaps. Completing a record completes it in the
 * sequencer (ordered release) and marks it delivered in the tracker
 * (commit), as the daemon does. The model:
 * - seq[]: offsets added and not popped, oldest first, each with its item
 *   (NULL while waiting). seq_pop() must return the first one's item iff
 *   it has one, so items leave in offset order and only once every older
 *   offset has completed.
 * - trk[]: offsets added and not behind the commit position. Delivering
 *   one drops the delivered prefix; the position is one past the last
 *   offset of that prefix (-1 before any), and moves exactly when the
 *   prefix grows.
 * - last: the highest offset added since the last reset; anything not
 *   above it is refused with -ERANGE by both.
 *
 * Events, one opcode byte then its argument bytes (missing bytes read 0):
 *   0 ADD g        next offset = last + 1 + gap(g) (first one: base +
 *                  gap(g), base 0 at the start)
 *   1 ADD_OLD g    an offset not above last: -ERANGE from both
 *   2 COMPLETE k   the k-th waiting offset (k % waiting) completes
 *   3 COMPLETE_BAD k  a completed, popped, or never added offset: -ENOENT
 *   4 COMPLETE_NULL k  seq_complete with a NULL item: -EINVAL
 *   5 POP          one seq_pop()
 *   6 POP_ALL      seq_pop() until it returns NULL
 *   7 RESET b      seq_clear() (dropping exactly the completed, unpopped
 *                  items) and offtrack_reset(); the next offsets start
 *                  again at last - 16 + b (a rebalance re-reads offsets
 *                  from the last commit: below, at or above the old ones)
 * Opcode = byte % 8. After every event: pending counts and the commit
 * position match the model. Any mismatch is __builtin_trap().
 */
#include "offsets.h"
#include "sequencer.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                    \
	do {                                                                \
		if (!(cond))                                                \
			__builtin_trap();                                   \
	} while (0)

/* Offsets stay far below INT64_MAX: Kafka offsets do, and "position =
 * offset + 1" is then defined. */
#define FUZZ_OFFSET_MAX ((int64_t)1 << 62)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct slot {
	int64_t offset;
	void *item; /* seq: the item, NULL while waiting; trk: delivered */
};

struct model {
	struct slot *seq;
	size_t n_seq;
	struct slot *trk;
	size_t n_trk;
	size_t cap;
	int64_t last;     /* highest offset added, valid when any_added */
	bool any_added;   /* since the start or the last reset */
	int64_t base;     /* where the first ADD after a reset starts */
	int64_t position; /* commit position, -1 before any */
	uintptr_t next_item;
	size_t dropped;   /* items seq_clear handed back, this reset */
	struct slot *drop_seq; /* what the reset must hand back */
	size_t n_drop_seq;
};

/* The model the drop callback checks against (one run at a time). */
static struct model *current;

struct stream {
	const uint8_t *p, *end;
};

static uint8_t next_byte(struct stream *s)
{
	return s->p < s->end ? *s->p++ : 0;
}

/* Gaps: mostly none or small, sometimes large (compaction). */
static int64_t gap(uint8_t g)
{
	if (g < 0xC0)
		return g & 0x03;
	if (g < 0xF0)
		return g - 0xC0;
	return (int64_t)1 << (g - 0xF0 + 20);
}

static void *new_item(struct model *m)
{
	/* Distinct, non-NULL, never dereferenced. */
	m->next_item += 2;
	return (void *)m->next_item;
}

static void drop_item(void *item)
{
	struct model *m = current;
	size_t i;

	FUZZ_CHECK(item);
	for (i = 0; i < m->n_drop_seq; i++) {
		if (m->drop_seq[i].item == item) {
			/* each item handed back once */
			m->drop_seq[i].item = NULL;
			m->dropped++;
			return;
		}
	}
	__builtin_trap(); /* not a completed, unpopped item */
}

static void check_state(const struct model *m, const struct sequencer *seq,
			const struct offtrack *trk)
{
	FUZZ_CHECK(seq_pending(seq) == m->n_seq);
	FUZZ_CHECK(offtrack_pending(trk) == m->n_trk);
	FUZZ_CHECK(offtrack_position(trk) == m->position);
}

static void ev_add(struct model *m, struct sequencer *seq,
		   struct offtrack *trk, uint8_t g)
{
	int64_t off = m->any_added ? m->last + 1 + gap(g) : m->base + gap(g);

	if (off > FUZZ_OFFSET_MAX)
		return;
	FUZZ_CHECK(seq_add(seq, off) == 0);
	FUZZ_CHECK(offtrack_add(trk, off) == 0);
	m->seq[m->n_seq++] = (struct slot){ .offset = off };
	m->trk[m->n_trk++] = (struct slot){ .offset = off };
	m->last = off;
	m->any_added = true;
}

static void ev_add_old(struct model *m, struct sequencer *seq,
		       struct offtrack *trk, uint8_t g)
{
	int64_t off;

	if (!m->any_added)
		return;
	off = m->last - (int64_t)(g & 0x7F);
	/* An offset below -1 is below the tracker's "nothing" too. */
	if (off < -1)
		off = -1;
	FUZZ_CHECK(seq_add(seq, off) == -ERANGE);
	FUZZ_CHECK(offtrack_add(trk, off) == -ERANGE);
}

static void ev_complete(struct model *m, struct sequencer *seq,
			struct offtrack *trk, uint8_t k)
{
	size_t waiting = 0, i, j;
	int64_t off, commit = INT64_MIN;
	void *item;
	int r;

	for (i = 0; i < m->n_seq; i++)
		waiting += !m->seq[i].item;
	if (!waiting)
		return;
	k %= waiting;
	for (i = 0; i < m->n_seq; i++)
		if (!m->seq[i].item && k-- == 0)
			break;
	FUZZ_CHECK(i < m->n_seq);
	off = m->seq[i].offset;
	item = new_item(m);
	FUZZ_CHECK(seq_complete(seq, off, item) == 0);
	m->seq[i].item = item;

	/* The tracker: the same offset is delivered. */
	for (j = 0; j < m->n_trk; j++)
		if (m->trk[j].offset == off)
			break;
	FUZZ_CHECK(j < m->n_trk && !m->trk[j].item);
	m->trk[j].item = item;
	for (j = 0; j < m->n_trk && m->trk[j].item; j++)
		;
	r = offtrack_done(trk, off, &commit);
	if (j == 0) {
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(commit == INT64_MIN); /* left alone */
		return;
	}
	m->position = m->trk[j - 1].offset + 1;
	memmove(m->trk, m->trk + j, (m->n_trk - j) * sizeof(*m->trk));
	m->n_trk -= j;
	FUZZ_CHECK(r == 1);
	FUZZ_CHECK(commit == m->position);
}

/* An offset that is not waiting in either: -ENOENT from both. */
static void ev_complete_bad(struct model *m, struct sequencer *seq,
			    struct offtrack *trk, uint8_t k)
{
	int64_t off, commit = INT64_MIN;
	size_t i;
	bool waiting = false;

	switch (k & 3) {
	case 0: /* a completed one still in the sequencer, else a gap */
		for (i = 0; i < m->n_seq; i++)
			if (m->seq[i].item)
				break;
		off = i < m->n_seq ? m->seq[i].offset
				   : (m->any_added ? m->last + 1 : 0);
		break;
	case 1: /* above everything added */
		off = (m->any_added ? m->last : 0) + 1 + (k >> 2);
		break;
	case 2: /* below the window: popped, committed or never seen */
		off = (m->n_seq ? m->seq[0].offset : 0) - 1 - (k >> 2);
		break;
	default: /* somewhere in the window, maybe in a gap */
		off = (m->n_seq ? m->seq[0].offset : 0) + (k >> 2);
		break;
	}
	for (i = 0; i < m->n_seq; i++)
		if (m->seq[i].offset == off && !m->seq[i].item)
			waiting = true;
	if (waiting)
		return; /* that would be a real completion */
	FUZZ_CHECK(seq_complete(seq, off, new_item(m)) == -ENOENT);
	for (i = 0; i < m->n_trk; i++)
		FUZZ_CHECK(m->trk[i].offset != off || m->trk[i].item);
	FUZZ_CHECK(offtrack_done(trk, off, &commit) == -ENOENT);
	FUZZ_CHECK(commit == INT64_MIN);
}

static void ev_complete_null(struct model *m, struct sequencer *seq,
			     uint8_t k)
{
	int64_t off = m->n_seq ? m->seq[k % m->n_seq].offset : k;

	FUZZ_CHECK(seq_complete(seq, off, NULL) == -EINVAL);
}

/* One seq_pop(); returns whether it handed out an item. */
static bool ev_pop(struct model *m, struct sequencer *seq)
{
	int64_t off = INT64_MIN;
	void *item = seq_pop(seq, &off);

	if (!m->n_seq || !m->seq[0].item) {
		FUZZ_CHECK(!item);
		FUZZ_CHECK(off == INT64_MIN);
		/* NULL for the offset is fine too, and changes nothing. */
		FUZZ_CHECK(!seq_pop(seq, NULL));
		return false;
	}
	FUZZ_CHECK(item == m->seq[0].item);
	FUZZ_CHECK(off == m->seq[0].offset);
	memmove(m->seq, m->seq + 1, (m->n_seq - 1) * sizeof(*m->seq));
	m->n_seq--;
	return true;
}

static void ev_reset(struct model *m, struct sequencer *seq,
		     struct offtrack *trk, uint8_t b)
{
	size_t i, completed = 0;

	m->n_drop_seq = 0;
	for (i = 0; i < m->n_seq; i++)
		if (m->seq[i].item)
			m->drop_seq[m->n_drop_seq++] = m->seq[i];
	completed = m->n_drop_seq;
	m->dropped = 0;
	seq_clear(seq, drop_item);
	FUZZ_CHECK(m->dropped == completed);
	offtrack_reset(trk);
	m->n_seq = 0;
	m->n_trk = 0;
	m->position = -1;
	/* Nothing is remembered: the next offsets may start below, at or
	 * above where the last epoch was (b = 16 + k: k past the last). */
	if (m->any_added) {
		m->base = m->last - 16 + (int64_t)b;
		if (m->base < 0)
			m->base = 0;
	}
	m->any_added = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stream s = { data, data + size };
	struct model m = { .position = -1 };
	struct sequencer *seq = seq_new();
	struct offtrack *trk = offtrack_new();

	FUZZ_CHECK(seq && trk);
	/* At most one ADD per byte: size slots always suffice. */
	m.cap = size + 1;
	m.seq = calloc(m.cap, sizeof(*m.seq));
	m.trk = calloc(m.cap, sizeof(*m.trk));
	m.drop_seq = calloc(m.cap, sizeof(*m.drop_seq));
	FUZZ_CHECK(m.seq && m.trk && m.drop_seq);
	current = &m;
	check_state(&m, seq, trk);

	while (s.p < s.end) {
		switch (next_byte(&s) % 8) {
		case 0:
			ev_add(&m, seq, trk, next_byte(&s));
			break;
		case 1:
			ev_add_old(&m, seq, trk, next_byte(&s));
			break;
		case 2:
			ev_complete(&m, seq, trk, next_byte(&s));
			break;
		case 3:
			ev_complete_bad(&m, seq, trk, next_byte(&s));
			break;
		case 4:
			ev_complete_null(&m, seq, next_byte(&s));
			break;
		case 5:
			ev_pop(&m, seq);
			break;
		case 6:
			while (ev_pop(&m, seq))
				;
			break;
		default:
			ev_reset(&m, seq, trk, next_byte(&s));
			break;
		}
		check_state(&m, seq, trk);
	}

	/* Freeing with work pending is fine (items belong to the owner). */
	seq_free(seq);
	offtrack_free(trk);
	seq_free(NULL);
	offtrack_free(NULL);
	free(m.seq);
	free(m.trk);
	free(m.drop_seq);
	current = NULL;
	return 0;
}
