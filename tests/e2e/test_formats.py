"""e2e.formats: the request format is found, not assumed.

Four extractd instances read the seed's seven texts, each in its own lane
(group, output and dead-letter topics) on its own llmsim, which refuses
some request formats as servers do (llmsim --refuse-mode):

- "fallback": llm.mode = "auto" (the default); llmsim answers json_schema
  with a 500, as llama-cpp-python does. The health check at start finds
  json_object_schema: the seven come out exact, each in one call, with
  extractd.model the configured model and extractd.model.served the name
  the server answers with (llmsim --served-model); llmsim
  saw exactly one 500 (the format refused once, never retried as a
  transient error) and no record was sent as json_schema; the log says
  which format is in use and what was refused; /metrics shows
  extractd_llm_mode{mode="json_object_schema"} 1.
- "to_tools": auto, llmsim answers json_schema and json_object_schema with
  a 400: tools is used, the seven come out.
- "explicit": llm.mode = "json_schema" on a server that refuses it: the
  mode is kept, never changed behind the user's back: no record is sent in
  any other format, none comes out, none is dead-lettered; the API is
  paused, /readyz is 503 with a reason that names llm.mode and says to set
  "auto", and the log has the error line.
- "broken": auto, llmsim answers every format with a 500: not a format
  problem, so the pause says the API fails every request (not that a
  format is refused), and nothing is dead-lettered.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import SEED_TEXTS, check, expected_person, log  # noqa: E402

ALL = "json_schema,json_object_schema,tools,json_object,md_json"
LANES = {
    "fallback": ("auto", ["json_schema=500"]),
    "to_tools": ("auto", ["json_schema=400", "json_object_schema=400"]),
    "explicit": ("json_schema", ["json_schema=500"]),
    "broken": ("auto", ["%s=500" % m for m in ALL.split(",")]),
}
WORKING = ("fallback", "to_tools")
SERVED = "llmsim-served-7b"  # what the servers say answered
PAUSED = ("explicit", "broken")


def log_lines(d):
    return [json.loads(x) for x in d.log_text().splitlines()
            if x.startswith("{")]


def body(h):
    lanes = extraction.start_kafka_topics(h, list(LANES))
    src = h.topics["input"]
    keys = [("f%d" % i).encode() for i in range(len(SEED_TEXTS))]
    placed = h.produce([(k, t, 0) for k, t in zip(keys, SEED_TEXTS)])
    by_offset = extraction.index_placed(placed)

    sims, ds = {}, {}
    for lane, (mode, refuse) in LANES.items():
        sims[lane] = h.start_llmsim(
            latency_ms=5, extra=["--refuse-mode", ",".join(refuse),
                                 "--served-model", SERVED])
        over = extraction.lane_config(lanes, lane)
        over["kafka"]["group"] = h.unique("group-" + lane)
        over["llm"] = {"base_url": sims[lane].base_url, "mode": mode}
        over["pool"] = {"workers": 4, "max_in_flight": 4}
        over["retry"] = {"max_attempts": 3, "base_delay_ms": 20,
                         "max_delay_ms": 200}
        ds[lane] = opshelp.start_extractd(h, over, tag=lane)

    coll = h.collector([t for lane in LANES for t in lanes[lane]])
    n = len(SEED_TEXTS)
    coll.until(lambda c: all(c.count(lanes[x][0]) >= n for x in WORKING),
               "%d outputs in each working lane" % n, timeout=60,
               watch=list(ds.values()))

    # The refused lanes pause, and say why.
    why = {}
    for lane in PAUSED:
        why[lane] = ds[lane].wait_probe("/readyz", 503,
                                        contains="LLM API paused",
                                        timeout=30)
    check('llm.mode "json_schema"' in why["explicit"] and
          '"auto"' in why["explicit"] and "HTTP 500" in why["explicit"],
          "explicit: /readyz does not say the server refuses llm.mode "
          "json_schema and to set auto: %r", why["explicit"])
    check("fails every request" in why["broken"] and
          "llm.mode" not in why["broken"],
          "broken: /readyz %r should say the API fails, not blame a format",
          why["broken"])
    # Held a while: nothing comes out of the paused lanes, nothing is
    # dead-lettered anywhere.
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        coll.poll(0.3)
    for lane in LANES:
        out, dlq = lanes[lane]
        check(coll.count(dlq) == 0, "%s: dead letters %r", lane,
              [(r.source(), r.header("extractd.error.detail"))
               for r in coll.records[dlq]][:3])
    for lane in PAUSED:
        check(coll.count(lanes[lane][0]) == 0, "%s: outputs while paused",
              lane)
        errors = [x for x in log_lines(ds[lane])
                  if x.get("level") == "error" and "paused" in
                  x.get("msg", "")]
        check(len(errors) == 1, "%s: want one error line for the pause, "
              "got %r", lane, errors)

    # The working lanes: exact values, one call each, the right format.
    want_mode = {"fallback": "json_object_schema", "to_tools": "tools"}
    for lane in WORKING:
        out, _ = lanes[lane]
        check(coll.count(out) == n, "%s: %d outputs, want %d", lane,
              coll.count(out), n)
        for r in coll.records[out]:
            i = extraction.source_index(r, src, by_offset)
            check(r.json() == expected_person(SEED_TEXTS[i]),
                  "%s: %s value %r", lane, r.where(), r.value)
            check(r.int_header("extractd.attempts") == 1,
                  "%s: %s attempts %r, want 1", lane, r.where(),
                  r.header("extractd.attempts"))
            check(r.header("extractd.model") == "gpt-4o-mini" and
                  r.header("extractd.model.served") == SERVED,
                  "%s: %s extractd.model %r, .served %r: want the "
                  "configured model and the server's", lane, r.where(),
                  r.header("extractd.model"),
                  r.header("extractd.model.served"))
        st = sims[lane].stats()
        mode = want_mode[lane]
        check(st["by_mode"][mode] == n + harness.STARTUP_CHECKS,
              "%s: llmsim saw %d %s requests, want %d and the health "
              "check: %r", lane, st["by_mode"][mode], mode, n, st)
        refused = [m for m in ("json_schema", "json_object_schema")
                   if m != mode and st["by_mode"][m]]
        for m in refused:
            check(st["by_mode"][m] == 1, "%s: %d %s requests: a refused "
                  "format is tried once, never retried: %r", lane,
                  st["by_mode"][m], m, st)
        lines = [x for x in log_lines(ds[lane])
                 if x.get("msg", "").startswith("the LLM server refuses")]
        check(len(lines) == 1 and lines[0].get("mode") == mode and
              lines[0].get("configured") == "auto" and
              "json_schema: HTTP" in lines[0].get("refused", ""),
              "%s: want one line naming %s and what was refused, got %r",
              lane, mode, lines)
        m = opshelp.parse_metrics(ds[lane].metrics())
        check(m.get('extractd_llm_mode{mode="%s"}' % mode) == 1 and
              m.get('extractd_llm_mode{mode="json_schema"}') == 0,
              "%s: extractd_llm_mode %r", lane,
              {k: v for k, v in m.items() if "llm_mode" in k})
        log("%s: %s in use, %d exact outputs, refused formats tried once",
            lane, mode, n)
    st = sims["fallback"].stats()
    check(st["by_status"].get("500") == 1, "fallback: llmsim answered %r "
          "500s, want 1 (the health check's json_schema)",
          st["by_status"].get("500"))

    # The explicit mode is kept: never a request in another format but
    # md_json's control check.
    st = sims["explicit"].stats()
    others = {k: v for k, v in st["by_mode"].items()
              if v and k not in ("json_schema", "md_json")}
    check(not others, "explicit: requests in other formats %r", others)
    check(st["by_mode"]["md_json"] >= 1 and
          st["by_mode"]["md_json"] <= st["by_mode"]["json_schema"],
          "explicit: md_json control checks %r", st["by_mode"])
    log("explicit: paused with %r", why["explicit"].strip())

    for lane in LANES:
        rc = ds[lane].terminate()
        check(rc == 0, "%s: extractd exit status %d after SIGTERM", lane, rc)


if __name__ == "__main__":
    harness.run(body)
