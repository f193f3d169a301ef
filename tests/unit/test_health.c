/*
 * Unit tests for daemon/health: a wedged consumer poll loop fails
 * /healthz, named, and starves the systemd watchdog; a loop that turns
 * again ends both. So does a wedged main loop (no health_tick).
 *
 * The consumers are fakes linked in their place: this file defines the
 * consumer_* functions health.c reads, so the linker takes them instead
 * of daemon/consumer.c's (which needs a broker). A fake's heartbeat is
 * set in the past to make its loop as silent as the test needs, without
 * waiting. The main loop's heartbeat is health's own: health judges it
 * by the test's clock (health_set_clock), which runs ahead of mono_ns
 * by a skew the test sets. /healthz is asked over HTTP (httpd on a free loopback port);
 * the watchdog pings are read from a datagram socket given to libsystemd
 * as $NOTIFY_SOCKET, with $WATCHDOG_USEC and $WATCHDOG_PID set for this
 * process, as systemd sets them for a unit with WatchdogSec=.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "consumer.h"
#include "health.h"
#include "httpd.h"
#include "metrics.h"
#include "stop.h"

#define SEC 1000000000LL
#define WATCHDOG_USEC "4000000" /* WatchdogSec=4: fed while every loop
				 * turned within 2 s */
#define N_CONSUMERS 2

/* ---- the fake consumers ---- */

struct consumer {
	int64_t heartbeat_ns;
};

int64_t consumer_heartbeat_ns(const struct consumer *c)
{
	return c->heartbeat_ns;
}

unsigned consumer_assigned(const struct consumer *c)
{
	(void)c;
	return 1;
}

bool consumer_brokers_down(const struct consumer *c)
{
	(void)c;
	return false;
}

/* ---- the test's clock: mono_ns, ahead by skew ---- */

static atomic_int_fast64_t skew;

static int64_t test_now(void)
{
	return mono_ns() + atomic_load(&skew);
}

/* ---- the fixture ---- */

struct fixture {
	char dir[64];
	char sock_path[96];
	int notify_fd;          /* systemd's end of $NOTIFY_SOCKET */
	struct stop *stop;
	struct metrics *metrics;
	struct health *health;
	struct httpd *httpd;
	unsigned short port;
	struct consumer consumers[N_CONSUMERS];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char addr[64], err[256], pid[24];
	const char *colon;
	unsigned i;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_health.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock_path, sizeof(f->sock_path), "%s/notify", f->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock_path);
	f->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(f->notify_fd >= 0);
	assert_int_equal(bind(f->notify_fd, (struct sockaddr *)&sa,
			      sizeof(sa)), 0);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("NOTIFY_SOCKET", f->sock_path, 1);
	setenv("WATCHDOG_USEC", WATCHDOG_USEC, 1);
	setenv("WATCHDOG_PID", pid, 1);

	f->stop = stop_new();
	f->metrics = metrics_new();
	assert_non_null(f->stop);
	assert_non_null(f->metrics);
	f->health = health_new(f->stop, NULL, f->metrics, N_CONSUMERS);
	assert_non_null(f->health);
	atomic_store(&skew, 0);
	health_set_clock(f->health, test_now);
	for (i = 0; i < N_CONSUMERS; i++) {
		f->consumers[i].heartbeat_ns = mono_ns();
		health_add_consumer(f->health, &f->consumers[i]);
	}
	f->httpd = httpd_start("127.0.0.1:0", health_healthy, health_ready,
			       health_metrics, f->health, addr, sizeof(addr),
			       err, sizeof(err));
	assert_non_null(f->httpd);
	colon = strrchr(addr, ':');
	assert_non_null(colon);
	f->port = (unsigned short)atoi(colon + 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	httpd_stop(f->httpd);
	health_free(f->health);
	metrics_free(f->metrics);
	stop_free(f->stop);
	close(f->notify_fd);
	unlink(f->sock_path);
	rmdir(f->dir);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	free(f);
	return 0;
}

/* GET path: the status; the body (after the headers) into body. */
static int get(const struct fixture *f, const char *path, char *body,
	       size_t size)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(f->port) };
	char buf[4096], req[128];
	size_t len = 0;
	ssize_t n;
	char *p;
	int fd, status = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while (len < sizeof(buf) - 1 &&
	       (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &status), 1);
	p = strstr(buf, "\r\n\r\n");
	snprintf(body, size, "%s", p ? p + 4 : "");
	return status;
}

