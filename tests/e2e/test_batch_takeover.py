"""e2e.batch_takeover: another instance takes a batch over, paid for once.

1,000 Person texts on two partitions. Instance A (batch.mode = always)
sends them as two batches, one a partition, that llmsim holds in
progress until the test lets them finish (--batch-hold). Instance B
joins the group: the rebalance moves one partition to B, A gives its
records up, and B finds that partition's batch in batch.state_topic.
Then A is killed (SIGKILL): after the session timeout B gets the other
partition, and finds its batch too. Then the batches finish: llmsim
created 2 batches and answered 1,000 batch lines in all, with no live
call but the start-up checks; every record has its one right output from
B, and the commits reach the end.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 1000


def body(h):
    h.start_kafka(partitions=2, more_topics={"batches": 1})
    hold = os.path.join(h.dir, "batches.hold")
    open(hold, "w").close()
    h.start_llmsim(latency_ms=5, extra=["--batch-hold", hold])
    coll = h.collector()
    texts = person_texts(N, seed=31)
    placed = h.produce([(("k-%d" % i).encode(), t, i % 2)
                        for i, t in enumerate(texts)])
    over = {"batch": {"mode": "always", "max_wait_s": 0.5, "poll_ms": 100,
                      "state_topic": h.topics["batches"]}}

    a = opshelp.start_extractd(h, over, tag="a")
    harness.wait_until(
        lambda: h.llm.stats()["batches_created"] == 2 and
        sum(h.end_offsets(h.topics["batches"]).values()) == 2,
        "two batches created and kept", watch=[a])
    b = opshelp.start_extractd(h, over, tag="b")
    harness.wait_until(lambda: "found in batch.state_topic" in
                       b.log_text(), "B finds a batch in flight",
                       watch=[a, b])
    log("B took a partition over from A by a rebalance")
    a.proc.signal(9)
    a.proc.wait(30)
    log("A killed")
    harness.wait_until(lambda: b.log_text().count(
        "found in batch.state_topic") == 2, "B finds the other batch",
        watch=[b])
    os.remove(hold)
    log("B found both batches; they may finish now")
    coll.until(lambda c: c.count() >= N, "%d outputs" % N, watch=[b])
    h.until_committed_end(a.group, watch=[b])
    coll.read_to_end(watch=[b])
    st = h.llm.stats()
    found = b.log_text().count("found in batch.state_topic")
    rc = b.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    log("%d batches created, %d batch lines, %d live requests; B found %d "
        "batches", st["batches_created"], st["batch_requests"],
        st["requests"], found)
    check(found == 2, "B found %d batches in flight, want 2", found)
    check(st["batches_created"] == 2, "%d batches created: a new owner "
          "sent records again", st["batches_created"])
    check(st["batch_requests"] == N, "%d batch lines for %d records",
          st["batch_requests"], N)
    check(st["requests"] <= 2 * harness.STARTUP_CHECKS,
          "%d live requests: records were asked live", st["requests"])
    coll.check_each_once(placed, [t.encode() for t in texts])


if __name__ == "__main__":
    harness.run(body)
