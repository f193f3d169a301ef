"""e2e.bulk: 1,200 texts over 4 partitions, every record accounted for.

Proves, at volume: each good text becomes exactly one output whose fields are
those of the text it came from (found through extractd.source), each bad text
becomes exactly one dead letter of the right kind with its bytes and key
unchanged, nothing is lost or repeated in a clean run, and after SIGTERM
extractd exits 0 with the group's committed offsets at the end of every
input partition.

Bad texts, spread among the good ones, one kind each:
  input        invalid UTF-8 (bad byte, overlong form, surrogate), a NUL,
               one byte over input.max_bytes, empty, blank   (attempts 0)
  llm_refusal  texts llmsim's regex does not match, a line break in a field
  validation   ages over the schema's maximum of 150: re-asked max_reasks
               times, so attempts = 1 + max_reasks, detail names /age
A good text of exactly input.max_bytes bytes must pass.
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, expected_person, log, person_texts  # noqa: E402

PARTITIONS = 4
GOOD = 1200
MAX_BYTES = 4096
MAX_REASKS = 2
MODEL = "gpt-4o-mini"


def sized_text(n):
    """A text llmsim extracts that is exactly n bytes of UTF-8."""
    head = "Long Ĳssel is a 40-year-old "
    pad = n - len(head.encode())
    return head + "w" * pad


BAD = [
    # (value, error kind, attempts or None when not fixed by the design)
    (b"\xff\xfe is a 30-year-old byte-order mark", "input", 0),
    (b"Bad \xc3\x28 is a 30-year-old x", "input", 0),
    (b"Overlong \xc0\xaf is a 30-year-old x", "input", 0),
    (b"Surrogate \xed\xa0\x80 is a 30-year-old x", "input", 0),
    (b"Nul\x00Byte is a 30-year-old x", "input", 0),
    (sized_text(MAX_BYTES + 1).encode(), "input", 0),
    (b"", "input", 0),
    (b"   ", "input", 0),
    (b" \t\r\n ", "input", 0),
    ("The weather is nice today".encode(), "llm_refusal", None),
    ("John Smith is thirty years old".encode(), "llm_refusal", None),
    ("Line\nBreak is a 30-year-old x".encode(), "llm_refusal", None),
    ("Ann is a 1234-year-old archivist".encode(), "llm_refusal", None),
    ("Old Tom is a 999-year-old sailor".encode(), "validation",
     1 + MAX_REASKS),
    ("Ann Ærø is a 151-year-old weaver".encode(), "validation",
     1 + MAX_REASKS),
    ("Zed is an 800-year-old wizard".encode(), "validation", 1 + MAX_REASKS),
]

OUTPUT_HEADERS = {"extractd.source", "extractd.attempts", "extractd.model",
                  "extractd.latency_ms", "extractd.tokens.prompt",
                  "extractd.tokens.completion"}
DLQ_HEADERS = {"extractd.source", "extractd.error", "extractd.error.detail",
               "extractd.attempts"}


def build_inputs():
    """[(key, value bytes, kind or None, attempts)], good and bad mixed."""
    rnd = random.Random(20240607)
    items = [(t.encode(), None, 1) for t in person_texts(GOOD, seed=7)]
    items.append((sized_text(MAX_BYTES).encode(), None, 1))
    for _ in range(3):
        for value, kind, attempts in BAD:
            items.insert(rnd.randrange(len(items) + 1),
                         (value, kind, attempts))
    out = []
    for i, (value, kind, attempts) in enumerate(items):
        key = None if i % 50 == 17 else ("bulk-%d" % i).encode()
        out.append((key, value, kind, attempts))
    return out


def body(h):
    check(len(sized_text(MAX_BYTES).encode()) == MAX_BYTES, "sized_text")
    inputs = build_inputs()
    total = len(inputs)
    n_bad = sum(1 for x in inputs if x[2] is not None)

    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=5, jitter_ms=5, seed=1)
    placed = h.produce([(k, v, i % PARTITIONS)
                        for i, (k, v, _, _) in enumerate(inputs)])
    src = {pos: inputs[i] for i, pos in enumerate(placed)}
    check(len(src) == total, "two inputs at one offset")

    coll = h.collector()
    d, group = h.start_extractd({
        "llm": {"model": MODEL, "max_reasks": MAX_REASKS},
        "input": {"max_bytes": MAX_BYTES},
        "pool": {"workers": 16, "max_in_flight": 16},
    })
    out, dlq = h.topics["output"], h.topics["dlq"]
    coll.until(lambda c: c.count() >= total,
               "%d outputs and dead letters" % total, watch=[d])
    coll.poll(2.0)  # duplicates, if any, would show up now

    covered = {}
    for r in coll.records[out] + coll.records[dlq]:
        topic, part, off = r.source()
        check(topic == h.topics["input"] and (part, off) in src,
              "%s: extractd.source %s/%d/%d is no input record",
              r.where(), topic, part, off)
        check((part, off) not in covered,
              "input %d/%d came out twice: %s and %s", part, off,
              covered.get((part, off)), r.where())
        covered[(part, off)] = r.where()
        key, value, kind, attempts = src[(part, off)]
        check(r.key == key, "%s: key %r, want %r", r.where(), r.key, key)
        if r.topic == out:
            check(kind is None, "%s: bad text %r (%s) got an output %r",
                  r.where(), value, kind, r.value)
            missing = OUTPUT_HEADERS - set(r.headers)
            check(not missing, "%s lacks %s", r.where(), sorted(missing))
            want = expected_person(value.decode())
            check(r.json() == want, "%s: value %r, want %r for %r",
                  r.where(), r.value, want, value)
            check(r.int_header("extractd.attempts") == 1,
                  "%s: attempts %s", r.where(),
                  r.header("extractd.attempts"))
            check(r.header("extractd.model") == MODEL, "%s: model %r",
                  r.where(), r.header("extractd.model"))
            r.int_header("extractd.latency_ms")
            check(r.int_header("extractd.tokens.prompt") > 0 and
                  r.int_header("extractd.tokens.completion") > 0,
                  "%s: token counts %r", r.where(), r.headers)
        else:
            check(kind is not None, "%s: good text %r went to the DLQ: %r",
                  r.where(), value, r.headers)
            missing = DLQ_HEADERS - set(r.headers)
            check(not missing, "%s lacks %s", r.where(), sorted(missing))
            check(r.value == value, "%s: DLQ value %r, want the input %r",
                  r.where(), r.value, value)
            got = r.header("extractd.error")
            check(got == kind, "%s: extractd.error %r, want %r for %r "
                  "(detail %r)", r.where(), got, kind, value,
                  r.header("extractd.error.detail"))
            detail = r.header("extractd.error.detail")
            check(detail, "%s: empty extractd.error.detail", r.where())
            n = r.int_header("extractd.attempts")
            if attempts is not None:
                check(n == attempts, "%s: attempts %d, want %d for %r",
                      r.where(), n, attempts, value)
            else:
                check(n >= 1, "%s: attempts %d for %s", r.where(), n, kind)
            if kind == "validation":
                check("/age" in detail, "%s: detail %r lacks /age",
                      r.where(), detail)
                answer = r.header("extractd.error.answer")
                check(answer, "%s: no extractd.error.answer", r.where())
                want = expected_person(value.decode())
                check(json.loads(answer) == want,
                      "%s: answer %r, want %r", r.where(), answer, want)

    check(len(covered) == total, "%d of %d inputs came out", len(covered),
          total)
    check(coll.count(dlq) == n_bad and coll.count(out) == total - n_bad,
          "outputs %d (want %d), dead letters %d (want %d)",
          coll.count(out), total - n_bad, coll.count(dlq), n_bad)
    log("%d inputs: %d outputs + %d dead letters, each once and right",
        total, coll.count(out), coll.count(dlq))

    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
