"""e2e.valgrind: memcheck over the smoke run, the seed's seven texts.

extractd runs under valgrind memcheck (definite leaks count as errors,
--error-exitcode=99) on Kafka and llmsim, which run natively: the seven
texts become seven records (and three bad ones an input, a refusal and a
validation dead letter), then SIGTERM. Proves a clean run and shutdown
has no invalid reads or writes, no use of uninitialised values that
matters, and no definite leak: exit status 0 and valgrind's own summary
says so. Deadlines are generous: memcheck is ~30 times slower.

Suppressions, third-party only and each with its reason, are in
tests/sanitizers/valgrind.supp. Skipped (77) without valgrind, or when
extractd is built with a sanitizer (the two do not mix).
"""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import SEED_TEXTS, check, expected_person, log  # noqa: E402

# Texts that end as dead letters, and their extractd.error.
BAD = {
    b"Bad \xc3\x28 is a 30-year-old x": "input",
    b"The weather is nice today": "llm_refusal",
    b"Old Tom is a 999-year-old sailor": "validation",
}
START_DEADLINE = 240.0   # seconds for the seven records under valgrind
STOP_DEADLINE = 120.0    # seconds from SIGTERM to exit under valgrind


class Valgrind(harness.Extractd):
    """extractd under valgrind memcheck, with its own log file."""

    def __init__(self, h, cfgpath, vglog):
        self.h = h
        self.cfgpath = cfgpath
        env = dict(os.environ)
        env["OPENAI_API_KEY"] = "sk-test"
        supp = os.path.join(h.source, "tests/sanitizers/valgrind.supp")
        argv = ["valgrind", "--tool=memcheck", "--error-exitcode=99",
                "--leak-check=full", "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite", "--track-fds=no",
                "--num-callers=40", "--suppressions=%s" % supp,
                "--log-file=%s" % vglog, h.binary("extractd"), "-c", cfgpath]
        self.proc = harness.Proc("extractd", argv,
                                 os.path.join(h.dir, "extractd-vg.log"),
                                 env=env)
        h.procs.append(self.proc)
        log("extractd started under valgrind (pid %d)", self.proc.pid)


def body(h):
    if not shutil.which("valgrind"):
        harness.skip("no valgrind")
    if h.sanitized():
        harness.skip("extractd is built with a sanitizer")

    h.start_kafka(partitions=1)
    h.start_llmsim(latency_ms=10)
    keys = [("vg-%d" % i).encode() for i in range(len(SEED_TEXTS))]
    h.produce([(k, t, 0) for k, t in zip(keys, SEED_TEXTS)])
    # One dead letter of each path, so those run under memcheck too.
    h.produce([(b"bad-%d" % i, t, 0) for i, t in enumerate(BAD)])
    coll = h.collector()

    cfg, group = h.config({"pool": {"workers": 4, "max_in_flight": 4}})
    vglog = os.path.join(h.dir, "valgrind.log")
    d = Valgrind(h, cfg, vglog)
    out, dlq = h.topics["output"], h.topics["dlq"]
    want = len(SEED_TEXTS) + len(BAD)
    try:
        coll.until(lambda c: c.count() >= want,
                   "%d outputs and dead letters" % want,
                   timeout=START_DEADLINE, watch=[d])
        coll.poll(1.0)
        check(coll.count(out) == len(SEED_TEXTS), "%d outputs, want %d",
              coll.count(out), len(SEED_TEXTS))
        got = sorted((r.value, r.header("extractd.error"))
                     for r in coll.records[dlq])
        check(got == sorted(BAD.items()), "dead letters %r, want %r", got,
              sorted(BAD.items()))
        for r in coll.records[out]:
            i = keys.index(r.key)
            check(r.json() == expected_person(SEED_TEXTS[i]),
                  "%s: value %r for %r", r.where(), r.value, SEED_TEXTS[i])
        rc, took = d.terminate(STOP_DEADLINE)
    finally:
        if os.path.exists(vglog):
            with open(vglog, errors="replace") as f:
                text = f.read()
            # On failure the log tail goes out with the others.
            with open(d.proc.logpath, "a") as f:
                f.write("---- valgrind.log ----\n" + text[-20000:])
    log("valgrind: %s", " | ".join(
        line.split("== ", 1)[-1].strip() for line in text.splitlines()
        if re.search(r"(definitely|indirectly|possibly) lost:|"
                     r"ERROR SUMMARY|All heap blocks", line)))
    check(rc == 0, "extractd under valgrind exited %d (99: valgrind found "
          "errors); see valgrind.log above", rc)
    check("All heap blocks were freed" in text or
          re.search(r"definitely lost: 0 bytes in 0 blocks", text),
          "valgrind reports a definite leak")
    for what in ("Invalid read", "Invalid write", "Invalid free",
                 "Mismatched free", "uninitialised value",
                 "Syscall param"):
        check(what not in text, "valgrind reports %r", what)
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    check(m and m.group(1) == "0", "valgrind: %s",
          m.group(0) if m else "no ERROR SUMMARY")
    committed = h.committed(group)
    check(committed == h.end_offsets(), "committed %r", committed)
    log("clean under memcheck; stopped in %.1fs", took)


if __name__ == "__main__":
    harness.run(body)
