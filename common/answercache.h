/*
 * answercache: validated answers kept by the question that got them, so
 * that a text asked again is not paid for twice. A bounded LRU map from
 * (kind, key bytes) to value bytes, safe to use from any thread.
 *
 * DESIGN
 * ------
 * A hash table of chained entries and one LRU list, both under one
 * mutex held only for the lookup or insert and a copy (never during an
 * LLM call). Buckets are found by SipHash-2-4 under a random key made at
 * creation, so texts cannot be chosen to pile into one bucket; a hit
 * compares the kind and the whole key, so two texts that share a hash
 * never share an answer. Both bounds hold at every moment: at most
 * max_entries entries, and at most max_bytes counted (each entry's key
 * and value, its bookkeeping, and the bucket table); an insert evicts
 * from the least recently used end until both hold, and a value too
 * large to fit at all is not kept.
 */
#ifndef EXTRACTD_ANSWERCACHE_H
#define EXTRACTD_ANSWERCACHE_H

#include <stddef.h>
#include <stdint.h>

struct answercache;

/** What the cache holds and has done, for metrics and tests. */
struct answercache_stats {
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	size_t entries;
	size_t bytes;       /**< counted as max_bytes bounds it */
};

/**
 * @brief A cache of at most max_entries entries (>= 1) and max_bytes
 * bytes.
 * @returns the cache, or NULL when out of memory.
 */
struct answercache *answercache_new(size_t max_entries, size_t max_bytes);

/** Free; NULL is fine. No other thread may be using it. */
void answercache_free(struct answercache *c);

/**
 * @brief Look up (kind, key): on a hit, the entry becomes the most
 * recently used and a copy of its value (NUL-terminated, which
 * ret_len does not count; free() it) goes to *ret_value.
 * @returns 1 on a hit, 0 on a miss, -1 when out of memory (a miss).
 */
int answercache_get(struct answercache *c, unsigned kind, const void *key,
		    size_t key_len, char **ret_value, size_t *ret_len);

/**
 * @brief Keep value under (kind, key), replacing what was there, as the
 * most recently used entry; evicts the least recently used ones until
 * both bounds hold.
 * @returns 0 when kept, 1 when it alone is larger than the cache may
 *          hold (not kept), -1 when out of memory (not kept).
 */
int answercache_put(struct answercache *c, unsigned kind, const void *key,
		    size_t key_len, const void *value, size_t value_len);

/** A snapshot of the counts. */
void answercache_stats(struct answercache *c, struct answercache_stats *ret);

#endif
