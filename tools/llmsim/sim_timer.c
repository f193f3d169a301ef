/*
 * sim_timer.c - parks suspended MHD connections until a deadline (latency)
 * or until their client goes away (the timeout fault), with at most
 * --capacity of them in their latency at once and the rest queued.
 *
 * DESIGN
 * ------
 *
 * llmsim must delay thousands of answers at once without a thread per
 * request. The access handler builds its answer, suspends its connection
 * (MHD_suspend_connection) and hands a struct sim_park to this module:
 *
 *  - delayed requests go into a binary min-heap of deadlines;
 *  - with a capacity N, a request arriving while N are in their latency
 *    ("computing") waits in a FIFO queue instead, and its latency starts
 *    only when a place frees up, so what a client sees is queue wait plus
 *    service time, as on a server with N slots;
 *  - held requests (the timeout fault) go into an unordered "held" array,
 *    and their socket into the timer's epoll set with EPOLLRDHUP, because
 *    MHD does not watch a suspended connection and a client that gives up
 *    must stop counting as an open request at once (/stats is the test
 *    oracle for concurrency).
 *
 * One timer thread sleeps in epoll_wait() on three kinds of source:
 *  - a timerfd armed (absolute, CLOCK_MONOTONIC) at the earliest deadline;
 *  - an eventfd written by sim_timer_stop();
 *  - the held and queued sockets (one-shot: each reports at most once).
 * It pops every due deadline and calls MHD_resume_connection() for it
 * *after* dropping the lock; for a held or queued socket that hung up it
 * tells the owner (the gone callback) and resumes it with SIM_WAKE_DROP.
 *
 * The capacity: a due deadline gives its place back, and in the same
 * critical section the queue's head takes it (its deadline pushed on the
 * heap), so "computing" never exceeds N and the queue is never waited on
 * while a place is free. A queued request stays suspended; its socket is
 * watched like a held one, so a client that gives up leaves the queue at
 * once (gone callback, SIM_WAKE_DROP) instead of taking a place later. A
 * client that leaves while computing keeps its place until its latency is
 * over: a real server does not notice either. Held requests (the timeout
 * fault) take no place, or a capacity of N would hang after N of them.
 * The heap always has room for every queued request (reserved when one
 * joins the queue), so starting one cannot fail.
 *
 * That wake-up can lose a race against the same client's next request on
 * a new connection, so sim_timer_reap() lets a handler check the held and
 * queued sockets synchronously (recv MSG_PEEK: the client's FIN is in by
 * the time its next request is) and report hang-ups itself; p->gone makes
 * the report happen once (and keeps a queued one from starting), and the
 * epoll event still does the removal.
 *
 * Ownership and locking:
 *  - t->lock guards heap, held, the queue and the capacity's counters,
 *    parked, stopping, armed_ns and every p->slot/p->watched/p->gone/
 *    p->computing/p->queued and the queue links. Handlers take it to
 *    push (and to re-arm the timerfd when their deadline is the new
 *    earliest); the timer thread to pop. The gone callback (and reap's
 *    "then") runs under it, so the owner's locks nest inside t->lock,
 *    never the other way. No MHD function is called with t->lock held,
 *    so it cannot form a lock-order cycle with MHD's internal mutexes.
 *  - A held entry leaves the held array only in the timer thread: on its
 *    (single, one-shot) epoll event or in the final drain; a queued one
 *    leaves the queue only there too, or when it starts (in the same
 *    thread, after that wait's events are handled). Either's epoll
 *    registration is removed before it moves on, so no event can name a
 *    park after its request is freed, nor a queued park once it started.
 *  - A struct sim_park belongs to its request; this module does not touch
 *    it after the resume call, since from then on the handler may run and
 *    free it. p->wake is stored (release) before the resume and read
 *    (acquire) by the handler.
 *  - parked counts suspended requests whose handler has not run again; it
 *    lets sim_timer_stop() wait until MHD holds no suspended connection,
 *    since MHD_stop_daemon() must not see one.
 *  - armed_ns is the time the timerfd fires at. If it is in the past the
 *    timerfd has fired and the thread is bound to run, and it re-arms from
 *    the heap under the lock, so a push never needs to wake it.
 *
 * A park always suspends first and pushes second, so the timer thread can
 * never resume a connection that is not suspended yet. If the push fails
 * (stopping, or out of memory) the handler resumes its own connection at
 * once, so the caller has a single path.
 */
