"""ops.secrets: the API key and the SASL password never reach the log.

Two instances run at log.level = debug with librdkafka's debug output on
(kafka.properties.debug = all, which dumps its configuration), with a
known API key in the environment and a known sasl.password (read from
the environment through "${env:NAME}"):

- one speaks SASL/PLAIN to kafka-embedded (connecting may fail: the point
  is what it logs). Its client.id embeds the password, so librdkafka puts
  the password into every line it writes (the "client" field): our log
  must have redacted each of them, which proves the redaction works on
  text we do not format ourselves;
- one works normally (plaintext) and extracts records, so every LLM call
  carries the key in its Authorization header.

The whole stderr of both must contain neither secret (nor the Authorization
header's "Bearer" prefix), in raw or JSON-escaped form, and the first must
show "(redacted)" where the password was.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, harness, log  # noqa: E402

API_KEY = "sk-ops-Secret-Key-7c1e5a9b3d"
PASSWORD = "Pw-ops-Hunter2-8f2d"


def forms(secret):
    """The secret as it could appear: raw, JSON-escaped, URL-ish."""
    return {secret, secret.replace("-", "\\u002d"), secret.lower()}


def scan(name, text):
    for secret in (API_KEY, PASSWORD):
        for f in forms(secret):
            check(f not in text, "%s: the log holds %r", name, f)
    # Fragments long enough to identify a secret.
    for secret in (API_KEY, PASSWORD):
        for i in range(0, len(secret) - 11):
            check(secret[i:i + 12] not in text, "%s: the log holds part "
                  "of a secret: %r", name, secret[i:i + 12])
    check("Bearer" not in text, "%s: an Authorization header is logged",
          name)


def body(h):
    h.start_kafka(partitions=1)
    h.start_llmsim(latency_ms=10)
    env = dict(os.environ)
    env["OPENAI_API_KEY"] = API_KEY
    # -s refuses a literal secret: the password comes from the
    # environment, as docs/configuration.md shows.
    env["EXTRACTD_OPS_SASL_PASSWORD"] = PASSWORD
    debug = {"log": {"level": "debug"}}
    common = ["kafka.properties.debug=all",
              "kafka.properties.sasl.password="
              "${env:EXTRACTD_OPS_SASL_PASSWORD}",
              "kafka.properties.sasl.username=extractd",
              "kafka.properties.sasl.mechanism=PLAIN"]

    sasl = opshelp.start_extractd(
        h, debug, env=env, tag="sasl",
        sets=common + ["kafka.properties.security.protocol=sasl_plaintext",
                       "kafka.properties.client.id=ops-" + PASSWORD])
    time.sleep(6)  # connect, authenticate (or fail to), log it all
    sasl.check_running()
    check(sasl.terminate() == 0, "SASL instance did not exit 0")

    h.produce([(None, t, None) for t in harness.SEED_TEXTS])
    coll = h.collector()
    plain = opshelp.start_extractd(h, debug, env=env, tag="plain",
                                   sets=common)
    coll.until(lambda c: c.count(h.topics["output"]) == 7,
               "7 outputs (LLM calls made with the key)", watch=[plain])
    check(plain.terminate() == 0, "plain instance did not exit 0")
    calls = h.llm.stats()["requests"]
    check(calls >= 7, "llmsim saw %d calls", calls)

    for name, d in (("sasl", sasl), ("plain", plain)):
        # The first line is the harness's note of the command line (which
        # holds the -s arguments), not extractd's output.
        first, _, text = d.log_text().partition("\n")
        check(first.startswith("$ "), "log starts with %r", first)
        lines = opshelp.json_lines(text)
        check(len(lines) > 100, "%s: only %d log lines at debug", name,
              len(lines))
        scan(name, text)
        log("%s: %d lines, no secret", name, len(lines))

    # The password was in every librdkafka line of the SASL instance (its
    # client.id): each must have been redacted, not dropped.
    lines = opshelp.json_lines(sasl.log_text())
    rdk = [l for l in lines if l["msg"] == "librdkafka"]
    check(rdk, "no librdkafka lines with debug=all")
    bad = [l for l in rdk if "(redacted)" not in l.get("client", "")]
    check(not bad, "librdkafka lines without the redacted client.id: %s",
          bad[:3])
    conf = [l for l in rdk if "sasl.password" in l.get("text", "")]
    log("sasl: %d librdkafka lines, all redacted; its config dump says %s",
        len(rdk), [l["text"] for l in conf][:1])


if __name__ == "__main__":
    harness.run(body)
