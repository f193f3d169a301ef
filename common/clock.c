/*
 * clock: see clock.h.
 */
#include "clock.h"

#define NS_PER_S 1000000000LL

static int64_t read_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

int64_t mono_ns(void)
{
	return read_ns(CLOCK_MONOTONIC);
}

int64_t wall_ms(void)
{
	return read_ns(CLOCK_REALTIME) / 1000000;
}

struct timespec mono_timespec(int64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / NS_PER_S),
			       .tv_nsec = (long)(ns % NS_PER_S) };

	return ts;
}

struct timespec realtime_in_ns(int64_t ns)
{
	return mono_timespec(read_ns(CLOCK_REALTIME) + (ns > 0 ? ns : 0));
}