#include "sim_timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define SIM_TIMER_BATCH		256u		/**< resumes per lock hold */
#define SIM_TIMER_EVENTS	64		/**< epoll events per wait */
#define SIM_TIMER_MAX		(1u << 20)	/**< entries per container */
#define SIM_NS_PER_MS		1000000ull
#define SIM_NS_PER_S		1000000000ull

struct sim_deadline {
	uint64_t due_ns;
	struct sim_park *p;
};

struct sim_timer {
	pthread_mutex_t lock;
	struct sim_timer_load load;	/**< capacity and its counters */
	struct sim_park *qhead, *qtail;	/**< the FIFO queue */
	pthread_cond_t idle;		/**< stop waits here for parked == 0 */
	struct sim_deadline *heap;	/**< min-heap on due_ns */
	size_t heap_len, heap_cap;
	struct sim_park **held;		/**< timeout-fault requests */
	size_t held_len, held_cap;
	size_t parked;			/**< suspended, handler not re-run */
	atomic_size_t nwatched;		/**< held_len + queued, readable
					 *   unlocked; lowered only after the
					 *   gone callback of a removed entry
					 *   (sim_publish) */
	uint64_t armed_ns;		/**< timerfd expiry; UINT64_MAX: off */
	bool stopping;
	bool running;			/**< thread started and not joined */
	pthread_t thread;
	int ep;				/**< epoll: tfd, kfd, held and
					 *   queued sockets */
	int tfd;			/**< timerfd at the earliest deadline */
	int kfd;			/**< eventfd: stop */
	sim_timer_gone_fn gone;
	void *gone_cls;
};

uint64_t sim_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SIM_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/**
 * @brief Make room for @p need elements of @p size bytes in *arr.
 * @returns 0, or -ENOMEM (also past SIM_TIMER_MAX elements).
 */
static int sim_grow(void **arr, size_t *cap, size_t need, size_t size)
{
	size_t ncap;
	void *n;

	if (need <= *cap)
		return 0;
	if (need > SIM_TIMER_MAX)
		return -ENOMEM;
	ncap = *cap ? *cap : 64;
	while (ncap < need)
		ncap *= 2;
	n = realloc(*arr, ncap * size);
	if (!n)
		return -ENOMEM;
	*arr = n;
	*cap = ncap;
	return 0;
}

/** Point the timerfd at @p due_ns (UINT64_MAX: disarm). t->lock held. */
static void sim_timer_arm(struct sim_timer *t, uint64_t due_ns)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	if (due_ns != UINT64_MAX) {
		if (due_ns == 0)
			due_ns = 1;	/* 0 would disarm */
		its.it_value.tv_sec = (time_t)(due_ns / SIM_NS_PER_S);
		its.it_value.tv_nsec = (long)(due_ns % SIM_NS_PER_S);
	}
	if (timerfd_settime(t->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		t->armed_ns = due_ns;
}

/*
 * Heap helpers: t->lock held. The heap keeps room for every queued
 * request too (sim_heap_reserve), so sim_heap_insert() cannot fail.
 */
static int sim_heap_reserve(struct sim_timer *t, size_t more)
{
	void *arr = t->heap;

	if (sim_grow(&arr, &t->heap_cap, t->heap_len + t->load.queued + more,
		     sizeof(*t->heap)))
		return -ENOMEM;
	t->heap = arr;
	return 0;
}

static void sim_heap_insert(struct sim_timer *t, struct sim_park *p,
			    uint64_t due_ns)
{
	size_t i, parent;

	i = t->heap_len++;
	while (i > 0) {
		parent = (i - 1) / 2;
		if (t->heap[parent].due_ns <= due_ns)
			break;
		t->heap[i] = t->heap[parent];
		i = parent;
	}
	t->heap[i].due_ns = due_ns;
	t->heap[i].p = p;
}

static struct sim_park *sim_heap_pop(struct sim_timer *t)
{
	struct sim_park *top = t->heap[0].p;
	struct sim_deadline last = t->heap[--t->heap_len];
	size_t i = 0, child;

	while ((child = 2 * i + 1) < t->heap_len) {
		if (child + 1 < t->heap_len &&
		    t->heap[child + 1].due_ns < t->heap[child].due_ns)
			child++;
		if (last.due_ns <= t->heap[child].due_ns)
			break;
		t->heap[i] = t->heap[child];
		i = child;
	}
	if (t->heap_len)
		t->heap[i] = last;
	return top;
}

/**
 * Publish how many held and queued requests sim_timer_reap() may have to
 * check. t->lock held; a removal whose client left publishes only after
 * its gone callback, so a reap that sees the smaller count also sees what
 * the callback did (release/acquire).
 */
static void sim_publish(struct sim_timer *t)
{
	atomic_store_explicit(&t->nwatched, t->held_len + t->load.queued,
			      memory_order_release);
}

/* Held-array helpers: t->lock held. */
static int sim_held_push(struct sim_timer *t, struct sim_park *p)
{
	struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLONESHOT };
	void *arr = t->held;

	if (sim_grow(&arr, &t->held_cap, t->held_len + 1, sizeof(*t->held)))
		return -ENOMEM;
	t->held = arr;
	p->slot = t->held_len;
	t->held[t->held_len++] = p;
	sim_publish(t);
	/* without a watch it is still held, until the timer stops */
	ev.data.ptr = p;
	p->watched = p->fd >= 0 &&
		     epoll_ctl(t->ep, EPOLL_CTL_ADD, p->fd, &ev) == 0;
	return 0;
}

