"""e2e.adaptive_rpm: pool.concurrency = adaptive paces to the rate headers.

llmsim allows 120 requests a minute (--rpm 120: a bucket of 120 that
refills two a second) and says so in x-ratelimit-remaining/reset-requests,
as OpenAI does. extractd runs with pool.max_in_flight = 64 and 64 workers
on a backlog of 150 texts: the first 120 may pass at once and empty the
bucket; the rest can only go at two a second. A fixed limit keeps
calls open up to 64 (about 60 at once here) and waits out the 429s in
its shared cool-down (e2e.server_rpm). Adaptive, the live limit is capped
from the headers to what the budget pays for: every record is delivered,
llmsim refuses at most a handful of calls, and it never sees half of the
64 open at once (the first burst, while the bucket is nearly full, is
spent quickly; then calls are spaced by the pace the headers give).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

RPM = 120
RECORDS = 150


def body(h):
    h.start_kafka(partitions=4)
    h.start_llmsim(latency_ms=50, extra=["--rpm", str(RPM)])
    coll = h.collector()
    texts = person_texts(RECORDS, seed=47)
    h.produce([(("r-%d" % i).encode(), t, None) for i, t in enumerate(texts)])
    d = opshelp.start_extractd(h, {
        "pool": {"workers": 64, "max_in_flight": 64,
                 "concurrency": "adaptive"},
    }, tag="adaptive")
    d.wait_address()
    coll.until(lambda c: c.count() >= RECORDS, "%d records" % RECORDS,
               timeout=240, watch=[d])
    samples = opshelp.parse_metrics(d.metrics())
    stats = h.llm.stats()
    log("limit %d, pace %.3f s, latency %.3f s, llmsim %r",
        samples["extractd_concurrency_limit"],
        samples["extractd_llm_pace_seconds"],
        samples["extractd_llm_latency_seconds"], stats)
    # The budget was spent to the end: the last answers' headers asked
    # for a pace, and the limiter measured the calls' latency.
    check(samples["extractd_llm_pace_seconds"] > 0,
          "no pace exported while the budget paced the calls")
    check(samples["extractd_llm_latency_seconds"] > 0,
          "no latency exported")
    refused = stats["by_status"].get("429", 0)
    check(refused <= 10,
          "llmsim refused %d calls with 429 for %d records at %d a minute",
          refused, RECORDS, RPM)
    check(stats["peak_concurrent"] <= 32,
          "llmsim saw %d calls open at once: the rate headers did not cap "
          "the limit (pool.max_in_flight 64)", stats["peak_concurrent"])
    h.stop_all_out(coll, [d], RECORDS)


if __name__ == "__main__":
    harness.run(body)
