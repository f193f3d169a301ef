"""e2e.storm: a seeded storm of API faults loses nothing and gets every
record right.

llmsim answers 20% of calls with a rate-limit 429, 5% with 500, 5% with
503, holds 2% past the client timeout and sends 5% malformed bodies. Every
one of these is retried (backoff with jitter, the server's retry-after, a
shared cool-down after a 429), so every input must end as its exact Person
record, none as a dead letter, with extractd.attempts counting the retries;
and after SIGTERM the group is committed to the end of the input.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, expected_person, log, person_texts  # noqa: E402

N = 240
FAULTS = {"429": 0.20, "500": 0.05, "503": 0.05, "timeout": 0.02,
          "malformed": 0.05}


def body(h):
    h.start_kafka(partitions=4)
    h.start_llmsim(latency_ms=5, faults=FAULTS, seed=20261125)
    texts = person_texts(N, seed=5)
    placed = h.produce([(None, t, i % 4) for i, t in enumerate(texts)])
    text_at = {pl: t for pl, t in zip(placed, texts)}

    coll = h.collector()
    d, group = h.start_extractd({
        "llm": {"timeout_ms": 1000},
        "retry": {"max_attempts": 30, "base_delay_ms": 20,
                  "max_delay_ms": 500, "max_elapsed_ms": 120000},
        "pool": {"workers": 16, "max_in_flight": 16},
    })
    out, dlq = h.topics["output"], h.topics["dlq"]
    coll.until(lambda c: c.count() >= N, "%d records" % N, watch=[d])
    coll.poll(1.0)

    check(coll.count(dlq) == 0, "dead letters in a storm: %r",
          [(r.source(), r.header("extractd.error"),
            r.header("extractd.error.detail")) for r in coll.records[dlq]])
    seen = set()
    retried = 0
    for r in coll.records[out]:
        _, p, off = r.source()
        check((p, off) in text_at, "%s: no such input %d/%d", r.where(), p,
              off)
        check((p, off) not in seen, "input %d/%d has two outputs", p, off)
        seen.add((p, off))
        want = expected_person(text_at[(p, off)])
        check(r.json() == want, "%s: %r, want %r", r.where(), r.value, want)
        if r.int_header("extractd.attempts") > 1:
            retried += 1
    check(len(seen) == N, "want %d outputs, got %d", N, len(seen))
    stats = h.llm.stats()
    log("llmsim: %r; %d records needed retries", stats["by_status"], retried)
    check(retried > N // 10, "only %d records were retried: no storm?",
          retried)
    check(stats["by_status"].get("429", 0) > 0, "no 429 in the storm")

    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