/** Stop watching p's socket, if it is watched. t->lock held. */
static void sim_unwatch(struct sim_timer *t, struct sim_park *p)
{
	if (p->watched)
		(void)epoll_ctl(t->ep, EPOLL_CTL_DEL, p->fd, NULL);
	p->watched = false;
}

static void sim_held_remove(struct sim_timer *t, struct sim_park *p)
{
	struct sim_park *last = t->held[--t->held_len];

	t->held[p->slot] = last;
	last->slot = p->slot;
	sim_unwatch(t, p);
}

/* Capacity helpers: t->lock held. */

/** Start p's latency at @p now_ns in a free place of the capacity. */
static void sim_compute(struct sim_timer *t, struct sim_park *p,
			uint64_t now_ns)
{
	sim_heap_insert(t, p, now_ns + p->service_ns);
	p->computing = true;
	if (++t->load.computing > t->load.computing_peak)
		t->load.computing_peak = t->load.computing;
}

static bool sim_place_free(const struct sim_timer *t)
{
	return !t->load.capacity || t->load.computing < t->load.capacity;
}

/** Append p to the queue, its socket watched for a hang-up. */
static int sim_queue_push(struct sim_timer *t, struct sim_park *p,
			  uint64_t now_ns)
{
	struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLONESHOT };

	if (sim_heap_reserve(t, 1))
		return -ENOMEM;
	p->queued = true;
	p->queued_ns = now_ns;
	p->qnext = NULL;
	p->qprev = t->qtail;
	if (t->qtail)
		t->qtail->qnext = p;
	else
		t->qhead = p;
	t->qtail = p;
	if (++t->load.queued > t->load.queue_peak)
		t->load.queue_peak = t->load.queued;
	sim_publish(t);
	/* unwatched, it still waits its turn; only a hang-up goes unseen */
	ev.data.ptr = p;
	p->watched = p->fd >= 0 &&
		     epoll_ctl(t->ep, EPOLL_CTL_ADD, p->fd, &ev) == 0;
	return 0;
}

static void sim_queue_remove(struct sim_timer *t, struct sim_park *p)
{
	if (p->qprev)
		p->qprev->qnext = p->qnext;
	else
		t->qhead = p->qnext;
	if (p->qnext)
		p->qnext->qprev = p->qprev;
	else
		t->qtail = p->qprev;
	p->queued = false;
	t->load.queued--;
	sim_unwatch(t, p);
}

/**
 * Start queued requests, oldest first, while a place is free. One whose
 * client a reap found gone is passed over: it waits for its epoll event,
 * which drops it.
 */
static void sim_queue_start(struct sim_timer *t, uint64_t now_ns)
{
	struct sim_park *p, *next;
	uint64_t wait;

	for (p = t->qhead; p && sim_place_free(t); p = next) {
		next = p->qnext;
		if (p->gone)
			continue;
		sim_queue_remove(t, p);
		wait = now_ns > p->queued_ns ? now_ns - p->queued_ns : 0;
		t->load.wait_ns += wait;
		if (wait > t->load.wait_max_ns)
			t->load.wait_max_ns = wait;
		sim_compute(t, p, now_ns);
	}
	sim_publish(t);
}

