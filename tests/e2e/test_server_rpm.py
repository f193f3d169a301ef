"""e2e.server_rpm: against an API that enforces 600 requests a minute (as
OpenAI does: a minute's budget, refilled continuously), extractd runs into
the limit once, then paces itself at the budget the server announces, so
its own 429 rate stays low afterwards; and nothing is lost.

No rate is configured in extractd: it learns the budget from the 429's
x-ratelimit-limit-requests header and the wait from retry-after-ms.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 760          # the 600-request burst, then 160 at 10 a second


def body(h):
    h.start_kafka(partitions=4)
    h.start_llmsim(latency_ms=5, extra=["--rpm", "600"])
    h.produce([(None, t, None) for t in person_texts(N, seed=13)])

    coll = h.collector()
    d, _ = h.start_extractd({
        "pool": {"workers": 16, "max_in_flight": 16},
        "retry": {"max_attempts": 20, "base_delay_ms": 100,
                  "max_delay_ms": 2000},
    })
    coll.until(lambda c: c.count() >= N, "%d records" % N, watch=[d])
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %d",
          coll.count(h.topics["dlq"]))
    stats = h.llm.stats()
    n429 = stats["by_status"].get("429", 0)
    after = stats["requests"] - 600
    log("llmsim: %d requests, %r", stats["requests"], stats["by_status"])
    # Past the burst, each 429 costs a call; paced, only the first wave
    # (the slots in flight when the budget ran out) should meet it.
    check(n429 <= 16 + after // 10,
          "%d 429s for %d requests past the burst: not pacing", n429, after)


if __name__ == "__main__":
    harness.run(body)
