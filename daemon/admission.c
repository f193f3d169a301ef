/*
 * admission: see admission.h.
 */
#include "admission.h"

#include "clock.h"

#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct admission {
	unsigned max;       /**< pool.max_in_flight */
	sem_t slots;        /**< free slots */
	atomic_uint early;  /**< jobs whose slot went back before their end */
};

struct admission *admission_new(unsigned max_in_flight)
{
	struct admission *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->max = max_in_flight;
	if (sem_init(&a->slots, 0, max_in_flight) < 0) {
		free(a);
		return NULL;
	}
	atomic_init(&a->early, 0);
	return a;
}

void admission_free(struct admission *a)
{
	if (!a)
		return;
	sem_destroy(&a->slots);
	free(a);
}

bool admission_try(struct admission *a)
{
	return sem_trywait(&a->slots) == 0;
}

bool admission_wait(struct admission *a, unsigned ms)
{
	struct timespec until = realtime_in_ns((int64_t)ms * 1000000);

	while (sem_timedwait(&a->slots, &until) < 0)
		if (errno != EINTR)
			return false;
	return true;
}

void admission_cancel(struct admission *a)
{
	sem_post(&a->slots);
}

bool admission_call_done(struct admission *a)
{
	if (atomic_fetch_add(&a->early, 1) < a->max) {
		sem_post(&a->slots);
		return true;
	}
	atomic_fetch_sub(&a->early, 1);
	return false;
}

void admission_end(struct admission *a, bool early)
{
	if (early)
		atomic_fetch_sub(&a->early, 1);
	else
		sem_post(&a->slots);
}

unsigned admission_free_slots(struct admission *a)
{
	int n = 0;

	sem_getvalue(&a->slots, &n);
	return n > 0 ? (unsigned)n : 0;
}

unsigned admission_early(struct admission *a)
{
	return atomic_load(&a->early);
}
