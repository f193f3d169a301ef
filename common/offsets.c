/*
 * offsets: see offsets.h. A sequencer whose items are a "delivered" mark:
 * what it pops, in offset order, is the contiguous delivered prefix.
 */
#include "offsets.h"

#include "sequencer.h"

#include <errno.h>
#include <stdlib.h>

struct offtrack {
	struct sequencer *window; /**< offsets added, in order */
	int64_t position;         /**< next offset to read, -1 if none */
};

/* Any non-NULL pointer marks a slot delivered; this one is ours. */
static char delivered_mark;

struct offtrack *offtrack_new(void)
{
	struct offtrack *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->window = seq_new();
	if (!t->window) {
		free(t);
		return NULL;
	}
	t->position = -1;
	return t;
}

void offtrack_free(struct offtrack *t)
{
	if (!t)
		return;
	seq_free(t->window);
	free(t);
}

int offtrack_add(struct offtrack *t, int64_t offset)
{
	if (offset < t->position)
		return -ERANGE;
	return seq_add(t->window, offset);
}

int offtrack_done(struct offtrack *t, int64_t offset, int64_t *ret_commit)
{
	int64_t popped;
	int moved = 0;

	if (seq_complete(t->window, offset, &delivered_mark) < 0)
		return -ENOENT;
	while (seq_pop(t->window, &popped)) {
		t->position = popped + 1;
		moved = 1;
	}
	if (moved && ret_commit)
		*ret_commit = t->position;
	return moved;
}

size_t offtrack_pending(const struct offtrack *t)
{
	return seq_pending(t->window);
}

int64_t offtrack_position(const struct offtrack *t)
{
	return t->position;
}

void offtrack_reset(struct offtrack *t)
{
	seq_clear(t->window, NULL);
	t->position = -1;
}
