/*
 * siphash: see siphash.h. Written from the paper's description: the
 * state is four 64-bit words set from the key; each 8-byte word of the
 * message, read little-endian, goes through two rounds; the last word
 * holds the remaining bytes and the length's low byte; four rounds
 * finish.
 */
#include "siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t load64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

struct sip {
	uint64_t v0, v1, v2, v3;
};

static void round_once(struct sip *s)
{
	s->v0 += s->v1;
	s->v1 = ROTL(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = ROTL(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = ROTL(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = ROTL(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = ROTL(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = ROTL(s->v2, 32);
}

static void absorb(struct sip *s, uint64_t m)
{
	s->v3 ^= m;
	round_once(s);
	round_once(s);
	s->v0 ^= m;
}

uint64_t siphash24(const uint8_t key[SIPHASH_KEY_BYTES], const void *data,
		   size_t len)
{
	const uint8_t *p = data;
	uint64_t k0 = load64(key), k1 = load64(key + 8), last;
	struct sip s = {
		.v0 = k0 ^ 0x736f6d6570736575ULL,
		.v1 = k1 ^ 0x646f72616e646f6dULL,
		.v2 = k0 ^ 0x6c7967656e657261ULL,
		.v3 = k1 ^ 0x7465646279746573ULL,
	};
	size_t i, left = len & 7;

	for (i = 0; i + 8 <= len; i += 8)
		absorb(&s, load64(p + i));
	last = (uint64_t)(len & 0xff) << 56;
	while (left--)
		last |= (uint64_t)p[i + left] << (8 * left);
	absorb(&s, last);
	s.v2 ^= 0xff;
	round_once(&s);
	round_once(&s);
	round_once(&s);
	round_once(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
