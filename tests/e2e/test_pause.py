"""e2e.pause: a refused deployment (HTTP 401: a wrong API key) pauses
extraction instead of dead-lettering the topic, and it resumes by itself
once the key works.

llmsim checks the key against a file it rereads on every request. With the
wrong key in it, extractd must produce nothing (no output, no dead letter),
say so once in its log, and only probe the API slowly; once the file holds
extractd's key, every record comes out right.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, expected_person, log, person_texts  # noqa: E402

N = 40
PAUSED_FOR = 4.0


def log_lines(d):
    return [json.loads(line) for line in d.proc.log_text().splitlines()
            if line.startswith("{")]


def body(h):
    keyfile = os.path.join(h.dir, "llmsim.key")
    with open(keyfile, "w") as f:
        f.write("sk-someone-else\n")
    h.start_kafka(partitions=2)
    h.start_llmsim(latency_ms=5, extra=["--api-key-file", keyfile])
    texts = person_texts(N, seed=21)
    placed = h.produce([(None, t, i % 2) for i, t in enumerate(texts)])
    text_at = dict(zip(placed, texts))

    coll = h.collector()
    d, group = h.start_extractd({
        "pool": {"workers": 8, "max_in_flight": 8},
        "retry": {"base_delay_ms": 50, "max_delay_ms": 500},
    })
    end = time.monotonic() + harness.DEADLINE
    while h.llm.stats()["by_status"].get("401", 0) < 1:
        d.check_running()
        check(time.monotonic() < end, "no 401 reached extractd")
        time.sleep(0.05)
    coll.poll(PAUSED_FOR)
    check(coll.count() == 0, "records came out with a wrong key: %s",
          coll.summary())
    n401 = h.llm.stats()["by_status"].get("401", 0)
    # One probe per 500 ms at most, after the first wave (one per slot).
    check(n401 <= 8 + 2 * (PAUSED_FOR + 2), "%d 401s in %.0fs: not probing "
          "slowly", n401, PAUSED_FOR)
    paused = [r for r in log_lines(d) if "paused" in r.get("msg", "")]
    check(len(paused) == 1, "want one pause line in the log, got %d",
          len(paused))
    check(paused[0]["level"] == "error", "pause logged at %s",
          paused[0]["level"])
    check(paused[0].get("fault") == "auth" and
          "llm.api_key" in paused[0].get("reason", ""),
          "the pause line does not say the key is refused: %r", paused[0])

    log("writing extractd's key into llmsim's key file")
    with open(keyfile + ".new", "w") as f:
        f.write("sk-test\n")
    os.rename(keyfile + ".new", keyfile)
    coll.until(lambda c: c.count() >= N, "%d records" % N, watch=[d])
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %r",
          coll.records[h.topics["dlq"]])
    for r in coll.records[h.topics["output"]]:
        _, p, off = r.source()
        want = expected_person(text_at[(p, off)])
        check(r.json() == want, "%s: %r, want %r", r.where(), r.value, want)
    check(any("answers again" in r.get("msg", "") for r in log_lines(d)),
          "no resume line in the log")
    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
