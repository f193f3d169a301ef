"""e2e.seed: the seed's seven texts become seven exact Person records.

Proves the whole path on the seed's own data (seed/learn-async.md): one
record out per text, the value is the validated object, the key is carried,
and every output header is present and right: extractd.source points at the
input record, one LLM call each, the configured model, and integer latency
and token counts. Nothing goes to the dead-letter topic, and after SIGTERM
extractd exits 0 with the group committed to the end of the input.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import SEED_TEXTS, check, expected_person, log  # noqa: E402

EXPECTED = [
    {"name": "John Smith", "age": 30, "occupation": "software engineer"},
    {"name": "Sarah Johnson", "age": 25, "occupation": "data scientist"},
    {"name": "Mike Davis", "age": 35, "occupation": "product manager"},
    {"name": "Lisa Wilson", "age": 28, "occupation": "UX designer"},
    {"name": "Tom Brown", "age": 32, "occupation": "DevOps engineer"},
    {"name": "Emma Garcia", "age": 27, "occupation": "frontend developer"},
    {"name": "David Lee", "age": 33, "occupation": "backend developer"},
]

OUTPUT_HEADERS = {"extractd.source", "extractd.attempts", "extractd.model",
                  "extractd.latency_ms", "extractd.tokens.prompt",
                  "extractd.tokens.completion"}


def body(h):
    # The harness's own expectation agrees with the seed's answers.
    for text, want in zip(SEED_TEXTS, EXPECTED):
        check(expected_person(text) == want, "expected_person(%r)", text)

    h.start_kafka(partitions=1)
    h.start_llmsim(latency_ms=10)
    src = h.topics["input"]
    keys = [("seed-%d" % i).encode() for i in range(len(SEED_TEXTS))]
    placed = h.produce([(k, t, 0) for k, t in zip(keys, SEED_TEXTS)])
    by_offset = {off: i for i, (_, off) in enumerate(placed)}

    coll = h.collector()
    d, group = h.start_extractd({"llm": {"model": "gpt-4o-mini"}})
    out, dlq = h.topics["output"], h.topics["dlq"]
    coll.until(lambda c: c.count(out) >= 7, "7 outputs", watch=[d])
    coll.poll(1.0)  # anything extra would show up now

    check(coll.count(dlq) == 0, "dead letters for good texts: %r",
          coll.records[dlq])
    check(coll.count(out) == 7, "want 7 outputs, got %d: %r",
          coll.count(out), coll.records[out])

    seen = set()
    for r in coll.records[out]:
        missing = OUTPUT_HEADERS - set(r.headers)
        check(not missing, "%s lacks headers %s", r.where(), sorted(missing))
        topic, part, off = r.source()
        check(topic == src and part == 0 and off in by_offset,
              "%s: extractd.source %s/%d/%d is no input record",
              r.where(), topic, part, off)
        i = by_offset[off]
        check(i not in seen, "input offset %d has two outputs", off)
        seen.add(i)
        check(r.json() == EXPECTED[i], "%s: value %r, want %r for %r",
              r.where(), r.value, EXPECTED[i], SEED_TEXTS[i])
        check(r.key == keys[i], "%s: key %r, want %r", r.where(), r.key,
              keys[i])
        check(r.int_header("extractd.attempts") == 1,
              "%s: extractd.attempts %r, want 1", r.where(),
              r.header("extractd.attempts"))
        check(r.header("extractd.model") == "gpt-4o-mini",
              "%s: extractd.model %r", r.where(), r.header("extractd.model"))
        lat = r.int_header("extractd.latency_ms")
        check(lat < 60000, "%s: extractd.latency_ms %d", r.where(), lat)
        check(r.int_header("extractd.tokens.prompt") > 0,
              "%s: extractd.tokens.prompt is 0", r.where())
        check(r.int_header("extractd.tokens.completion") > 0,
              "%s: extractd.tokens.completion is 0", r.where())
    log("7 outputs checked: values, keys, all six headers")

    stats = h.llm.stats()
    want = 7 + harness.STARTUP_CHECKS
    check(stats["requests"] == want, "llmsim saw %d requests, want %d: %r",
          stats["requests"], want, stats)

    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
