"""e2e.secrets_echo: a server that echoes the request's headers leaks no
secret through extractd.

llmsim answers texts holding ECHO-400 with a 400 whose error message
quotes the request's headers verbatim, as some gateways do (its
--answers "echo_headers"); every other text is extracted normally, so
the 400s are the records' own fault and become dead letters `llm_http`.
llm.base_url carries userinfo (http://user:Pa55word-xyz@127.0.0.1:PORT/v1)
and extractd runs at log.level = debug with http.listen on. Two runs
over the same input, in two groups:

- with a distinctive API key: the echo holds "Authorization: Bearer KEY";
- with no key: curl sends the userinfo as "Authorization: Basic ...",
  which the echo holds instead.

In both, the key, the password, "user:password" and its Basic form
(nor any 12-byte piece of the key or of the Basic credentials) appear in
no header or value of any output or dead letter, in no line of
extractd's log and nowhere in /metrics. The dead letters are there, one
per ECHO-400 text, and their detail is useful: "HTTP 400", the echo with
the server's other headers, and "(redacted)" where the credentials were.
"""

import base64
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log  # noqa: E402

API_KEY = "sk-e2e-Echo-Key-5d8c1f0a7b39"
KEY_ENV = "EXTRACTD_E2E_ECHO_KEY"
USER = "user"
PASSWORD = "Pa55word-xyz"
USERINFO = USER + ":" + PASSWORD
BASIC = base64.b64encode(USERINFO.encode()).decode()
MARK = "ECHO-400"
N_GOOD = 45
N_ECHO = 5


def secret_forms():
    """Every secret as it could be written: raw, JSON-escaped (as json-c
    or Python write a "-" or "/"), and, for the long ones, each 12-byte
    piece."""
    out = set()
    for s in (API_KEY, PASSWORD, USERINFO, BASIC):
        out |= {s, s.replace("-", "\\u002d"), s.replace("/", "\\/"),
                json.dumps(s)[1:-1]}
    for s in (API_KEY, BASIC):
        out |= {s[i:i + 12] for i in range(len(s) - 11)}
    return out


FORMS = secret_forms()


def scan(where, text):
    for f in FORMS:
        check(f not in text, "%s holds the secret %r:\n%s", where, f,
              text[:3000])


def texts():
    """N_GOOD Person texts with N_ECHO echo texts spread among them."""
    values = harness.person_texts(N_GOOD, seed=1313)
    for i in range(N_ECHO):
        values.insert(i * (N_GOOD // N_ECHO) + 4,
                      "Echo Person #%d is a 40-year-old %s tester" %
                      (i, MARK))
    return [v.encode() for v in values]


def run_once(h, values, placed, tag, env, overrides, scheme):
    """One extractd over the whole input in its own group; checks the
    records it wrote, its log and /metrics; fails on any leak."""
    out_t, dlq_t = h.topics["output"], h.topics["dlq"]
    # What this run writes: past the end offsets of the runs before.
    start = {t: h.end_offsets(t) for t in (out_t, dlq_t)}
    coll = h.collector()

    def new(c, t):
        return [r for r in c.records[t]
                if r.offset >= start[t].get(r.partition, 0)]

    d = opshelp.start_extractd(h, overrides, env=env, tag=tag)
    coll.until(lambda c: len(new(c, out_t)) >= N_GOOD and
               len(new(c, dlq_t)) >= N_ECHO,
               "%s: %d outputs and %d dead letters" % (tag, N_GOOD, N_ECHO),
               watch=[d])
    coll.poll(1.0)  # a late repeat shows up
    outputs, dead = new(coll, out_t), new(coll, dlq_t)
    sources = sorted(r.source()[1:] for r in outputs + dead)
    check(sources == sorted(placed), "%s: records come from %r, want %r",
          tag, sources, sorted(placed))
    metrics = d.metrics()
    check(d.terminate() == 0, "%s: extractd did not exit 0", tag)

    value_at = dict(zip(placed, values))
    for r in outputs:
        _, p, o = r.source()
        for k, v in r.headers.items():
            scan("%s: output %s header %s" % (tag, r.where(), k),
                 v.decode("utf-8", "replace"))
        scan("%s: output %s value" % (tag, r.where()), r.value.decode())
        want = harness.expected_person(value_at[(p, o)].decode())
        check(r.json() == want, "%s: output %s is %r, want %r", tag,
              r.where(), r.value, want)
    for r in dead:
        _, p, o = r.source()
        where = "%s: dead letter %s" % (tag, r.where())
        for k, v in r.headers.items():
            scan("%s header %s" % (where, k), v.decode("utf-8", "replace"))
        check(MARK in value_at[(p, o)].decode(),
              "%s: a text without %s was dead-lettered: %r", where, MARK,
              value_at[(p, o)])
        check(r.value == value_at[(p, o)], "%s: value %r, want the input",
              where, r.value)
        check(r.header("extractd.error") == "llm_http",
              "%s: extractd.error %r", where, r.header("extractd.error"))
        detail = r.header("extractd.error.detail")
        # Useful: the status, the echo with the server's other headers,
        # and the credentials replaced.
        for want in ("HTTP 400", "Request headers:", "Host: 127.0.0.1:",
                     "Content-Type: application/json",
                     "Authorization: %s (redacted)" % scheme):
            check(want in detail, "%s: detail lacks %r: %r", where, want,
                  detail)
    log("%s: %d outputs, %d dead letters; e.g. %r", tag, len(outputs),
        len(dead), dead[0].header("extractd.error.detail"))

    first, _, text = d.log_text().partition("\n")
    check(first.startswith("$ "), "log starts with %r", first)
    lines = opshelp.json_lines(text)
    check(len(lines) > N_GOOD, "%s: only %d log lines at debug", tag,
          len(lines))
    scan("%s: extractd's log" % tag, text)
    scan("%s: /metrics" % tag, metrics)
    samples = opshelp.parse_metrics(metrics)
    check(any(k.startswith("extractd_") for k in samples),
          "%s: /metrics has no extractd series", tag)
    log("%s: %d log lines, %d metric samples: no secret", tag, len(lines),
        len(samples))


def body(h):
    h.start_kafka(partitions=2)
    answers = os.path.join(h.dir, "echo-answers.jsonl")
    with open(answers, "w") as f:
        f.write(json.dumps({"match": MARK, "status": 400,
                            "echo_headers": True}) + "\n")
    h.start_llmsim(latency_ms=5, jitter_ms=5,
                   extra=["--answers", answers])
    values = texts()
    placed = h.produce([(None, v, i % 2) for i, v in enumerate(values)])
    base_url = "http://%s@127.0.0.1:%d/v1" % (USERINFO, h.llm.port)
    common = {"llm": {"base_url": base_url, "api_key_env": KEY_ENV},
              "log": {"level": "debug"}}

    env = dict(os.environ)
    env[KEY_ENV] = API_KEY
    run_once(h, values, placed, "key", env, common, "Bearer")

    # Again from the start, with no key: the userinfo goes on the wire.
    env = dict(os.environ)
    env.pop(KEY_ENV, None)
    h.llm.reset()
    over = dict(common, kafka={"group": h.unique("nokey")})
    run_once(h, values, placed, "userinfo", env, over, "Basic")
    by_status = h.llm.stats()["by_status"]
    check(by_status.get("400", 0) >= N_ECHO and
          by_status.get("200", 0) >= N_GOOD,
          "llmsim answered %r in the second run", by_status)


if __name__ == "__main__":
    harness.run(body)
