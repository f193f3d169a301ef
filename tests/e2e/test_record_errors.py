"""e2e.record_errors: one record the API keeps failing, among records it
answers, ends as a dead letter of the right kind after the right number of
calls (docs/extraction.md, "Surviving the LLM API"); the others are not
held up.

llmsim --answers scripts, per text, an HTTP error or a slow answer; every
other text is answered normally, so extractd's health check (a canary
request) shows the API working and the failures are charged to their
records. Phase 1, retry.max_attempts = 3, llm.timeout_ms = 1000:
  E500      500 on every call: retried, then llm_http after exactly 3 calls
  SLOWPOKE  answered after 5 s: each call times out, llm_timeout after 3
  E400      400: not retried, llm_http after 1 call, the detail quoting
            the API's error message; likewise E404 and E422
Phase 2, retry.max_attempts = 100 but retry.max_elapsed_ms = 2000, waits of
300 ms: E503 (503 on every call) gives up within the elapsed budget, as
llm_timeout, after more than one call and far fewer than 100, the detail
saying retry.max_elapsed_ms.
In both phases every good text is its exact Person, each input comes out
once, and the group commits to the end.
"""

import copy
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, expected_person, log, person_texts  # noqa: E402

GOOD = 30
MSG = {400: "Invalid 'messages[1].content': scripted 400 for this text",
       404: "The model 'gpt-4o-mini' does not exist (scripted 404)",
       422: "Unprocessable entity: scripted 422 for this text",
       500: "The server had an error (scripted 500)",
       503: "The engine is overloaded (scripted 503)"}
# text -> (kind, exact attempts or None, substring of the detail)
PHASE1 = {
    "E500 Ann is a 30-year-old baker": ("llm_http", 3, "500"),
    "SLOWPOKE Bob is a 31-year-old miller": ("llm_timeout", 3, None),
    "E400 Cat is a 32-year-old smith": ("llm_http", 1, MSG[400]),
    "E404 Dan is a 33-year-old cooper": ("llm_http", 1, MSG[404]),
    "E422 Eve is a 34-year-old tanner": ("llm_http", 1, MSG[422]),
}
PHASE2 = {
    "E503 Fay is a 35-year-old weaver": ("llm_timeout", None,
                                         "retry.max_elapsed_ms"),
}
BASE = {"pool": {"workers": 8, "max_in_flight": 8},
        "llm": {"timeout_ms": 1000}}


def write_answers(h):
    path = os.path.join(h.dir, "answers.jsonl")
    with open(path, "w") as f:
        for code, msg in sorted(MSG.items()):
            f.write(json.dumps({"match": "E%d " % code, "status": code,
                                "content": msg}) + "\n")
        f.write(json.dumps({"match": "SLOWPOKE", "delay_ms": 5000,
                            "content": expected_person(
                                "Bob is a 31-year-old miller")}) + "\n")
    return path


def run_phase(h, coll, group, cfg, bad, seed):
    """Produce GOOD texts and the bad ones, run an extractd on cfg until
    all are out, check them; returns the group."""
    texts = person_texts(GOOD, seed=seed)
    values = [t.encode() for t in texts] + [t.encode() for t in bad]
    placed = h.produce([(None, v, i % 2) for i, v in enumerate(values)])
    value_at = dict(zip(placed, values))
    before = coll.count()
    d, group = h.start_extractd(harness._merge(copy.deepcopy(BASE), cfg),
                                group=group)
    coll.until(lambda c: c.count() >= before + len(values),
               "%d outputs and dead letters" % len(values), watch=[d])
    coll.poll(0.5)
    out, dlq = h.topics["output"], h.topics["dlq"]
    mine = [r for t in (out, dlq) for r in coll.records[t]
            if r.source()[1:] in value_at]
    seen = [r.source()[1:] for r in mine]
    check(sorted(seen) == sorted(placed), "inputs out %d times for %d "
          "inputs", len(seen), len(placed))
    for r in mine:
        text = value_at[r.source()[1:]].decode()
        if text not in bad:
            check(r.topic == out and r.json() == expected_person(text),
                  "%s: %r for the good text %r (%s: %s)", r.where(),
                  r.value, text, r.header("extractd.error"),
                  r.header("extractd.error.detail"))
            continue
        kind, attempts, detail = bad[text]
        got = r.header("extractd.error")
        info = r.header("extractd.error.detail") or ""
        check(r.topic == dlq and got == kind, "%s: %r ended as %s (%s), "
              "want a %s dead letter", r.where(), text, got or "an output",
              info, kind)
        check(r.value == text.encode(), "%s: value %r", r.where(), r.value)
        n = r.int_header("extractd.attempts")
        if attempts is not None:
            check(n == attempts, "%s: %r: %d calls, want %d (%s)",
                  r.where(), text, n, attempts, info)
        if detail is not None:
            check(detail in info, "%s: %r: detail %r lacks %r", r.where(),
                  text, info, detail)
        log("%s: %s after %d call(s): %s", text.split()[0], kind, n,
            info[:120])
    h.stop_at_end(group, d)
    return group, {value_at[r.source()[1:]].decode(): r for r in mine}


def body(h):
    h.start_kafka(partitions=2)
    h.start_llmsim(latency_ms=5, extra=["--answers", write_answers(h)])
    coll = h.collector()
    group, _ = run_phase(h, coll, None, {
        "retry": {"max_attempts": 3, "base_delay_ms": 50,
                  "max_delay_ms": 200}}, PHASE1, seed=81)
    _, recs = run_phase(h, coll, group, {
        "retry": {"max_attempts": 100, "base_delay_ms": 300,
                  "max_delay_ms": 300, "max_elapsed_ms": 2000}},
        PHASE2, seed=82)
    for text in PHASE2:
        n = recs[text].int_header("extractd.attempts")
        check(1 < n < 100, "%r: %d calls within a 2 s budget of 300 ms "
              "waits", text, n)


if __name__ == "__main__":
    harness.run(body)
