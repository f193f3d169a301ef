"""e2e.rate: a configured budget of 600 requests a minute is spent as 10
requests a second while there is a backlog, not faster and not slower.

llmsim answers fast (5 ms) and counts requests as they arrive; extractd has
32 slots, so without the budget it would send hundreds a second. The rate
is measured over a window that starts after the first second (the bucket's
one-second burst) and must be within 10% of 10/s.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 200
WINDOW = 8.0


def body(h):
    h.start_kafka(partitions=2)
    h.start_llmsim(latency_ms=5)
    h.produce([(None, t, None) for t in person_texts(N, seed=9)])

    coll = h.collector()
    d, _ = h.start_extractd({
        "rate": {"requests_per_minute": 600},
        "pool": {"workers": 32, "max_in_flight": 32},
    })
    # Wait for the first requests, then past the burst.
    end = time.monotonic() + harness.DEADLINE
    while h.llm.stats()["requests"] < 1:
        d.check_running()
        check(time.monotonic() < end, "no request reached llmsim")
        time.sleep(0.05)
    time.sleep(1.5)
    r0, t0 = h.llm.stats()["requests"], time.monotonic()
    time.sleep(WINDOW)
    r1, t1 = h.llm.stats()["requests"], time.monotonic()
    rate = (r1 - r0) / (t1 - t0)
    log("%d requests in %.2fs: %.2f/s", r1 - r0, t1 - t0, rate)
    check(r1 < N, "the backlog ran out during the window (%d requests)", r1)
    check(9.0 <= rate <= 11.0, "rate %.2f/s, want 10/s within 10%%", rate)
    coll.until(lambda c: c.count() >= N, "%d records" % N, watch=[d])
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %d",
          coll.count(h.topics["dlq"]))


if __name__ == "__main__":
    harness.run(body)
