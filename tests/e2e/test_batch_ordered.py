"""e2e.batch_ordered: batches in offset order; other partitions go on.

output.ordering = offset, batch.mode = backlog (min_backlog 200, batches
of at most 400). 1,000 keyless Person texts wait on each of partitions 0
and 1 before extractd starts; llmsim holds every batch in progress until
the test lets them finish (--batch-hold), and makes 5 % of answers
invalid (re-asked live). Once batches are in flight, 50 texts arrive on
partition 2: they are answered live and all delivered while partitions 0
and 1 have delivered nothing, their first records being in batches (a
batch holds back only its own partition). The last ~200 records of
partitions 0 and 1 go live, after their partition's batches. extractd is
stopped (SIGTERM) then, with batches in flight and records waiting
behind them: it exits 0 without waiting for its deadline, and the
restart finds the batches (no batch line is sent twice). In the end
every record has its one right output, and a reader sees each input
partition's outputs in offset order.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 1000        # on each of partitions 0 and 1
LIVE = 50       # on partition 2, later
MIN_BACKLOG = 200


def body(h):
    h.start_kafka(partitions=3, more_topics={"batches": 1})
    hold = os.path.join(h.dir, "batches.hold")
    open(hold, "w").close()
    h.start_llmsim(latency_ms=5, faults={"invalid": 0.05}, seed=41,
                   extra=["--batch-hold", hold])
    coll = h.collector()
    texts = person_texts(2 * N + LIVE, seed=41)
    records = [(None, t, i % 2) for i, t in enumerate(texts[:2 * N])]
    placed = h.produce(records)
    d = opshelp.start_extractd(h, {
        "output": {"ordering": "offset"},
        "batch": {"mode": "backlog", "min_backlog": MIN_BACKLOG,
                  "max_requests": 400, "max_wait_s": 0.5, "poll_ms": 100,
                  "state_topic": h.topics["batches"]}})
    harness.wait_until(lambda: h.llm.stats()["batches_created"] >= 2,
                       "batches in flight", watch=[d])
    placed += h.produce([(None, t, 2) for t in texts[2 * N:]])
    out = h.topics["output"]

    def from_partition(c, p):
        return [r for r in c.records[out] if r.source()[1] == p]

    coll.until(lambda c: len(from_partition(c, 2)) >= LIVE,
               "partition 2's outputs", watch=[d])
    early = len(from_partition(coll, 0)) + len(from_partition(coll, 1))
    log("partition 2 delivered while partitions 0 and 1 had %d outputs",
        early)
    check(early == 0, "partitions 0 and 1 delivered %d records before "
          "their batches were over", early)
    check(not any(r.header("extractd.batch") for r in
                  from_partition(coll, 2)), "partition 2 went to a batch")

    # Stopped with batches in flight and records waiting behind them: it
    # gives them up (in offset order their places in the sequencer too,
    # or the stop would wait for them until its deadline), and the
    # restart finds the batches in the state topic.
    rc = d.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    check("shutdown.timeout_ms" not in d.log_text(),
          "the stop waited for its deadline:\n%s", d.proc.tail())
    created = h.llm.stats()["batches_created"]
    d = opshelp.start_extractd(h, {
        "output": {"ordering": "offset"},
        "batch": {"mode": "backlog", "min_backlog": MIN_BACKLOG,
                  "max_requests": 400, "max_wait_s": 0.5, "poll_ms": 100,
                  "state_topic": h.topics["batches"]}}, tag="restart")
    os.remove(hold)
    coll.until(lambda c: c.count() >= 2 * N + LIVE, "every output",
               watch=[d])
    h.until_committed_end(d.group, watch=[d])
    coll.read_to_end(watch=[d])
    st = h.llm.stats()
    rc = d.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    batched = sum(r.header("extractd.batch") == "true"
                  for r in coll.records[out])
    log("%d batches, %d batch lines, %d live requests; %d outputs from "
        "batches", st["batches_created"], st["batch_requests"],
        st["requests"], batched)
    check(batched >= 2 * (N - MIN_BACKLOG) - 100, "only %d outputs from "
          "batches", batched)
    check(st["batch_requests"] == batched, "%d batch lines for %d outputs "
          "from batches: a batch was sent twice", st["batch_requests"],
          batched)
    log("%d batches were in flight at the stop", created)
    coll.check_each_once(placed, [t.encode() for t in texts])
    n = coll.check_reader_order()
    log("%d outputs, each input partition's in offset order", n)


if __name__ == "__main__":
    harness.run(body)
