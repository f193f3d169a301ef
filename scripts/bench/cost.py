"""cost: the benchmark's cost runs (bench.py runs them; bench.sh).

What a backlog costs live and through the Batch API. One corpus of
RECORDS texts waits on the input topic; extractd reads all of it twice,
each time in a new consumer group, against one llmsim:

  batch.mode = off       every record a live call
  batch.mode = backlog   records admitted while their partition lags by
                         more than MIN_BACKLOG go to batch files (at most
                         MAX_REQUESTS lines, sent after MAX_WAIT_S), the
                         rest live

llmsim: latency 50 ms, --batch-delay-ms BATCH_DELAY_MS (a batch takes that
long; OpenAI's take minutes to hours), 5 % of answers invalid (live and
batch lines alike; the record is re-asked live, at full price). Prices:
llm.price input PRICE_IN, output PRICE_OUT dollars per 1M tokens,
batch_factor 0.5 (OpenAI's). extractd at pool.max_in_flight = CONCURRENCY.

Measured per run (a row of kind "cost" in results.json):
  cost_usd        the sum of the extractd.cost_usd header over every output
                  and dead letter (what extractd says the calls cost)
  usd_per_1000    cost_usd per 1,000 records
  vs_live         usd_per_1000 / the live run's
  batched         outputs with extractd.batch = true; reasked: those of
                  them with extractd.attempts > 1 (re-asked live)
  batches, batch_requests, live_requests
                  llmsim's /stats (batches_created, batch_requests,
                  requests: the live calls, re-asks and the start's check
                  included)
  seconds         extractd ready to the last record delivered: the price
                  of waiting, at llmsim's batch delay
"""

import os
import time

import bench
from bench import loadavg, say
from confluent_kafka import Consumer, TopicPartition

RECORDS = 5000
CONCURRENCY = 64
MIN_BACKLOG = 100
MAX_REQUESTS = 1000
MAX_WAIT_S = 1.0
POLL_MS = 100
BATCH_DELAY_MS = 500
INVALID = 0.05
PRICE_IN = 0.15
PRICE_OUT = 0.6
MODES = ("off", "backlog")


def names(b):
    """(input topic, state topic, run name of a batch.mode)."""
    return ("bench.cost.in.%s" % b.uid, "bench.cost.batches.%s" % b.uid,
            lambda mode: "bench.cost.%s.%s" % (mode, b.uid))


def topics(b, args):
    """{topic: partitions} the cost runs need. The state topic has one
    partition and, on a real Kafka, cleanup.policy = compact."""
    topic, state, run = names(b)
    out = {topic: args.partitions, state: 1}
    for mode in MODES:
        out[run(mode) + ".out"] = args.partitions
        out[run(mode) + ".dlq"] = args.partitions
    b.topic_config[state] = {"cleanup.policy": "compact"}
    return out


def headers(b, topics, partitions):
    """[{header: value}] of every record of topics."""
    c = Consumer({"bootstrap.servers": b.bootstrap,
                  "group.id": "bench-cost-" + b.uid + "-" + topics[0],
                  "enable.auto.commit": False,
                  "enable.partition.eof": True,
                  "fetch.wait.max.ms": 10})
    c.assign([TopicPartition(t, p, -2) for t in topics
              for p in range(partitions)])
    out, eof = [], set()
    end = time.monotonic() + 120
    while len(eof) < len(topics) * partitions and time.monotonic() < end:
        for m in c.consume(10000, 0.5):
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    eof.add((m.topic(), m.partition()))
                continue
            out.append({k: v.decode() for k, v in m.headers() or ()})
    c.close()
    return out


