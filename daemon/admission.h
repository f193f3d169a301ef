/*
 * admission: the pool.max_in_flight rule, in one place, and the queue of
 * records waiting for a slot.
 *
 * A record needs a slot to start; there are pool.max_in_flight slots, or
 * fewer while a live limit (admission_set_limit, pool.concurrency =
 * adaptive) says so. Records wait for one in a queue, oldest first
 * (admission_queue); each is started, with its slot, by the start
 * function given at creation, as soon as a slot is free. Its slot is for
 * its LLM call: when the call ends (admission_call_done) the job gives
 * the slot back at once as long as at most max_in_flight answered jobs
 * hold none (the early window), else it keeps the slot to its end.
 * admission_end() at a job's end returns the slot, or closes the job's
 * place in the early window. So:
 *
 *   - at most max_in_flight LLM calls are open at any instant (at most
 *     the live limit, once the calls over it have ended);
 *   - at most 2 x max_in_flight jobs are started and not ended
 *     (max_in_flight holding slots, max_in_flight in the early window),
 *     which bounds memory whatever the backlog, while the calls go on
 *     when answers wait for an older offset or a delivery report;
 *   - at most queue_max records wait in the queue, as long as those who
 *     queue keep to admission_room() (each other thread queueing at the
 *     same time may add one more).
 *
 * The hand-off: a worker whose call ends, when the early window has room
 * and a record waits, keeps the slot and takes that record itself
 * (admission_call_done's *next) rather than giving the slot back for
 * another thread to wake a worker for: no thread is woken for a record
 * while records wait. Nothing starts while admission is held
 * (admission_hold: the API paused, a spending cap).
 *
 * DESIGN
 * ------
 * One mutex guards the slots held, the live limit, the hold, the queue
 * and the count of jobs ended, with a condition variable for a thread
 * waiting for room in the queue and one for a consumer waiting for a
 * job's end; the early window is an atomic counter. Any thread; no other
 * lock is taken under the mutex, and the start function is called
 * without it (by whichever thread freed the slot, queued the record,
 * raised the limit or lifted the hold, possibly holding locks of its
 * own: a delivery report's, a rewind's), so it may take only leaf locks
 * and must not block. The queue links live in the
 * records' jobs: the queue owns a job from admission_queue until it is
 * started or removed.
 */
#ifndef EXTRACTD_ADMISSION_H
#define EXTRACTD_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>

struct admission;

/** A record waiting for a slot; embedded in its job. */
struct admission_link {
	struct admission_link *next;
};

/** Starts a queued record that was given a slot; never blocks long. */
typedef void admission_start_fn(struct admission_link *link, void *arg);

/** max_in_flight slots, all free, a queue of queue_max records, start
 * (with arg) for each record given a slot; NULL when out of memory. */
struct admission *admission_new(unsigned max_in_flight, size_t queue_max,
				admission_start_fn *start, void *arg);

/** Free; NULL is fine. No thread may use it any more; the queue must be
 * empty (admission_remove). */
void admission_free(struct admission *a);

/** Queue a record; it is started at once if a slot is free. The caller
 * keeps to admission_room(). */
void admission_queue(struct admission *a, struct admission_link *link);

/** Whether the queue has room for another record. */
bool admission_room(struct admission *a);

/** Wait at most ms for room in the queue after it was full: true once it
 * is half empty. */
bool admission_wait_room(struct admission *a, unsigned ms);

/**
 * @brief Take queued records out (a revoke, the stop, a rewind): each
 * that match says yes to, in queue order.
 * @returns them, linked through next, oldest first; NULL: none.
 */
struct admission_link *admission_remove(
	struct admission *a,
	bool (*match)(const struct admission_link *link, void *arg),
	void *arg);

/** Records in the queue. */
size_t admission_queued(struct admission *a);

/** Start nothing while on (their slots wait, and so do the queued
 * records); when it goes off, the queued records start on free slots. */
void admission_hold(struct admission *a, bool on);

/**
 * @brief A job's LLM call ended: give its slot back now if the early
 * window has room. With go (the worker can run another record, and
 * nothing says to hold) the slot goes to the oldest queued record
 * instead, returned in *next for the caller to run (NULL: none); without
 * it admission holds (admission_hold), as the caller saw a pause or the
 * stop.
 * @returns true when the slot left the job (the job tells admission_end
 *          so), false when the job keeps it to its end.
 */
bool admission_call_done(struct admission *a, bool go,
			 struct admission_link **next);

/** A job ended; early is what admission_call_done returned for it
 * (false if it never got there). */
void admission_end(struct admission *a, bool early);

/** Jobs ended so far (admission_end calls; a count that wraps). */
unsigned admission_ended(struct admission *a);

/** Wait at most ms for a job to end after since (what admission_ended
 * said); true when one did. Key order waits so for a key to come free:
 * a job gives its key back before it ends. */
bool admission_wait_ended(struct admission *a, unsigned since, unsigned ms);

/** The live limit: n slots (at least 1, at most max_in_flight). Slots
 * held over it stay held; no more are given until they are under it. */
void admission_set_limit(struct admission *a, unsigned n);

/** Slots held now: LLM calls open, and jobs that kept their slot. */
unsigned admission_held(struct admission *a);

/** Free slots and the early window's use, for tests. */
unsigned admission_free_slots(struct admission *a);
unsigned admission_early(struct admission *a);

#endif
