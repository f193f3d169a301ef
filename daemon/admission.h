/*
 * admission: the pool.max_in_flight rule, in one place.
 *
 * A record needs a slot to be admitted (admission_try, admission_wait);
 * there are pool.max_in_flight slots, or fewer while a live limit
 * (admission_set_limit, pool.concurrency = adaptive) says so.
 * Its slot is for its LLM call: when the call ends the job gives the slot
 * back at once (admission_call_done returns true), as long as at most
 * max_in_flight answered jobs hold none (the early window); else it keeps
 * the slot to its end. admission_end() at a job's end returns the slot,
 * or closes the job's place in the early window. So:
 *
 *   - at most max_in_flight LLM calls are open at any instant (at most
 *     the live limit, once the calls over it have ended);
 *   - at most 2 x max_in_flight jobs exist (max_in_flight holding slots,
 *     max_in_flight in the early window), which bounds memory whatever
 *     the backlog, while the calls go on when answers wait for an older
 *     offset or a delivery report.
 *
 * A slot taken for a record that is then not admitted goes back with
 * admission_cancel().
 *
 * DESIGN
 * ------
 * One mutex guards the slots held, the live limit and the count of jobs
 * ended, with a condition variable for a consumer waiting for a slot and
 * one for a consumer waiting for a job's end; the early window is an
 * atomic counter. Any thread; no other lock is taken under the mutex. The
 * consumer threads take slots, the workers and delivery reports give
 * them back.
 */
#ifndef EXTRACTD_ADMISSION_H
#define EXTRACTD_ADMISSION_H

#include <stdbool.h>

struct admission;

/** max_in_flight slots, all free; NULL when out of memory. */
struct admission *admission_new(unsigned max_in_flight);

/** Free; NULL is fine. No thread may use it any more. */
void admission_free(struct admission *a);

/** Take a free slot if there is one now. */
bool admission_try(struct admission *a);

/** Take a free slot, waiting at most ms for one. */
bool admission_wait(struct admission *a, unsigned ms);

/** A slot taken for a record that was not admitted goes back. */
void admission_cancel(struct admission *a);

/**
 * @brief A job's LLM call ended: give its slot back now if the early
 * window has room.
 * @returns true when it did (the job tells admission_end so), false when
 *          the job keeps its slot to its end.
 */
bool admission_call_done(struct admission *a);

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
