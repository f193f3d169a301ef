"""ops.notify: extractd speaks systemd's notify protocol (Type=notify).

The test plays systemd: it binds a datagram socket, starts extractd with
NOTIFY_SOCKET pointing at it and WATCHDOG_USEC (WatchdogSec=) 10 s, and
reads what comes: READY=1 once started, WATCHDOG=1 after it, again and
again while the consumer loops turn, never more than half of WatchdogSec
apart (sd_notify(3)'s rule; extractd pings about every second, so a loaded
machine has room), a STATUS= progress line, and STOPPING=1 after SIGTERM,
before it exits 0. Without NOTIFY_SOCKET (every other test) nothing is sent.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, harness, log  # noqa: E402

WATCHDOG_S = 10     # WatchdogSec=
PINGS = 5           # watchdog pings to see


def body(h):
    h.start_kafka(partitions=1)
    h.start_llmsim(latency_ms=10)
    path = os.path.join(h.dir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    env = dict(os.environ)
    env.update({"OPENAI_API_KEY": "sk-test", "NOTIFY_SOCKET": path,
                "WATCHDOG_USEC": str(WATCHDOG_S * 1000000)})
    t0 = time.monotonic()
    d = opshelp.start_extractd(h, env=env)

    got = []  # (seconds since start, message)

    def read_until(cond, what, timeout):
        end = time.monotonic() + timeout
        while not cond():
            check(time.monotonic() < end, "no %s in %ds; got %s", what,
                  timeout, got)
            try:
                data = sock.recv(4096).decode()
            except socket.timeout:
                continue
            for msg in data.splitlines():
                got.append((time.monotonic() - t0, msg))

    def has(prefix):
        return lambda: any(m.startswith(prefix) for _, m in got)

    read_until(has("READY=1"), "READY=1", 30)
    ready_at = [t for t, m in got if m == "READY=1"][0]
    read_until(lambda: sum(m == "WATCHDOG=1" for _, m in got) >= PINGS,
               "%d x WATCHDOG=1" % PINGS, PINGS * WATCHDOG_S / 2)
    read_until(has("STATUS="), "STATUS=", 15)
    status = [m for _, m in got if m.startswith("STATUS=")][-1]
    log("READY at %.1fs; status %r", ready_at, status)
    check("records" in status and "in flight" in status,
          "STATUS line %r", status)
    dogs = [t for t, m in got if m == "WATCHDOG=1"]
    gaps = [b - a for a, b in zip(dogs, dogs[1:])]
    check(gaps and max(gaps) < WATCHDOG_S / 2, "watchdog pings %s apart "
          "(limit %g s: half of WatchdogSec)", ["%.2f" % g for g in gaps],
          WATCHDOG_S / 2)
    check(min(dogs) >= ready_at - 0.01, "WATCHDOG before READY")

    d.proc.signal(15)
    read_until(has("STOPPING=1"), "STOPPING=1", 30)
    rc = d.proc.wait(60)
    check(rc == 0, "exit status %s after SIGTERM", rc)
    log("%d notifications, %d watchdog pings, STOPPING then exit 0",
        len(got), len(dogs))
    sock.close()


if __name__ == "__main__":
    harness.run(body)
