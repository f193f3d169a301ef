/* Unit tests for common/answercache: hits, LRU eviction, the byte bound,
 * and many threads at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "answercache.h"

static int put(struct answercache *c, unsigned kind, const char *key,
	       const char *value)
{
	return answercache_put(c, kind, key, strlen(key), value,
			       strlen(value));
}

/* The value under (kind, key), or NULL on a miss; free() it. */
static char *get(struct answercache *c, unsigned kind, const char *key)
{
	char *v = NULL;
	size_t len = 0;
	int r = answercache_get(c, kind, key, strlen(key), &v, &len);

	assert_true(r == 0 || r == 1);
	if (r == 1)
		assert_int_equal(len, strlen(v));
	return r == 1 ? v : NULL;
}

static void assert_get(struct answercache *c, unsigned kind, const char *key,
		       const char *want)
{
	char *v = get(c, kind, key);

	if (!want) {
		assert_null(v);
		return;
	}
	assert_non_null(v);
	assert_string_equal(v, want);
	free(v);
}

static void hits_and_misses(void **state)
{
	struct answercache *c = answercache_new(10, 1 << 20);
	struct answercache_stats st;

	(void)state;
	assert_non_null(c);
	assert_get(c, 0, "Ann is 3.", NULL);
	assert_int_equal(put(c, 0, "Ann is 3.", "{\"age\":3}"), 0);
	assert_get(c, 0, "Ann is 3.", "{\"age\":3}");
	/* Another kind (request format) is another question. */
	assert_get(c, 1, "Ann is 3.", NULL);
	/* The whole key counts: a prefix is not the text. */
	assert_get(c, 0, "Ann is 3", NULL);
	/* A put under the same key replaces. */
	assert_int_equal(put(c, 0, "Ann is 3.", "{\"age\":4}"), 0);
	assert_get(c, 0, "Ann is 3.", "{\"age\":4}");
	/* Keys and values are bytes: NULs inside are kept. */
	assert_int_equal(answercache_put(c, 2, "a\0b", 3, "x\0y", 3), 0);
	{
		char *v;
		size_t len;

		assert_int_equal(answercache_get(c, 2, "a\0c", 3, &v, &len),
				 0);
		assert_int_equal(answercache_get(c, 2, "a\0b", 3, &v, &len),
				 1);
		assert_int_equal(len, 3);
		assert_memory_equal(v, "x\0y", 3);
		free(v);
	}
	answercache_stats(c, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.hits, 3);
	assert_int_equal(st.misses, 4);
	assert_int_equal(st.evictions, 0);
	answercache_free(c);
	answercache_free(NULL);
}

/* The least recently used entry goes first; a hit makes an entry the
 * most recently used. */
static void eviction_order(void **state)
{
	struct answercache *c = answercache_new(3, 1 << 20);
	struct answercache_stats st;

	(void)state;
	assert_int_equal(put(c, 0, "a", "A"), 0);
	assert_int_equal(put(c, 0, "b", "B"), 0);
	assert_int_equal(put(c, 0, "c", "C"), 0);
	assert_get(c, 0, "a", "A"); /* order now: b, c, a */
	assert_int_equal(put(c, 0, "d", "D"), 0); /* b goes */
	assert_get(c, 0, "b", NULL);
	assert_get(c, 0, "c", "C"); /* order now: a, d, c */
	assert_int_equal(put(c, 0, "e", "E"), 0); /* a goes */
	assert_get(c, 0, "a", NULL);
	assert_get(c, 0, "d", "D");
	assert_get(c, 0, "e", "E");
	assert_get(c, 0, "c", "C");
	answercache_stats(c, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.evictions, 2);
	answercache_free(c);
}

/* max_bytes holds at every insert, counting keys, values, bookkeeping
 * and the table; a value larger than the whole cache is not kept. */
static void byte_bound(void **state)
{
	const size_t max = 8192;
	struct answercache *c = answercache_new(100000, max);
	struct answercache_stats st;
	char key[32], value[600], big[9000];
	unsigned i;

	(void)state;
	memset(value, 'v', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	for (i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "text %u", i);
		assert_int_equal(put(c, 0, key, value), 0);
		answercache_stats(c, &st);
		assert_true(st.bytes <= max);
		/* The newest is always there. */
		assert_get(c, 0, key, value);
	}
	answercache_stats(c, &st);
	/* About max / 600 entries fit, never more. */
	assert_true(st.entries >= 5 && st.entries < max / 600);
	assert_int_equal(st.evictions, 200 - st.entries);
	/* The oldest went first. */
	assert_get(c, 0, "text 0", NULL);

	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(put(c, 0, "big", big), 1);
	assert_get(c, 0, "big", NULL);
	/* Nothing was evicted for it. */
	assert_get(c, 0, "text 199", value);
	answercache_free(c);
}

/* The table grows with the entries (and its memory is counted). */
static void many_entries(void **state)
{
	struct answercache *c = answercache_new(5000, 64 << 20);
	struct answercache_stats st;
	char key[32], value[32];
	unsigned i;

	(void)state;
	for (i = 0; i < 6000; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		snprintf(value, sizeof(value), "v%u", i);
		assert_int_equal(put(c, i % 3, key, value), 0);
	}
	answercache_stats(c, &st);
	assert_int_equal(st.entries, 5000);
	assert_int_equal(st.evictions, 1000);
	for (i = 0; i < 6000; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		snprintf(value, sizeof(value), "v%u", i);
		assert_get(c, i % 3, key, i < 1000 ? NULL : value);
	}
	answercache_free(c);
}

#define THREADS 6
#define ROUNDS 20000
#define KEYS 300

struct worker {
	struct answercache *c;
	unsigned seed;
	unsigned wrong; /**< hits whose value was not the key's */
	unsigned hits;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	char key[32], want[48];
	unsigned i;

	for (i = 0; i < ROUNDS; i++) {
		unsigned k = (unsigned)rand_r(&w->seed) % KEYS;
		char *v;
		size_t len;

		snprintf(key, sizeof(key), "text %u", k);
		snprintf(want, sizeof(want), "answer to text %u", k);
		if (rand_r(&w->seed) % 3 == 0) {
			if (answercache_put(w->c, k % 2, key, strlen(key), want,
					    strlen(want)) != 0)
				w->wrong++;
		} else if (answercache_get(w->c, k % 2, key, strlen(key), &v,
					   &len) == 1) {
			w->hits++;
			if (len != strlen(want) || strcmp(v, want))
				w->wrong++;
			free(v);
		}
	}
	return NULL;
}

/* Several threads at once: every hit is the key's own value, the counts
 * add up, and the bounds hold. */
static void concurrent_use(void **state)
{
	struct answercache *c = answercache_new(100, 1 << 20);
	struct worker w[THREADS];
	pthread_t t[THREADS];
	struct answercache_stats st;
	unsigned i, hits = 0;

	(void)state;
	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .c = c, .seed = i + 1 };
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].wrong, 0);
		hits += w[i].hits;
	}
	answercache_stats(c, &st);
	assert_int_equal(st.hits, hits);
	assert_true(hits > 0);
	assert_int_equal(st.entries, 100);
	assert_true(st.bytes <= 1 << 20);
	answercache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hits_and_misses),
		cmocka_unit_test(eviction_order),
		cmocka_unit_test(byte_bound),
		cmocka_unit_test(many_entries),
		cmocka_unit_test(concurrent_use),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
