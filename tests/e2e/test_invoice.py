"""e2e.invoice: a schema that is not Person, valid and invalid answers both.

extractd runs on schemas/invoice.schema.json (nested line items and parties
through $ref/$defs, enums, patterns, numeric and array bounds, nullable
fields, additionalProperties false everywhere) with schema.name = "Invoice",
against llmsim --answers: a JSONL file written here, one scripted answer per
text (matched on a "[case:...]" marker in it), given verbatim to the first
call and to every re-ask.

- Valid answers (one line; several with decimals and nulls; UTF-8; the
  boundaries: 20 lines, the smallest positive qty, a zero price) come out
  exactly as scripted, one call each.
- Invalid answers (bad invoice-number pattern, qty 0 in line 2, an unknown
  currency, an extra property, a missing property, a negative price, 21
  lines, a wrong nested type, two errors at once, not JSON at all) end as
  dead letters: extractd.error = validation, a detail naming every failing
  JSON pointer, extractd.error.answer = the scripted content byte for byte,
  extractd.attempts = 1 + llm.max_reasks.
- On the wire: the strict response_format carries the invoice schema under
  the name Invoice, and each re-ask's user message lists the same errors.
- extractd --check-config accepts the schema, and refuses, with exit 2 and
  a message naming schema.file and the problem, copies broken with an
  unsupported keyword (oneOf), a dangling $ref, and invalid JSON.
"""

import copy
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
from harness import check, log  # noqa: E402

SCHEMA_REL = "schemas/invoice.schema.json"
MAX_REASKS = 1
INSTRUCTIONS = "Extract the invoice described in the user's text."


def party(name, country, vat_id=None):
    return {"name": name, "vat_id": vat_id, "country": country}


def line(item, qty, unit_price, unit="piece", vat_rate=20):
    return {"item": item, "qty": qty, "unit": unit, "unit_price": unit_price,
            "vat_rate": vat_rate}


def invoice(number="INV-0042", lines=None, **kw):
    inv = {
        "number": number,
        "issue_date": "2025-03-14",
        "due_date": "2025-04-13",
        "status": "issued",
        "currency": "EUR",
        "seller": party("Acme Tools Ltd", "GB", "GB123456789"),
        "buyer": party("Globex SARL", "FR", "FR40303265045"),
        "lines": lines if lines is not None else [
            line("Hammer", 2, 15.5),
            line("Consulting", 3.5, 120, unit="hour"),
            line("Delivery", 1, 9.99, vat_rate=0),
        ],
        "total": 460.99,
    }
    inv.update(kw)
    return inv


def mutate(inv, fn):
    inv = copy.deepcopy(inv)
    fn(inv)
    return inv


def _set(path, value):
    def fn(inv):
        o = inv
        for k in path[:-1]:
            o = o[k]
        o[path[-1]] = value
    return fn


def _del(path):
    def fn(inv):
        o = inv
        for k in path[:-1]:
            o = o[k]
        del o[path[-1]]
    return fn


def _both(*fns):
    def fn(inv):
        for f in fns:
            f(inv)
    return fn


# name -> the invoice the model answers, valid.
VALID = {
    "ok-one-line": invoice("INV-1000", [line("Widget", 1, 10)], total=12,
                           due_date=None, status="draft"),
    "ok-three-lines": invoice(),
    "ok-utf8": invoice(
        "INV-20250001",
        [line("Brötchen — 10 Stück", 10, 0.45, vat_rate=7),
         line("Café crème ☕", 2, 3.2, vat_rate=19)],
        seller=party("Bäckerei Müller GmbH", "DE", "DE811907980"),
        buyer=party("Zoë Ødegaard", "NO"), currency="EUR", total=11.43,
        status="paid"),
    "ok-bounds": invoice(
        "INV-99999999",
        [line("Sample %d" % i, 0.001 if i == 0 else i, 0 if i == 1 else 1.5,
              unit="kg") for i in range(20)],
        currency="JPY", total=0, status="void", due_date=None),
}

