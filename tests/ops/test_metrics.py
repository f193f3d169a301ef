"""ops.metrics: /metrics moves with traffic, agrees with what happened,
and passes promtool.

N texts go in over 3 partitions: good ones, ones llmsim refuses, ones with
an age the schema rejects (re-asked twice, then dead-lettered), and one too
long for input.max_bytes; llmsim answers 503 now and then (retried). Then:
records_total and dead_letters_total equal what the output and dead-letter
topics hold; llm_requests_total equals what llmsim counted, status by
status; the histogram's count equals the requests and its buckets are
cumulative; retries{server_error} equals the 503s; reasks equal 2 per
validation dead letter; tokens cover the output headers' tokens; inflight
is back to 0; consumer_lag appears for every input partition and drains to
0; build_info carries `extractd --version`. (statistics.interval.ms is
set to 1 s through kafka.properties, so the lag is seen while it is
non-zero.) Scrapes taken while the work
runs and at the end both pass `promtool check metrics`.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, family, harness, log, parse_metrics  # noqa: E402

PARTITIONS = 3
GOOD = 60
REFUSED = 6
INVALID = 4


def body(h):
    h.start_kafka(partitions=PARTITIONS)
    h.start_llmsim(latency_ms=200, jitter_ms=50, faults={"503": 0.1},
                   seed=7)
    texts = harness.person_texts(GOOD, seed=11)
    texts += ["nothing to extract here, #%d" % i for i in range(REFUSED)]
    texts += ["Old Timer %d is a 999-year-old sailor" % i
              for i in range(INVALID)]
    texts += ["x" * 300]  # past input.max_bytes: an input dead letter
    n = len(texts)
    h.produce([(("k%d" % i).encode(), t, i % PARTITIONS)
               for i, t in enumerate(texts)])

    coll = h.collector()
    d = opshelp.start_extractd(h, {
        "pool": {"workers": 8, "max_in_flight": 8},
        "retry": {"max_attempts": 8, "base_delay_ms": 20,
                  "max_delay_ms": 200},
        "input": {"max_bytes": 200},
    }, sets=["kafka.properties.statistics.interval.ms=1000"])
    out, dlq = h.topics["output"], h.topics["dlq"]

    # Mid-traffic scrapes must be valid too.
    mid = None
    max_lag = 0
    end = time.monotonic() + harness.DEADLINE
    while coll.count() < n:
        d.check_running()
        text = d.metrics()
        s = parse_metrics(text)
        done = sum(family(s, "extractd_records_total").values())
        max_lag = max([max_lag] +
                      list(family(s, "extractd_consumer_lag").values()))
        if mid is None and 0 < done < n:
            mid = text
            opshelp.promtool(mid)
            log("mid-traffic scrape at %d/%d records, inflight %d", done,
                n, s["extractd_inflight"])
        check(time.monotonic() < end, "timed out: %s", coll.summary())
        coll.poll(0.1)
    coll.poll(1.0)
    check(mid is not None, "no scrape caught the work in progress")
    check(max_lag > 0, "consumer_lag never showed the backlog")
    log("largest consumer_lag seen while working: %d", max_lag)
    check(coll.count() == n, "want %d records out, got %s", n,
          coll.summary())

    outputs, dead = coll.records[out], coll.records[dlq]
    kinds = {}
    for r in dead:
        kinds[r.header("extractd.error")] = \
            kinds.get(r.header("extractd.error"), 0) + 1
    log("outputs %d, dead letters %s", len(outputs), kinds)
    check(kinds.get("llm_refusal") == REFUSED and
          kinds.get("validation") == INVALID and kinds.get("input") == 1,
          "unexpected dead letters %s", kinds)

    # The delivery reports land a moment after the records are readable.
    deadline = time.monotonic() + 30
    while True:
        s = parse_metrics(d.metrics())
        rec = family(s, "extractd_records_total")
        if sum(rec.values()) == n and s["extractd_inflight"] == 0:
            break
        check(time.monotonic() < deadline, "records_total %s, inflight "
              "%s; want %d and 0", rec, s["extractd_inflight"], n)
        time.sleep(0.2)

    check(rec == {'{result="ok"}': len(outputs),
                  '{result="dead_letter"}': len(dead)},
          "records_total %s; want ok=%d dead_letter=%d", rec, len(outputs),
          len(dead))
    dl = family(s, "extractd_dead_letters_total")
    for kind in ("input", "validation", "llm_http", "llm_timeout",
                 "llm_refusal", "other"):
        want = kinds.get(kind, 0)
        got = dl.get('{error="%s"}' % kind)
        check(got == want, "dead_letters_total{error=%s} = %s, want %d",
              kind, got, want)

    stats = h.llm.stats()
    reqs = family(s, "extractd_llm_requests_total")
    by_status = {k[len('{status="'):-2]: v for k, v in reqs.items()}
    log("llm_requests_total %s; llmsim saw %s", by_status,
        stats["by_status"])
    check(sum(reqs.values()) == stats["requests"],
          "llm_requests_total sums to %d, llmsim counted %d",
          sum(reqs.values()), stats["requests"])
    for code, cnt in stats["by_status"].items():
        check(by_status.get(code) == cnt,
              "llm_requests_total{status=%s} = %s, llmsim counted %d", code,
              by_status.get(code), cnt)
    check(by_status.get("503", 0) > 0, "the 503 fault never fired")

    hist = family(s, "extractd_llm_request_duration_seconds_bucket")
    count = s["extractd_llm_request_duration_seconds_count"]
    check(count == stats["requests"], "histogram count %d, requests %d",
          count, stats["requests"])
    les = sorted(((float(k[len('{le="'):-2]), v) for k, v in hist.items()),
                 key=lambda kv: kv[0])
    check(les[-1][0] == float("inf") and les[-1][1] == count,
          "+Inf bucket %s, count %d", les[-1], count)
    check(max(le for le, _ in les[:-1]) == 120.0,
          "buckets do not reach 120 s: %s", les)
    check(all(a[1] <= b[1] for a, b in zip(les, les[1:])),
          "buckets not cumulative: %s", les)
    total_s = s["extractd_llm_request_duration_seconds_sum"]
    check(0.1 * count < total_s < 120 * count,
          "duration sum %.3f s for %d calls of ~200 ms", total_s, count)

    retries = family(s, "extractd_llm_retries_total")
    check(retries['{reason="server_error"}'] ==
          stats["by_status"].get("503", 0),
          "retries{server_error} %s, llmsim sent %s 503s", retries,
          stats["by_status"].get("503"))
    check(s["extractd_reasks_total"] == 2 * INVALID,
          "reasks_total %d, want %d (2 re-asks per invalid text)",
          s["extractd_reasks_total"], 2 * INVALID)

    tokens = family(s, "extractd_llm_tokens_total")
    header_prompt = sum(r.int_header("extractd.tokens.prompt")
                        for r in outputs)
    header_completion = sum(r.int_header("extractd.tokens.completion")
                            for r in outputs)
    check(tokens['{kind="prompt"}'] >= header_prompt > 0 and
          tokens['{kind="completion"}'] >= header_completion > 0,
          "tokens_total %s below the outputs' headers (%d, %d)", tokens,
          header_prompt, header_completion)

    # Lag: from librdkafka's statistics (every 5 s), per input partition,
    # down to 0 once the offsets are committed.
    deadline = time.monotonic() + 45
    while True:
        s = parse_metrics(d.metrics())
        lag = family(s, "extractd_consumer_lag")
        want = {'{topic="%s",partition="%d"}' % (h.topics["input"], p)
                for p in range(PARTITIONS)}
        if set(lag) == want and not any(lag.values()):
            break
        check(time.monotonic() < deadline, "consumer_lag %s; want 0 for "
              "%s", lag, sorted(want))
        time.sleep(0.5)
    log("consumer_lag %s", lag)

    version = subprocess.run([h.binary("extractd"), "--version"],
                             stdout=subprocess.PIPE, check=True,
                             timeout=10).stdout.decode().split()[-1]
    check(s.get('extractd_build_info{version="%s"}' % version) == 1,
          "no build_info for version %s", version)

    final = d.metrics()
    opshelp.promtool(final)
    check(d.terminate() == 0, "extractd did not exit 0")


if __name__ == "__main__":
    harness.run(body)
