/*
 * notify: see notify.h. Thin wrappers over libsystemd's sd_notify(), so
 * the rest of the daemon does not include systemd headers; their errors
 * are ignored, as sd_notify(3) advises for a service that also runs
 * outside systemd.
 */
#include "notify.h"

#include <stdio.h>
#include <systemd/sd-daemon.h>

void notify_ready(void)
{
	(void)sd_notify(0, "READY=1");
}

void notify_stopping(void)
{
	(void)sd_notify(0, "STOPPING=1");
}

void notify_watchdog(void)
{
	(void)sd_notify(0, "WATCHDOG=1");
}

uint64_t notify_watchdog_usec(void)
{
	uint64_t usec = 0;

	/* > 0: enabled for this very process (WATCHDOG_PID matches). */
	if (sd_watchdog_enabled(0, &usec) > 0)
		return usec;
	return 0;
}

void notify_status(const char *status)
{
	char line[512];

	snprintf(line, sizeof(line), "STATUS=%s", status);
	(void)sd_notify(0, line);
}
