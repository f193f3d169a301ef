"""e2e.adaptive_shared: three adaptive instances share one provider's rate
budget without talking to each other.

llmsim allows 240 requests a minute (--rpm 240: a bucket of 240 that
refills four a second) and says so in x-ratelimit-remaining/reset-requests,
as OpenAI does for an account. Three extractd instances of one consumer
group run with pool.max_in_flight = 64 each (192 in all) and
pool.concurrency = adaptive, on a backlog of 300 texts: the first 240 may
pass at once and empty the bucket, the rest go at four a second. Each
instance reads the same remaining budget from the headers, so each caps
its live limit to a share of what the budget pays for, and spaces its
calls by the pace the same headers give (a budget of four calls a second
on a 100 ms server is less than one call in flight: without the pace each
instance would send ten a second and most calls would be refused).
Proves:
  - every record is delivered, none dead-lettered;
  - llmsim refuses few calls with 429 (0 here; 38 without the pace);
  - while the budget paces the group, llmsim never sees more than a few
    calls open at once, and the three live limits
    (extractd_concurrency_limit) sum to a few, not to the 192 of the
    ceilings. (How closely the sum tracks the budget is measured on
    synthetic traces in unit.test_limiter, rate_headers_shared, and in
    scripts/bench.sh.)
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

RPM = 240
RECORDS = 300
INSTANCES = 3
MAX_IN_FLIGHT = 64
LATENCY_MS = 100


def body(h):
    h.start_kafka(partitions=6)
    h.start_llmsim(latency_ms=LATENCY_MS, extra=["--rpm", str(RPM)])
    coll = h.collector()
    texts = person_texts(RECORDS, seed=53)
    h.produce([(("s-%d" % i).encode(), t, None) for i, t in enumerate(texts)])
    group = h.unique("group")
    cfg = {
        "kafka": {"group": group},
        "pool": {"workers": MAX_IN_FLIGHT, "max_in_flight": MAX_IN_FLIGHT,
                 "concurrency": "adaptive"},
    }
    ds = [opshelp.start_extractd(h, cfg, tag="shared")
          for _ in range(INSTANCES)]
    for d in ds:
        d.wait_address()

    # Once most of the bucket is spent (or llmsim refused a call) the
    # budget paces the group: it settles a 25th full (8 x R / T each).
    # From then on, every poll samples the sum of the live limits and
    # llmsim's peak of open calls since the last poll (its counters are
    # added up and reset).
    seen = {"paced": False, "429": 0, "peak": 0, "sums": []}

    def done(c):
        stats = h.llm.stats()
        if not seen["paced"]:
            seen["paced"] = (stats["by_status"].get("429", 0) > 0 or
                             stats["requests"] >= RPM * 7 // 8)
        if seen["paced"]:
            seen["429"] += stats["by_status"].get("429", 0)
            if seen["sums"]:
                seen["peak"] = max(seen["peak"], stats["peak_concurrent"])
            if c.count() < RECORDS - 20:
                seen["sums"].append(sum(
                    opshelp.parse_metrics(d.metrics())
                    ["extractd_concurrency_limit"] for d in ds))
            h.llm.reset()
        return c.count() >= RECORDS

    coll.until(done, "%d records" % RECORDS, timeout=240, watch=ds)
    sums = seen["sums"]
    log("while paced: sums of the live limits %r, llmsim's peak of open "
        "calls %d; %d calls refused with 429 in all", sums, seen["peak"],
        seen["429"])
    check(len(sums) >= 5, "only %d samples while the budget paced the "
          "group", len(sums))
    late = sums[len(sums) // 2:]
    check(max(late) <= 3 * INSTANCES,
          "the three live limits summed to %d while the budget paid for "
          "about %.1f calls at once (ceilings %d): they did not share it",
          max(late), RPM / 60.0 * LATENCY_MS / 1000.0,
          INSTANCES * MAX_IN_FLIGHT)
    check(seen["peak"] <= 3 * INSTANCES,
          "llmsim saw %d calls open at once while the budget paced",
          seen["peak"])
    check(seen["429"] <= 15, "llmsim refused %d calls with 429 for %d "
          "records", seen["429"], RECORDS)
    h.stop_all_out(coll, ds, RECORDS)


if __name__ == "__main__":
    harness.run(body)