/* How many WATCHDOG=1 datagrams arrived since the last call. */
static unsigned pings(const struct fixture *f)
{
	unsigned n = 0;
	char msg[256];
	ssize_t len;

	while ((len = recv(f->notify_fd, msg, sizeof(msg) - 1,
			   MSG_DONTWAIT)) >= 0) {
		msg[len] = '\0';
		if (strstr(msg, "WATCHDOG=1"))
			n++;
	}
	return n;
}

/* ---- tests ---- */

/* Every loop turning: 200 ok, and each tick feeds the watchdog. */
static void alive(void **state)
{
	struct fixture *f = *state;
	char body[512];

	assert_int_equal(get(f, "/healthz", body, sizeof(body)), 200);
	assert_string_equal(body, "ok\n");
	health_tick(f->health);
	health_tick(f->health);
	assert_int_equal(pings(f), 2);
}

/*
 * Consumer 1's loop silent for 31 s: /healthz is 503 naming it, and no
 * tick feeds the watchdog. Once it turns again: 200, and fed again.
 */
static void wedged_consumer(void **state)
{
	struct fixture *f = *state;
	char body[512];

	f->consumers[1].heartbeat_ns = mono_ns() - 31 * SEC;
	assert_int_equal(get(f, "/healthz", body, sizeof(body)), 503);
	assert_non_null(strstr(body, "consumer 1 loop silent for 3"));
	assert_null(strstr(body, "consumer 0"));
	assert_null(strstr(body, "main loop"));
	health_tick(f->health);
	health_tick(f->health);
	assert_int_equal(pings(f), 0);

	f->consumers[1].heartbeat_ns = mono_ns();
	assert_int_equal(get(f, "/healthz", body, sizeof(body)), 200);
	health_tick(f->health);
	assert_int_equal(pings(f), 1);
}

/*
 * The watchdog is starved sooner than /healthz fails: at half of
 * WatchdogSec (2 s here), so systemd restarts the unit before its
 * WatchdogSec runs out; /healthz waits for 30 s of silence.
 */
static void watchdog_at_half(void **state)
{
	struct fixture *f = *state;
	char body[512];

	f->consumers[0].heartbeat_ns = mono_ns() - 3 * SEC;
	health_tick(f->health);
	assert_int_equal(pings(f), 0);
	assert_int_equal(get(f, "/healthz", body, sizeof(body)), 200);

	f->consumers[0].heartbeat_ns = mono_ns() - 1 * SEC;
	health_tick(f->health);
	assert_int_equal(pings(f), 1);
}

/*
 * The main loop wedged: no health_tick for 31 s while both consumer loops
 * turn. /healthz is 503 naming the main loop (and no consumer), and
 * nothing fed the watchdog meanwhile: only the main loop's tick does, not
 * the probe. Once the loop ticks again: 200, and fed.
 */
static void wedged_main_loop(void **state)
{
	struct fixture *f = *state;
	char body[512];
	unsigned i;

	health_tick(f->health);
	assert_int_equal(pings(f), 1);

	atomic_fetch_add(&skew, 31 * SEC);
	for (i = 0; i < N_CONSUMERS; i++)
		f->consumers[i].heartbeat_ns = test_now();
	assert_int_equal(get(f, "/healthz", body, sizeof(body)), 503);
	assert_non_null(strstr(body, "main loop silent for 3"));
	assert_null(strstr(body, "consumer"));
	assert_int_equal(pings(f), 0);

	health_tick(f->health);
	assert_int_equal(get(f, "/healthz", body, sizeof(body)), 200);
	assert_int_equal(pings(f), 1);
}

/* Stopping: draining is work, so a silent loop keeps /healthz 200. */
static void stopping(void **state)
{
	struct fixture *f = *state;
	char body[512];

	f->consumers[0].heartbeat_ns = mono_ns() - 31 * SEC;
	assert_int_equal(get(f, "/healthz", body, sizeof(body)), 503);
	stop_begin(f->stop, 10000);
	assert_int_equal(get(f, "/healthz", body, sizeof(body)), 200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(alive, setup, teardown),
		cmocka_unit_test_setup_teardown(wedged_consumer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(watchdog_at_half, setup,
						teardown),
		cmocka_unit_test_setup_teardown(wedged_main_loop, setup,
						teardown),
		cmocka_unit_test_setup_teardown(stopping, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
