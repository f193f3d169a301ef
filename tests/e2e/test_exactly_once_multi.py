"""e2e.exactly_once_multi: three exactly-once instances on one host, in one
group, with no transactional.id configured, share the work; one of them is
SIGKILLed mid-stream and restarted; a read_committed reader sees every
input exactly once, each input partition's (keyless) records in offset
order, whichever instance wrote them. Then an explicit transactional.id
given to two instances: the fenced one logs an error naming the id and
the fix.

Each instance claims the lowest free slot of its group on this host (a
lock file) and takes the transactional.id extractd-GROUP-HOSTNAME-SLOT, so
the three ids differ and no instance fences another. The killed instance's
lock dies with it: its restart takes the same slot back, so the same id,
and its init fences the dead instance and aborts the transaction it left
open (instead of the input partitions' offsets staying pending until the
transaction times out).

Before slots, all three took extractd-GROUP-HOSTNAME: each new one fenced
the others, which stopped with a fatal error (0 outputs).

Real Kafka only, as e2e.exactly_once: the mock cluster keeps no
transactional offsets.
"""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

PARTITIONS = 6
GOOD = 3000
CFG = {"pool": {"workers": 8, "max_in_flight": 8},
       "output": {"delivery": "exactly-once", "transaction_ms": 100}}


def txn_id(d, timeout=60):
    """The transactional.id d logs at start (it must stay running)."""
    end = time.monotonic() + timeout
    while True:
        d.check_running()
        for line in d.proc.log_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "transactional_id" in rec:
                return rec["transactional_id"]
        check(time.monotonic() < end, "extractd logged no transactional_id "
              "in %ds:\n%s", timeout, d.proc.tail())
        time.sleep(harness.POLL)


def assigned(d):
    """Whether d's last assignment change left it partitions."""
    n = 0
    for line in d.proc.log_text().splitlines():
        if '"partitions assigned"' in line:
            n += json.loads(line)["count"]
        elif '"partitions revoked"' in line or '"partitions lost"' in line:
            n -= json.loads(line)["count"]
    return n > 0


def check_not_fenced(d):
    lines = [x for x in d.proc.log_text().splitlines() if "fenced" in x]
    check(not lines, "extractd (pid %d) was fenced:\n%s", d.proc.pid,
          "\n".join(lines)[:2000])
    d.check_no_fatal()


def body(h):
    values = [t.encode() for t in person_texts(GOOD, seed=47)]
    harness.insert_bad(values, [b"No match here"], 12, seed=9)
    total = len(values)

    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=5)
    placed = h.produce([(None, v, i % PARTITIONS)
                        for i, v in enumerate(values)])
    coll = h.collector()

    d0, group = h.start_extractd(CFG)
    d1, _ = h.start_extractd(CFG, group=group)
    d2, _ = h.start_extractd(CFG, group=group)
    daemons = [d0, d1, d2]

    prefix = "extractd-%s-%s-" % (group, socket.gethostname())
    ids = {txn_id(d): d for d in daemons}
    log("transactional ids: %s", ", ".join(sorted(ids)))
    check(sorted(ids) == [prefix + s for s in "012"],
          "ids %r, want %s{0,1,2}", sorted(ids), prefix)

    # Kill the middle slot (the lowest free one is then its own again)
    # once it has partitions, so that it leaves a transaction open.
    victim_id = prefix + "1"
    victim = ids[victim_id]
    coll.until(lambda c: c.count() >= total // 3 and assigned(victim),
               "a third committed, the victim working", watch=daemons)
    for d in daemons:
        check_not_fenced(d)
    victim.kill()
    coll.poll(1.0)
    log("at the kill: %d records visible to read_committed", coll.count())
    daemons.remove(victim)

    again, _ = h.start_extractd(CFG, group=group)
    daemons.append(again)
    again_id = txn_id(again)
    check(again_id == victim_id, "the restart took %r, want its old id %r",
          again_id, victim_id)
    coll.until(lambda c: c.count() >= total, "%d records" % total,
               watch=daemons)

    seen = coll.check_covered(set(placed), settle=3.0)
    dups = {k: n for k, n in seen.items() if n > 1}
    check(not dups, "%d inputs came out more than once, e.g. %r",
          len(dups), sorted(dups.items())[:5])
    coll.check_persons(placed, values)
    n = coll.check_reader_order()
    log("a read_committed reader got each input partition's %d records in "
        "offset order", n)
    for r in coll.records[h.topics["dlq"]]:
        check(r.header("extractd.error") == "llm_refusal", "%s: %s",
              r.where(), r.header("extractd.error"))
    check(coll.count(h.topics["dlq"]) == 12, "%d dead letters, want 12",
          coll.count(h.topics["dlq"]))
    for d in daemons:
        check_not_fenced(d)

    h.stop_at_end(group, *daemons)
    explicit_id_twice(h, group)


def explicit_id_twice(h, group):
    """An explicit transactional.id given to two instances: the older one
    is fenced, says which id and what to do, and stops (exit 1)."""
    same = "extractd-test-%s" % h.uid
    cfg = dict(CFG, kafka={"properties": [("session.timeout.ms", 6000),
                                          ("transactional.id", same)]})
    first, _ = h.start_extractd(cfg, group=group)
    check(txn_id(first) == same, "first instance: not the explicit id")
    second, _ = h.start_extractd(cfg, group=group)
    check(txn_id(second) == same, "second instance: not the explicit id")
    h.produce([(None, v, i % PARTITIONS) for i, v in
               enumerate(t.encode() for t in person_texts(60, seed=48))])
    rc = first.proc.wait(harness.DEADLINE)
    check(rc == 1, "the fenced instance: exit status %r, want 1", rc)
    lines = [json.loads(x) for x in first.proc.log_text().splitlines()
             if x.startswith("{") and '"msg":"fenced' in x]
    check(len(lines) == 1, "want one fencing error, have:\n%s",
          first.proc.tail())
    log("fencing error: %s", json.dumps(lines[0]))
    check(lines[0]["level"] == "error" and
          lines[0]["transactional_id"] == same and
          "its own transactional.id" in lines[0].get("fix", ""),
          "fencing error without the id or the fix: %r", lines[0])
    second.check_running()


if __name__ == "__main__":
    if not os.environ.get("KAFKA_BOOTSTRAP"):
        harness.skip("exactly-once needs a real Kafka (KAFKA_BOOTSTRAP); "
                     "the mock cluster does not keep transactional offsets")
    harness.run(body)
