/*
 * tsan_c11threads: glibc's C11 threads on top of pthreads, for
 * ThreadSanitizer builds only (CMakeLists.txt links it into the programs
 * that use librdkafka when EXTRACTD_SANITIZE has "thread").
 *
 * DESIGN
 * ------
 * Debian's librdkafka creates its threads with thrd_create() and locks
 * with mtx_lock()/cnd_wait() from glibc's <threads.h>. ThreadSanitizer
 * intercepts the pthread functions but not these (google/sanitizers#1603,
 * still open in LLVM 22), and glibc implements them with internal calls
 * it cannot see: a librdkafka thread starts without TSan's thread state
 * and the first malloc in it crashes the runtime (SEGV in
 * CombinedAllocator::Allocate), and librdkafka's locks would be invisible,
 * so every hand-over through its queues (a message to our poll thread, a
 * job to a delivery report) would look like a race.
 *
 * The program defines the same names here; the dynamic linker binds
 * librdkafka's references (thrd_create@GLIBC_2.34 ...) to these
 * unversioned definitions in the executable before libc's, and each one
 * calls the pthread function TSan intercepts. glibc's own types are the
 * pthread ones underneath (mtx_t is as large as pthread_mutex_t, cnd_t as
 * pthread_cond_t, once_flag holds a pthread_once_t), which the static
 * assertions check.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>
#include <time.h>

_Static_assert(sizeof(mtx_t) >= sizeof(pthread_mutex_t), "mtx_t");
_Static_assert(sizeof(cnd_t) >= sizeof(pthread_cond_t), "cnd_t");
_Static_assert(sizeof(once_flag) >= sizeof(pthread_once_t), "once_flag");
_Static_assert(sizeof(thrd_t) == sizeof(pthread_t), "thrd_t");

/* A pthread error number as a thrd_* result, as glibc maps them. */
static int thrd_result(int err)
{
	switch (err) {
	case 0:
		return thrd_success;
	case ENOMEM:
		return thrd_nomem;
	case EBUSY:
		return thrd_busy;
	case ETIMEDOUT:
		return thrd_timedout;
	default:
		return thrd_error;
	}
}

struct start {
	thrd_start_t func;
	void *arg;
};

static void *start_thread(void *p)
{
	struct start s = *(struct start *)p;

	free(p);
	return (void *)(intptr_t)s.func(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
	struct start *s = malloc(sizeof(*s));
	pthread_t t;
	int err;

	if (!s)
		return thrd_nomem;
	s->func = func;
	s->arg = arg;
	err = pthread_create(&t, NULL, start_thread, s);
	if (err) {
		free(s);
		return err == EAGAIN ? thrd_nomem : thrd_result(err);
	}
	*thr = (thrd_t)t;
	return thrd_success;
}

int thrd_join(thrd_t thr, int *res)
{
	void *ret;
	int err = pthread_join((pthread_t)thr, &ret);

	if (err)
		return thrd_result(err);
	if (res)
		*res = (int)(intptr_t)ret;
	return thrd_success;
}

int thrd_detach(thrd_t thr)
{
	return thrd_result(pthread_detach((pthread_t)thr));
}

_Noreturn void thrd_exit(int res)
{
	pthread_exit((void *)(intptr_t)res);
}

int mtx_init(mtx_t *m, int type)
{
	pthread_mutexattr_t attr;
	int err;

	pthread_mutexattr_init(&attr);
	if (type & mtx_recursive)
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	err = pthread_mutex_init((pthread_mutex_t *)m, &attr);
	pthread_mutexattr_destroy(&attr);
	return thrd_result(err);
}

int mtx_lock(mtx_t *m)
{
	return thrd_result(pthread_mutex_lock((pthread_mutex_t *)m));
}

int mtx_trylock(mtx_t *m)
{
	return thrd_result(pthread_mutex_trylock((pthread_mutex_t *)m));
}

int mtx_timedlock(mtx_t *restrict m, const struct timespec *restrict ts)
{
	return thrd_result(pthread_mutex_timedlock((pthread_mutex_t *)m, ts));
}

int mtx_unlock(mtx_t *m)
{
	return thrd_result(pthread_mutex_unlock((pthread_mutex_t *)m));
}

void mtx_destroy(mtx_t *m)
{
	pthread_mutex_destroy((pthread_mutex_t *)m);
}

int cnd_init(cnd_t *c)
{
	return thrd_result(pthread_cond_init((pthread_cond_t *)c, NULL));
}

int cnd_signal(cnd_t *c)
{
	return thrd_result(pthread_cond_signal((pthread_cond_t *)c));
}

int cnd_broadcast(cnd_t *c)
{
	return thrd_result(pthread_cond_broadcast((pthread_cond_t *)c));
}

int cnd_wait(cnd_t *c, mtx_t *m)
{
	return thrd_result(pthread_cond_wait((pthread_cond_t *)c,
					     (pthread_mutex_t *)m));
}

int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m,
		  const struct timespec *restrict ts)
{
	return thrd_result(pthread_cond_timedwait((pthread_cond_t *)c,
						  (pthread_mutex_t *)m, ts));
}

void cnd_destroy(cnd_t *c)
{
	pthread_cond_destroy((pthread_cond_t *)c);
}

void call_once(once_flag *flag, void (*func)(void))
{
	pthread_once((pthread_once_t *)flag, func);
}
