"""e2e.truncation: an answer cut at the token limit gets more room once,
never a re-ask with the same limit.

llmsim cuts an answer longer than the request's max_tokens (four bytes a
token) and says so with finish_reason (llmsim --cut-finish-reason). The
seed's seven texts go through three lanes, each its own extractd and
topics, through one recording proxy:

- "grow": llm.max_tokens = 10, llm.max_tokens_limit = 1000. Every Person
  answer is longer than 40 bytes, so every first answer is cut; the same
  request (same messages: no re-ask) goes again with max_tokens 20, and
  all seven come out exact, with extractd.attempts 2 and token headers the
  sums of both calls.
- "tight": max_tokens = 10 = max_tokens_limit: no room to grow, so every
  record is a validation dead letter after one call, its detail saying
  "cut at 10 tokens" and naming llm.max_tokens_limit.
- "tools": llm.mode = tools on a server that reports a cut tool call as
  finish_reason "tool_calls" (as llama-cpp-python does): the cut is seen
  from the JSON that stops mid-way at the limit. max_tokens = 10, limit
  15: answers of at most 60 bytes come out after a second call with
  max_tokens 15; the longer ones are dead letters saying they were cut
  at 15 tokens also after the retry.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
from harness import SEED_TEXTS, check, expected_person, log  # noqa: E402

LANES = {
    "grow": {"mode": "json_schema", "max_tokens": 10,
             "max_tokens_limit": 1000},
    "tight": {"mode": "json_schema", "max_tokens": 10,
              "max_tokens_limit": 10},
    "tools": {"mode": "tools", "max_tokens": 10, "max_tokens_limit": 15},
}


def answer_bytes(text):
    """The bytes of llmsim's answer for text (compact JSON, as it writes
    it), which is what its max_tokens cut counts."""
    return len(json.dumps(expected_person(text), separators=(",", ":"),
                          ensure_ascii=False).encode())


def body(h):
    lanes = extraction.start_kafka_topics(h, list(LANES))
    sims = {"json": h.start_llmsim(latency_ms=5),
            "tools": h.start_llmsim(latency_ms=5, extra=[
                "--cut-finish-reason", "tool_calls"])}
    recs = {k: extraction.Recorder(h, s.base_url) for k, s in sims.items()}
    src = h.topics["input"]
    keys = [("t%d" % i).encode() for i in range(len(SEED_TEXTS))]
    placed = h.produce([(k, t, 0) for k, t in zip(keys, SEED_TEXTS)])
    by_offset = extraction.index_placed(placed)
    for t in SEED_TEXTS:
        check(40 < answer_bytes(t) <= 80, "oracle: %r is %d bytes", t,
              answer_bytes(t))

    procs = []
    for lane, llm in LANES.items():
        over = extraction.lane_config(lanes, lane)
        rec = recs["tools" if lane == "tools" else "json"]
        over["llm"] = dict(llm, base_url=rec.base_url,
                           model="m-%s" % lane, max_reasks=2)
        over["pool"] = {"workers": 4, "max_in_flight": 4}
        d, _ = h.start_extractd(over, group=h.unique("group-" + lane))
        procs.append(d)
    coll = h.collector([t for lane in LANES for t in lanes[lane]])
    n = len(SEED_TEXTS)
    coll.until(lambda c: all(c.count(lanes[x][0]) + c.count(lanes[x][1]) >=
                             n for x in LANES),
               "%d records per lane" % n, timeout=60, watch=procs)
    coll.poll(1.0)

    # grow: every record twice, the second with twice the room.
    out, dlq = lanes["grow"]
    check(coll.count(out) == n and coll.count(dlq) == 0,
          "grow: %d outputs, %d dead letters %r", coll.count(out),
          coll.count(dlq), coll.records[dlq][:2])
    calls = recs["json"].by_text("m-grow")
    for r in coll.records[out]:
        i = extraction.source_index(r, src, by_offset)
        text = SEED_TEXTS[i]
        check(r.json() == expected_person(text), "grow: %s value %r",
              r.where(), r.value)
        check(r.int_header("extractd.attempts") == 2,
              "grow: %s attempts %r, want 2", r.where(),
              r.header("extractd.attempts"))
        xs = calls.get(text, [])
        check(len(xs) == 2, "grow: %d calls for %r", len(xs), text)
        first, second = xs
        check(first.request.get("max_tokens") == 10 and
              second.request.get("max_tokens") == 20,
              "grow: max_tokens %r then %r, want 10 then 20",
              first.request.get("max_tokens"),
              second.request.get("max_tokens"))
        check(second.messages == first.messages,
              "grow: the second call is not the same request (a re-ask?): "
              "%r", second.messages)
        check(first.response["choices"][0]["finish_reason"] == "length",
              "grow: llmsim did not cut the first answer: %r",
              first.response)
        p = sum(x.usage[0] for x in xs)
        c = sum(x.usage[1] for x in xs)
        check(r.int_header("extractd.tokens.prompt") == p and
              r.int_header("extractd.tokens.completion") == c,
              "grow: %s tokens %s/%s, want %d/%d", r.where(),
              r.header("extractd.tokens.prompt"),
              r.header("extractd.tokens.completion"), p, c)
    log("grow: %d records cut at 10 tokens, out after one call with 20", n)

    # tight: no room, a dead letter at once.
    out, dlq = lanes["tight"]
    check(coll.count(out) == 0 and coll.count(dlq) == n,
          "tight: %d outputs, %d dead letters", coll.count(out),
          coll.count(dlq))
    for r in coll.records[dlq]:
        i = extraction.source_index(r, src, by_offset)
        detail = extraction.dead_letter_checks(r, SEED_TEXTS[i], keys[i],
                                           "validation", 1)
        check("cut at 10 tokens" in detail and
              "llm.max_tokens_limit (10)" in detail,
              "tight: detail %r does not say where it was cut and why no "
              "more", detail)
    log("tight: %d validation dead letters, 'cut at 10 tokens'", n)

    # tools: the cut seen from the JSON; more room once.
    out, dlq = lanes["tools"]
    fits = [t for t in SEED_TEXTS if answer_bytes(t) <= 60]
    check(0 < len(fits) < n, "oracle: %d of %d answers fit in 60 bytes",
          len(fits), n)
    check(coll.count(out) == len(fits) and
          coll.count(dlq) == n - len(fits),
          "tools: %d outputs and %d dead letters, want %d and %d",
          coll.count(out), coll.count(dlq), len(fits), n - len(fits))
    for r in coll.records[out]:
        i = extraction.source_index(r, src, by_offset)
        check(SEED_TEXTS[i] in fits and
              r.json() == expected_person(SEED_TEXTS[i]) and
              r.int_header("extractd.attempts") == 2,
              "tools: %s value %r attempts %r", r.where(), r.value,
              r.header("extractd.attempts"))
    for r in coll.records[dlq]:
        i = extraction.source_index(r, src, by_offset)
        detail = extraction.dead_letter_checks(r, SEED_TEXTS[i], keys[i],
                                           "validation", 2)
        check("cut at 15 tokens" in detail and
              "also when asked again with max_tokens 15" in detail,
              "tools: detail %r", detail)
    calls = recs["tools"].by_text("m-tools")
    for t in SEED_TEXTS:
        xs = calls.get(t, [])
        check([x.request.get("max_tokens") for x in xs] == [10, 15],
              "tools: max_tokens of the calls for %r: %r", t,
              [x.request.get("max_tokens") for x in xs])
        check(xs[0].response["choices"][0]["finish_reason"] == "tool_calls",
              "tools: llmsim did not say tool_calls for a cut answer")
    log("tools: %d out after more room, %d cut again", len(fits),
        n - len(fits))

    for d in procs:
        rc, _ = d.terminate(60)
        check(rc == 0, "extractd exit status %d after SIGTERM", rc)


if __name__ == "__main__":
    harness.run(body)
