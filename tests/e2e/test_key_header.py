"""e2e.key_header: llm.api_key_header sends the key where the server
wants it (Azure OpenAI's "api-key"), and only there.

llmsim takes only the key of its --api-key-file, bare, in the header
"api-key" (--api-key-header). An extractd with llm.api_key_header =
"api-key" extracts the seed's seven texts; one with the default
(Authorization: Bearer) is refused (401): it pauses with the reason that
the key is refused, and dead-letters nothing. Neither logs the key.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import SEED_TEXTS, check, expected_person  # noqa: E402

KEY = "azure-Key-3f9a6c21d07e"


def body(h):
    lanes = extraction.start_kafka_topics(h, ["header", "bearer"])
    keyfile = os.path.join(h.dir, "key")
    with open(keyfile, "w") as f:
        f.write(KEY + "\n")
    sim = h.start_llmsim(latency_ms=5, extra=[
        "--api-key-file", keyfile, "--api-key-header", "api-key"])
    h.produce([(None, t, 0) for t in SEED_TEXTS])
    env = dict(os.environ, EXTRACTD_E2E_AZURE_KEY=KEY)
    ds = {}
    for lane, header in (("header", "api-key"), ("bearer", "")):
        over = extraction.lane_config(lanes, lane)
        over["kafka"]["group"] = h.unique("group-" + lane)
        over["llm"] = {"base_url": sim.base_url,
                       "api_key_env": "EXTRACTD_E2E_AZURE_KEY",
                       "api_key_header": header}
        ds[lane] = opshelp.start_extractd(h, over, env=env, tag=lane)
    coll = h.collector([t for lane in lanes.values() for t in lane])
    out, dlq = lanes["header"]
    n = len(SEED_TEXTS)
    coll.until(lambda c: c.count(out) >= n, "%d outputs" % n,
               watch=list(ds.values()))
    check(sorted(r.value for r in coll.records[out]) ==
          sorted(json.dumps(expected_person(t),
                            separators=(",", ":")).encode()
                 for t in SEED_TEXTS),
          "outputs %r", [r.value for r in coll.records[out]])
    why = ds["bearer"].wait_probe("/readyz", 503, contains="refuses the key",
                                  timeout=30)
    coll.poll(1.0)
    for lane in lanes:
        check(coll.count(lanes[lane][1]) == 0, "%s: dead letters", lane)
    check(coll.count(lanes["bearer"][0]) == 0, "bearer: outputs")
    for lane, d in ds.items():
        check(KEY not in d.log_text(), "%s: the key is in the log", lane)
        check(KEY not in d.metrics(), "%s: the key is in /metrics", lane)
        check(d.terminate() == 0, "%s: exit status", lane)
    harness.log("api-key header: %d outputs; Bearer: paused (%s)", n,
                why.strip())


if __name__ == "__main__":
    harness.run(body)
