"""ops.readyz: the probes say what is true.

- /readyz is 503 "no partitions assigned" before the group hands out
  partitions and 200 after; /healthz is 200 all along.
- When the LLM API refuses the deployment (llmsim answers every call with
  429 insufficient_quota), the health check at start already finds it:
  /readyz is 503 and says the LLM is paused, with no record needed; a
  record that comes meanwhile waits; when the API answers again (llmsim
  restarted on the same port without the fault), /readyz is 200 and the
  waiting record is delivered.
- With no broker to reach, /readyz says so (librdkafka's all-brokers-down)
  while /healthz stays 200: the process works, it just cannot serve.
- Other paths are 404, other methods 405; a port already taken fails
  start-up with exit status 2 and a message naming http.listen.
"""

import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, harness, log  # noqa: E402


def assignment_and_pause(h):
    h.start_kafka(partitions=2)
    sim = h.start_llmsim(latency_ms=10, faults={"quota": 1.0})
    port = sim.port
    d = opshelp.start_extractd(h, {
        "retry": {"max_attempts": 6, "base_delay_ms": 50,
                  "max_delay_ms": 300},
    })
    # First answer, as soon as it listens: nothing assigned yet (joining
    # a group takes seconds).
    status, body, _ = d.get("/readyz")
    check(status == 503 and "no partitions assigned" in body,
          "/readyz before assignment: %d %r", status, body)
    status, body, _ = d.get("/healthz")
    check(status == 200, "/healthz at start: %d %r", status, body)

    # The API refuses us: the health check at start pauses the LLM, no
    # record needed.
    body = d.wait_probe("/readyz", 503, contains="LLM API paused")
    check("quota" in body, "/readyz does not say why: %r", body)
    status, _, _ = d.get("/healthz")
    check(status == 200, "/healthz while paused: %d", status)
    s = opshelp.parse_metrics(d.metrics())
    check(s.get('extractd_llm_requests_total{status="429"}', 0) >= 1,
          "no 429 counted while paused")
    check(s.get('extractd_llm_pauses_total{reason="quota"}', 0) == 1,
          "the pause is not counted once: %r",
          s.get('extractd_llm_pauses_total{reason="quota"}'))
    coll = h.collector()
    h.produce([(b"k", harness.SEED_TEXTS[0], 0)])
    check(coll.poll(1.0) == 0, "a record came out while the LLM refused")

    # The API works again: same port, no fault.
    sim.proc.stop()
    h.llm = harness.Llmsim(h, latency_ms=10,
                           extra=["--listen", "127.0.0.1:%d" % port])
    check(h.llm.port == port, "llmsim came back on %d, not %d",
          h.llm.port, port)
    d.wait_probe("/readyz", 200)
    coll.until(lambda c: c.count(h.topics["output"]) == 1,
               "the waiting record delivered")

    # Shutdown: not ready any more while it drains.
    check(d.terminate() == 0, "extractd did not exit 0")


def broker_down(h):
    # A port nobody listens on: every connection is refused.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    h.kafka.bootstrap, real = "127.0.0.1:%d" % port, h.kafka.bootstrap
    try:
        d = opshelp.start_extractd(h, tag="nobroker")
    finally:
        h.kafka.bootstrap = real
    d.wait_probe("/readyz", 503, contains="Kafka brokers unreachable",
                 timeout=60)
    status, body, _ = d.get("/healthz")
    check(status == 200, "/healthz with no broker: %d %r", status, body)
    check(d.terminate() == 0, "extractd did not exit 0")


def http_details(h):
    d = opshelp.start_extractd(h, tag="http")
    status, _, _ = d.get("/nope")
    check(status == 404, "/nope answered %d", status)
    status, _, headers = d.get("/metrics", method="POST")
    check(status == 405 and "GET" in headers.get("Allow", ""),
          "POST /metrics answered %d, Allow %r", status,
          headers.get("Allow"))
    status, body, _ = d.get("/healthz", method="HEAD")
    check(status == 200, "HEAD /healthz answered %d", status)

    # Its port is taken now: a second instance must not start.
    taken = d.addr
    d2 = opshelp.start_extractd(h, {"http": {"listen": taken}},
                                tag="taken", http=False)
    rc = d2.proc.wait(30)
    text = d2.log_text()
    check(rc == 2, "with http.listen taken, exit status %s, want 2:\n%s",
          rc, text)
    check("http.listen" in text and "Address already in use" in text,
          "the error does not name http.listen and why:\n%s", text)
    log("taken port: exit 2, %s", [l for l in text.splitlines()
                                   if "http.listen" in l][-1])
    check(d.terminate() == 0, "extractd did not exit 0")


def body(h):
    assignment_and_pause(h)
    broker_down(h)
    http_details(h)


if __name__ == "__main__":
    harness.run(body)
