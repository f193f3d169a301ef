/*
 * siphash: SipHash-2-4 (Aumasson and Bernstein, 2012), a 64-bit keyed
 * hash: with a secret key, texts chosen to collide cannot be found, so a
 * hash table keyed by input text stays fast whatever the input; with a
 * fixed key, a stable fingerprint.
 */
#ifndef EXTRACTD_SIPHASH_H
#define EXTRACTD_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_BYTES 16

/** @brief SipHash-2-4 of the len bytes at data under key. */
uint64_t siphash24(const uint8_t key[SIPHASH_KEY_BYTES], const void *data,
		   size_t len);

#endif
