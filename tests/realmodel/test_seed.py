"""realmodel.seed: the default configuration on a real server.

llama-cpp-python's server with SmolLM2-135M (llamacpp.py) takes
response_format json_object with a "schema" (its grammar), but answers
json_schema with a 500. extractd in its default configuration (llm.mode
"auto", nothing tuned but the URL and the model's name) finds that at
start: one health check is refused as json_schema, one is answered as
json_object_schema, and the log says so. Then the seed's seven texts come
out as their exact Person records (the occupation as written, or as the
model capitalizes it), each in one call: no dead letter, none of an LLM
kind, no re-ask. Every token header equals the usage the server reported
(read through a recording proxy), extractd.model is the configured model,
and SIGTERM commits the end of the input.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
import llamacpp  # noqa: E402
from harness import SEED_TEXTS, check, expected_person, log  # noqa: E402


def same_person(got, want):
    """Equal, but for the case of the occupation (SmolLM2 writes "DevOps
    Engineer" for "DevOps engineer")."""
    return (isinstance(got, dict) and set(got) == set(want) and
            got["name"] == want["name"] and got["age"] == want["age"] and
            isinstance(got["occupation"], str) and
            got["occupation"].lower() == want["occupation"].lower())


def body(h):
    h.start_kafka(partitions=1)
    h.llm = llamacpp.LlamaServer(h)
    rec = extraction.Recorder(h, h.llm.base_url)
    keys = [("s%d" % i).encode() for i in range(len(SEED_TEXTS))]
    placed = h.produce([(k, t, 0) for k, t in zip(keys, SEED_TEXTS)])
    by_offset = extraction.index_placed(placed)
    coll = h.collector()
    # The defaults, but where the server is and what its model is called
    # (the harness's test settings for Kafka and timeouts stay).
    d, group = h.start_extractd({"llm": {"base_url": rec.base_url,
                                         "model": llamacpp.ALIAS,
                                         "mode": "auto"}})
    out, dlq = h.topics["output"], h.topics["dlq"]
    n = len(SEED_TEXTS)
    coll.until(lambda c: c.count() >= n, "%d records" % n, watch=[d])
    coll.poll(1.0)

    check(coll.count(dlq) == 0, "dead letters: %r",
          [(r.header("extractd.error"), r.header("extractd.error.detail"),
            r.header("extractd.error.answer")) for r in coll.records[dlq]])
    check(coll.count(out) == n, "%d outputs, want %d", coll.count(out), n)
    calls = rec.by_text()
    for r in coll.records[out]:
        i = extraction.source_index(r, h.topics["input"], by_offset)
        want = expected_person(SEED_TEXTS[i])
        check(same_person(r.json(), want), "%s: %r, want %r for %r",
              r.where(), r.value, want, SEED_TEXTS[i])
        check(r.key == keys[i], "%s: key %r", r.where(), r.key)
        check(r.int_header("extractd.attempts") == 1,
              "%s: attempts %r, want 1", r.where(),
              r.header("extractd.attempts"))
        check(r.header("extractd.model") == llamacpp.ALIAS,
              "%s: extractd.model %r", r.where(), r.header("extractd.model"))
        xs = calls.get(SEED_TEXTS[i], [])
        check(len(xs) == 1, "%d calls for %r", len(xs), SEED_TEXTS[i])
        p, c = xs[0].usage
        check(p > 0 and c > 0 and
              r.int_header("extractd.tokens.prompt") == p and
              r.int_header("extractd.tokens.completion") == c,
              "%s: tokens %s/%s, the server reported %d/%d", r.where(),
              r.header("extractd.tokens.prompt"),
              r.header("extractd.tokens.completion"), p, c)
        rf = xs[0].request.get("response_format") or {}
        check(rf.get("type") == "json_object" and "schema" in rf,
              "%s: sent as %r, want json_object with the schema", r.where(),
              rf.get("type"))
    log("%d exact records, one call each, tokens as the server counted",
        n)

    checks = [x for x in rec.exchanges()
              if x.text == harness.HEALTH_CHECK_TEXT]
    check([x.status for x in checks] == [500, 200],
          "health checks answered %r, want a 500 (json_schema) then a 200",
          [x.status for x in checks])
    lines = [json.loads(x) for x in d.proc.log_text().splitlines()
             if x.startswith("{") and "refuses the request formats" in x]
    check(len(lines) == 1 and lines[0].get("mode") == "json_object_schema"
          and "json_schema: HTTP 500" in lines[0].get("refused", ""),
          "want one log line naming json_object_schema and the 500 for "
          "json_schema, got %r", lines)
    log("log: %s", lines[0])
    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
