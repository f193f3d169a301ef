/*
 * stop: see stop.h.
 */
#include "stop.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct stop {
	int fd;                       /**< eventfd: readable once requested */
	atomic_bool requested;        /**< stop_request() was called */
	atomic_bool failed;           /**< a fatal error: exit status 1 */
	atomic_bool stopping;         /**< stop_begin() was called */
	atomic_int_fast64_t deadline_ns; /**< monotonic; set before stopping */
	_Atomic(const char *) step;   /**< the step of stopping under way */
};

struct stop *stop_new(void)
{
	struct stop *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->fd < 0) {
		int e = errno;

		free(s);
		errno = e;
		return NULL;
	}
	return s;
}

void stop_free(struct stop *s)
{
	if (!s)
		return;
	close(s->fd);
	free(s);
}

void stop_request(struct stop *s, bool failed)
{
	uint64_t one = 1;

	if (failed)
		atomic_store(&s->failed, true);
	if (!atomic_exchange(&s->requested, true) &&
	    write(s->fd, &one, sizeof(one)) != sizeof(one))
		LOG_ERROR("cannot wake the main thread to stop");
}

int stop_fd(const struct stop *s)
{
	return s->fd;
}

bool stop_failed(const struct stop *s)
{
	return atomic_load(&s->failed);
}

void stop_begin(struct stop *s, unsigned timeout_ms)
{
	atomic_store(&s->deadline_ns,
		     mono_ns() + (int64_t)timeout_ms * 1000000);
	atomic_store(&s->stopping, true);
}

bool stop_stopping(const struct stop *s)
{
	return atomic_load(&s->stopping);
}

unsigned stop_left_ms(const struct stop *s, unsigned cap)
{
	int64_t left;

	if (!atomic_load(&s->stopping))
		return cap;
	left = (atomic_load(&s->deadline_ns) - mono_ns()) / 1000000;
	if (left <= 0)
		return 0;
	return left < (int64_t)cap ? (unsigned)left : cap;
}

void stop_step(struct stop *s, const char *step)
{
	atomic_store(&s->step, step);
	LOG_DEBUG("stopping", LOG_S("step", step),
		  LOG_U("left_ms", stop_left_ms(s, UINT32_MAX)));
}

const char *stop_step_name(const struct stop *s)
{
	const char *step = atomic_load(&s->step);

	return step ? step : "starting";
}
