"""bench.smoke: the benchmark driver runs end to end on a tiny point.

scripts/bench/bench.py at C = 2 and 4, jitter 0, 1 s of steady state,
extractd in both orders and the floor (tools/floor: the bare call loop
extractd's CPU is compared with), no peer (its venv needs PyPI), and a
3,000-record backlog for 2 s, extractd idle for 2 s, and the callgrind
runs (scripts/bench/instructions.py) over IR_RECORDS. Proves the parts a full run relies on:
results.json has one run per system, order and C, each with the fields
DESIGN.md lists (system, mode, concurrency, latency_ms, records, seconds,
throughput, littles_law = C / latency, efficiency = throughput /
littles_law, cpu_s_per_record, rss_mb) and values that add up; every
record of a point was delivered; llmsim never saw more than C requests
open; the backlog run has its peak RSS; the cost runs
(scripts/bench/cost.py, on COST_RECORDS records) have a row each, live
and batch.mode = backlog, every record delivered, a price per 1,000
records, and batches answered most of the backlog run's records for less
than live; the idle run has its CPU a second; extractd and the floor have
instructions per record from two callgrind runs that add up;
results.md and the four PNG plots exist (gnuplot comes with
scripts/deps.sh). Nothing about speed is asserted: that is what
scripts/bench.sh measures.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

CONCURRENCY = (2, 4)
COST_RECORDS = 1000
IR_RECORDS = (100, 300)
FIELDS = ("system", "mode", "concurrency", "latency_ms", "records",
          "seconds", "throughput", "littles_law", "efficiency",
          "cpu_s_per_record", "rss_mb")
PLOTS = ("throughput.png", "efficiency.png", "cpu.png", "rss.png")


def check(cond, msg, *args):
    if not cond:
        print("FAIL: " + (msg % args if args else msg), flush=True)
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--source", required=True)
    a = ap.parse_args()
    out = tempfile.mkdtemp(prefix="extractd-bench-smoke-")
    try:
        cmd = [sys.executable,
               os.path.join(a.source, "scripts", "bench", "bench.py"),
               "--bin", a.bin, "--source", a.source, "--out", out,
               "--concurrency", ",".join(map(str, CONCURRENCY)),
               "--jitter", "0", "--steady", "1", "--no-peer",
               "--backlog", "3000", "--backlog-seconds", "2", "--no-goodput",
               "--cost-records", str(COST_RECORDS), "--idle-seconds", "2",
               "--instructions-records", "%d,%d" % IR_RECORDS]
        print("$ " + " ".join(cmd), flush=True)
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=240)
        text = r.stdout.decode("utf-8", "replace")
        print(text[-4000:], flush=True)
        check(r.returncode == 0, "bench.py exit status %d", r.returncode)

        with open(os.path.join(out, "results.json")) as f:
            runs = json.load(f)
        cost = [x for x in runs if x.get("kind") == "cost"]
        idle = [x for x in runs if x.get("kind") == "idle"]
        ir = {x["system"]: x for x in runs
              if x.get("kind") == "instructions"}
        runs_ = [x for x in runs if "kind" not in x]
        points = [x for x in runs_ if "backlog" not in x]
        backlog = [x for x in runs_ if "backlog" in x]
        want = {("extractd", m, c) for m in ("completion", "offset")
                for c in CONCURRENCY} | \
            {("floor", "completion", c) for c in CONCURRENCY}
        got = {(x["system"], x["mode"], x["concurrency"]) for x in points}
        check(got == want, "runs %r, want %r", sorted(got), sorted(want))
        for x in points + backlog:
            for k in FIELDS:
                check(k in x, "run %r has no field %r", x, k)
            c = x["concurrency"]
            check(x["latency_ms"] == 50, "latency_ms %r", x["latency_ms"])
            check(abs(x["littles_law"] - c * 1000.0 / x["latency_ms"]) <
                  1e-6, "littles_law %r at C = %d", x["littles_law"], c)
            check(x["records"] > 0 and x["seconds"] > 0,
                  "records %r in %r s", x["records"], x["seconds"])
            check(abs(x["throughput"] - x["records"] / x["seconds"]) <=
                  0.06 * x["throughput"] + 0.1, "throughput %r for %r "
                  "records in %r s", x["throughput"], x["records"],
                  x["seconds"])
            check(abs(x["efficiency"] - x["throughput"] / x["littles_law"])
                  < 0.01, "efficiency %r, throughput %r, Little %r",
                  x["efficiency"], x["throughput"], x["littles_law"])
            check(0 < x["cpu_s_per_record"] < 1, "cpu_s_per_record %r",
                  x["cpu_s_per_record"])
            check(0 < x["rss_mb"] < 1024, "rss_mb %r", x["rss_mb"])
        # System time comes in 10-ms ticks, extractd's whole CPU from
        # schedstat: one tick of slack between them.
        for x in points:
            check(0 <= x["sys_us_per_record"] <=
                  x["cpu_us_per_record"] + 10000.0 / x["records"],
                  "sys_us_per_record %r of %r", x["sys_us_per_record"],
                  x["cpu_us_per_record"])
        for x in points:
            check(not x.get("stopped_early"), "run stopped early: %r", x)
            check(x["dead_letters"] == 0, "dead letters: %r", x)
            check(x["llm_peak_concurrent"] <= x["concurrency"],
                  "llmsim saw %d open at C = %d", x["llm_peak_concurrent"],
                  x["concurrency"])
            # extractd's health check at start finds the request format
            # before the first record: one request more than records.
            checks = 1 if x["system"] == "extractd" else 0
            check(x["llm_requests"] == x["records"] + checks,
                  "%d requests for %d records and %d health check",
                  x["llm_requests"], x["records"], checks)
        check(len(backlog) == 1 and backlog[0]["backlog"] == 3000,
              "backlog runs %r", backlog)
        modes = {x["batch_mode"]: x for x in cost}
        check(sorted(modes) == ["backlog", "off"] and len(cost) == 2,
              "cost runs %r", cost)
        for x in cost:
            check(x["records"] == COST_RECORDS and x["dead_letters"] == 0,
                  "cost run %r", x)
            check(x["usd_per_1000"] > 0, "no cost in %r", x)
        off, bl = modes["off"], modes["backlog"]
        check(off["batched"] == 0 and off["batch_requests"] == 0,
              "batch.mode off batched: %r", off)
        check(bl["batches"] > 0 and bl["batched"] == bl["batch_requests"]
              and bl["batched"] >= COST_RECORDS // 2,
              "backlog run batched too little: %r", bl)
        check(0 < bl["vs_live"] < 1, "backlog mode cost %r of live",
              bl.get("vs_live"))
        check(len(idle) == 1 and idle[0]["system"] == "extractd" and
              idle[0]["cpu_ms_per_s"] > 0 and idle[0]["seconds"] >= 2,
              "idle runs %r", idle)
        check(sorted(ir) == ["extractd", "floor"], "callgrind runs %r", ir)
        for x in ir.values():
            per = (x["ir_large"] - x["ir_small"]) / float(IR_RECORDS[1] -
                                                         IR_RECORDS[0])
            check(x["ir_small"] > 0 and x["instructions_per_record"] > 0 and
                  abs(x["instructions_per_record"] - per) <= 1,
                  "callgrind run %r", x)
            check(abs(x["vs_floor"] - x["instructions_per_record"] /
                      ir["floor"]["instructions_per_record"]) < 0.01,
                  "vs_floor of %r", x)
        # Each extractd row is compared with the floor at its point.
        with open(os.path.join(out, "results.md")) as f:
            md = [ln for ln in f if ln.startswith("| extractd ") and
                  ln.count("|") > 10]
        check(len(md) == 2 * len(CONCURRENCY), "results.md rows %r", md)
        for ln in md:
            cells = [v.strip() for v in ln.strip().strip("|").split("|")]
            check(float(cells[-2]) > 0 and float(cells[-1]) > 0,
                  "no ratio to the floor in %r", ln)
        check(any(ln.startswith("| backlog |") for ln in
                  open(os.path.join(out, "results.md"))),
              "results.md has no cost row")
        check(any(ln.startswith("| extractd |") and ln.count("|") == 4
                  for ln in open(os.path.join(out, "results.md"))),
              "results.md has no instructions row")
        for name in ("results.md",) + PLOTS:
            path = os.path.join(out, name)
            check(os.path.isfile(path) and os.path.getsize(path) > 0,
                  "%s missing or empty", name)
        print("%d runs, %s and the plots: PASS" % (len(runs), "results.json"),
              flush=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