# name -> (the answer, [substrings the detail must hold]).
_BASE = invoice()
INVALID = {
    "bad-number": (mutate(_BASE, _set(["number"], "INV-12")),
                   ["/number:", "INV-12", "pattern"]),
    "qty-zero": (mutate(_BASE, _set(["lines", 1, "qty"], 0)),
                 ["/lines/1/qty: 0 is not greater than 0"]),
    "currency": (mutate(_BASE, _set(["currency"], "XYZ")),
                 ["/currency:", "XYZ"]),
    "extra-prop": (mutate(_BASE, _set(["lines", 0, "discount"], 5)),
                   ["/lines/0:", "discount", "not allowed"]),
    "missing-prop": (mutate(_BASE, _del(["buyer", "country"])),
                     ["/buyer:", "country", "missing"]),
    "neg-price": (mutate(_BASE, _set(["lines", 2, "unit_price"], -1)),
                  ["/lines/2/unit_price:", "-1"]),
    "too-many": (mutate(_BASE, _set(["lines"],
                                    [line("Bolt", 1, 0.1)] * 21)),
                 ["/lines:", "20"]),
    "nested-type": (mutate(_BASE, _set(["seller", "vat_id"], 12345)),
                    ["/seller/vat_id:"]),
    "two-errors": (mutate(_BASE, _both(_set(["status"], "pending"),
                                       _set(["lines", 2, "qty"], -3))),
                   ["/status:", "pending", "/lines/2/qty:"]),
}
NOT_JSON = "Sorry, I could not find an invoice in that text."


def text_for(case):
    return ("Please file the invoice from this e-mail [case:%s]. It lists "
            "the seller, the buyer and the lines." % case)


def answers_jsonl(path):
    with open(path, "w", encoding="utf-8") as f:
        for case, inv in VALID.items():
            f.write(json.dumps({"match": "[case:%s]" % case,
                                "content": json.dumps(inv,
                                                      ensure_ascii=False)},
                               ensure_ascii=False) + "\n")
        for case, (inv, _) in INVALID.items():
            f.write(json.dumps({"match": "[case:%s]" % case,
                                "content": json.dumps(inv,
                                                      ensure_ascii=False)},
                               ensure_ascii=False) + "\n")
        f.write(json.dumps({"match": "[case:not-json]",
                            "content": NOT_JSON}) + "\n")


def check_config(h, schema_path, name="Invoice"):
    """extractd --check-config on a schema: (status, stderr)."""
    env = dict(os.environ, OPENAI_API_KEY="sk-test")
    p = subprocess.run([h.binary("extractd"), "--check-config",
                        "-s", "schema.file=%s" % schema_path,
                        "-s", "schema.name=%s" % name],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       env=env, timeout=60)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def check_schema_errors(h, schema, schema_path):
    rc, err = check_config(h, schema_path)
    check(rc == 0, "--check-config refuses %s (exit %d): %s", SCHEMA_REL, rc,
          err)
    broken = {
        "oneOf": _set(["$defs", "line", "properties", "qty", "oneOf"],
                      [{"type": "integer"}, {"type": "number"}]),
        "#/$defs/nothing": _set(["properties", "buyer", "$ref"],
                                "#/$defs/nothing"),
    }
    for k, (word, fn) in enumerate(broken.items()):
        path = os.path.join(h.dir, "broken-%d.schema.json" % k)
        with open(path, "w") as f:
            json.dump(mutate(schema, fn), f, indent=2)
        rc, err = check_config(h, path)
        check(rc == 2 and "schema.file" in err and word in err,
              "--check-config on a schema with %r: exit %d, want 2 with a "
              "message naming schema.file and %r: %r", word, rc, word, err)
        log("--check-config refuses %s: %s", word, err.strip())
    path = os.path.join(h.dir, "truncated.schema.json")
    with open(path, "w") as f:
        f.write(json.dumps(schema)[:-20])
    rc, err = check_config(h, path)
    check(rc == 2 and "schema.file" in err and path in err,
          "--check-config on invalid JSON: exit %d, want 2 naming "
          "schema.file and the file: %r", rc, err)
    log("--check-config refuses invalid JSON: %s", err.strip())


