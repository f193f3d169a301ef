"""e2e.sigint: SIGINT (Ctrl-C in a terminal) stops extractd as SIGTERM
does (docs/operations.md, "Signals and exit status"): it stops
consuming, lets the work in flight finish, flushes, commits and exits 0.

200 texts over 2 partitions, llmsim latency 300 ms, 8 in flight. Once 24
records are out, extractd gets SIGINT. Proves:
  - it exits 0;
  - it stopped consuming: most of the backlog is left;
  - the work in flight finished: every text llmsim was asked about before
    the signal has its output (each text costs one call here);
  - the commit sits exactly behind the delivered work: per partition,
    every offset below it has an output and none at or past it does.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

PARTITIONS = 2
N = 200


def body(h):
    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=300)
    texts = person_texts(N, seed=111)
    h.produce([(None, t, i % PARTITIONS) for i, t in enumerate(texts)])
    out = h.topics["output"]
    coll = h.collector()
    d, group = h.start_extractd({"pool": {"workers": 8,
                                          "max_in_flight": 8}})
    coll.until(lambda c: c.count() >= 24, "24 records out", watch=[d])
    # The start-up health check asks about no text.
    asked = h.llm.stats()["requests"] - harness.STARTUP_CHECKS
    t = time.monotonic()
    d.proc.signal(2)
    rc = d.proc.wait(60)
    check(rc == 0, "extractd exit status %s after SIGINT:\n%s", rc,
          d.proc.tail())
    log("exit 0, %.2fs after SIGINT; llmsim had been asked %d times",
        time.monotonic() - t, asked)
    coll.poll(2.0)
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %d",
          coll.count(h.topics["dlq"]))
    done = coll.count(out)
    check(done < N // 2, "%d of %d came out: it did not stop consuming",
          done, N)
    check(done >= asked, "%d outputs, but %d texts were at llmsim before "
          "the signal: work in flight was dropped", done, asked)
    committed = h.committed(group)
    got = {p: set() for p in range(PARTITIONS)}
    for r in coll.records[out]:
        _, p, o = r.source()
        check(o not in got[p], "%s: input %d/%d out twice", r.where(), p, o)
        got[p].add(o)
    for p in range(PARTITIONS):
        c = max(committed[p], 0)
        check(got[p] == set(range(c)), "partition %d committed to %d, "
              "delivered %s", p, c, sorted(got[p])[:5] + ["..."] +
              sorted(got[p])[-5:])
    log("committed %r: exactly the %d delivered records", committed, done)


if __name__ == "__main__":
    harness.run(body)
