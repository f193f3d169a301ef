"""e2e.reask: re-asks recover injected invalid answers; without them, none is.

One input topic of N Person texts, read by three extractd instances (own
groups, own output and dead-letter topics), each on its own llmsim:

- "half": llmsim --fault invalid=0.5 (seeded), llm.max_reasks = 2, through a
  recording proxy. Every record ends as its exact Person, no dead letters;
  the records whose first answer was invalid (llmsim's own count) are exactly
  those with extractd.attempts == 2, and there are some of each. On the wire,
  each such record's second request carries the rejected answer as the
  assistant's message and a user message listing the error at /age; its
  token headers are the sums of both calls' usage.
- "always": invalid=1.0, llm.max_reasks = 1. llmsim never gives the invalid
  fault to a re-ask, so every record is recovered by exactly one re-ask:
  attempts == 2 everywhere, 2N requests.
- "never": invalid=1.0, llm.max_reasks = 0. No re-ask, so every record is a
  validation dead letter after one call, its detail naming /age and its
  extractd.error.answer the invalid answer llmsim gave (age as a word).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
from harness import check, expected_person, log, person_texts  # noqa: E402

N = 40
LANES = ("half", "always", "never")
FAULTS = {"half": 0.5, "always": 1.0, "never": 1.0}
MAX_REASKS = {"half": 2, "always": 1, "never": 0}


def check_outputs(lane, coll, out, dlq, texts, keys, src, by_offset):
    """Every text is its exact Person; returns {index: record}."""
    check(coll.count(dlq) == 0, "%s: dead letters: %r", lane,
          coll.records[dlq][:3])
    check(coll.count(out) == N, "%s: %d outputs, want %d", lane,
          coll.count(out), N)
    got = {}
    for r in coll.records[out]:
        i = extraction.source_index(r, src, by_offset)
        check(i not in got, "%s: input %d has two outputs", lane, i)
        got[i] = r
        want = expected_person(texts[i])
        check(r.json() == want, "%s: %s value %r, want %r for %r", lane,
              r.where(), r.value, want, texts[i])
        check(r.key == keys[i], "%s: %s key %r", lane, r.where(), r.key)
    return got


def body(h):
    texts = person_texts(N, seed=3)
    lanes = extraction.start_kafka_topics(h, list(LANES))
    sims = {lane: h.start_llmsim(latency_ms=5, seed=11 + k,
                                 faults={"invalid": FAULTS[lane]})
            for k, lane in enumerate(LANES)}
    rec = extraction.Recorder(h, sims["half"].base_url)
    urls = {"half": rec.base_url, "always": sims["always"].base_url,
            "never": sims["never"].base_url}

    src = h.topics["input"]
    keys = [("r%d" % i).encode() for i in range(N)]
    placed = h.produce([(k, t, 0) for k, t in zip(keys, texts)])
    by_offset = extraction.index_placed(placed)

    coll = h.collector([t for lane in LANES for t in lanes[lane]])
    procs = []
    for lane in LANES:
        over = extraction.lane_config(lanes, lane)
        over["llm"] = {"base_url": urls[lane],
                       "max_reasks": MAX_REASKS[lane]}
        over["pool"] = {"workers": 4, "max_in_flight": 4}
        d, _ = h.start_extractd(over, group=h.unique("group-" + lane))
        procs.append(d)

    def done(c):
        return all(c.count(lanes[lane][0]) + c.count(lanes[lane][1]) >= N
                   for lane in LANES)
    coll.until(done, "%d records per lane" % N, timeout=90, watch=procs)
    coll.poll(1.0)  # anything extra would show up now
    rec.check_bodies()

    # -- half: some first answers invalid, every record recovered.
    out, dlq = lanes["half"]
    got = check_outputs("half", coll, out, dlq, texts, keys, src, by_offset)
    st = sims["half"].stats()
    # The health check at start drew from the same seeded faults: its
    # answer is invalid when it drew the fault (llmsim's Unknown person
    # with the age as a word).
    checks = [x for x in rec.exchanges()
              if x.text == harness.HEALTH_CHECK_TEXT]
    check(len(checks) == harness.STARTUP_CHECKS, "half: %d health checks",
          len(checks))
    n_invalid = st["faults"]["invalid"] - sum(
        "thirty" in (x.response["choices"][0]["message"]["content"] or "")
        for x in checks)
    reasked = {i for i, r in got.items()
               if r.int_header("extractd.attempts") == 2}
    for i, r in got.items():
        check(r.int_header("extractd.attempts") in (1, 2),
              "half: %s attempts %r, want 1 or 2", r.where(),
              r.header("extractd.attempts"))
    check(0 < n_invalid < N, "half: llmsim gave %d invalid answers of %d: "
          "the seeded rate should give some of each", n_invalid, N)
    check(len(reasked) == n_invalid,
          "half: %d records have attempts 2, llmsim gave %d invalid answers",
          len(reasked), n_invalid)
    check(st["requests"] == N + n_invalid + harness.STARTUP_CHECKS,
          "half: llmsim saw %d requests, want %d + %d + %d", st["requests"],
          N, n_invalid, harness.STARTUP_CHECKS)
    calls = rec.by_text()
    for i, r in got.items():
        xs = calls.get(texts[i], [])
        want_calls = 2 if i in reasked else 1
        check(len(xs) == want_calls, "half: %d calls for %r, want %d",
              len(xs), texts[i], want_calls)
        p = sum(x.usage[0] for x in xs)
        c = sum(x.usage[1] for x in xs)
        check(r.int_header("extractd.tokens.prompt") == p and
              r.int_header("extractd.tokens.completion") == c,
              "half: %s tokens %s/%s, want the sums %d/%d over %d calls",
              r.where(), r.header("extractd.tokens.prompt"),
              r.header("extractd.tokens.completion"), p, c, len(xs))
        if i not in reasked:
            continue
        first, second = xs
        msgs = second.messages
        check(len(msgs) == 4 and msgs[:2] == first.messages,
              "half: the re-ask for %r does not extend the first request: "
              "%r", texts[i], msgs)
        answer = first.response["choices"][0]["message"]["content"]
        check(msgs[2] == {"role": "assistant", "content": answer},
              "half: the re-ask's assistant message %r is not the rejected "
              "answer %r", msgs[2], answer)
        bad = json.loads(answer)
        check(bad.get("age") == "thirty", "half: llmsim's invalid answer "
              "%r is not the expected age-as-a-word", answer)
        u = msgs[3]
        check(u.get("role") == "user" and "/age" in u.get("content", ""),
              "half: the re-ask's user message does not list the error at "
              "/age: %r", u)
    log("half: %d of %d records re-asked once and recovered, wire and "
        "tokens checked", len(reasked), N)

    # -- always: every first answer invalid, every record one re-ask.
    out, dlq = lanes["always"]
    got = check_outputs("always", coll, out, dlq, texts, keys, src,
                        by_offset)
    for r in got.values():
        check(r.int_header("extractd.attempts") == 2,
              "always: %s attempts %r, want 2", r.where(),
              r.header("extractd.attempts"))
    st = sims["always"].stats()
    want = 2 * N + harness.STARTUP_CHECKS
    check(st["requests"] == want and
          st["faults"]["invalid"] == N + harness.STARTUP_CHECKS,
          "always: llmsim saw %d requests (%d invalid), want %d (%d, the "
          "health check's included)", st["requests"],
          st["faults"]["invalid"], want, N + harness.STARTUP_CHECKS)
    log("always: all %d records recovered by one re-ask", N)

    # -- never: no re-ask allowed, every record a validation dead letter.
    out, dlq = lanes["never"]
    check(coll.count(out) == 0, "never: outputs %r", coll.records[out][:3])
    check(coll.count(dlq) == N, "never: %d dead letters, want %d",
          coll.count(dlq), N)
    seen = set()
    for r in coll.records[dlq]:
        i = extraction.source_index(r, src, by_offset)
        check(i not in seen, "never: input %d has two dead letters", i)
        seen.add(i)
        detail = extraction.dead_letter_checks(r, texts[i], keys[i],
                                           "validation", 1)
        check("/age" in detail, "never: detail %r does not name /age",
              detail)
        want = dict(expected_person(texts[i]), age="thirty")
        check(extraction.answer_json(r) == want,
              "never: extractd.error.answer %r, want %r",
              r.header("extractd.error.answer"), want)
    st = sims["never"].stats()
    check(st["requests"] == N + harness.STARTUP_CHECKS,
          "never: llmsim saw %d requests, want %d and the health check",
          st["requests"], N)
    log("never: all %d records are validation dead letters after 1 call", N)

    for d in procs:
        rc, _ = d.terminate(60)
        check(rc == 0, "extractd exit status %d after SIGTERM", rc)


if __name__ == "__main__":
    harness.run(body)