def body(h):
    schema_path = os.path.join(h.source, SCHEMA_REL)
    schema = extraction.load_schema(h, SCHEMA_REL)
    check_schema_errors(h, schema, schema_path)

    answers = os.path.join(h.dir, "invoice_answers.jsonl")
    answers_jsonl(answers)
    h.start_kafka(partitions=2)
    sim = h.start_llmsim(latency_ms=5, extra=["--answers", answers])
    rec = extraction.Recorder(h, sim.base_url)

    cases = list(VALID) + list(INVALID) + ["not-json"]
    texts = [text_for(c) for c in cases]
    keys = [c.encode() for c in cases]
    placed = h.produce([(k, t, None) for k, t in zip(keys, texts)])
    by_offset = extraction.index_placed(placed)
    src = h.topics["input"]

    coll = h.collector()
    d, _ = h.start_extractd({
        "llm": {"base_url": rec.base_url, "max_reasks": MAX_REASKS},
        "schema": {"file": schema_path, "name": "Invoice",
                   "instructions": INSTRUCTIONS},
    })
    out, dlq = h.topics["output"], h.topics["dlq"]
    n_bad = len(INVALID) + 1
    coll.until(lambda c: c.count() >= len(cases),
               "%d records (outputs and dead letters)" % len(cases),
               timeout=90, watch=[d])
    coll.poll(1.0)
    check(coll.count(out) == len(VALID) and coll.count(dlq) == n_bad,
          "want %d outputs and %d dead letters, got %s", len(VALID), n_bad,
          coll.summary())

    seen = set()
    for r in coll.records[out]:
        case = cases[extraction.source_index(r, src, by_offset)]
        check(case in VALID and case not in seen,
              "%s: output for case %s", r.where(), case)
        seen.add(case)
        check(r.json() == VALID[case], "%s (%s): value %r, want %r",
              r.where(), case, r.value, VALID[case])
        check(r.key == case.encode(), "%s: key %r", r.where(), r.key)
        check(r.int_header("extractd.attempts") == 1,
              "%s (%s): attempts %r, want 1", r.where(), case,
              r.header("extractd.attempts"))
    log("%d valid invoices came out exactly as answered", len(VALID))

    calls = rec.by_text()
    for r in coll.records[dlq]:
        case = cases[extraction.source_index(r, src, by_offset)]
        check(case not in VALID and case not in seen,
              "%s: dead letter for case %s: %s", r.where(), case,
              r.header("extractd.error.detail"))
        seen.add(case)
        text = text_for(case)
        detail = extraction.dead_letter_checks(r, text, case.encode(),
                                           "validation", 1 + MAX_REASKS)
        if case == "not-json":
            content, wants = NOT_JSON, ["not a JSON object: it starts "
                                        "with"]
        else:
            inv, wants = INVALID[case]
            content = json.dumps(inv, ensure_ascii=False)
        for w in wants:
            check(w in detail, "%s (%s): detail %r does not hold %r",
                  r.where(), case, detail, w)
        check(len(content.encode()) < 4000, "case %s: answer too long to "
              "come back whole", case)
        check(r.header("extractd.error.answer") == content,
              "%s (%s): extractd.error.answer %r, want the scripted %r",
              r.where(), case, r.header("extractd.error.answer"), content)
        xs = calls.get(text, [])
        check(len(xs) == 1 + MAX_REASKS, "%s: %d calls, want %d", case,
              len(xs), 1 + MAX_REASKS)
        reask = xs[-1].messages[-1]
        check(reask.get("role") == "user" and
              all(w in reask.get("content", "") for w in wants),
              "%s: the re-ask's user message does not list %r: %r", case,
              wants, reask)
        log("%s: validation dead letter, %s", case,
            detail.replace("\n", " | "))

    rec.check_bodies()
    for x in rec.exchanges():
        rf = x.request.get("response_format") or {}
        js = rf.get("json_schema") or {}
        check(rf.get("type") == "json_schema" and js.get("name") == "Invoice"
              and js.get("strict") is True and js.get("schema") == schema,
              "the request for %r does not carry the strict Invoice schema: "
              "%r", x.text, {k: v for k, v in rf.items()
                             if k != "json_schema"} or rf)
        check(x.messages[0].get("content") == INSTRUCTIONS,
              "system message %r", x.messages[0])
    st = sim.stats()
    want = len(VALID) + n_bad * (1 + MAX_REASKS) + harness.STARTUP_CHECKS
    check(st["requests"] == want, "llmsim saw %d requests, want %d",
          st["requests"], want)

    rc, _ = d.terminate(60)
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)


if __name__ == "__main__":
    harness.run(body)