def run_one(b, args, sim, mode, topic, state, run, n):
    sim.reset()
    price = "price = { input = %s; output = %s; batch_factor = 0.5; };" % (
        PRICE_IN, PRICE_OUT)
    more = """
batch: { mode = "%s"; min_backlog = %d; max_requests = %d;
         max_wait_s = %s; poll_ms = %d; state_topic = "%s"; };
""" % (mode, MIN_BACKLOG, MAX_REQUESTS, MAX_WAIT_S, POLL_MS, state)
    b.llmsims[run] = (sim.proc, sim.base)
    cfg = b.extractd_config(run, CONCURRENCY, "completion", run, topic,
                            llm=price, more=more)
    p = bench.Proc([os.path.join(b.bin, "extractd"), "-c", cfg],
                   os.path.join(b.work, run + ".log"),
                   env=dict(os.environ, OPENAI_API_KEY="sk-bench"))
    b.current = p
    outs = [run + ".out", run + ".dlq"]
    last = time.monotonic()
    try:
        while '"msg":"partitions assigned"' not in p.text():
            if not p.alive():
                raise SystemExit("extractd (cost, batch.mode %s) exited:\n%s"
                                 % (mode, p.tail()))
            time.sleep(0.01)
        t0 = time.monotonic()
        while b.count(outs) < n:
            if not p.alive():
                raise SystemExit("extractd (cost, batch.mode %s) exited:\n%s"
                                 % (mode, p.tail()))
            b.check_services()
            if time.monotonic() - t0 > 600:
                raise SystemExit("cost, batch.mode %s: %d of %d records "
                                 "after 600 s:\n%s" % (mode, b.count(outs),
                                                       n, p.tail()))
            if time.monotonic() - last >= 2:
                say("  cost, batch.mode %s: %d/%d delivered", mode,
                    b.count(outs), n)
                last = time.monotonic()
            time.sleep(0.1)
        secs = time.monotonic() - t0
        st = sim.stats()
    finally:
        p.stop(grace=60)
        b.current = None
        del b.llmsims[run]
    recs = headers(b, outs, args.partitions)
    cost = sum(float(h.get("extractd.cost_usd", 0)) for h in recs)
    batched = [h for h in recs if h.get("extractd.batch") == "true"]
    dlq = b.count([run + ".dlq"])
    res = {
        "kind": "cost", "system": "extractd", "batch_mode": mode,
        "records": len(recs), "dead_letters": dlq,
        "concurrency": CONCURRENCY, "latency_ms": bench.LATENCY_MS,
        "batch_delay_ms": BATCH_DELAY_MS, "min_backlog": MIN_BACKLOG,
        "invalid_rate": INVALID,
        "price_input": PRICE_IN, "price_output": PRICE_OUT,
        "batch_factor": 0.5,
        "cost_usd": round(cost, 9),
        "usd_per_1000": round(cost * 1000.0 / max(len(recs), 1), 9),
        "batched": len(batched),
        "reasked": sum(1 for h in batched
                       if int(h.get("extractd.attempts", 1)) > 1),
        "batches": st.get("batches_created", 0),
        "batch_requests": st.get("batch_requests", 0),
        "live_requests": st.get("requests", 0),
        "seconds": round(secs, 2), "load1": loadavg(),
    }
    b.results.append(res)
    b.save()
    say("cost, batch.mode %s: %d records (%d dead letters), $%.6f = $%.6f "
        "per 1,000; %d batched in %d batches (%d re-asked live), %d live "
        "requests; %.1f s", mode, res["records"], dlq, cost,
        res["usd_per_1000"], res["batched"], res["batches"], res["reasked"],
        res["live_requests"], secs)
    return res


def run(b, args):
    """Both cost runs, on the Kafka b started with topics()."""
    topic, state, name = names(b)
    n = args.cost_records
    say("cost: %d records, live vs batch.mode = backlog", n)
    b.produce(topic, n)
    sim = b.llmsim("llmsim-cost", faults={"invalid": INVALID},
                   extra=["--batch-delay-ms", str(BATCH_DELAY_MS)])
    live = None
    try:
        for mode in MODES:
            res = run_one(b, args, sim, mode, topic, state, name(mode), n)
            if mode == "off":
                live = res
            elif live and live["usd_per_1000"]:
                res["vs_live"] = round(res["usd_per_1000"] /
                                       live["usd_per_1000"], 3)
                b.save()
    finally:
        sim.proc.stop(30)
        b.procs.remove(sim.proc)


def table(results):
    """The cost rows as a Markdown table."""
    rows = [r for r in results if r.get("kind") == "cost"]
    if not rows:
        return ""
    r0 = rows[0]
    head = ("| batch.mode | records | $ / 1,000 records | vs live | "
            "batched | batches | re-asked live | live requests | "
            "dead letters | s |")
    out = ["", "Cost (llmsim, %d ms a call, a batch takes %d ms, %.0f %% of "
           "answers invalid; $%s / $%s per 1M tokens in / out, batch_factor "
           "%s; min_backlog %d):" % (
               r0["latency_ms"], r0["batch_delay_ms"],
               r0["invalid_rate"] * 100, r0["price_input"],
               r0["price_output"], r0["batch_factor"], r0["min_backlog"]),
           "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        out.append("| %s | %d | %.5f | %s | %d | %d | %d | %d | %d | %.1f |"
                   % (r["batch_mode"], r["records"], r["usd_per_1000"],
                      "%.2f" % r["vs_live"] if "vs_live" in r else "-",
                      r["batched"], r["batches"], r["reasked"],
                      r["live_requests"], r["dead_letters"], r["seconds"]))
    return "\n".join(out) + "\n"
