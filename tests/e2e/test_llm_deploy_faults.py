"""e2e.llm_deploy_faults: a fault of the deployment pauses extractd with a
reason an operator can act on; it never empties the topic into dead
letters.

One input topic of 12 texts; one extractd per lane, each with its own
group and output/dead-letter topics, each pointed at a deployment that
every request fails on:
  tls      HTTPS with a self-signed certificate, no llm.ca_file
  no_v1    llm.base_url with the wrong path (/v2: every call 404; llmsim
           also serves /chat/completions, as llama.cpp does)
  refused  a server that answers every request 400 (a request format it
           does not take)
  dns      a host name that does not resolve
For each: the pause is logged once, at error level, with its fault and
the setting to look at; /readyz is 503 and says so; the metrics show the
fault; and after the pause, while the API is probed, no output and no
dead letter appears (the retry budget is small: without the pause every
text would be dead-lettered within a second). SIGTERM then exits 0 at
once. Finally the tls lane is run again with llm.ca_file set to the
certificate: every text comes out, proving the TLS set-up itself works.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log  # noqa: E402

LANES = ("tls", "no_v1", "refused", "dns", "tls_fixed")
QUIET = 2.0  # seconds of probing watched after the pause line

# lane: (fault label, words the reason must hold)
WANT = {
    "tls": ("tls", ["TLS", "llm.ca_file"]),
    "no_v1": ("not_found", ["HTTP 404", "llm.base_url", "/v1"]),
    "refused": ("refused", ["HTTP 400", "refuses every request",
                            "llm.mode"]),
    "dns": ("dns", ["cannot resolve", "llm.base_url"]),
}


def self_signed(h):
    """A certificate for 127.0.0.1 and its key, made with openssl."""
    cert = os.path.join(h.dir, "cert.pem")
    key = os.path.join(h.dir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def pause_lines(d):
    return [x for x in opshelp.json_lines(d.log_text())
            if "paused" in x.get("msg", "")]


def lane(h, name, lane_topics, base_url, coll, extra=None):
    fault, words = WANT[name]
    over = extraction.lane_config(lane_topics, name)
    over["llm"] = {"base_url": base_url, "timeout_ms": 3000,
                   "connect_timeout_ms": 1000}
    over["retry"] = {"max_attempts": 3, "base_delay_ms": 20,
                     "max_delay_ms": 300}
    over["pool"] = {"workers": 4, "max_in_flight": 4}
    harness._merge(over, extra or {})
    d = opshelp.start_extractd(h, over, tag=name)
    end = time.monotonic() + harness.DEADLINE
    while not pause_lines(d):
        d.check_running()
        check(time.monotonic() < end, "%s: no pause line in the log", name)
        time.sleep(0.1)
    lines = pause_lines(d)
    log("%s: %s", name, lines[0].get("reason"))
    check(lines[0]["level"] == "error", "%s: pause logged at %s", name,
          lines[0]["level"])
    check(lines[0].get("fault") == fault, "%s: fault %r, want %r", name,
          lines[0].get("fault"), fault)
    for w in words:
        check(w in lines[0].get("reason", ""), "%s: the reason %r does not "
              "say %r", name, lines[0].get("reason"), w)
    body = d.wait_probe("/readyz", 503, contains="LLM API paused",
                        timeout=30)
    check(words[0] in body, "%s: /readyz %r does not say %r", name, body,
          words[0])
    coll.poll(QUIET)
    out, dlq = lane_topics[name]
    check(coll.count(out) == 0 and coll.count(dlq) == 0,
          "%s: %d outputs and %d dead letters while the deployment fails: "
          "%r", name, coll.count(out), coll.count(dlq),
          [r.header("extractd.error.detail") for r in coll.records[dlq]][:2])
    check(len(pause_lines(d)) == 1, "%s: %d pause lines, want one", name,
          len(pause_lines(d)))
    m = opshelp.parse_metrics(d.metrics())
    key = 'extractd_llm_paused{reason="%s"}' % fault
    check(m.get(key) == 1, "%s: %s is %r", name, key, m.get(key))
    t = time.monotonic()
    rc = d.terminate(30)
    log("%s: exit %d, %.2fs after SIGTERM", name, rc, time.monotonic() - t)
    check(rc == 0, "%s: exit status %d after SIGTERM", name, rc)


def body(h):
    lane_topics = extraction.start_kafka_topics(h, LANES)
    sim = h.start_llmsim(latency_ms=5)
    refusing = harness.Llmsim(h, latency_ms=5, faults={"400": 1.0})
    texts = list(harness.SEED_TEXTS) + \
        harness.person_texts(12 - len(harness.SEED_TEXTS), seed=3)
    h.produce([(None, t, 0) for t in texts])
    coll = h.collector([t for pair in lane_topics.values() for t in pair])

    cert, key = self_signed(h)
    tls = extraction.Recorder(h, sim.base_url, tls=(cert, key))
    lane(h, "tls", lane_topics, tls.base_url, coll)
    lane(h, "no_v1", lane_topics, sim.base + "/v2", coll)
    lane(h, "refused", lane_topics, refusing.base_url, coll)
    lane(h, "dns", lane_topics, "http://extractd-test.invalid:9/v1", coll)

    # The same TLS endpoint with its certificate as the CA: it works.
    over = extraction.lane_config(lane_topics, "tls_fixed")
    over["llm"] = {"base_url": tls.base_url, "ca_file": cert}
    d = opshelp.start_extractd(h, over, tag="tls_fixed")
    out, dlq = lane_topics["tls_fixed"]
    coll.until(lambda c: c.count(out) + c.count(dlq) >= len(texts),
               "%d records through TLS" % len(texts), watch=[d])
    check(coll.count(dlq) == 0, "dead letters through TLS: %r",
          [r.header("extractd.error.detail") for r in coll.records[dlq]])
    check(d.terminate(30) == 0, "tls_fixed: exit status not 0")
    check(not pause_lines(d), "tls_fixed paused: %r", pause_lines(d))


if __name__ == "__main__":
    harness.run(body)
