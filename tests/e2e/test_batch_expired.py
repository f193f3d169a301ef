"""e2e.batch_expired: what an expired batch did not answer is asked live.

400 Person texts on one partition; extractd (batch.mode = always) sends
them as one batch, which llmsim lets expire (--batch-expire 1): the
first half of its lines are answered, the rest are in the error file
with batch_expired. The 200 answered records go out with their batch
answers (extractd.batch = true), the other 200 are asked live; every
record has its one right output, nothing is a dead letter, the commits
reach the end, and no file is left at llmsim. Unreadable records under
the group's keys in the state topic are skipped, each with a warning.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 400


def body(h):
    h.start_kafka(partitions=1, more_topics={"batches": 1})
    h.start_llmsim(latency_ms=5, extra=["--batch-delay-ms", "200",
                                        "--batch-expire", "1"])
    coll = h.collector()
    texts = person_texts(N, seed=37)
    placed = h.produce([(("k-%d" % i).encode(), t, 0)
                        for i, t in enumerate(texts)])
    # Records in the state topic it cannot read, under its group's own
    # keys: each is skipped with a warning, and nothing else changes.
    group = h.unique("group")
    prefix = "%s/%s/" % (group, h.topics["input"])
    h.produce([((prefix + "0/0").encode(), b"not json", 0),
               ((prefix + "zero").encode(), b"{}", 0),
               ((prefix + "0/100").encode(), b'{"batch": "b"}', 0),
               (b"another-group/t/0/0", b"{}", 0)],
              topic=h.topics["batches"])
    d = opshelp.start_extractd(h, {
        "kafka": {"group": group},
        "batch": {"mode": "always", "max_wait_s": 0.5, "poll_ms": 100,
                  "state_topic": h.topics["batches"]}})
    d.group = group
    coll.until(lambda c: c.count() >= N, "%d outputs" % N, watch=[d])
    h.until_committed_end(d.group, watch=[d])
    coll.read_to_end(watch=[d])
    harness.wait_until(lambda: h.llm.stats()["files"] == 0,
                       "llmsim holds no file", watch=[d])
    st = h.llm.stats()
    rc = d.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    out = coll.records[h.topics["output"]]
    batched = sum(r.header("extractd.batch") == "true" for r in out)
    log("%d batches, %d batch lines, %d live requests; %d outputs from the "
        "batch", st["batches_created"], st["batch_requests"],
        st["requests"], batched)
    warned = d.log_text().count("an unreadable record in "
                                "batch.state_topic")
    check(warned == 3, "%d warnings for 3 unreadable state records",
          warned)
    check(st["batches_created"] == 1, "%d batches", st["batches_created"])
    check(batched == N // 2, "%d outputs from the expired batch, want %d",
          batched, N // 2)
    check(st["requests"] == N - batched + harness.STARTUP_CHECKS,
          "%d live requests for %d records the batch did not answer",
          st["requests"], N - batched)
    coll.check_each_once(placed, [t.encode() for t in texts])


if __name__ == "__main__":
    harness.run(body)
