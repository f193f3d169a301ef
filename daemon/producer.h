/*
 * producer: the idempotent producer (acks=all) shared by every worker,
 * and the thread that serves its delivery reports.
 */
#ifndef EXTRACTD_PRODUCER_H
#define EXTRACTD_PRODUCER_H

#include <stddef.h>

struct pipeline;
struct producer;
struct job;

/** The producer and its poll thread, or NULL with err set. */
struct producer *producer_new(struct pipeline *pl, char *err,
			      size_t err_size);

/**
 * @brief Produce a job's output or dead letter, the job as the opaque:
 * its delivery report calls pipeline_delivered(). Waits while the
 * producer queue is full.
 * @returns 0 (librdkafka holds the job now), -1 on a permanent error
 *          (the job stays the caller's).
 */
int producer_send(struct producer *p, struct job *job);

/**
 * @brief Flush (bounded), stop the poll thread, destroy; NULL is fine.
 * @returns the number of messages left undelivered.
 */
int producer_free(struct producer *p);

#endif
