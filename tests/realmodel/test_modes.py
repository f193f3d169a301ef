"""realmodel.modes: each llm.mode on a real server works or is refused at
start with a clear message.

One llama-cpp-python server with SmolLM2-135M (llamacpp.py); five extractd
instances, one per explicit mode, each in its own lane (group, output and
dead-letter topics), read the seed's seven texts:

- json_schema, which this server answers with a 500: refused at start.
  The mode is kept, not changed: the API is paused, /readyz is 503 with a
  reason naming llm.mode "json_schema" and saying to set "auto", no record
  comes out and none is dead-lettered.
- json_object_schema, tools, json_object, md_json: the log says the server
  takes the mode; every text ends as an output or a validation dead
  letter (a small model makes mistakes: the point is extractd's handling),
  never as a dead letter of an LLM kind (llm_http, llm_timeout), and at
  least MIN_RIGHT of them are right (docs/llm-servers.md has the
  measurements).
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
import llamacpp  # noqa: E402
import opshelp  # noqa: E402
from harness import SEED_TEXTS, check, expected_person, log  # noqa: E402

WORKING = ("json_object_schema", "tools", "json_object", "md_json")
MODES = ("json_schema",) + WORKING
# The least number of the seven each mode gets right with this model
# (measured at temperature 0: 7, 7, 7 and 4; md_json's misses are prose
# answers the model repeats when re-asked, one a name left empty).
MIN_RIGHT = {"json_object_schema": 7, "tools": 7, "json_object": 6,
             "md_json": 3}


def right(r, text):
    got, want = r.json(), expected_person(text)
    return (isinstance(got, dict) and got.get("name") == want["name"] and
            got.get("age") == want["age"] and
            str(got.get("occupation", "")).lower() ==
            want["occupation"].lower())


def body(h):
    lanes = extraction.start_kafka_topics(h, list(MODES))
    h.llm = llamacpp.LlamaServer(h)
    src = h.topics["input"]
    keys = [("m%d" % i).encode() for i in range(len(SEED_TEXTS))]
    placed = h.produce([(k, t, 0) for k, t in zip(keys, SEED_TEXTS)])
    by_offset = extraction.index_placed(placed)

    ds = {}
    for mode in MODES:
        over = llamacpp.config(extraction.lane_config(lanes, mode))
        over["kafka"]["group"] = h.unique("group-" + mode.replace("_", "-"))
        over["llm"].update({"mode": mode, "max_tokens": 200})
        ds[mode] = opshelp.start_extractd(h, over, tag=mode)
    coll = h.collector([t for m in MODES for t in lanes[m]])
    n = len(SEED_TEXTS)
    coll.until(lambda c: all(c.count(lanes[m][0]) + c.count(lanes[m][1]) >=
                             n for m in WORKING),
               "%d records in each working mode" % n, timeout=240,
               watch=list(ds.values()))

    why = ds["json_schema"].wait_probe("/readyz", 503,
                                       contains="LLM API paused",
                                       timeout=30)
    check('llm.mode "json_schema"' in why and '"auto"' in why,
          "json_schema: /readyz %r does not say the server refuses the "
          "mode and to set auto", why)
    coll.poll(1.0)
    out, dlq = lanes["json_schema"]
    check(coll.count(out) + coll.count(dlq) == 0,
          "json_schema: records came out while refused: %r",
          coll.records[out] + coll.records[dlq])

    table = {}
    for mode in WORKING:
        out, dlq = lanes[mode]
        check(coll.count(out) + coll.count(dlq) == n, "%s: %d records, "
              "want %d", mode, coll.count(out) + coll.count(dlq), n)
        for r in coll.records[dlq]:
            log("%s: dead letter %s: %s; answer %r", mode, r.where(),
                r.header("extractd.error.detail"),
                r.header("extractd.error.answer"))
            check(r.header("extractd.error") == "validation",
                  "%s: a dead letter of kind %r: %r", mode,
                  r.header("extractd.error"),
                  r.header("extractd.error.detail"))
        good = sum(right(r, SEED_TEXTS[extraction.source_index(r, src,
                                                            by_offset)])
                   for r in coll.records[out])
        table[mode] = (good, coll.count(out), coll.count(dlq))
        lines = [json.loads(x) for x in ds[mode].log_text().splitlines()
                 if x.startswith("{") and "takes the request format" in x]
        check(len(lines) == 1 and lines[0].get("mode") == mode,
              "%s: want one line saying the server takes it, got %r", mode,
              lines)
    for mode, (good, outs, dead) in table.items():
        log("%-18s %d of %d right, %d outputs, %d validation dead letters",
            mode, good, n, outs, dead)
    for mode, (good, _, _) in table.items():
        check(good >= MIN_RIGHT[mode], "%s: %d right, want at least %d",
              mode, good, MIN_RIGHT[mode])

    for mode in MODES:
        check(ds[mode].terminate() == 0, "%s: extractd exit status", mode)


if __name__ == "__main__":
    harness.run(body)
