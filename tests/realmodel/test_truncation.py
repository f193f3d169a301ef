"""realmodel.truncation: a cut answer from a real server gets more room.

llama-cpp-python's server with SmolLM2-135M (llamacpp.py), llm.max_tokens
12: every Person answer (about 23 tokens) is cut. In json_object_schema
mode the server says finish_reason "length"; in tools mode it says
"tool_calls" and the cut shows only as JSON that stops mid-way. Two
extractd instances, one per mode, with llm.max_tokens_limit 48, read the
seed's seven texts through a recording proxy. For every record, in both:
the first call asks for 12 tokens and its answer is cut, the second is the
same request (no re-ask: no assistant message is ever sent) with
max_tokens 24, and the record comes out right after those two calls, or,
where 24 tokens are still too few, as a validation dead letter saying it
was cut at 24 tokens; never as any other dead letter.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
import llamacpp  # noqa: E402
from harness import SEED_TEXTS, check, expected_person, log  # noqa: E402

MODES = ("json_object_schema", "tools")
CUT_SAYS = {"json_object_schema": "length", "tools": "tool_calls"}


def body(h):
    lanes = extraction.start_kafka_topics(h, list(MODES))
    h.llm = llamacpp.LlamaServer(h)
    rec = extraction.Recorder(h, h.llm.base_url)
    src = h.topics["input"]
    keys = [("t%d" % i).encode() for i in range(len(SEED_TEXTS))]
    placed = h.produce([(k, t, 0) for k, t in zip(keys, SEED_TEXTS)])
    by_offset = extraction.index_placed(placed)
    procs = []
    for mode in MODES:
        over = llamacpp.config(extraction.lane_config(lanes, mode))
        over["llm"].update({"base_url": rec.base_url, "mode": mode,
                            "model": "m-" + mode.replace("_", "-"),
                            "max_tokens": 12, "max_tokens_limit": 48})
        d, _ = h.start_extractd(over, group=h.unique("g-" + mode[:5]))
        procs.append(d)
    coll = h.collector([t for m in MODES for t in lanes[m]])
    n = len(SEED_TEXTS)
    coll.until(lambda c: all(c.count(lanes[m][0]) + c.count(lanes[m][1]) >=
                             n for m in MODES),
               "%d records per mode" % n, timeout=240, watch=procs)
    coll.poll(1.0)

    for mode in MODES:
        out, dlq = lanes[mode]
        calls = rec.by_text("m-" + mode.replace("_", "-"))
        for r in coll.records[out] + coll.records[dlq]:
            i = extraction.source_index(r, src, by_offset)
            text = SEED_TEXTS[i]
            xs = calls.get(text, [])
            check([x.request.get("max_tokens") for x in xs] == [12, 24],
                  "%s: max_tokens of the calls for %r: %r, want 12 then 24",
                  mode, text, [x.request.get("max_tokens") for x in xs])
            check(xs[1].messages == xs[0].messages, "%s: the second call "
                  "for %r is not the same request", mode, text)
            said = xs[0].response["choices"][0]["finish_reason"]
            check(said == CUT_SAYS[mode], "%s: the server ended the cut "
                  "answer with %r, want %r", mode, said, CUT_SAYS[mode])
            check(r.int_header("extractd.attempts") == 2,
                  "%s: %s attempts %r", mode, r.where(),
                  r.header("extractd.attempts"))
            if r.topic == out:
                got = r.json()
                check(got["name"] == expected_person(text)["name"],
                      "%s: %s %r", mode, r.where(), got)
            else:
                detail = r.header("extractd.error.detail")
                check(r.header("extractd.error") == "validation" and
                      "cut at 24 tokens" in detail,
                      "%s: dead letter %s %r: %r", mode, r.where(),
                      r.header("extractd.error"), detail)
        for x in rec.exchanges("m-" + mode.replace("_", "-")):
            check(all(m.get("role") != "assistant" for m in x.messages),
                  "%s: a re-ask was sent for %r", mode, x.text)
        log("%s: %d out, %d cut again at 24 tokens; every first answer "
            "cut at 12 (finish_reason %r) and asked again with 24", mode,
            coll.count(out), coll.count(dlq), CUT_SAYS[mode])

    for d in procs:
        rc, _ = d.terminate(60)
        check(rc == 0, "extractd exit status %d after SIGTERM", rc)


if __name__ == "__main__":
    harness.run(body)
