/*
 * sim_timer.h - parks suspended MHD connections until a deadline (latency)
 * or until their client goes away (the timeout fault), with at most
 * --capacity of them in their latency at once and the rest queued.
 *
 * See the DESIGN block in sim_timer.c.
 */
#ifndef LLMSIM_SIM_TIMER_H
#define LLMSIM_SIM_TIMER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

/** What the access handler must do when it runs again after a resume. */
enum sim_wake {
	SIM_WAKE_NONE = 0,	/**< not woken yet */
	SIM_WAKE_ANSWER,	/**< queue the answer prepared before parking */
	SIM_WAKE_DROP,		/**< close the connection without answering */
};

/**
 * One parked request. Embedded in the request's context; the caller owns
 * the memory and must keep it alive until the handler ran again (or the
 * request-completed callback fired) after a park.
 */
struct sim_park {
	struct MHD_Connection *conn;	/**< the suspended connection */
	int fd;			/**< its socket, watched while held or queued */
	atomic_int wake;	/**< enum sim_wake, stored before the resume */
	bool parked;		/**< suspended and not yet re-entered; touched
				 *   only by the connection's MHD thread */
	size_t slot;		/**< index in the held array (timer lock) */
	bool watched;		/**< fd is in the timer's epoll set (lock) */
	bool gone;		/**< hang-up already reported (lock) */
	bool computing;		/**< holds one of the capacity's places (lock) */
	bool queued;		/**< waits in the queue (lock) */
	uint64_t service_ns;	/**< its latency, counted once it starts */
	uint64_t queued_ns;	/**< when it joined the queue (lock) */
	struct sim_park *qnext;	/**< queue links (lock) */
	struct sim_park *qprev;
};

/** The capacity's counters, as GET /stats shows them. */
struct sim_timer_load {
	size_t capacity;	/**< at most this many computing; 0: no limit */
	size_t computing;	/**< in their latency now */
	size_t computing_peak;	/**< max of computing since the last reset */
	size_t queued;		/**< waiting for a place now */
	size_t queue_peak;	/**< max of queued since the last reset */
	uint64_t wait_ns;	/**< total queue wait of requests started */
	uint64_t wait_max_ns;	/**< the longest of those waits */
};

struct sim_timer;

/**
 * Called once per held request whose client has gone, with the timer's
 * lock held (so it must not call back into the timer), before the request
 * is resumed with SIM_WAKE_DROP. The connection is still suspended, so the
 * callback may update the request's context.
 */
typedef void (*sim_timer_gone_fn)(void *cls, struct sim_park *p);

/** Monotonic clock in nanoseconds. */
uint64_t sim_now_ns(void);

/**
 * @brief Allocate a timer (not yet running) that lets at most @p capacity
 * requests (0: any number) be in their latency at once; @p gone (may be
 * NULL) is told about held and queued requests whose client left.
 * @returns 0, or a negative errno.
 */
int sim_timer_new(size_t capacity, sim_timer_gone_fn gone, void *gone_cls,
		  struct sim_timer **ret);

/**
 * @brief Start the timer thread. Call with SIGINT/SIGTERM blocked.
 * @returns 0, or a negative errno.
 */
int sim_timer_start(struct sim_timer *t);

/**
 * @brief Suspend @p conn for its latency of @p service_ns: from @p now_ns
 * (sim_now_ns() clock) when a place is free, else from the moment one
 * frees up, in arrival order.
 *
 * Must be called from the access handler of @p conn, which must then
 * return MHD_YES. The handler runs again once the connection is resumed
 * and must call sim_timer_unparked() first; p->wake says what to do:
 * SIM_WAKE_ANSWER, or SIM_WAKE_DROP when the client left while queued (the
 * gone callback ran first). If the timer is stopping or out of memory the
 * connection is resumed at once with SIM_WAKE_ANSWER, so the caller never
 * has to branch.
 */
void sim_timer_serve(struct sim_timer *t, struct sim_park *p,
		     struct MHD_Connection *conn, uint64_t now_ns,
		     uint64_t service_ns);

/**
 * @brief Suspend @p conn with no deadline (the timeout fault).
 *
 * It is resumed with SIM_WAKE_DROP when the client closes its socket or the
 * timer stops. Same calling rules as sim_timer_serve(). A held request
 * takes no place of the capacity.
 */
void sim_timer_hold(struct sim_timer *t, struct sim_park *p,
		    struct MHD_Connection *conn);

/**
 * @brief Account for a parked request having run again (or completed).
 *
 * Call from the connection's thread when p->parked is set: on the handler's
 * first call after the resume, or from the request-completed callback if
 * MHD closed the connection without calling the handler.
 */
void sim_timer_unparked(struct sim_timer *t, struct sim_park *p);

/**
 * @brief Check the held and queued requests' sockets now, from the
 * calling thread, report every client that hung up to the gone callback,
 * then run @p then(@p cls) before anything else can report one.
 *
 * The timer thread notices hang-ups by itself, a few microseconds late;
 * call this where that lag matters (before raising a concurrency peak).
 * Cheap when nothing is held or queued. @p then runs under the timer's
 * lock, like the gone callback, and must not call back into the timer.
 */
void sim_timer_reap(struct sim_timer *t, void (*then)(void *cls), void *cls);

/** Copy the capacity's counters into @p ret. */
void sim_timer_load(struct sim_timer *t, struct sim_timer_load *ret);

/** Zero the waits; the peaks restart from what is computing and queued now. */
void sim_timer_load_reset(struct sim_timer *t);

/**
 * @brief Stop: refuse new parks, wake every parked request (delayed and
 * queued ones are answered, held ones dropped), join the thread, then wait
 * up to @p wait_ms for every woken handler to have run.
 * @returns the number of requests still parked (0 when all ran).
 */
size_t sim_timer_stop(struct sim_timer *t, unsigned wait_ms);

/** Free a stopped (or never started) timer. Accepts NULL. */
void sim_timer_free(struct sim_timer *t);

#endif /* LLMSIM_SIM_TIMER_H */
