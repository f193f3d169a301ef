"""e2e.batch_backlog: a backlog goes through the Batch API at half price.

5,000 Person texts wait on two partitions before extractd starts with
batch.mode = backlog (min_backlog 200, batches of at most 1,000 requests).
llmsim answers batch lines as it answers live calls, faults included: 5 %
of answers are invalid, and those records are re-asked live with the
errors. Every record gets its right output and no dead letter; most go
through batches (llmsim's batch_requests, the records' extractd.batch
header), the last min_backlog or so of each partition live; the input
files are deleted once a batch is over and the output files once the
group's commit has passed it (llmsim holds no file at the end).

Then a second group reads the same 5,000 records with batch.mode = off:
the sum of extractd.cost_usd over the backlog run is about half the live
one's (llm.price.batch_factor 0.5; the live re-asks and the live tail
cost full price).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 5000
MIN_BACKLOG = 200
PRICE = {"input": 0.15, "output": 0.6}


def run(h, coll, mode, first):
    """extractd on a new group with batch.mode; waits for N outputs after
    the first; returns them and llmsim's stats."""
    h.llm.reset()
    group = h.unique("group-" + mode)
    d = opshelp.start_extractd(h, {
        "kafka": {"group": group},
        "llm": {"price": PRICE},
        "batch": {"mode": mode, "min_backlog": MIN_BACKLOG,
                  "max_requests": 1000, "max_wait_s": 1.0, "poll_ms": 100,
                  "state_topic": h.topics["batches"]},
    }, tag="batch-" + mode)
    d.group = group
    want = first + N
    coll.until(lambda c: c.count() >= want, "%d outputs" % N, watch=[d])
    h.until_committed_end(d.group, watch=[d])
    coll.read_to_end(watch=[d])
    check(coll.count(h.topics["output"]) == want, "%d outputs for %d "
          "records", coll.count(h.topics["output"]) - first, N)
    if mode != "off":
        # Every file goes once the commit has passed its batch.
        harness.wait_until(lambda: h.llm.stats().get("files") == 0,
                           "llmsim holds no file", watch=[d])
    st = h.llm.stats()
    samples = opshelp.parse_metrics(d.metrics())
    check(samples.get("extractd_batches_created_total") ==
          st["batches_created"], "extractd_batches_created_total %r, "
          "llmsim created %d", samples.get("extractd_batches_created_total"),
          st["batches_created"])
    rc = d.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    return coll.records[h.topics["output"]][first:want], st


def body(h):
    h.start_kafka(partitions=2, more_topics={"batches": 1})
    h.start_llmsim(latency_ms=5, faults={"invalid": 0.05}, seed=23,
                   extra=["--batch-delay-ms", "300"])
    coll = h.collector()
    texts = person_texts(N, seed=23)
    placed = h.produce([(("k-%d" % i).encode(), t, i % 2)
                        for i, t in enumerate(texts)])

    out, st = run(h, coll, "backlog", 0)
    coll.check_persons(placed, [t.encode() for t in texts])
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %r",
          coll.records[h.topics["dlq"]][:3])
    sources = {r.source() for r in out}
    check(len(sources) == N, "%d distinct sources for %d outputs",
          len(sources), len(out))
    batched = [r for r in out if r.header("extractd.batch") == "true"]
    reasked = [r for r in batched if r.int_header("extractd.attempts") > 1]
    log("backlog: %d batches, %d batch requests, %d live requests; %d of "
        "%d outputs batched, %d of them re-asked live",
        st["batches_created"], st["batch_requests"], st["requests"],
        len(batched), N, len(reasked))
    check(st["batch_requests"] >= N - 2 * MIN_BACKLOG - 200,
          "only %d of %d records went through batches",
          st["batch_requests"], N)
    check(len(batched) == st["batch_requests"],
          "%d outputs say extractd.batch, llmsim answered %d batch lines",
          len(batched), st["batch_requests"])
    check(reasked, "no batch answer was re-asked (5 %% are invalid)")
    check(st["requests"] <= N - len(batched) + 2 * len(reasked) +
          harness.STARTUP_CHECKS + 2,
          "%d live requests for %d records not batched and %d re-asks",
          st["requests"], N - len(batched), len(reasked))
    cost_batch = sum(float(r.header("extractd.cost_usd")) for r in out)

    out, st = run(h, coll, "off", N)
    check(st["batch_requests"] == 0, "batch.mode off sent %d batch lines",
          st["batch_requests"])
    cost_live = sum(float(r.header("extractd.cost_usd")) for r in out)
    ratio = cost_batch / cost_live
    log("cost of %d records: $%.6f live, $%.6f in backlog mode (%.2f)",
        N, cost_live, cost_batch, ratio)
    check(0.45 <= ratio <= 0.65, "backlog mode cost %.2f of live", ratio)


if __name__ == "__main__":
    harness.run(body)
