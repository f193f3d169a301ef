/*
 * answercache: see answercache.h.
 */
#include "answercache.h"

#include "siphash.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define AC_MIN_BUCKETS 64

struct ac_entry {
	struct ac_entry *chain;       /**< next in its bucket */
	struct ac_entry *newer, *older; /**< the LRU list */
	uint64_t hash;
	unsigned kind;
	size_t key_len, value_len;
	char data[];                  /**< key, then value and a NUL */
};

struct answercache {
	pthread_mutex_t lock;         /**< guards everything below */
	uint8_t seed[SIPHASH_KEY_BYTES];
	size_t max_entries, max_bytes;
	struct ac_entry **buckets;
	size_t n_buckets;             /**< a power of two */
	struct ac_entry *newest, *oldest;
	struct answercache_stats st;
};

static size_t entry_cost(size_t key_len, size_t value_len)
{
	return sizeof(struct ac_entry) + key_len + value_len + 1;
}

static size_t table_cost(size_t n_buckets)
{
	return n_buckets * sizeof(struct ac_entry *);
}

/* A random key for the bucket hash; the clock and an address when the
 * kernel has none to give (the hash then still works, only guessably). */
static void make_seed(uint8_t seed[SIPHASH_KEY_BYTES])
{
	struct timespec ts;
	uint64_t mix[2];

	if (getrandom(seed, SIPHASH_KEY_BYTES, GRND_NONBLOCK) ==
	    SIPHASH_KEY_BYTES)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	mix[0] = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	mix[1] = (uint64_t)(uintptr_t)seed;
	memcpy(seed, mix, SIPHASH_KEY_BYTES);
}

struct answercache *answercache_new(size_t max_entries, size_t max_bytes)
{
	struct answercache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->max_entries = max_entries ? max_entries : 1;
	c->max_bytes = max_bytes;
	c->n_buckets = AC_MIN_BUCKETS;
	c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->st.bytes = table_cost(c->n_buckets);
	make_seed(c->seed);
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void answercache_free(struct answercache *c)
{
	struct ac_entry *e, *next;

	if (!c)
		return;
	for (e = c->newest; e; e = next) {
		next = e->older;
		free(e);
	}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static uint64_t hash_of(const struct answercache *c, unsigned kind,
			const void *key, size_t key_len)
{
	return siphash24(c->seed, key, key_len) ^
	       ((uint64_t)kind * 0x9E3779B97F4A7C15ULL);
}

static struct ac_entry **slot_of(struct answercache *c, uint64_t hash)
{
	return &c->buckets[hash & (c->n_buckets - 1)];
}

/* The link that points at the entry for (kind, key), or at the NULL
 * that ends its bucket. */
static struct ac_entry **find(struct answercache *c, uint64_t hash,
			      unsigned kind, const void *key, size_t key_len)
{
	struct ac_entry **p = slot_of(c, hash);

	for (; *p; p = &(*p)->chain)
		if ((*p)->hash == hash && (*p)->kind == kind &&
		    (*p)->key_len == key_len &&
		    !memcmp((*p)->data, key, key_len))
			break;
	return p;
}

static void lru_unlink(struct answercache *c, struct ac_entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void lru_push(struct answercache *c, struct ac_entry *e)
{
	e->newer = NULL;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
}

/* Take the entry out of the table and the list, and free it. */
static void drop(struct answercache *c, struct ac_entry *e)
{
	struct ac_entry **p = find(c, e->hash, e->kind, e->data, e->key_len);

	*p = e->chain;
	lru_unlink(c, e);
	c->st.entries--;
	c->st.bytes -= entry_cost(e->key_len, e->value_len);
	free(e);
}

/* Twice the buckets, when the entries outnumber them and the room
 * allows; without the memory, chains just grow longer. */
static void grow(struct answercache *c)
{
	size_t n = c->n_buckets * 2, i;
	struct ac_entry **b, *e, *next;

	if (c->st.entries <= c->n_buckets || c->n_buckets >= c->max_entries ||
	    c->st.bytes + table_cost(n) - table_cost(c->n_buckets) >
		    c->max_bytes)
		return;
	b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (i = 0; i < c->n_buckets; i++)
		for (e = c->buckets[i]; e; e = next) {
			next = e->chain;
			e->chain = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	free(c->buckets);
	c->st.bytes += table_cost(n) - table_cost(c->n_buckets);
	c->buckets = b;
	c->n_buckets = n;
}

int answercache_get(struct answercache *c, unsigned kind, const void *key,
		    size_t key_len, char **ret_value, size_t *ret_len)
{
	uint64_t hash = hash_of(c, kind, key, key_len);
	struct ac_entry *e;
	char *copy = NULL;
	int r = 0;

	pthread_mutex_lock(&c->lock);
	e = *find(c, hash, kind, key, key_len);
	if (e) {
		copy = malloc(e->value_len + 1);
		if (copy) {
			memcpy(copy, e->data + e->key_len, e->value_len + 1);
			*ret_value = copy;
			*ret_len = e->value_len;
			lru_unlink(c, e);
			lru_push(c, e);
			r = 1;
		} else {
			r = -1;
		}
	}
	if (r == 1)
		c->st.hits++;
	else
		c->st.misses++;
	pthread_mutex_unlock(&c->lock);
	return r;
}

int answercache_put(struct answercache *c, unsigned kind, const void *key,
		    size_t key_len, const void *value, size_t value_len)
{
	uint64_t hash = hash_of(c, kind, key, key_len);
	size_t cost = entry_cost(key_len, value_len);
	struct ac_entry *e, *old, **p;

	if (key_len > c->max_bytes || value_len > c->max_bytes ||
	    cost > c->max_bytes)
		return 1;
	e = malloc(cost);
	if (!e)
		return -1;
	e->hash = hash;
	e->kind = kind;
	e->key_len = key_len;
	e->value_len = value_len;
	memcpy(e->data, key, key_len);
	memcpy(e->data + key_len, value, value_len);
	e->data[key_len + value_len] = '\0';

	pthread_mutex_lock(&c->lock);
	old = *find(c, hash, kind, key, key_len);
	if (old)
		drop(c, old);
	if (cost + table_cost(c->n_buckets) > c->max_bytes) {
		pthread_mutex_unlock(&c->lock);
		free(e);
		return 1;
	}
	while (c->oldest && (c->st.entries + 1 > c->max_entries ||
			     c->st.bytes + cost > c->max_bytes)) {
		drop(c, c->oldest);
		c->st.evictions++;
	}
	p = slot_of(c, hash);
	e->chain = *p;
	*p = e;
	lru_push(c, e);
	c->st.entries++;
	c->st.bytes += cost;
	grow(c);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void answercache_stats(struct answercache *c, struct answercache_stats *ret)
{
	pthread_mutex_lock(&c->lock);
	*ret = c->st;
	pthread_mutex_unlock(&c->lock);
}
