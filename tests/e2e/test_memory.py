"""e2e.memory: RSS stays flat under a large backlog and a slow LLM.

Proves DESIGN.md's "memory is bounded by configuration, not by backlog
size": 200,000 small texts wait on 4 partitions before extractd starts, the
LLM takes 200 ms per answer with pool.max_in_flight = 64, so extractd works
through a few thousand records while the rest stays a backlog. From the
first output on, extractd's VmRSS is sampled every 0.5 s for 15 s: it must
not grow (the peak at most RSS_GROWTH_MAX above the sample at 3 s, when
librdkafka's fetch queues have filled) and must stay under RSS_MAX.

What bounds it (docs/delivery.md, "Memory"): 2 x max_in_flight jobs (each
holds its input message and answer), the held queue (max(max_in_flight,
16) messages), and librdkafka's per-partition prefetch, which extractd's
consumer defaults cap (queued.min.messages, queued.max.messages.kbytes;
librdkafka's own defaults allow 64 MiB per consumer). Under a sanitizer
RSS is not the program's (ASan's quarantine keeps freed memory), so the
test is skipped there.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

MIB = 1 << 20
RECORDS = 200000
PARTITIONS = 4
LATENCY_MS = 200
IN_FLIGHT = 64
SAMPLE_S = 0.5
WATCH_S = 15.0
SETTLE_S = 3.0
RSS_GROWTH_MAX = 4 * MIB
RSS_MAX = 48 * MIB        # librdkafka's prefetch defaults alone reach ~63


def produce_backlog(h, n):
    """n texts, one per line, through kcat (fast), n / PARTITIONS to each
    partition."""
    path = os.path.join(h.dir, "backlog.txt")
    texts = person_texts(1000, seed=11)
    with open(path, "w") as f:
        for i in range(n // PARTITIONS):
            f.write(texts[i % len(texts)].strip() + "\n")
    t = time.monotonic()
    for p in range(PARTITIONS):
        subprocess.run(["kcat", "-P", "-b", h.kafka.bootstrap,
                        "-t", h.topics["input"], "-p", str(p), "-l",
                        "-z", "none", "-X", "linger.ms=50",
                        "-X", "batch.num.messages=10000",
                        "-X", "queue.buffering.max.messages=1000000", path],
                       check=True, timeout=300, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    end = h.end_offsets()
    check(sum(end.values()) == n, "backlog: end offsets %r, want %d in all",
          end, n)
    log("backlog of %d records in %.1fs: %r", n, time.monotonic() - t, end)


def body(h):
    if h.sanitized():
        harness.skip("sanitizer build, RSS is not the program's")
    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=LATENCY_MS)
    produce_backlog(h, RECORDS)

    coll = h.collector([h.topics["output"]])
    d, _ = h.start_extractd({
        "pool": {"workers": IN_FLIGHT, "max_in_flight": IN_FLIGHT}})
    coll.until(lambda c: c.count() > 0, "the first output", watch=[d])

    t0 = time.monotonic()
    samples = []   # (seconds since the first output, RSS bytes)
    while time.monotonic() - t0 < WATCH_S:
        d.check_running()
        samples.append((time.monotonic() - t0, d.proc.rss_bytes()))
        coll.poll(SAMPLE_S)
    done = coll.count()
    log("RSS (MiB) every %.1fs: %s", SAMPLE_S,
        " ".join("%.1f" % (r / MIB) for _, r in samples))
    log("%d outputs in %.0fs (%.0f/s)", done, WATCH_S, done / WATCH_S)

    check(done < RECORDS // 2, "the backlog ran out (%d done): no backlog "
          "left to measure against", done)
    at_settle = next(r for s, r in samples if s >= SETTLE_S)
    peak = max(r for _, r in samples)
    log("RSS at %.0fs %.1f MiB, peak %.1f MiB (growth %.1f MiB)", SETTLE_S,
        at_settle / MIB, peak / MIB, (peak - at_settle) / MIB)
    check(peak - at_settle <= RSS_GROWTH_MAX,
          "RSS grew by %.1f MiB after %.0fs (limit %.0f MiB): not flat",
          (peak - at_settle) / MIB, SETTLE_S, RSS_GROWTH_MAX / MIB)
    check(peak <= RSS_MAX, "RSS peaked at %.1f MiB, over %.0f MiB",
          peak / MIB, RSS_MAX / MIB)

    rc, _ = d.terminate(60)
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)


if __name__ == "__main__":
    harness.run(body)
