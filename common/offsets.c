/*
 * offsets: see offsets.h. A sequencer whose items are a mark, "delivered"
 * or "abandoned": what it pops, in offset order, is the decided prefix;
 * the commit position follows it up to the first abandoned offset.
 */
#include "offsets.h"

#include "sequencer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

struct offtrack {
	struct sequencer *window; /**< offsets added, in order */
	int64_t position;         /**< next offset to read, -1 if none */
	size_t waiting;           /**< neither delivered nor abandoned */
	size_t held;              /**< popped at or after an abandoned
				    *  offset: never behind the position */
	bool stopped;             /**< an abandoned offset was popped: the
				    *  position moves no more */
};

/* The items marking a decided slot; any non-NULL pointer would do. */
static char delivered_mark, abandoned_mark;

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
	int r;

	if (offset < t->position)
		return -ERANGE;
	r = seq_add(t->window, offset);
	if (!r)
		t->waiting++;
	return r;
}

/* Mark offset decided, pop the decided prefix; 1 when the position
 * moved, 0 when not, -ENOENT when offset was not waiting. */
static int decide(struct offtrack *t, int64_t offset, void *mark)
{
	int64_t popped;
	void *item;
	int moved = 0;

	if (seq_complete(t->window, offset, mark) < 0)
		return -ENOENT;
	t->waiting--;
	while ((item = seq_pop(t->window, &popped))) {
		if (item == &abandoned_mark)
			t->stopped = true;
		if (t->stopped) {
			t->held++;
			continue;
		}
		t->position = popped + 1;
		moved = 1;
	}
	return moved;
}

int offtrack_done(struct offtrack *t, int64_t offset, int64_t *ret_commit)
{
	int moved = decide(t, offset, &delivered_mark);

	if (moved == 1 && ret_commit)
		*ret_commit = t->position;
	return moved;
}

int offtrack_abandon(struct offtrack *t, int64_t offset)
{
	int r = decide(t, offset, &abandoned_mark);

	return r < 0 ? r : 0;
}

size_t offtrack_pending(const struct offtrack *t)
{
	return seq_pending(t->window) + t->held;
}

size_t offtrack_waiting(const struct offtrack *t)
{
	return t->waiting;
}

int64_t offtrack_position(const struct offtrack *t)
{
	return t->position;
}

void offtrack_reset(struct offtrack *t)
{
	seq_clear(t->window, NULL);
	t->position = -1;
	t->waiting = 0;
	t->held = 0;
	t->stopped = false;
}
