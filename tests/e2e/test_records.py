"""e2e.records: records as users have them, JSON inputs with fields,
headers and trace context carried through.

A ticket topic: {"id": "T-1042", "customer": "acme", "body": "<person
text>", "ts": ...} with headers trace-id and tenant on every ticket, a W3C
traceparent (and tracestate) on some, a malformed traceparent on one, a
binary header and a null one, and an extractd.source header that extractd
must replace, not repeat. extractd runs with input.format = "json",
input.text_pointer = "/body", output.carry = ["/id", "/customer"].

Proves:
- every ticket becomes one output: the body's Person, plus its id and
  customer (customer left out where the ticket has none; ts never), with
  every input header unchanged and the extractd.* ones ours;
- inputs that are not JSON, lack /body, or have a number there become
  dead letters "input" with the detail saying so, their value and
  headers unchanged, and never reach the model;
- llmsim saw a traceparent on exactly the calls made for tickets with a
  well-formed one: its count equals the sum of their extractd.attempts,
  and the last one it saw is one of them; the malformed one never went.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import SEED_TEXTS, check, expected_person, log  # noqa: E402

N_TICKETS = 28
CARRY = ["/id", "/customer"]


def traceparent(i):
    return "00-%032x-%016x-01" % (0x4bf92f3577b34da6 + i, 0xf067aa0b + i)


def ticket(i):
    """(key, value, partition, headers) of ticket i, and what it must give."""
    text = SEED_TEXTS[i % len(SEED_TEXTS)]
    doc = {"id": "T-%d" % (1000 + i), "customer": "acme-%d" % (i % 3),
           "body": text, "ts": 1700000000 + i}
    if i == 5:
        del doc["customer"]
    headers = [("trace-id", ("trace-%d" % i).encode()),
               ("tenant", b"tenant-%d" % (i % 4))]
    tp = None
    if i % 3 == 0:
        tp = traceparent(i)
        headers.append(("traceparent", tp.encode()))
        if i % 2 == 0:
            headers.append(("tracestate", b"vendor=t%d" % i))
    if i == 4:  # uppercase hex: not W3C's shape, never sent
        headers.append(("traceparent", traceparent(i).upper().encode()))
    if i == 7:
        headers += [("extractd.source", b"spoofed"), ("bin", b"\x00\xff"),
                    ("empty", None)]
    want = dict(expected_person(text), id=doc["id"])
    if "customer" in doc:
        want["customer"] = doc["customer"]
    return ((doc["id"].encode(), json.dumps(doc).encode(), 0, headers),
            want, tp)


BAD = [
    (b"Ann is a 30-year-old nurse", "input is not JSON: "),
    (b'{"id": "T-9001", "customer": "acme"}', "no /body in the input"),
    (b'{"id": "T-9002", "body": 42}', "/body is a number, not a string"),
    (b'{"id": "T-9003", "body": "   "}', "/body: text is blank"),
]


def bad(i):
    value, detail = BAD[i]
    headers = [("trace-id", b"bad-%d" % i), ("tenant", b"t"),
               ("traceparent", traceparent(100 + i).encode())]
    return (b"bad-%d" % i, value, 0, headers), detail


def input_headers(rec):
    """The headers the input record had, extractd.* names left out."""
    return [(k, v) for k, v in rec[3] if not k.startswith("extractd.")]


def check_headers(r, rec):
    got = [(k, v) for k, v in r.headers.items()
           if not k.startswith("extractd.")]
    check(got == input_headers(rec), "%s: headers %r, want the input's %r",
          r.where(), got, input_headers(rec))
    check(r.header("extractd.source") != "spoofed",
          "%s: the input's extractd.source was kept", r.where())
    r.source()


def body(h):
    h.start_kafka(partitions=1)
    sim = h.start_llmsim(latency_ms=5)
    coll = h.collector()
    tickets = [ticket(i) for i in range(N_TICKETS)]
    bads = [bad(i) for i in range(len(BAD))]
    d, group = h.start_extractd({
        "input": {"format": "json", "text_pointer": "/body"},
        "output": {"carry": CARRY}})
    records = [t[0] for t in tickets] + [b[0] for b in bads]
    h.produce(records)
    want = len(records)
    coll.until(lambda c: c.count() >= want, "%d outputs and dead letters"
               % want, watch=[d])

    by_key = {t[0][0]: t for t in tickets}
    outs = coll.records[h.topics["output"]]
    check(len(outs) == N_TICKETS, "%d outputs for %d tickets", len(outs),
          N_TICKETS)
    traced_calls = 0
    for r in outs:
        rec, want_obj, tp = by_key[r.key]
        check(r.json() == want_obj, "%s: output %r, want %r", r.where(),
              r.json(), want_obj)
        check_headers(r, rec)
        if tp:
            traced_calls += r.int_header("extractd.attempts")
    log("%d tickets: each output has its id and customer (one without a "
        "customer left it out) and the input headers unchanged", N_TICKETS)

    dead = {b[0][0]: b for b in bads}
    dls = coll.records[h.topics["dlq"]]
    check(len(dls) == len(BAD), "%d dead letters, want %d", len(dls),
          len(BAD))
    for r in dls:
        rec, detail = dead[r.key]
        check(r.value == rec[1], "%s: dead letter value %r is not the "
              "input", r.where(), r.value)
        check(r.header("extractd.error") == "input" and
              detail in (r.header("extractd.error.detail") or ""),
              "%s: %s / %r, want input / %r", r.where(),
              r.header("extractd.error"),
              r.header("extractd.error.detail"), detail)
        check(r.int_header("extractd.attempts") == 0, "%s: attempts %s",
              r.where(), r.header("extractd.attempts"))
        check_headers(r, rec)
    log("%d bad JSON inputs: dead letters 'input' with their headers",
        len(BAD))

    st = sim.stats()
    sent = {t[2] for t in tickets if t[2]}
    check(st["traceparent"] == traced_calls,
          "llmsim saw %d requests with a traceparent, want %d (the calls "
          "of the %d tickets with a well-formed one)", st["traceparent"],
          traced_calls, len(sent))
    check(traced_calls >= len(sent), "%d traced calls for %d tickets",
          traced_calls, len(sent))
    check(st["traceparent_last"] in sent, "llmsim's last traceparent %r "
          "is none of the tickets'", st["traceparent_last"])
    log("llmsim saw a traceparent on %d calls: those of the %d tickets "
        "with a well-formed one", st["traceparent"], len(sent))

    coll.poll(1.0)
    check(coll.count() == want, "%d records for %d inputs", coll.count(),
          want)
    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
