"""e2e.stop_abandoned: SIGTERM while records wait for an LLM retry exits
promptly; their offsets are not committed, and nothing waits for them.

400 texts over 4 partitions; llmsim answers a quarter of the calls with
503 and extractd waits up to RETRY_MS before each retry, so at any time
several records sit in a retry wait. SIGTERM cuts those waits (llm_stop):
the records are abandoned, done again by the next run. Twice, in
completion order and then in offset order (same group), then a third run
finishes the topic. Proves, for each SIGTERM:
  - records were abandoned (the "stopped" line counts them), so the case
    under test happened;
  - extractd exits 0 within STOP_BOUND seconds: the calls in flight last
    LATENCY_MS, so the exit costs about a second; a revoke or close that
    waited for the abandoned offsets would take its full 10-s bound, and
    no "revoke wait timed out" line may appear;
  - per partition, every offset below the committed one has an output or
    dead letter: an abandoned offset is never committed past.
And at the end every input came out, and the group is committed to the
end of the input (the third run may redo records the runs before
delivered: it is done when its commits reach the end, then stopped).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

PARTITIONS = 4
TOTAL = 400
LATENCY_MS = 50
RETRY_MS = 4000
# A revoke waits at most 10 s for the partition's work; the exit itself
# costs the calls in flight (50 ms), a flush and a commit. 7 s is far
# above that and still proves that no fixed 10-s wait is left.
STOP_BOUND = 7.0
POOL = {"workers": 16, "max_in_flight": 16}
RETRY = {"max_attempts": 6, "base_delay_ms": RETRY_MS,
         "max_delay_ms": RETRY_MS}


def abandoned(d):
    """The "abandoned" count of extractd's last "stopped" line."""
    n = None
    for line in d.proc.log_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == "stopped":
            n = rec.get("abandoned")
    check(n is not None, "no \"stopped\" line in extractd's log")
    return n


def stop_mid_stream(h, coll, group, ordering, want_out):
    d, _ = h.start_extractd({
        "pool": POOL, "retry": RETRY,
        "output": {"ordering": ordering}}, group=group)
    coll.until(lambda c: c.count() >= want_out,
               "%d records out" % want_out, watch=[d])
    rc, took = d.terminate(60)
    check(rc == 0, "%s order: exit status %d after SIGTERM", ordering, rc)
    n = abandoned(d)
    log("%s order: exited %.2fs after SIGTERM, %d records abandoned",
        ordering, took, n)
    check(n > 0, "%s order: no record was waiting for a retry at SIGTERM; "
          "the test proves nothing", ordering)
    slow = [x for x in d.proc.log_text().splitlines()
            if "revoke wait timed out" in x]
    check(not slow, "%s order: a revoke waited for abandoned records:\n%s",
          ordering, "\n".join(slow)[:2000])
    check(took < STOP_BOUND, "%s order: exit took %.2fs after SIGTERM "
          "(bound %.0fs): something waited for the abandoned records",
          ordering, took, STOP_BOUND)

    coll.poll(1.0)
    committed = h.committed(group)
    seen = coll.coverage()
    for p in range(PARTITIONS):
        c = max(committed[p], 0)
        missing = [o for o in range(c) if (p, o) not in seen]
        check(not missing, "%s order: partition %d committed to %d, but "
              "offsets %s have no output or dead letter", ordering, p, c,
              missing[:10])
    log("%s order: committed %r, behind delivered work only", ordering,
        committed)
    return committed


def body(h):
    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=LATENCY_MS, faults={"503": 0.25}, seed=13)
    texts = person_texts(TOTAL, seed=17)
    placed = h.produce([(("a-%d" % i).encode(), t, i % PARTITIONS)
                        for i, t in enumerate(texts)])
    coll = h.collector()
    group = h.unique("group")

    c1 = stop_mid_stream(h, coll, group, "completion", 40)
    check(sum(max(c, 0) for c in c1.values()) < TOTAL,
          "everything was done before SIGTERM: committed %r", c1)
    c2 = stop_mid_stream(h, coll, group, "offset", coll.count() + 40)
    check(sum(max(c, 0) for c in c2.values()) < TOTAL,
          "everything was done before SIGTERM: committed %r", c2)

    d, _ = h.start_extractd({"pool": POOL, "retry": RETRY}, group=group)
    coll.until(lambda c: set(placed) <= set(c.coverage()),
               "every input out", watch=[d])
    # The runs before left outputs of records this one redoes, and a redo
    # may still wait for a retry: done is when the commits reach the end.
    h.until_committed_end(group, watch=[d])
    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
