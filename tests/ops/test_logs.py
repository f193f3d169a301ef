"""ops.logs: stderr is one JSON object a line, with a progress line.

extractd runs at log.level = debug (every kind of line it writes) with
librdkafka's own debug output on, works through some records including
dead letters, lives past one progress period (10 s), and stops. Every line
of its stderr must parse as a JSON object with ts (ISO 8601 UTC, ms),
level and msg. A "progress" line at info level carries records_per_s,
inflight, lag, records and dead_letters, and its counts add up. With
log.format = text the lines are for people: not JSON, timestamp first.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, harness, log  # noqa: E402

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"debug", "info", "warn", "error"}


def body(h):
    h.start_kafka(partitions=2)
    h.start_llmsim(latency_ms=20)
    texts = harness.SEED_TEXTS + ["no person in this one"]
    h.produce([(None, t, None) for t in texts])
    coll = h.collector()
    d = opshelp.start_extractd(h, {"log": {"level": "debug"}},
                               sets=["kafka.properties.debug=cgrp,topic"])
    coll.until(lambda c: c.count() == len(texts), "every record out",
               watch=[d])
    # One progress period (10 s) after the start, plus slack.
    end = time.monotonic() + 20
    while not any(l.get("msg") == "progress"
                  for l in opshelp._lines(d.proc.logpath)):
        d.check_running()
        check(time.monotonic() < end, "no progress line in 20 s")
        time.sleep(0.2)
    check(d.terminate() == 0, "extractd did not exit 0")

    lines = opshelp.json_lines(d.log_text())
    levels = {}
    for i, l in enumerate(lines, 1):
        check(isinstance(l.get("ts"), str) and TS.match(l["ts"]),
              "line %d: ts %r", i, l.get("ts"))
        check(l.get("level") in LEVELS, "line %d: level %r", i,
              l.get("level"))
        check(isinstance(l.get("msg"), str) and l["msg"],
              "line %d: msg %r", i, l.get("msg"))
        levels[l["level"]] = levels.get(l["level"], 0) + 1
    msgs = {l["msg"] for l in lines}
    log("%d JSON lines, levels %s", len(lines), levels)
    check(levels.get("debug", 0) > 0, "no debug lines at log.level=debug")
    check("librdkafka" in msgs, "no librdkafka lines with its debug on")
    for m in ("started", "record delivered", "stopping", "stopped"):
        check(m in msgs, "no %r line", m)

    prog = [l for l in lines if l["msg"] == "progress"]
    p = prog[-1]
    log("progress: %s", p)
    check(p["level"] == "info", "progress at level %r", p["level"])
    for k in ("records_per_s", "inflight", "lag", "records",
              "dead_letters"):
        check(k in p, "progress line lacks %r: %s", k, p)
    check(p["records"] == len(texts) and p["dead_letters"] == 1,
          "progress counts %s, want %d records, 1 dead letter", p,
          len(texts))
    check(p["inflight"] == 0, "progress inflight %s", p["inflight"])
    check(p["lag"] is None or p["lag"] >= 0, "progress lag %r", p["lag"])
    check(isinstance(p["records_per_s"], (int, float)) and
          p["records_per_s"] >= 0, "records_per_s %r", p["records_per_s"])

    # Text format: for a terminal.
    t = opshelp.start_extractd(h, {"log": {"format": "text"}}, tag="text")
    check(t.terminate() == 0, "extractd (text logs) did not exit 0")
    text_lines = t.log_text().splitlines()[1:]  # [0]: the harness's "$ "
    check(text_lines, "no log lines in text format")
    for line in text_lines:
        check(not line.startswith("{"), "text format wrote JSON: %r", line)
        check(re.match(r"^\d{4}-\d\d-\d\dT\S+Z (debug|info |warn |error) ",
                       line), "text line %r", line)
    log("text format: %d lines, e.g. %r", len(text_lines), text_lines[0])


if __name__ == "__main__":
    harness.run(body)
