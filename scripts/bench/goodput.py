"""goodput: the benchmark's goodput runs (bench.py runs them; bench.sh).

In production the ceiling is the provider: an account's requests a minute,
or the calls a self-hosted server really runs at once. A run puts a system
with far more concurrency than the provider takes (256 calls) on a backlog
and measures how much of the provider's limit it turns into records:

  setup "rpm":      llmsim --rpm 1200 --latency-ms 50 (20 requests a second,
                    a token bucket with OpenAI's x-ratelimit-* headers);
                    limit 20 records/s
  setup "capacity": llmsim --capacity 4 --latency-ms 50 --no-rate-headers
                    (4 calls at once, the rest queued); limit capacity /
                    latency = 80 records/s

Systems: extractd with pool.max_in_flight = pool.workers = 256 and no
rate.* settings, pool.concurrency = adaptive (one instance, and three in
one consumer group sharing the one llmsim, in setup rpm) and fixed (the
reference); the Instructor peer (peer_instructor.py: a semaphore of 256,
the openai SDK retrying 429s) and the LiteLLM peer (peer_litellm.py: the
Router with the deployment's rpm, retries and cool-downs), one and three
instances in setup rpm. Three LiteLLM instances each get a third of the
rpm, as its docs advise for instances without a shared Redis; in setup
capacity the server publishes no rate, so the Router gets none.

Each run has a fresh llmsim, its rpm budget spent before the run starts
(spend_budget()), and its own consumer group and output topics on the
setup's backlog. Warm-up: from the first output for WARM seconds (the
limiter finding the limit, the peers filling their slots); then STEADY
seconds are measured:

  records_per_s   records output in the steady window / its length (dead
                  letters are not goodput; they are counted apart)
  goodput_ratio   records_per_s / the setup's limit
  per_1000        429s llmsim answered in the window per 1,000 records
                  output in it (per_1000_total: over the whole run)
  p50/p99_ms      the latency header of the outputs produced in the window
                  (extractd.latency_ms, the peers' latency_ms): record
                  admitted to output produced, retries and waits included.
                  Input to output would measure the backlog's wait.
  llm_ok_ratio    llmsim's 200s in the window / its length / the limit:
                  the provider's side of goodput_ratio. Either may pass 1
                  by a few %: budget saved before the window and spent in
                  it, answers a loaded peer's event loop writes late
  timeouts        requests llmsim saw the client give up on (its "dropped":
                  the connection closed before the answer), whole run
  cores           CPU (utime + stime) of the system's processes in the
                  window / its length: a peer near 1 is bound by its event
                  loop, not by the provider
"""

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import bench
from bench import loadavg, machine_busy_s, proc_cpu_s, say

LATENCY_MS = 50
MAX_IN_FLIGHT = 256


class Setup:
    def __init__(self, name, provider, sim_args, limit, rpm=0):
        self.name = name
        self.provider = provider
        self.sim_args = sim_args
        self.limit = limit      # records/s the provider allows
        self.rpm = rpm          # what it publishes, for LiteLLM (0: none)


SETUPS = [
    Setup("rpm", "llmsim --rpm 1200 --latency-ms 50",
          ["--rpm", "1200"], 20.0, rpm=1200),
    Setup("capacity", "llmsim --capacity 4 --latency-ms 50 "
          "--no-rate-headers", ["--capacity", "4", "--no-rate-headers"],
          4 / (LATENCY_MS / 1000.0)),
]


def plan(args):
    """[(setup, [(system, label, instances)])]. On kafka-embedded the
    peers run one instance only: librdkafka's mock cluster answers the
    SyncGroup of an aiokafka group's second member with INVALID_REQUEST
    (extractd's librdkafka groups work)."""
    out = []
    for s in SETUPS:
        scale = (1, 3) if s.name == "rpm" else (1,)
        peer_scale = scale if os.environ.get("KAFKA_BOOTSTRAP") else (1,)
        runs = [("extractd", "adaptive", n) for n in scale]
        runs.append(("extractd", "fixed", 1))
        if args.peer_python and not args.no_peer:
            runs += [("peer", "instructor", n) for n in peer_scale]
        if args.litellm_python and not args.no_peer:
            runs += [("litellm", "litellm", n) for n in peer_scale]
        out.append((s, runs))
    return out


def backlog(setup, args):
    """Records a setup's input gets: more than any system can use in a
    run (dead letters included: a peer may fail records fast)."""
    return int(setup.limit * (args.goodput_warmup + args.goodput_steady +
                              10) * 2) + 20000


def run_name(b, setup, label, n):
    return "bench.goodput.%s.%s.x%d.%s" % (setup.name, label, n, b.uid)


def topics(b, args):
    """{topic: partitions} the goodput runs need."""
    out = {}
    for s, runs in plan(args):
        out["bench.goodput.in.%s.%s" % (s.name, b.uid)] = args.partitions
        for _, label, n in runs:
            run = run_name(b, s, label, n)
            out[run + ".out"] = args.partitions
            out[run + ".dlq"] = args.partitions
    return out


