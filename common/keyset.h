/*
 * keyset: a set of Kafka record keys, by a 64-bit hash of each.
 *
 * Key order (output.ordering = key) keeps, per input partition, the keys
 * that have a record in flight, and the consumer keeps the keys it passed
 * over in one look at its held records. Both only ever ask "is this key
 * here?", and a false yes costs nothing but a wait: so a key is its hash
 * (keyset_hash: SipHash-2-4 under a key random per process, so keys
 * chosen to collide cannot be found), and two keys of one hash count as
 * one.
 *
 * An open-addressing table (linear probing, deletion by backward shift)
 * that grows to keep at most half its cells used; keyset_clear() keeps
 * the table for the next use. Not thread-safe: the owner's lock guards
 * it.
 */
#ifndef EXTRACTD_KEYSET_H
#define EXTRACTD_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct keyset;

/** The hash of the len bytes of a key (never 0), the same for a key
 * everywhere in the process. */
uint64_t keyset_hash(const void *key, size_t len);

/** An empty set (no table until the first add), or NULL when out of
 * memory. */
struct keyset *keyset_new(void);

/** Free a set; NULL is fine. */
void keyset_free(struct keyset *s);

/**
 * @brief Add a hash.
 * @returns 0, -EEXIST when it is in the set already, -ENOMEM.
 */
int keyset_add(struct keyset *s, uint64_t hash);

/** Whether hash is in the set. */
bool keyset_has(const struct keyset *s, uint64_t hash);

/** @brief Remove a hash. @returns 0, or -ENOENT when it was not there. */
int keyset_remove(struct keyset *s, uint64_t hash);

/** Hashes in the set. */
size_t keyset_count(const struct keyset *s);

/** Empty the set, keeping its table. */
void keyset_clear(struct keyset *s);

#endif