/**
 * @brief Wake one parked request. The park must not be touched afterwards:
 * once resumed, its handler may run and free it.
 */
static void sim_fire(struct sim_park *p, enum sim_wake w)
{
	struct MHD_Connection *conn = p->conn;

	atomic_store_explicit(&p->wake, w, memory_order_release);
	MHD_resume_connection(conn);
}

/**
 * @brief First half of every park: suspend @p conn, its socket looked up
 * when it may be watched. The caller then counts it in t->parked and
 * pushes it under the lock.
 */
static void sim_timer_suspend(struct sim_park *p, struct MHD_Connection *conn,
			      bool watch)
{
	const union MHD_ConnectionInfo *ci;

	p->conn = conn;
	p->fd = -1;
	p->watched = false;
	p->gone = false;
	p->computing = false;
	p->queued = false;
	if (watch) {
		ci = MHD_get_connection_info(conn,
					     MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci)
			p->fd = ci->connect_fd;
	}
	atomic_store_explicit(&p->wake, SIM_WAKE_NONE, memory_order_relaxed);
	p->parked = true;
	MHD_suspend_connection(conn);
}

void sim_timer_serve(struct sim_timer *t, struct sim_park *p,
		     struct MHD_Connection *conn, uint64_t now_ns,
		     uint64_t service_ns)
{
	int r = -ESHUTDOWN;

	sim_timer_suspend(p, conn, t->load.capacity != 0);
	p->service_ns = service_ns;

	pthread_mutex_lock(&t->lock);
	t->parked++;
	if (!t->stopping) {
		if (!sim_place_free(t)) {
			r = sim_queue_push(t, p, now_ns);
		} else {
			r = sim_heap_reserve(t, 1);
			if (r == 0) {
				sim_compute(t, p, now_ns);
				if (now_ns + service_ns < t->armed_ns)
					sim_timer_arm(t, now_ns + service_ns);
			}
		}
	}
	pthread_mutex_unlock(&t->lock);

	if (r < 0)
		sim_fire(p, SIM_WAKE_ANSWER);
}

void sim_timer_hold(struct sim_timer *t, struct sim_park *p,
		    struct MHD_Connection *conn)
{
	int r = -ESHUTDOWN;

	sim_timer_suspend(p, conn, true);

	pthread_mutex_lock(&t->lock);
	t->parked++;
	if (!t->stopping)
		r = sim_held_push(t, p);
	pthread_mutex_unlock(&t->lock);

	if (r < 0)
		sim_fire(p, SIM_WAKE_DROP);
}

void sim_timer_load(struct sim_timer *t, struct sim_timer_load *ret)
{
	pthread_mutex_lock(&t->lock);
	*ret = t->load;
	pthread_mutex_unlock(&t->lock);
}

void sim_timer_load_reset(struct sim_timer *t)
{
	pthread_mutex_lock(&t->lock);
	t->load.computing_peak = t->load.computing;
	t->load.queue_peak = t->load.queued;
	t->load.wait_ns = 0;
	t->load.wait_max_ns = 0;
	pthread_mutex_unlock(&t->lock);
}

void sim_timer_unparked(struct sim_timer *t, struct sim_park *p)
{
	p->parked = false;
	pthread_mutex_lock(&t->lock);
	t->parked--;
	if (t->parked == 0 && t->stopping)
		pthread_cond_broadcast(&t->idle);
	pthread_mutex_unlock(&t->lock);
}

/**
 * @brief Resume every due request, giving its place to the queue's head,
 * then re-arm the timerfd for the next deadline. Called and returns with
 * t->lock held; drops it to resume.
 */
static void sim_timer_expire(struct sim_timer *t)
{
	struct sim_park *batch[SIM_TIMER_BATCH], *p;
	uint64_t now, next;
	size_t n, i;

	for (;;) {
		now = sim_now_ns();
		n = 0;
		while (n < SIM_TIMER_BATCH && t->heap_len &&
		       t->heap[0].due_ns <= now) {
			p = sim_heap_pop(t);
			if (p->computing) {
				p->computing = false;
				t->load.computing--;
			}
			batch[n++] = p;
		}
		sim_queue_start(t, now);
		if (!n)
			break;
		pthread_mutex_unlock(&t->lock);
		for (i = 0; i < n; i++)
			sim_fire(batch[i], SIM_WAKE_ANSWER);
		pthread_mutex_lock(&t->lock);
	}
	next = t->heap_len ? t->heap[0].due_ns : UINT64_MAX;
	if (next != t->armed_ns)
		sim_timer_arm(t, next);
}

