"""ops.threads: what `top -H`, `ps -L` and perf show of a running extractd.

With pool.workers = 3 and kafka.consumer_threads = 2, once both consumers
have partitions: the threads are named worker-0..worker-2, consumer-0,
consumer-1 and producer (librdkafka names its own rdk:*), and every
thread, librdkafka's and libcurl's included, runs under SCHED_BATCH
(policy 3 in /proc/PID/task/TID/stat), which extractd sets before its
first thread starts (daemon/main.c, batch_scheduling).
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, harness, log  # noqa: E402

SCHED_BATCH = 3
WORKERS = 3


def threads(pid):
    """[(tid, name, policy)] of the process pid."""
    out = []
    for tid in sorted(os.listdir("/proc/%d/task" % pid), key=int):
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(base + "comm") as f:
                name = f.read().strip()
            with open(base + "stat") as f:
                stat = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        # Fields after the ")" that ends comm; policy is field 41.
        fields = stat[stat.rindex(")") + 2:].split()
        out.append((int(tid), name, int(fields[41 - 3])))
    return out


def body(h):
    h.start_kafka(partitions=2)
    h.start_llmsim()
    d = opshelp.start_extractd(h, {
        "pool": {"workers": WORKERS, "max_in_flight": WORKERS},
        "kafka": {"consumer_threads": 2},
    })
    end = time.monotonic() + 60
    while d.log_text().count("partitions assigned") < 2:
        d.check_running()
        check(time.monotonic() < end, "both consumers not assigned in 60 s:"
              "\n%s", d.proc.tail())
        time.sleep(0.1)

    seen = threads(d.proc.pid)
    log("%d threads: %s", len(seen),
        ", ".join(sorted({n for _, n, _ in seen})))
    names = [n for _, n, _ in seen]
    want = ["worker-%d" % i for i in range(WORKERS)] + [
        "consumer-0", "consumer-1", "producer"]
    for n in want:
        check(names.count(n) == 1, "%d threads named %r; names: %r",
              names.count(n), n, sorted(names))
    other = [t for t in seen if t[2] != SCHED_BATCH]
    check(not other, "threads not under SCHED_BATCH (tid, name, policy): "
          "%r", other)
    check(d.terminate() == 0, "extractd exit status after SIGTERM")


if __name__ == "__main__":
    harness.run(body)
