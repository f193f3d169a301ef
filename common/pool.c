/*
 * pool: see pool.h.
 *
 * DESIGN
 * ------
 * One mutex and two condition variables guard a ring of job pointers:
 * not_empty wakes workers, not_full wakes submitters. The lock is held
 * only to move a pointer in or out of the ring, never while a job runs
 * (a job is an HTTP call that may take a minute). Stopping sets a flag
 * under the lock and wakes everyone; workers leave once the ring is empty,
 * so queued jobs still run.
 */
#include "pool.h"
#include "thread.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pool_worker {
	struct pool *pool;
	pthread_t thread;
	unsigned index;
	void *ctx;
	int init_failed;
};

struct pool {
	pthread_mutex_t lock;
	pthread_cond_t not_empty;
	pthread_cond_t not_full;
	pthread_cond_t started;     /**< init results, guarded by lock */
	void **ring;                /**< capacity job pointers */
	size_t capacity;
	size_t head;
	size_t count;
	bool stopping;
	unsigned n_started;         /**< workers past init */
	struct pool_ops ops;
	void *arg;
	unsigned n_workers;         /**< threads created */
	struct pool_worker *workers;
};

static void *pool_worker_main(void *p)
{
	struct pool_worker *w = p;
	struct pool *pool = w->pool;

	thread_enter("worker-%u", w->index);

	if (pool->ops.init) {
		w->ctx = pool->ops.init(pool->arg, w->index);
		w->init_failed = w->ctx == NULL;
	}
	pthread_mutex_lock(&pool->lock);
	pool->n_started++;
	pthread_cond_broadcast(&pool->started);
	pthread_mutex_unlock(&pool->lock);
	if (w->init_failed)
		return NULL;

	for (;;) {
		void *job;

		pthread_mutex_lock(&pool->lock);
		while (!pool->count && !pool->stopping)
			pthread_cond_wait(&pool->not_empty, &pool->lock);
		if (!pool->count) {
			pthread_mutex_unlock(&pool->lock);
			break;
		}
		job = pool->ring[pool->head];
		pool->head = (pool->head + 1) % pool->capacity;
		pool->count--;
		pthread_cond_signal(&pool->not_full);
		pthread_mutex_unlock(&pool->lock);

		pool->ops.run(job, w->ctx);
	}
	if (pool->ops.fini)
		pool->ops.fini(w->ctx);
	return NULL;
}

static void pool_stop_join(struct pool *pool)
{
	unsigned i;

	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->not_empty);
	pthread_cond_broadcast(&pool->not_full);
	pthread_mutex_unlock(&pool->lock);
	for (i = 0; i < pool->n_workers; i++)
		pthread_join(pool->workers[i].thread, NULL);
	pool->n_workers = 0;
}

struct pool *pool_new(unsigned workers, size_t capacity,
		      const struct pool_ops *ops, void *arg, char *err,
		      size_t err_size)
{
	struct pool *pool;
	unsigned i;
	int r;

	if (!workers || !capacity) {
		snprintf(err, err_size, "a pool needs workers and capacity");
		return NULL;
	}
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		goto oom;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->not_empty, NULL);
	pthread_cond_init(&pool->not_full, NULL);
	pthread_cond_init(&pool->started, NULL);
	pool->ops = *ops;
	pool->arg = arg;
	pool->capacity = capacity;
	pool->ring = calloc(capacity, sizeof(*pool->ring));
	pool->workers = calloc(workers, sizeof(*pool->workers));
	if (!pool->ring || !pool->workers)
		goto oom;

	for (i = 0; i < workers; i++) {
		struct pool_worker *w = &pool->workers[i];

		w->pool = pool;
		w->index = i;
		r = pthread_create(&w->thread, NULL, pool_worker_main, w);
		if (r) {
			snprintf(err, err_size, "cannot start worker %u: %s",
				 i, strerror(r));
			goto fail;
		}
		pool->n_workers++;
	}

	pthread_mutex_lock(&pool->lock);
	while (pool->n_started < pool->n_workers)
		pthread_cond_wait(&pool->started, &pool->lock);
	pthread_mutex_unlock(&pool->lock);
	for (i = 0; i < workers; i++) {
		if (pool->workers[i].init_failed) {
			snprintf(err, err_size,
				 "worker %u could not set up its context", i);
			goto fail;
		}
	}
	return pool;

oom:
	snprintf(err, err_size, "out of memory");
fail:
	pool_free(pool);
	return NULL;
}

int pool_submit(struct pool *pool, void *job)
{
	pthread_mutex_lock(&pool->lock);
	while (pool->count == pool->capacity && !pool->stopping)
		pthread_cond_wait(&pool->not_full, &pool->lock);
	if (pool->stopping) {
		pthread_mutex_unlock(&pool->lock);
		return -1;
	}
	pool->ring[(pool->head + pool->count) % pool->capacity] = job;
	pool->count++;
	pthread_cond_signal(&pool->not_empty);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

size_t pool_queued(struct pool *pool)
{
	size_t n;

	pthread_mutex_lock(&pool->lock);
	n = pool->count;
	pthread_mutex_unlock(&pool->lock);
	return n;
}

void pool_free(struct pool *pool)
{
	if (!pool)
		return;
	pool_stop_join(pool);
	pthread_cond_destroy(&pool->started);
	pthread_cond_destroy(&pool->not_full);
	pthread_cond_destroy(&pool->not_empty);
	pthread_mutex_destroy(&pool->lock);
	free(pool->workers);
	free(pool->ring);
	free(pool);
}