def start_llmsim(b, setup, run):
    sim = b.llmsim(run + ".llmsim", latency_ms=LATENCY_MS,
                   extra=setup.sim_args)
    b.llmsims[run] = (sim.proc, sim.base)
    return sim


def spend_budget(base, n):
    """n requests to a fresh llmsim, 32 at once: its request bucket starts
    full (a minute's budget), and a run that began on it would count that
    burst as goodput for as long as it took to spend it. After this, the
    run starts as on an account already in use, and its steady state is
    the provider's rate."""
    body = json.dumps({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "nothing"}]}).encode()

    def one(_):
        req = urllib.request.Request(
            base + "/v1/chat/completions", data=body,
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                r.read()
        except urllib.error.HTTPError as e:
            e.read()
    with ThreadPoolExecutor(32) as ex:
        list(ex.map(one, range(n)))


def stop_llmsim(b, run):
    proc = b.llmsims.pop(run)[0]
    proc.stop(30)
    b.procs.remove(proc)


def peer_args(system, setup, n):
    if system != "litellm" or not setup.rpm:
        return ()
    return ("--rpm", str(setup.rpm // n))


def wait_until(b, procs, cond, what, timeout):
    end = time.monotonic() + timeout
    while not cond():
        for p in procs:
            if not p.alive():
                raise SystemExit("%s exited (status %s) %s:\n%s" % (
                    os.path.basename(p.argv[0]), p.popen.returncode, what,
                    p.tail()))
        b.check_services()
        if time.monotonic() > end:
            raise SystemExit("nothing %s after %ds:\n%s" % (
                what, timeout, procs[0].tail()))
        time.sleep(0.2)


def snapshot(b, outs):
    """(monotonic s, wall ms, records in outs), the times the middle of
    the count (a few round trips to Kafka, slow on a loaded machine)."""
    t, ms = time.monotonic(), time.time() * 1000
    n = b.count(outs)
    return ((t + time.monotonic()) / 2, int((ms + time.time() * 1000) / 2),
            n)


def run_one(b, args, setup, system, label, n, topic):
    run = run_name(b, setup, label, n)
    desc = "%s %s x%d on %s" % (setup.name, label, n, setup.provider)
    sim = start_llmsim(b, setup, run)
    if setup.rpm:
        spend_budget(sim.base, setup.rpm)
        sim.reset()
    pool = 'concurrency = "%s"; ' % label if system == "extractd" else ""
    procs, marker = [], None
    for i in range(n):
        p, marker = b.start_system(system, run, MAX_IN_FLIGHT, "completion",
                                   run, topic, instance=i, pool=pool,
                                   peer_args=peer_args(system, setup, n))
        procs.append(p)
    outs = [run + ".out"]
    dlqs = [run + ".dlq"]
    try:
        wait_until(b, procs, lambda: all(marker in p.text() for p in procs),
                   "ready", 120)
        wait_until(b, procs, lambda: b.count(outs + dlqs) > 0,
                   "delivered", 120)
        t_first = time.monotonic()
        wait_until(b, procs, lambda: time.monotonic() - t_first >=
                   args.goodput_warmup, "in the warm-up", 1e9)
        t0, ms0, out0 = snapshot(b, outs)
        dlq0, stats0 = b.count(dlqs), sim.stats()
        busy0, cpu0 = machine_busy_s(), sum(proc_cpu_s(p.pid)
                                             for p in procs)
        last = (t0, out0)

        def steady_done():
            nonlocal last
            now = time.monotonic()
            if now - last[0] >= 5:
                done = b.count(outs)
                say("  %s: %d records in %.0fs of steady state, %.1f/s "
                    "(limit %.0f/s), load %.2f", desc, done - out0, now - t0,
                    (done - last[1]) / (now - last[0]), setup.limit,
                    loadavg())
                last = (now, done)
            return now - t0 >= args.goodput_steady
        wait_until(b, procs, steady_done, "in the steady state", 1e9)
        t1, ms1, out1 = snapshot(b, outs)
        dlq1, stats1 = b.count(dlqs), sim.stats()
        cpu = (sum(proc_cpu_s(p.pid) for p in procs) - cpu0) / (t1 - t0)
        busy = (machine_busy_s() - busy0) / (t1 - t0)
        load1 = loadavg()
    finally:
        for p in procs:
            p.stop(grace=10)
    stop_llmsim(b, run)
    header = "extractd.latency_ms" if system == "extractd" else "latency_ms"
    lat, _ = b.latencies(run + ".out", header, window=(ms0, ms1))
    lat.sort()

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

    def status(st, code):
        return st.get("by_status", {}).get(code, 0)

    def r429(st):
        return status(st, "429")
    secs = t1 - t0
    recs = out1 - out0
    rps = recs / secs
    rate_limited = r429(stats1) - r429(stats0)
    res = {
        "kind": "goodput", "setup": setup.name, "provider": setup.provider,
        "system": {"peer": "instructor"}.get(system, system),
        "concurrency": label if system == "extractd" else "semaphore",
        "instances": n, "max_in_flight": MAX_IN_FLIGHT,
        "limit_per_s": setup.limit,
        "warmup_s": args.goodput_warmup, "seconds": round(secs, 2),
        "records": recs, "records_per_s": round(rps, 2),
        "goodput_ratio": round(rps / setup.limit, 3),
        "llm_ok_ratio": round((status(stats1, "200") - status(stats0, "200"))
                              / secs / setup.limit, 3),
        "dead_letters": dlq1 - dlq0, "dead_letters_total": dlq1,
        "rate_limited": rate_limited,
        "per_1000": round(rate_limited * 1000.0 / max(recs, 1), 1),
        "rate_limited_total": r429(stats1),
        "records_total": out1,
        "per_1000_total": round(r429(stats1) * 1000.0 / max(out1, 1), 1),
        "timeouts": stats1.get("dropped", 0),
        "backlog_used_up": out1 + dlq1 >= backlog(setup, args),
        "p50_ms": pct(0.50), "p99_ms": pct(0.99),
        "llm_requests": stats1.get("requests", 0) -
        stats0.get("requests", 0),
        "llm_peak_concurrent": stats1.get("peak_concurrent"),
        "llm_queue_peak": stats1.get("queue_peak"),
        "cores": round(cpu, 2),
        "load1": load1, "machine_cores_busy": round(busy, 2),
    }
    b.results.append(res)
    b.save()
    say("%s: %.2f records/s = %.3f of the limit, %d 429s (%.1f per 1,000; "
        "whole run %.1f), %d dead letters, %d timeouts, p50 %s p99 %s "
        "ms | %.2f cores, load %.2f", desc, rps, res["goodput_ratio"],
        rate_limited, res["per_1000"], res["per_1000_total"],
        res["dead_letters"], res["timeouts"], res["p50_ms"], res["p99_ms"],
        cpu, load1)
    return res


def run(b, args):
    """Every goodput run, on the Kafka b started with topics()."""
    for setup, runs in plan(args):
        topic = "bench.goodput.in.%s.%s" % (setup.name, b.uid)
        n = backlog(setup, args)
        say("goodput, %s (limit %.0f records/s): %d records", setup.provider,
            setup.limit, n)
        b.produce(topic, n)
        for system, label, k in runs:
            run_one(b, args, setup, system, label, k, topic)


def row_label(r):
    name = r["system"] if r["system"] != "extractd" else \
        "extractd " + r["concurrency"]
    return "%s x%d" % (name, r["instances"])


def table(results):
    """The goodput rows as a Markdown table."""
    rows = [r for r in results if r.get("kind") == "goodput"]
    if not rows:
        return ""
    head = ("| setup | system | instances | records/s | limit | goodput | "
            "429s / 1,000 (whole run) | dead letters | timeouts | "
            "p50/p99 ms | cores | load1 |")
    out = ["", "Goodput (%d s of steady state after %d s of warm-up):" % (
        rows[0]["seconds"], rows[0]["warmup_s"]), "", head,
        "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        name = r["system"] if r["system"] != "extractd" else \
            "extractd " + r["concurrency"]
        out.append("| %s | %s | %d | %.1f | %.0f | %.3f | %.1f (%.1f) | %d "
                   "| %d | %s/%s | %.2f | %.2f |" % (
                       r["setup"], name, r["instances"], r["records_per_s"],
                       r["limit_per_s"], r["goodput_ratio"], r["per_1000"],
                       r["per_1000_total"], r["dead_letters"], r["timeouts"],
                       r["p50_ms"], r["p99_ms"], r.get("cores", 0),
                       r["load1"]))
    return "\n".join(out) + "\n"


def plot(out, results, gp_dir):
    """DIR/goodput.png: goodput ratio and 429s per 1,000 records a run."""
    rows = [r for r in results if r.get("kind") == "goodput"]
    if not rows or not bench.shutil.which("gnuplot"):
        return
    ddir = os.path.join(out, "data")
    os.makedirs(ddir, exist_ok=True)
    path = os.path.join(ddir, "goodput.dat")
    with open(path, "w") as f:
        f.write("# label goodput_ratio per_1000 p99_ms\n")
        for r in rows:
            f.write('"%s: %s" %s %s %s\n' % (
                r["setup"], row_label(r), r["goodput_ratio"], r["per_1000"],
                r["p99_ms"] if r["p99_ms"] is not None else "NaN"))
    png = os.path.join(out, "goodput.png")
    r = bench.subprocess.run(
        ["gnuplot", "-e", "data='%s'; out='%s'" % (path, png),
         os.path.join(gp_dir, "goodput.gp")], capture_output=True,
        text=True)
    if r.returncode:
        say("gnuplot goodput failed: %s", r.stderr.strip())
    else:
        say("plot: %s", png)
