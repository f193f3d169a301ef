/*
 * notify: telling systemd how the service is doing (sd_notify(3)), for
 * Type=notify units: READY=1 once consuming, STOPPING=1 when shutdown
 * begins, WATCHDOG=1 while the consumer loops are alive, and STATUS=.
 *
 * Outside systemd (no $NOTIFY_SOCKET) every call does nothing. Only the
 * main thread calls these.
 */
#ifndef EXTRACTD_NOTIFY_H
#define EXTRACTD_NOTIFY_H

#include <stdint.h>

/** Tell systemd start-up is done. */
void notify_ready(void);

/** Tell systemd shutdown has begun. */
void notify_stopping(void);

/** Feed the watchdog (call at least every notify_watchdog_usec() / 2). */
void notify_watchdog(void);

/**
 * @brief The unit's WatchdogSec= for this process.
 * @returns microseconds, or 0 when no watchdog is expected.
 */
uint64_t notify_watchdog_usec(void);

/** A one-line status for `systemctl status` (STATUS=...). */
void notify_status(const char *status);

#endif
