"""instructions: instructions per record under callgrind (bench.py runs
them; bench.sh -- --only instructions).

CPU time per record moves by 10-20 % between runs on a shared 2-core
machine; the instructions a record costs do not. Each system runs under
valgrind --tool=callgrind at C = CONCURRENCY (pool.workers =
pool.max_in_flight) against llmsim at 50 ms, twice: over SMALL records
and over LARGE (--instructions-records SMALL,LARGE; default 1000,3000).
Each run counts every instruction of the process in user space, start
and stop included; the difference of the two runs divided by
LARGE - SMALL is what one more record costs, with the start-up, the
group join and the stop taken out. What the kernel does for the process
(system calls, thread switches) is not counted: CPU time shows it.

Systems: extractd (completion order), every --variant binary, and the
floor (tools/floor, no Kafka). A row of kind "instructions" per system:
  instructions_per_record   (Ir(LARGE) - Ir(SMALL)) / (LARGE - SMALL)
  vs_floor                  that / the floor's
  ir_small, ir_large        the two runs' totals
DIR/callgrind/SYSTEM.txt lists the LARGE run's functions by their own
instructions (callgrind_annotate); the callgrind files are beside it
(callgrind_annotate --inclusive=yes FILE for what each costs with its
callees).
"""

import os
import shutil
import subprocess
import time

import bench
from bench import loadavg, say

CONCURRENCY = 64
RECORDS = "1000,3000"


def sizes(args):
    """(SMALL, LARGE) from --instructions-records."""
    try:
        small, large = (int(x) for x in args.instructions_records.split(","))
    except ValueError:
        small = large = 0
    if not 0 < small < large:
        raise SystemExit("bench.py: --instructions-records wants SMALL,LARGE "
                         "with 0 < SMALL < LARGE, e.g. 1000,3000")
    return small, large


def names(b, args):
    """{records: input topic}, and the run name of a system and size."""
    return ({n: "bench.ir.in.%d.%s" % (n, b.uid) for n in sizes(args)},
            lambda system, n: "bench.ir.%s.%d.%s" % (system, n, b.uid))


def systems(b):
    return ["extractd"] + sorted(b.variants) + ["floor"]


def topics(b, args):
    """{topic: partitions} the runs need."""
    inputs, run = names(b, args)
    out = {t: args.partitions for t in inputs.values()}
    for s in systems(b):
        if s == "floor":
            continue
        for n in inputs:
            out[run(s, n) + ".out"] = args.partitions
            out[run(s, n) + ".dlq"] = args.partitions
    return out


def callgrind(b, run):
    """valgrind's argv for a run, and the file it writes."""
    d = os.path.join(b.out, "callgrind")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, run.rsplit(".", 1)[0] + ".out")
    return ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + path,
            "--dump-instr=no", "--collect-jumps=no"], path


def total_ir(path):
    """Every instruction the callgrind file counts (its summary line)."""
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit("%s: no summary line" % path)


def run_extractd(b, args, system, n, topic, run):
    """Ir of extractd (or a variant) over the n records of topic."""
    vg, path = callgrind(b, run)
    b.llm_call(0, "/reset", post=True)
    p, _ = b.start_system(system, run, CONCURRENCY, "completion", 0, topic,
                          wrap=vg)
    b.current = p
    outs = [run + ".out", run + ".dlq"]
    t0 = time.monotonic()
    try:
        while b.count(outs) < n:
            if not p.alive():
                raise SystemExit("%s under callgrind exited:\n%s" %
                                 (system, p.tail()))
            b.check_services()
            if time.monotonic() - t0 > 900:
                raise SystemExit("%s under callgrind: %d of %d records after "
                                 "900 s:\n%s" % (system, b.count(outs), n,
                                                 p.tail()))
            time.sleep(0.5)
    finally:
        rc = p.stop(grace=300)
        b.current = None
    if rc != 0:
        raise SystemExit("%s under callgrind: exit status %s:\n%s" %
                         (system, rc, p.tail()))
    return total_ir(path), path


def run_floor(b, args, n, run):
    vg, path = callgrind(b, run)
    texts = os.path.join(b.work, "ir-texts.txt")
    with open(texts, "w") as f:
        f.writelines(bench.text_for(i) + "\n" for i in range(n))
    b.llm_call(0, "/reset", post=True)
    r = subprocess.run(
        vg + [os.path.join(b.bin, "floor"),
              "--base-url", b.llmsims[0][1] + "/v1",
              "--schema", os.path.join(b.source,
                                       "schemas/person.schema.json"),
              "--texts", texts, "--concurrency", str(CONCURRENCY),
              "--requests", str(n)],
        capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit("floor under callgrind: exit status %d\n%s" %
                         (r.returncode, r.stderr[-2000:]))
    return total_ir(path), path


def annotate(b, system, path):
    """The top functions by self cost, to DIR/callgrind/SYSTEM.txt."""
    if not shutil.which("callgrind_annotate"):
        return
    r = subprocess.run(["callgrind_annotate", "--threshold=99", path],
                       capture_output=True, text=True)
    with open(os.path.join(b.out, "callgrind", system + ".txt"), "w") as f:
        f.write(r.stdout)


def run(b, args):
    """Every system at SMALL and LARGE records, on the Kafka b started
    with topics(), against llmsim at jitter 0 (b.start_llmsim(0))."""
    if not shutil.which("valgrind"):
        raise SystemExit("instructions: valgrind is not installed "
                         "(scripts/deps.sh bench)")
    inputs, name = names(b, args)
    small, large = sizes(args)
    for n, topic in inputs.items():
        b.produce(topic, n)
    floor_ir = None
    rows = []
    for system in systems(b):
        ir = {}
        for n in (small, large):
            run_name = name(system, n)
            say("instructions: %s over %d records under callgrind, C=%d",
                system, n, CONCURRENCY)
            t = time.monotonic()
            if system == "floor":
                ir[n], path = run_floor(b, args, n, run_name)
            else:
                ir[n], path = run_extractd(b, args, system, n, inputs[n],
                                           run_name)
            say("  %s: %d instructions in %.0f s", system, ir[n],
                time.monotonic() - t)
        annotate(b, system, path)
        per = (ir[large] - ir[small]) / float(large - small)
        res = {"kind": "instructions", "system": system,
               "concurrency": CONCURRENCY, "latency_ms": bench.LATENCY_MS,
               "records_small": small, "records_large": large,
               "ir_small": ir[small], "ir_large": ir[large],
               "instructions_per_record": round(per), "load1": loadavg()}
        rows.append(res)
        if system == "floor":
            floor_ir = per
        b.results.append(res)
        b.save()
        say("instructions: %s %.0f a record", system, per)
    if floor_ir:
        for r in rows:
            r["vs_floor"] = round(r["instructions_per_record"] / floor_ir, 3)
        b.save()


def table(results):
    """The instruction rows as a Markdown table."""
    rows = [r for r in results if r.get("kind") == "instructions"]
    if not rows:
        return ""
    r0 = rows[0]
    head = "| system | instructions / record | ÷ floor |"
    out = ["", "Instructions per record under callgrind (C = %d, llmsim "
           "%d ms; the difference of runs over %d and %d records):" % (
               r0["concurrency"], r0["latency_ms"], r0["records_small"],
               r0["records_large"]),
           "", head, "|---|---|---|"]
    for r in rows:
        out.append("| %s | %d | %s |" % (
            r["system"], r["instructions_per_record"],
            "%.2f" % r["vs_floor"] if "vs_floor" in r else "-"))
    return "\n".join(out) + "\n"
