"""e2e.spend_cap: a spending cap stops admission; nothing is dead-lettered,
and the rest is delivered when the cap allows.

At $1000 per million tokens each way a call costs about $0.05; with
rate.usd_per_hour = 0.5 the hour's spend reaches the cap after about ten
calls. Then admission stops: one warning says so, /readyz is 503 naming
rate.usd_per_hour, no dead letter appears, and the outputs stop short of
the input. The spend past the cap is bounded by the records already
admitted (pool.max_in_flight, one call each here): the delivered records
cost at most the cap plus that many of the dearest. An hour is too long
to wait for the window (test_spend.c checks on a synthetic clock that the
spend leaving the window resumes admission); here the same group restarts
with a higher cap and delivers every record left, each exactly once.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 60
CAP = 0.5
IN_FLIGHT = 2
PRICE = {"input": 1000.0, "output": 1000.0}
QUIET = 2.0     # seconds with no new record: admission stopped


def log_lines(d):
    return [json.loads(x) for x in d.log_text().splitlines()
            if x.startswith("{")]


def body(h):
    h.start_kafka(partitions=2)
    h.start_llmsim(latency_ms=20)
    texts = person_texts(N, seed=31)
    placed = h.produce([(None, t, i % 2) for i, t in enumerate(texts)])
    coll = h.collector()
    out, dlq = h.topics["output"], h.topics["dlq"]
    over = {"llm": {"price": PRICE},
            "rate": {"usd_per_hour": CAP},
            "pool": {"workers": IN_FLIGHT, "max_in_flight": IN_FLIGHT}}
    d = opshelp.start_extractd(h, over, tag="capped")
    group = d.group

    why = d.wait_probe("/readyz", 503, contains="spending cap reached")
    check("rate.usd_per_hour" in why, "/readyz does not name the cap: %r",
          why)
    # Wait until no record has come for QUIET seconds.
    last, since = -1, time.monotonic()
    while time.monotonic() - since < QUIET:
        d.check_running()
        coll.poll(0.2)
        if coll.count() != last:
            last, since = coll.count(), time.monotonic()
    n = coll.count(out)
    check(coll.count(dlq) == 0, "dead letters under the cap: %r",
          coll.records[dlq][:3])
    check(0 < n < N, "%d of %d records out under the cap", n, N)
    costs = sorted(float(r.header("extractd.cost_usd"))
                   for r in coll.records[out])
    spent = sum(costs)
    # The start-up check's call counts too: one more of the dearest.
    bound = CAP + (IN_FLIGHT + 1) * costs[-1]
    check(spent <= bound, "$%.4f spent by %d records: more than the cap "
          "$%.2f and %d calls in flight ($%.4f)", spent, n, CAP, IN_FLIGHT,
          bound)
    stops = [x for x in log_lines(d)
             if x.get("msg", "").startswith("spending cap reached")]
    check(len(stops) == 1 and stops[0]["level"] == "warn" and
          "rate.usd_per_hour" in stops[0].get("reason", ""),
          "want one warning for the stop, got %r", stops)
    log("capped: %d of %d records out, $%.4f spent (cap $%.2f)", n, N, spent,
        CAP)
    rc = d.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)

    # The same group, a cap it will not reach: the rest comes out.
    over["rate"] = {"usd_per_hour": 1000.0}
    d = opshelp.start_extractd(h, dict(over, kafka={"group": group}),
                               tag="raised")
    coll.until(lambda c: c.count() >= N, "%d records" % N, watch=[d])
    coll.poll(1.0)
    check(coll.count(dlq) == 0, "dead letters: %r", coll.records[dlq][:3])
    coll.check_persons(placed, [t.encode() for t in texts])
    sources = {r.source() for r in coll.records[out]}
    check(len(sources) == N == coll.count(out), "%d outputs of %d inputs, "
          "want each once", coll.count(out), len(sources))
    d.wait_probe("/readyz", 200)
    rc = d.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)


if __name__ == "__main__":
    harness.run(body)
