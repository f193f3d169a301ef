"""ops.logs: stderr is one JSON object a line, with a progress line.

extractd runs at log.level = debug (every kind of line it writes) with
librdkafka's own debug output on, works through some records including
dead letters, lives past one progress period (10 s), and stops. Every line
of its stderr must parse as a JSON object with ts (ISO 8601 UTC, ms),
level and msg. A "progress" line at info level carries records_per_s,
inflight, lag, records and dead_letters, and its counts add up. With
log.format = text the lines are for people: not JSON, timestamp first.

The "started" line names where extractd reads, writes and asks: brokers,
group, the three topics, base_url (its userinfo redacted), model and mode.
A broker that refuses connections is logged once per failure: librdkafka
reports it both as a log line and to the error callback, and only the
latter is written.
"""

import os
import re
import socket
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

    started = [l for l in lines if l["msg"] == "started"]
    check(len(started) == 1, "%d started lines", len(started))
    want = {"brokers": h.kafka.bootstrap, "group": d.group,
            "input_topic": h.topics["input"],
            "output_topic": h.topics["output"],
            "dlq_topic": h.topics["dlq"], "base_url": h.llm.base_url,
            "model": "gpt-4o-mini", "mode": "json_schema"}
    for k, v in want.items():
        check(started[0].get(k) == v, "started line: %s = %r, want %r",
              k, started[0].get(k), v)
    log("started line: %s", started[0])

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

    broker_failure(h)


def broker_failure(h):
    """A broker that refuses: each failure one line; userinfo redacted."""
    # Bound, never listening: every connection to it is refused.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    broker = "127.0.0.1:%d" % port
    password = "pw-%s" % h.unique("userinfo")
    url = h.llm.base_url.replace("http://", "http://user:%s@" % password, 1)
    try:
        d = opshelp.start_extractd(h, {"kafka": {"brokers": broker},
                                       "llm": {"base_url": url}},
                                   tag="refused")
        end = time.monotonic() + 30
        while True:
            msgs = {l.get("msg") for l in opshelp._lines(d.proc.logpath)
                    if "Connect to" in str(l.get("error"))}
            if {"consumer error", "producer error"} <= msgs:
                break
            d.check_running()
            check(time.monotonic() < end, "no connection failure from "
                  "both clients in 30 s:\n%s", d.proc.tail())
            time.sleep(0.1)
        check(d.terminate() == 0, "extractd (refused broker) did not exit 0")
    finally:
        sock.close()
    text = d.log_text()
    lines = opshelp.json_lines(text)
    check(password not in text, "the base_url password is in the log")
    started = [l for l in lines if l["msg"] == "started"]
    check(len(started) == 1, "%d started lines", len(started))
    check(started[0].get("brokers") == broker, "started brokers %r",
          started[0].get("brokers"))
    check(started[0].get("base_url") ==
          h.llm.base_url.replace("http://", "http://(redacted)@", 1),
          "started base_url %r", started[0].get("base_url"))
    errors = [l["error"] for l in lines
              if l["msg"] in ("consumer error", "producer error")]
    fails = [l for l in lines if l["msg"] == "librdkafka" and
             l.get("facility") == "FAIL" and l["level"] != "debug"]
    twice = [l for l in lines if l["msg"] == "librdkafka" and
             any(e in l.get("text", "") for e in errors)]
    check(not fails and not twice, "a broker failure logged twice: %s",
          (fails + twice)[:3])
    log("refused broker: %d error lines, none twice; base_url %s",
        len(errors), started[0]["base_url"])


if __name__ == "__main__":
    harness.run(body)
