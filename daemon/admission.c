/*
 * admission: see admission.h.
 */
#include "admission.h"

#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct admission {
	unsigned max;           /**< pool.max_in_flight */
	size_t queue_max;       /**< records the queue is for */
	admission_start_fn *start;
	void *start_arg;
	pthread_mutex_t lock;   /**< guards everything below but early */
	pthread_cond_t room;    /**< the queue came down to half */
	unsigned held;          /**< slots held */
	unsigned limit;         /**< slots there are now, 1..max */
	bool hold;              /**< start nothing */
	struct admission_link *head, *tail; /**< the queue, oldest first */
	size_t queued;
	pthread_cond_t ended_cond; /**< a job ended */
	unsigned ended;         /**< jobs ended so far (wraps) */
	atomic_uint early;      /**< jobs whose slot went back before their
				  *  end */
};

struct admission *admission_new(unsigned max_in_flight, size_t queue_max,
				admission_start_fn *start, void *arg)
{
	struct admission *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->max = max_in_flight;
	a->limit = max_in_flight;
	a->queue_max = queue_max ? queue_max : 1;
	a->start = start;
	a->start_arg = arg;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->room, NULL);
	pthread_cond_init(&a->ended_cond, NULL);
	atomic_init(&a->early, 0);
	return a;
}

void admission_free(struct admission *a)
{
	if (!a)
		return;
	pthread_cond_destroy(&a->room);
	pthread_cond_destroy(&a->ended_cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* With the lock: a record left the queue; the waiters for room are
 * woken when it comes down to half. */
static void dequeued(struct admission *a)
{
	if (a->queued-- == a->queue_max / 2 + 1)
		pthread_cond_broadcast(&a->room);
}

/* With the lock: the oldest queued record out. */
static struct admission_link *pop(struct admission *a)
{
	struct admission_link *l = a->head;

	a->head = l->next;
	if (!a->head)
		a->tail = NULL;
	l->next = NULL;
	dequeued(a);
	return l;
}

/* With the lock: the queued records that may start now, each given a
 * slot, linked oldest first. */
static struct admission_link *startable(struct admission *a)
{
	struct admission_link *first = NULL, **end = &first;

	while (!a->hold && a->head && a->held < a->limit) {
		a->held++;
		*end = pop(a);
		end = &(*end)->next;
	}
	return first;
}

/* Without the lock: start them. */
static void start_all(struct admission *a, struct admission_link *l)
{
	while (l) {
		struct admission_link *next = l->next;

		l->next = NULL;
		a->start(l, a->start_arg);
		l = next;
	}
}

void admission_queue(struct admission *a, struct admission_link *link)
{
	struct admission_link *go;

	link->next = NULL;
	pthread_mutex_lock(&a->lock);
	if (a->tail)
		a->tail->next = link;
	else
		a->head = link;
	a->tail = link;
	a->queued++;
	go = startable(a);
	pthread_mutex_unlock(&a->lock);
	start_all(a, go);
}

bool admission_room(struct admission *a)
{
	bool room;

	pthread_mutex_lock(&a->lock);
	room = a->queued < a->queue_max;
	pthread_mutex_unlock(&a->lock);
	return room;
}

bool admission_wait_room(struct admission *a, unsigned ms)
{
	struct timespec until = realtime_in_ns((int64_t)ms * 1000000);
	bool room;

	pthread_mutex_lock(&a->lock);
	while (a->queued > a->queue_max / 2 &&
	       pthread_cond_timedwait(&a->room, &a->lock, &until) != ETIMEDOUT)
		;
	room = a->queued <= a->queue_max / 2;
	pthread_mutex_unlock(&a->lock);
	return room;
}

struct admission_link *admission_remove(
	struct admission *a,
	bool (*match)(const struct admission_link *link, void *arg),
	void *arg)
{
	struct admission_link *out = NULL, **out_end = &out;
	struct admission_link **p, *l;

	pthread_mutex_lock(&a->lock);
	a->tail = NULL;
	for (p = &a->head; (l = *p);) {
		if (!match(l, arg)) {
			a->tail = l;
			p = &l->next;
			continue;
		}
		*p = l->next;
		l->next = NULL;
		*out_end = l;
		out_end = &l->next;
		dequeued(a);
	}
	pthread_mutex_unlock(&a->lock);
	return out;
}

size_t admission_queued(struct admission *a)
{
	size_t n;

	pthread_mutex_lock(&a->lock);
	n = a->queued;
	pthread_mutex_unlock(&a->lock);
	return n;
}

void admission_hold(struct admission *a, bool on)
{
	struct admission_link *go = NULL;

	pthread_mutex_lock(&a->lock);
	if (a->hold != on) {
		a->hold = on;
		go = startable(a);
	}
	pthread_mutex_unlock(&a->lock);
	start_all(a, go);
}

bool admission_call_done(struct admission *a, bool go,
			 struct admission_link **next)
{
	struct admission_link *start;
	bool early = atomic_fetch_add(&a->early, 1) < a->max;

	if (!early)
		atomic_fetch_sub(&a->early, 1);
	*next = NULL;
	pthread_mutex_lock(&a->lock);
	a->hold = !go;
	if (early) {
		if (go && a->head && a->held <= a->limit)
			*next = pop(a);
		else
			a->held--;
	}
	start = startable(a);
	pthread_mutex_unlock(&a->lock);
	start_all(a, start);
	return early;
}

void admission_end(struct admission *a, bool early)
{
	struct admission_link *go = NULL;

	if (early)
		atomic_fetch_sub(&a->early, 1);
	pthread_mutex_lock(&a->lock);
	if (!early) {
		a->held--;
		go = startable(a);
	}
	a->ended++;
	pthread_cond_broadcast(&a->ended_cond);
	pthread_mutex_unlock(&a->lock);
	start_all(a, go);
}

unsigned admission_ended(struct admission *a)
{
	unsigned n;

	pthread_mutex_lock(&a->lock);
	n = a->ended;
	pthread_mutex_unlock(&a->lock);
	return n;
}

bool admission_wait_ended(struct admission *a, unsigned since, unsigned ms)
{
	struct timespec until = realtime_in_ns((int64_t)ms * 1000000);
	bool ended;

	pthread_mutex_lock(&a->lock);
	while (a->ended == since &&
	       pthread_cond_timedwait(&a->ended_cond, &a->lock, &until) !=
		       ETIMEDOUT)
		;
	ended = a->ended != since;
	pthread_mutex_unlock(&a->lock);
	return ended;
}

void admission_set_limit(struct admission *a, unsigned n)
{
	struct admission_link *go;

	n = n < 1 ? 1 : n > a->max ? a->max : n;
	pthread_mutex_lock(&a->lock);
	a->limit = n;
	go = startable(a);
	pthread_mutex_unlock(&a->lock);
	start_all(a, go);
}

unsigned admission_held(struct admission *a)
{
	unsigned n;

	pthread_mutex_lock(&a->lock);
	n = a->held;
	pthread_mutex_unlock(&a->lock);
	return n;
}

unsigned admission_free_slots(struct admission *a)
{
	unsigned n;

	pthread_mutex_lock(&a->lock);
	n = a->held < a->limit ? a->limit - a->held : 0;
	pthread_mutex_unlock(&a->lock);
	return n;
}

unsigned admission_early(struct admission *a)
{
	return atomic_load(&a->early);
}
