"""e2e.finish_reasons: answers that end early, as docs/extraction.md's table
of how a record can end promises.

  content_filter  llmsim --fault content_filter=1: a 200 whose answer the
                  provider's filter withheld (content and refusal null,
                  finish_reason "content_filter", as Azure and OpenAI
                  send it). Each record is an llm_refusal dead letter
                  whose detail names the content filter, after one call:
                  not retried, not re-asked, and the deployment is not
                  paused for it.
  length          llmsim --fault length=1: every answer cut in half, with
                  finish_reason "length". A cut answer is no reason to
                  re-ask: it is asked once more with twice the room
                  (max_tokens), cut again, then a validation dead letter
                  whose detail says where it was cut, with the last (cut)
                  answer in extractd.error.answer.
Each phase has its own llmsim and extractd on the same topics and group;
every input ends as exactly one dead letter of its kind, carrying the input
bytes, after exactly the calls the phase allows (llmsim also sees
extractd's start-up health check), and the group commits to the end.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 6
MAX_REASKS = 2


def phase(h, coll, group, fault, texts, kind, detail, attempts):
    """Start llmsim with fault=1 and an extractd; every one of texts must
    become a dead letter of kind whose detail holds detail, after exactly
    attempts calls; returns the group."""
    h.start_llmsim(latency_ms=5, faults={fault: 1.0})
    d, group = h.start_extractd({"llm": {"max_reasks": MAX_REASKS}},
                                group=group)
    before = coll.count()
    placed = h.produce([(None, t, 0) for t in texts])
    value_at = dict(zip(placed, texts))
    coll.until(lambda c: c.count() >= before + len(texts),
               "%d dead letters (%s)" % (len(texts), fault), watch=[d])
    coll.poll(0.5)
    out, dlq = h.topics["output"], h.topics["dlq"]
    check(coll.count(out) == 0, "%s: %d outputs", fault, coll.count(out))
    mine = [r for r in coll.records[dlq] if r.source()[1:] in value_at]
    check(len(mine) == len(texts), "%s: %d dead letters for %d inputs",
          fault, len(mine), len(texts))
    for r in mine:
        check(r.value == value_at[r.source()[1:]], "%s: value %r is not "
              "the input", r.where(), r.value)
        got = r.header("extractd.error")
        check(got == kind, "%s: %s: extractd.error %r, want %r (%s)",
              r.where(), fault, got, kind,
              r.header("extractd.error.detail"))
        text = r.header("extractd.error.detail") or ""
        check(detail in text, "%s: %s: detail %r lacks %r", r.where(),
              fault, text, detail)
        n = r.int_header("extractd.attempts")
        check(n == attempts, "%s: %s: %d attempts, want %d", r.where(),
              fault, n, attempts)
    stats = h.llm.stats()
    want = attempts * len(texts) + harness.STARTUP_CHECKS
    check(stats["requests"] == want, "%s: llmsim saw %d requests, want "
          "%d x %d + %d", fault, stats["requests"], attempts, len(texts),
          harness.STARTUP_CHECKS)
    log("%s: %d %s dead letters, %d calls each", fault, len(mine), kind,
        attempts)
    h.stop_at_end(group, d)
    return group, mine


def body(h):
    h.start_kafka(partitions=1)
    coll = h.collector()
    texts = [t.encode() for t in person_texts(2 * N, seed=71)]

    group, _ = phase(h, coll, None, "content_filter", texts[:N],
                     "llm_refusal", "content filter", 1)

    _, cut = phase(h, coll, group, "length", texts[N:], "validation",
                   'tokens (finish_reason "length"), again when asked', 2)
    for r in cut:
        answer = r.header("extractd.error.answer")
        check(answer and answer.startswith("{") and
              not answer.rstrip().endswith("}"),
              "%s: extractd.error.answer %r is not the cut answer",
              r.where(), answer)


if __name__ == "__main__":
    harness.run(body)
