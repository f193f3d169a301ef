"""e2e.oversize: a record larger than its topic takes becomes a bounded dead
letter, in its place in the order; extractd never stops for it, and a
restart does not meet it again.

The limit is LIMIT bytes. Big inputs are BIG bytes; a big output is a
Person whose name is BIG_NAME bytes (llmsim --answers). A bounded dead
letter carries the input cut to CUT bytes (whole when shorter),
extractd.original_bytes when cut, a detail naming the refusing topic, and
extractd.source intact. One group throughout; each phase stops extractd
with SIGTERM (exit 0, committed to the end of the input) and the next
phase starts again on the same group, which proves that a restart does
not meet the record again.

  A. Refused by the producer: kafka.properties message.max.bytes = LIMIT.
     Offset order, 2 partitions, each with a 300 KB text llmsim refuses
     (an llm_refusal dead letter too large: cut) and a text whose output
     is too large (output_too_large, the input whole), among Person texts
     and an empty text. Every input comes out once, the big ones as
     bounded dead letters, in offset order per partition (source offsets
     increase in every output and dead-letter partition, and CreateTime
     never goes back across both topics); a warning names the topic.
  B. Refused by the broker, no client limit: on real Kafka the output and
     dead-letter topics have max.message.bytes = LIMIT; on kafka-embedded
     (no size limits) the Produce request of the big record gets
     MSG_SIZE_TOO_LARGE through the control socket. The big record is
     answered after DELAY_MS, so the error is pushed before it is
     produced and nothing else is produced meanwhile.
     B1 completion order, a big output: replaced by output_too_large.
     B2 offset order, a 300 KB text whose answers never validate (a
        validation dead letter, cut), followed in its partition by an
        empty text and a Person text: the replacement comes before them
        (in the dead-letter partition, the empty text's dead letter
        follows it).
     B3 exactly-once, a big output (real Kafka only: the mock cluster
        keeps no transactional offsets; on kafka-embedded this phase
        says so and is left out): the broker's refusal fails the
        transaction, which is aborted and redone; the redone record is
        replaced before it is produced, and a read_committed reader sees
        every input exactly once.
Throughout: no fatal error, every exit 0.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, expected_person, log, person_texts  # noqa: E402

LIMIT = 200000
BIG = 300000
BIG_NAME = 250000
CUT = 32768              # PRODUCER_CUT_VALUE
SAFE = 65536             # a bounded dead letter stays below this
DELAY_MS = 4000
MIB = 1 << 20
PARTITIONS = 2

BIG_PERSON = {"name": "N" * BIG_NAME, "age": 30, "occupation": "writer"}
OUT_NOW = b"BIGOUT-NOW Olga is a 30-year-old writer"
OUT_SLOW = b"BIGOUT-SLOW Olga is a 30-year-old writer"
REFUSED_TEXT = (b"No person here: " + b"w" * BIG)[:BIG]
INVALID_TEXT = (b"SLOW-INVALID " + b"v" * BIG)[:BIG]
ANSWERS = [
    {"match": "BIGOUT-NOW", "content": BIG_PERSON},
    {"match": "BIGOUT-SLOW", "content": BIG_PERSON, "delay_ms": DELAY_MS},
    {"match": "SLOW-INVALID", "content": "not JSON at all",
     "delay_ms": DELAY_MS},
]
BASE = {
    "input": {"max_bytes": MIB},
    "llm": {"max_reasks": 0},
    "pool": {"workers": 8, "max_in_flight": 8},
}


def props(*more):
    # One Produce request in flight per connection keeps the mock cluster
    # honest about a refused batch (see e2e.mock_faults); harmless on a
    # real broker.
    return {"kafka": {"properties": [
        ("session.timeout.ms", 6000),
        ("max.in.flight.requests.per.connection", 1)] + list(more)}}


def config(*parts):
    tree = {}
    for p in (BASE,) + parts:
        harness._merge(tree, json.loads(json.dumps(p)))
    return tree


class Inputs:
    """Every input of the test: {(partition, offset): value}."""

    def __init__(self, h):
        self.h = h
        self.value = {}

    def produce(self, values, partition):
        placed = self.h.produce([(("o-%d-%d" % (partition, len(self.value)
                                                + i)).encode(), v, partition)
                                 for i, v in enumerate(values)])
        for pos, v in zip(placed, values):
            self.value[pos] = v
        return placed


def check_bounded(h, r, value, kind):
    """r: the dead letter replacing a record too large for its topic."""
    dlq = h.topics["dlq"]
    check(r.topic == dlq, "%s: want a dead letter on %s", r.where(), dlq)
    got = r.header("extractd.error")
    check(got == kind, "%s: extractd.error %r, want %r (detail %r)",
          r.where(), got, kind, r.header("extractd.error.detail"))
    detail = r.header("extractd.error.detail") or ""
    refusing = h.topics["output" if kind == "output_too_large" else "dlq"]
    check("too large for topic %s" % refusing in detail,
          "%s: detail %r does not name the refusing topic %s", r.where(),
          detail[:300], refusing)
    check(len(detail.encode()) < 2048, "%s: detail of %d bytes", r.where(),
          len(detail.encode()))
    if len(value) > CUT:
        check(r.value == value[:CUT], "%s: value of %d bytes is not the "
              "input's first %d", r.where(), len(r.value or b""), CUT)
        check(r.int_header("extractd.original_bytes") == len(value),
              "%s: extractd.original_bytes %r, want %d", r.where(),
              r.header("extractd.original_bytes"), len(value))
        check("cut" in detail, "%s: detail %r does not say it was cut",
              r.where(), detail[:300])
    else:
        check(r.value == value, "%s: value %r, want the input", r.where(),
              (r.value or b"")[:80])
        check(r.header("extractd.original_bytes") is None,
              "%s: extractd.original_bytes on an uncut value", r.where())
    size = len(r.value or b"") + len(r.key or b"") + sum(
        len(k) + len(v or b"") for k, v in r.headers.items())
    check(size < SAFE, "%s: the bounded dead letter takes %d bytes",
          r.where(), size)


def check_phase(h, coll, inputs, placed, special, what, ordered):
    """Every input of placed came out once and right (ordered: in offset
    order per partition); special: {position: kind} of the replaced
    ones."""
    out, dlq = h.topics["output"], h.topics["dlq"]
    want = set(placed)
    seen = {}
    for topic in (out, dlq):
        last = {}
        for r in coll.records[topic]:
            _, part, off = r.source()
            if (part, off) not in want:
                continue
            check((part, off) not in seen, "%s: input %d/%d came out "
                  "twice", what, part, off)
            seen[(part, off)] = r
            check(r.partition == part, "%s: from input partition %d, but "
                  "partitioning = source", r.where(), part)
            check(not ordered or off > last.get(part, -1),
                  "%s: %s: source offset %d after %d in the same "
                  "partition", what, r.where(), off, last.get(part, -1))
            last[part] = off
    check(set(seen) == want, "%s: %d of %d inputs came out", what,
          len(seen), len(want))
    for pos in sorted(want):
        r, value = seen[pos], inputs.value[pos]
        if pos in special:
            check_bounded(h, r, value, special[pos])
        elif not value:
            check(r.topic == dlq and r.header("extractd.error") == "input",
                  "%s: the empty text gave %r", r.where(),
                  r.header("extractd.error"))
        else:
            want_rec = expected_person(value.decode())
            check(r.topic == out and r.json() == want_rec,
                  "%s: %r, want %r", r.where(), (r.value or b"")[:80],
                  want_rec)
    if not ordered:
        log("%s: %d inputs out once, %d replaced", what, len(want),
            len(special))
        return
    by_part = {}
    for pos, r in seen.items():
        by_part.setdefault(pos[0], []).append((pos[1], r.timestamp,
                                               r.where()))
    for part, recs in by_part.items():
        recs.sort()
        for (o1, t1, w1), (o2, t2, w2) in zip(recs, recs[1:]):
            check(t2 >= t1, "%s: input partition %d: offset %d (%s) "
                  "produced before offset %d (%s)", what, part, o2, w2,
                  o1, w1)
    log("%s: %d inputs out once, in order, %d replaced", what, len(want),
        len(special))


def oversize_lines(d):
    lines = []
    for x in d.proc.log_text().splitlines():
        try:
            rec = json.loads(x)
        except ValueError:
            continue
        if "too large" in rec.get("msg", ""):
            lines.append(rec)
    return lines


def check_warned(h, d, what):
    lines = oversize_lines(d)
    check(lines, "%s: no warning about a record too large", what)
    topics = (h.topics["output"], h.topics["dlq"])
    for rec in lines:
        check(rec.get("level") == "warn" and rec.get("topic") in topics,
              "%s: %r: want a warning naming the output or dead-letter "
              "topic", what, rec)
    log("%s: %d warning(s), e.g. %s", what, len(lines), lines[0])


def stop(h, d, group, what):
    d.check_no_fatal()
    h.stop_at_end(group, d)
    log("%s: exit 0, committed to the end", what)


def phase_a(h, coll, inputs, group):
    what = "A (producer's limit)"
    d, _ = h.start_extractd(config(
        props(("message.max.bytes", LIMIT)),
        {"output": {"ordering": "offset", "partitioning": "source"}}),
        group=group)
    placed, special = [], {}
    for p in range(PARTITIONS):
        good = [t.encode() for t in person_texts(6, seed=40 + p)]
        values = good[:2] + [REFUSED_TEXT, b""] + good[2:4] + [OUT_NOW] + \
            good[4:]
        pos = inputs.produce(values, p)
        placed += pos
        special[pos[2]] = "llm_refusal"
        special[pos[6]] = "output_too_large"
    coll.until(lambda c: set(placed) <= set(c.coverage()),
               "%s: every input out" % what, watch=[d])
    coll.poll(0.5)
    check_phase(h, coll, inputs, placed, special, what, True)
    check_warned(h, d, what)
    stop(h, d, group, what)


def phase_b(h, coll, inputs, group, ordering, big, kind):
    what = "B (broker refuses, %s)" % ordering
    over = {"output": {"partitioning": "source"}}
    if ordering == "exactly-once":
        over["output"]["delivery"] = "exactly-once"
    else:
        over["output"]["ordering"] = ordering
    d, _ = h.start_extractd(config(props(), over), group=group)
    # A first record through: the group is joined and the producer is
    # connected, so what follows is only the records below.
    warm = inputs.produce([person_texts(1, seed=70)[0].encode()], 0)
    coll.until(lambda c: set(warm) <= set(c.coverage()),
               "%s: the first record" % what, watch=[d])

    followers = [b"", person_texts(1, seed=71)[0].encode()]
    placed = inputs.produce([big] + followers, 0)
    if h.kafka.controlled:
        if ordering == "completion":
            # The followers go out at once; the big one after DELAY_MS.
            coll.until(lambda c: set(placed[1:]) <= set(c.coverage()),
                       "%s: the records after the big one" % what,
                       watch=[d])
        h.kafka.cmd("broker-push-errors 1 Produce MSG_SIZE_TOO_LARGE 1")
    coll.until(lambda c: set(placed) <= set(c.coverage()),
               "%s: every input out" % what, watch=[d])
    if h.kafka.controlled:
        left = int(h.kafka.cmd("broker-errors 1 Produce"))
        check(left == 0, "%s: the injected MSG_SIZE_TOO_LARGE was not "
              "taken", what)
    coll.poll(0.5)
    check_phase(h, coll, inputs, warm + placed, {placed[0]: kind}, what,
                ordering != "completion")
    check_warned(h, d, what)
    stop(h, d, group, what)


def body(h):
    h.start_kafka(partitions=PARTITIONS, control=True,
                  topic_config={"max.message.bytes": 2 * MIB},
                  out_config={"max.message.bytes": LIMIT})
    answers = os.path.join(h.dir, "answers.jsonl")
    with open(answers, "w") as f:
        for a in ANSWERS:
            f.write(json.dumps(a) + "\n")
    h.start_llmsim(latency_ms=5, extra=["--answers", answers])
    coll = h.collector()
    inputs = Inputs(h)
    group = h.unique("group")

    phase_a(h, coll, inputs, group)
    phase_b(h, coll, inputs, group, "completion", OUT_SLOW,
            "output_too_large")
    phase_b(h, coll, inputs, group, "offset", INVALID_TEXT, "validation")
    if h.kafka.controlled:
        log("B (exactly-once) left out: librdkafka's mock cluster keeps no "
            "transactional offsets; the real-Kafka pass runs it")
    else:
        phase_b(h, coll, inputs, group, "exactly-once", OUT_SLOW,
                "output_too_large")


if __name__ == "__main__":
    harness.run(body)
