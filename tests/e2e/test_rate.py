"""e2e.rate: a configured budget of 600 requests a minute is spent as 10
requests a second while there is a backlog: never faster than the bucket
allows, and not starved either.

llmsim answers fast (5 ms) and counts requests as they arrive; extractd has
32 slots, so without the budget it would send hundreds a second. The bucket
holds one second's worth (10) and refills at 10/s, so from the first
request on, requests so far <= 10 + 10/s * (time since the first request).
The test polls llmsim's count all along and checks that bound at every
poll, timing from the last poll that still saw no request (before the
first one, so the bound errs on the generous side, by at most a poll
interval: SLACK). A slow machine only lowers the count. "Not starved": over
the backlog at least half the budget is used (5/s), which a loaded machine
keeps, and a pacing bug (a budget in the wrong unit, a bucket that never
refills) does not. The 200 records all come out, with no dead letter.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, person_texts  # noqa: E402

N = 200
RPM = 600
RATE = RPM / 60.0       # requests a second
BURST = RATE            # the bucket holds one second's worth
POLL = 0.1              # seconds between two reads of llmsim's count
SLACK = 2               # requests: a poll interval's worth, and rounding
MIN_SHARE = 0.5         # of the budget, over the backlog


def body(h):
    h.start_kafka(partitions=2)
    h.start_llmsim(latency_ms=5)
    h.produce([(None, t, None) for t in person_texts(N, seed=9)])

    coll = h.collector()
    d, _ = h.start_extractd({
        "rate": {"requests_per_minute": RPM},
        "pool": {"workers": 32, "max_in_flight": 32},
    })
    harness.check_bucket(h, d, N, "requests", RATE, BURST, SLACK,
                         min_share=MIN_SHARE, poll=POLL)
    coll.until(lambda c: c.count() >= N, "%d records" % N, watch=[d])
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %d",
          coll.count(h.topics["dlq"]))


if __name__ == "__main__":
    harness.run(body)
