/*
 * keyset: see keyset.h. A cell holding 0 is empty (keyset_hash never
 * gives 0).
 */
#include "keyset.h"

#include "siphash.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define KEYSET_MIN_CELLS 16

struct keyset {
	uint64_t *cells; /**< n_cells, a power of two; 0: empty */
	size_t n_cells;
	size_t count;
};

static uint8_t seed[SIPHASH_KEY_BYTES];
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

/* The process's hash key: random, or the clock and an address when the
 * kernel has none to give (the hash then still works, only guessably). */
static void make_seed(void)
{
	struct timespec ts;
	uint64_t mix[2];

	if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) ==
	    (ssize_t)sizeof(seed))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	mix[0] = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	mix[1] = (uint64_t)(uintptr_t)&ts;
	memcpy(seed, mix, sizeof(seed));
}

uint64_t keyset_hash(const void *key, size_t len)
{
	uint64_t h;

	pthread_once(&seed_once, make_seed);
	h = siphash24(seed, key, len);
	return h ? h : 1;
}

struct keyset *keyset_new(void)
{
	return calloc(1, sizeof(struct keyset));
}

void keyset_free(struct keyset *s)
{
	if (!s)
		return;
	free(s->cells);
	free(s);
}

/* The cell holding hash, or the empty cell where it would go. */
static size_t find(const struct keyset *s, uint64_t hash)
{
	size_t mask = s->n_cells - 1, i = (size_t)hash & mask;

	while (s->cells[i] && s->cells[i] != hash)
		i = (i + 1) & mask;
	return i;
}

static int grow(struct keyset *s)
{
	size_t n = s->n_cells ? s->n_cells * 2 : KEYSET_MIN_CELLS, i;
	struct keyset bigger = { .n_cells = n, .count = s->count };

	bigger.cells = calloc(n, sizeof(*bigger.cells));
	if (!bigger.cells)
		return -ENOMEM;
	for (i = 0; i < s->n_cells; i++)
		if (s->cells[i])
			bigger.cells[find(&bigger, s->cells[i])] = s->cells[i];
	free(s->cells);
	*s = bigger;
	return 0;
}

int keyset_add(struct keyset *s, uint64_t hash)
{
	size_t i;

	if (keyset_has(s, hash))
		return -EEXIST;
	if ((s->count + 1) * 2 > s->n_cells && grow(s) < 0)
		return -ENOMEM;
	i = find(s, hash);
	s->cells[i] = hash;
	s->count++;
	return 0;
}

bool keyset_has(const struct keyset *s, uint64_t hash)
{
	return s->count && s->cells[find(s, hash)] == hash;
}

int keyset_remove(struct keyset *s, uint64_t hash)
{
	size_t mask, i, j;

	if (!keyset_has(s, hash))
		return -ENOENT;
	mask = s->n_cells - 1;
	i = find(s, hash);
	/* Backward shift: move each later cell of the run into the hole
	 * when the hole lies between its home and it, so every hash stays
	 * reachable from its home without tombstones. */
	for (j = (i + 1) & mask; s->cells[j]; j = (j + 1) & mask) {
		size_t home = (size_t)s->cells[j] & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			s->cells[i] = s->cells[j];
			i = j;
		}
	}
	s->cells[i] = 0;
	s->count--;
	return 0;
}

size_t keyset_count(const struct keyset *s)
{
	return s->count;
}

void keyset_clear(struct keyset *s)
{
	if (s->cells)
		memset(s->cells, 0, s->n_cells * sizeof(*s->cells));
	s->count = 0;
}
