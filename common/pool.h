/*
 * pool: a fixed set of worker threads fed by a bounded job queue.
 *
 * Each worker has a context made once by init() in its own thread (a CURL
 * handle, say) and given to every job it runs; fini() frees it on exit.
 * Jobs are handed over by pointer: after pool_submit() the pool owns the
 * job until run() gets it. Workers block every signal, so only the main
 * thread sees them.
 */
#ifndef EXTRACTD_POOL_H
#define EXTRACTD_POOL_H

#include <stddef.h>

struct pool;

struct pool_ops {
	/** Make a worker's context; NULL fails pool_new(). May be NULL. */
	void *(*init)(void *arg, unsigned index);
	/** Run one job with the worker's context. */
	void (*run)(void *job, void *ctx);
	/** Free a worker's context. May be NULL. */
	void (*fini)(void *ctx);
};

/**
 * @brief Start workers.
 * @param capacity how many jobs may wait in the queue
 * @returns the pool, or NULL with the reason in err.
 */
struct pool *pool_new(unsigned workers, size_t capacity,
		      const struct pool_ops *ops, void *arg, char *err,
		      size_t err_size);

/**
 * @brief Queue a job, waiting while the queue is full.
 * @returns 0, or -1 when the pool is stopping (the job stays the caller's).
 */
int pool_submit(struct pool *pool, void *job);

/** Jobs waiting in the queue (not those running). */
size_t pool_queued(struct pool *pool);

/**
 * @brief Run what is queued, then stop and join the workers and free the
 * pool; NULL is fine.
 */
void pool_free(struct pool *pool);

#endif
