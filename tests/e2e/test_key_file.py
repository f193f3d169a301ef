"""e2e.key_file: llm.api_key_file, as a systemd credential or a Kubernetes
Secret is handed over.

llmsim accepts only the key "sk-from-file" (--api-key-file); extractd's
environment holds another one in OPENAI_API_KEY (llm.api_key_env's
default). The config names the key file by a path relative to the config
file's own directory, and the file ends in CRLF. Proves:
  - the file wins over the environment: every record comes out as its
    Person, and llmsim never answered 401;
  - the relative path resolves against the config's directory (extractd
    runs elsewhere), and the trailing line break is not part of the key;
  - a key file that cannot be read, or an empty one, stops start-up with
    exit status 2 and "FILE:LINE: llm.api_key_file: ..." naming the file.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 20
KEY = "sk-from-file"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write(text)


def refused(h, keyfile, why):
    """extractd on keyfile must exit 2 naming the setting and why."""
    d, _ = h.start_extractd({"llm": {"api_key_file": keyfile}})
    rc = d.proc.wait(60)
    text = d.proc.log_text()
    check(rc == 2, "extractd with api_key_file %r: exit status %s, want 2:"
          "\n%s", keyfile, rc, text[-2000:])
    line = [x for x in text.splitlines() if "llm.api_key_file" in x]
    check(line and ".cfg:" in line[0] and why in line[0],
          "no 'FILE:LINE: llm.api_key_file: ...%s' message:\n%s", why,
          text[-2000:])
    log("api_key_file %r: exit 2: %s", keyfile, line[0].strip()[:160])


def body(h):
    sim_key = os.path.join(h.dir, "llmsim.key")
    write(sim_key, KEY + "\n")
    write(os.path.join(h.dir, "secrets", "api.key"), KEY + "\r\n")
    write(os.path.join(h.dir, "secrets", "empty.key"), "\n")
    check(os.getcwd() != h.dir, "the test runs in its own temp dir")

    h.start_kafka(partitions=1)
    h.start_llmsim(latency_ms=5, extra=["--api-key-file", sim_key])
    texts = person_texts(N, seed=95)
    placed = h.produce([(None, t, 0) for t in texts])
    coll = h.collector()
    d, group = h.start_extractd({"llm": {"api_key_file": "secrets/api.key"}})
    coll.until(lambda c: c.count() >= N, "%d records" % N, watch=[d])
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %d",
          coll.count(h.topics["dlq"]))
    coll.check_persons(placed, [t.encode() for t in texts])
    st = h.llm.stats()
    check(st["by_status"].get("401", 0) == 0, "llmsim answered 401: %r",
          st["by_status"])
    log("%d records with the key from the file (environment: another)", N)
    h.stop_at_end(group, d)

    refused(h, "secrets/missing.key", "cannot read")
    refused(h, "secrets/empty.key", "empty")


if __name__ == "__main__":
    harness.run(body)