/**
 * @brief The client of held or queued request @p p hung up: report it and
 * drop it. @p p is still in the held array or the queue, since its
 * one-shot event is the only way out besides the drain, which runs after
 * the last event, and (queued) its start, which runs after this wait's
 * events and unwatches it.
 */
static void sim_timer_gone(struct sim_timer *t, struct sim_park *p)
{
	pthread_mutex_lock(&t->lock);
	if (p->queued)
		sim_queue_remove(t, p);
	else
		sim_held_remove(t, p);
	if (!p->gone && t->gone)
		t->gone(t->gone_cls, p);
	p->gone = true;
	sim_publish(t);		/* only now: see sim_publish() */
	pthread_mutex_unlock(&t->lock);
	sim_fire(p, SIM_WAKE_DROP);
}

/** True when the peer of @p fd has closed or reset the connection. Peeks,
 * so pipelined bytes stay for MHD. */
static bool sim_peer_gone(int fd)
{
	char c;
	ssize_t n;

	n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return true;
	return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
	       errno != EINTR;
}

void sim_timer_reap(struct sim_timer *t, void (*then)(void *cls), void *cls)
{
	struct sim_park *p;
	size_t i;

	/*
	 * Nothing held or queued, and every removal's callback already done
	 * (the count drops only after it): no lock needed.
	 */
	if (!atomic_load_explicit(&t->nwatched, memory_order_acquire)) {
		then(cls);
		return;
	}
	pthread_mutex_lock(&t->lock);
	for (i = 0; i < t->held_len; i++) {
		p = t->held[i];
		if (p->gone || p->fd < 0 || !sim_peer_gone(p->fd))
			continue;
		/* stays held: its epoll event removes and drops it */
		p->gone = true;
		if (t->gone)
			t->gone(t->gone_cls, p);
	}
	for (p = t->qhead; p; p = p->qnext) {
		/* an unwatched one gets no event: it is served */
		if (p->gone || !p->watched || !sim_peer_gone(p->fd))
			continue;
		/* stays queued, never started: its event drops it */
		p->gone = true;
		if (t->gone)
			t->gone(t->gone_cls, p);
	}
	then(cls);
	pthread_mutex_unlock(&t->lock);
}

/**
 * @brief Wake everything still parked: delayed and queued requests are
 * answered, held ones (and queued ones a reap found gone) dropped. Called
 * with t->lock held and stopping set (so no push can race with it);
 * returns with the lock held.
 */
static void sim_timer_drain(struct sim_timer *t)
{
	size_t hl = t->heap_len, dl = t->held_len, i;
	struct sim_park *q = t->qhead, *next;

	for (i = 0; i < dl; i++)
		sim_unwatch(t, t->held[i]);
	for (next = q; next; next = next->qnext) {
		sim_unwatch(t, next);
		next->queued = false;
	}
	t->heap_len = 0;
	t->held_len = 0;
	t->qhead = t->qtail = NULL;
	t->load.queued = 0;
	t->load.computing = 0;
	sim_publish(t);
	pthread_mutex_unlock(&t->lock);
	for (i = 0; i < hl; i++)
		sim_fire(t->heap[i].p, SIM_WAKE_ANSWER);
	for (i = 0; i < dl; i++)
		sim_fire(t->held[i], SIM_WAKE_DROP);
	for (; q; q = next) {
		next = q->qnext;	/* q may be freed once resumed */
		sim_fire(q, q->gone ? SIM_WAKE_DROP : SIM_WAKE_ANSWER);
	}
	pthread_mutex_lock(&t->lock);
}

