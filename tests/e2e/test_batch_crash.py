"""e2e.batch_crash: a batch in flight survives a crash, paid for once.

1,000 Person texts on two partitions; extractd with batch.mode = always
sends them as two batches (one a partition), which llmsim holds in
progress until the test lets them finish (--batch-hold), writes both to
batch.state_topic, and is killed (SIGKILL) while they are in flight:
nothing was committed. The restart reads the state topic and finds both
batches; let finish, they are downloaded instead of created again:
llmsim created 2 batches and answered 1,000 batch lines in all, and made
no live call but the start-up checks. Every record has its one right
output, the commits reach the end, and no file is left at llmsim; the
restart's metrics say it created no batch and follows none at the end.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 1000


def state_records(h):
    return sum(h.end_offsets(h.topics["batches"]).values())


def body(h):
    h.start_kafka(partitions=2, more_topics={"batches": 1})
    hold = os.path.join(h.dir, "batches.hold")
    open(hold, "w").close()
    h.start_llmsim(latency_ms=5, extra=["--batch-hold", hold])
    coll = h.collector()
    texts = person_texts(N, seed=29)
    placed = h.produce([(("k-%d" % i).encode(), t, i % 2)
                        for i, t in enumerate(texts)])
    over = {"batch": {"mode": "always", "max_wait_s": 0.5, "poll_ms": 100,
                      "state_topic": h.topics["batches"]}}

    a = opshelp.start_extractd(h, over, tag="first")
    harness.wait_until(lambda: h.llm.stats()["batches_created"] == 2 and
                       state_records(h) == 2,
                       "two batches created and kept", watch=[a])
    a.proc.signal(9)
    a.proc.wait(30)
    log("killed with both batches in flight")
    coll.poll(0.5)
    check(coll.count() == 0, "%d outputs before the batches were over",
          coll.count())
    committed = h.committed(a.group)
    check(all(o < 0 for o in committed.values()),
          "committed %r before any output", committed)

    b = opshelp.start_extractd(h, over, tag="restart")
    harness.wait_until(lambda: b.log_text().count(
        "found in batch.state_topic") == 2, "the restart finds both "
        "batches", watch=[b])
    os.remove(hold)
    coll.until(lambda c: c.count() >= N, "%d outputs" % N, watch=[b])
    h.until_committed_end(a.group, watch=[b])
    coll.read_to_end(watch=[b])
    harness.wait_until(lambda: h.llm.stats()["files"] == 0,
                       "llmsim holds no file", watch=[b])
    st = h.llm.stats()
    samples = opshelp.parse_metrics(b.metrics())
    rc = b.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    log("after the restart: %d batches created, %d batch lines, %d live "
        "requests", st["batches_created"], st["batch_requests"],
        st["requests"])
    check(st["batches_created"] == 2, "%d batches created: the restart "
          "sent its records again", st["batches_created"])
    for name, want in (("extractd_batches_created_total", 0),
                       ("extractd_batches", 0),
                       ("extractd_batch_records", 0)):
        check(samples.get(name) == want, "after the restart: %s = %r, "
              "want %d", name, samples.get(name), want)
    check(st["batch_requests"] == N, "%d batch lines for %d records",
          st["batch_requests"], N)
    check(st["requests"] <= 2 * harness.STARTUP_CHECKS,
          "%d live requests: records were asked live", st["requests"])
    coll.check_each_once(placed, [t.encode() for t in texts])
    check(all(r.header("extractd.batch") == "true"
              for r in coll.records[h.topics["output"]]),
          "an output not from its batch")


if __name__ == "__main__":
    harness.run(body)