static void *sim_timer_main(void *arg)
{
	struct sim_timer *t = arg;
	struct epoll_event ev[SIM_TIMER_EVENTS];
	uint64_t buf;
	int n, i;

	for (;;) {
		n = epoll_wait(t->ep, ev, SIM_TIMER_EVENTS, -1);
		if (n < 0 && errno != EINTR) {
			/* cannot wait any more: answer everything now */
			pthread_mutex_lock(&t->lock);
			t->stopping = true;
			break;
		}
		for (i = 0; i < n; i++) {
			if (ev[i].data.ptr == &t->tfd)
				(void)!read(t->tfd, &buf, sizeof(buf));
			else if (ev[i].data.ptr == &t->kfd)
				(void)!read(t->kfd, &buf, sizeof(buf));
			else
				sim_timer_gone(t, ev[i].data.ptr);
		}
		pthread_mutex_lock(&t->lock);
		if (t->stopping)
			break;
		sim_timer_expire(t);
		pthread_mutex_unlock(&t->lock);
	}
	sim_timer_drain(t);
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

/** Register one of the timer's own fds, tagged by its address. */
static int sim_timer_watch_own(struct sim_timer *t, int *fdp)
{
	struct epoll_event ev = { .events = EPOLLIN };

	ev.data.ptr = fdp;
	return epoll_ctl(t->ep, EPOLL_CTL_ADD, *fdp, &ev) ? -errno : 0;
}

int sim_timer_new(size_t capacity, sim_timer_gone_fn gone, void *gone_cls,
		  struct sim_timer **ret)
{
	struct sim_timer *t;
	pthread_condattr_t ca;
	int r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ep = t->tfd = t->kfd = -1;
	t->armed_ns = UINT64_MAX;
	t->load.capacity = capacity;
	atomic_init(&t->nwatched, 0);
	t->gone = gone;
	t->gone_cls = gone_cls;
	r = pthread_condattr_init(&ca);
	if (r)
		goto out_free;
	r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!r)
		r = pthread_mutex_init(&t->lock, NULL);
	if (r) {
		pthread_condattr_destroy(&ca);
		goto out_free;
	}
	r = pthread_cond_init(&t->idle, &ca);
	pthread_condattr_destroy(&ca);
	if (r) {
		pthread_mutex_destroy(&t->lock);
		goto out_free;
	}
	t->ep = epoll_create1(EPOLL_CLOEXEC);
	t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	t->kfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->ep < 0 || t->tfd < 0 || t->kfd < 0) {
		r = errno;
		goto out_destroy;
	}
	r = -sim_timer_watch_own(t, &t->tfd);
	if (!r)
		r = -sim_timer_watch_own(t, &t->kfd);
	if (r)
		goto out_destroy;
	*ret = t;
	return 0;

out_destroy:
	sim_timer_free(t);
	return -r;
out_free:
	free(t);
	return -r;
}

int sim_timer_start(struct sim_timer *t)
{
	int r;

	r = pthread_create(&t->thread, NULL, sim_timer_main, t);
	if (r)
		return -r;
	t->running = true;
	return 0;
}

size_t sim_timer_stop(struct sim_timer *t, unsigned wait_ms)
{
	const uint64_t one = 1;
	struct timespec ts;
	uint64_t until;
	size_t left;

	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	if (!t->running)
		sim_timer_drain(t);
	pthread_mutex_unlock(&t->lock);
	if (t->running) {
		(void)!write(t->kfd, &one, sizeof(one));
		pthread_join(t->thread, NULL);
		t->running = false;
	}

	until = sim_now_ns() + (uint64_t)wait_ms * SIM_NS_PER_MS;
	ts.tv_sec = (time_t)(until / SIM_NS_PER_S);
	ts.tv_nsec = (long)(until % SIM_NS_PER_S);
	pthread_mutex_lock(&t->lock);
	while (t->parked > 0) {
		if (pthread_cond_timedwait(&t->idle, &t->lock, &ts) ==
		    ETIMEDOUT)
			break;
	}
	left = t->parked;
	pthread_mutex_unlock(&t->lock);
	return left;
}

void sim_timer_free(struct sim_timer *t)
{
	if (!t)
		return;
	if (t->running)
		sim_timer_stop(t, 0);
	pthread_cond_destroy(&t->idle);
	pthread_mutex_destroy(&t->lock);
	if (t->ep >= 0)
		close(t->ep);
	if (t->tfd >= 0)
		close(t->tfd);
	if (t->kfd >= 0)
		close(t->kfd);
	free(t->heap);
	free(t->held);
	free(t);
}
