"""e2e.answer_cache: a text asked again is answered from the cache.

A corpus of 100 records, 30 of them repeating a text among the first 70
(30 % duplicates). With cache.entries on, the 70 originals are fed first
and answered, then the 30 repeats: llmsim sees exactly 70 calls (30 %
fewer than 100), the metrics count 30 hits, 70 misses and 70 entries, and
each repeat's output carries extractd.cached = true, zero tokens and zero
attempts. Then a second group reads the same 100 records with the cache
off: 100 calls, and for every input record the same output value, key
and headers as with the cache, apart from the cache's own (cached,
tokens, attempts) and the latency.
"""

import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

ORIGINALS = 70
REPEATS = 30
# Headers that may differ between a cached answer and a paid one.
CACHE_HEADERS = {"extractd.cached", "extractd.tokens.prompt",
                 "extractd.tokens.completion", "extractd.attempts",
                 "extractd.latency_ms"}


def run(h, coll, cache_entries, feeds):
    """Start extractd (cache.entries given) on a new group, feed each
    list of records and wait for its outputs; returns (its outputs, the
    metrics samples, llmsim's request count, seconds)."""
    h.llm.reset()
    first = coll.count()
    t0 = time.monotonic()
    d = opshelp.start_extractd(h, {
        "cache": {"entries": cache_entries},
        "kafka": {"group": h.unique("group-%d" % cache_entries)},
    }, tag="cache-%d" % cache_entries)
    want = first
    for records in feeds:
        if records:
            h.produce(records)
        want += len(records) if records else ORIGINALS + REPEATS
        coll.until(lambda c: c.count() >= want, "%d outputs" % want,
                   watch=[d])
    seconds = time.monotonic() - t0
    samples = opshelp.parse_metrics(d.metrics())
    requests = h.llm.stats()["requests"]
    rc = d.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)
    out = coll.records[h.topics["output"]][first:want]
    log("cache.entries %d: %d outputs, %d LLM calls, %.2f s",
        cache_entries, len(out), requests, seconds)
    return out, samples, requests, seconds


def body(h):
    h.start_kafka(partitions=2)
    h.start_llmsim(latency_ms=50)
    coll = h.collector()
    texts = person_texts(ORIGINALS, seed=17)
    rnd = random.Random(17)
    repeats = rnd.sample(range(ORIGINALS), REPEATS)
    originals = [(("o-%d" % i).encode(), t, None)
                 for i, t in enumerate(texts)]
    dups = [(("d-%d" % i).encode(), texts[i], None) for i in repeats]

    # The cache on: the repeats come once their originals are answered,
    # so each one is a hit.
    cached, s, calls, _ = run(h, coll, 1000, [originals, dups])
    check(calls == ORIGINALS + harness.STARTUP_CHECKS,
          "with the cache: %d LLM calls for %d texts of which %d repeat, "
          "want %d (and %d health check)", calls, ORIGINALS + REPEATS,
          REPEATS, ORIGINALS, harness.STARTUP_CHECKS)
    for name, want in (("extractd_answer_cache_hits_total", REPEATS),
                       ("extractd_answer_cache_misses_total", ORIGINALS),
                       ("extractd_answer_cache_entries", ORIGINALS)):
        check(s.get(name) == want, "%s = %r, want %d", name, s.get(name),
              want)
    n_cached = 0
    for r in cached:
        is_dup = r.key.startswith(b"d-")
        check((r.header("extractd.cached") == "true") == is_dup,
              "%s (key %r): extractd.cached %r", r.where(), r.key,
              r.header("extractd.cached"))
        if is_dup:
            n_cached += 1
            for name in ("extractd.tokens.prompt",
                         "extractd.tokens.completion", "extractd.attempts"):
                check(r.int_header(name) == 0, "%s: cached output with %s "
                      "= %r", r.where(), name, r.header(name))
    check(n_cached == REPEATS, "%d cached outputs, want %d", n_cached,
          REPEATS)

    # The cache off, another group over the same 100 records.
    plain, s, calls, _ = run(h, coll, 0, [None])
    check(calls == ORIGINALS + REPEATS + harness.STARTUP_CHECKS,
          "without the cache: %d LLM calls, want %d", calls,
          ORIGINALS + REPEATS + harness.STARTUP_CHECKS)
    check(s.get("extractd_answer_cache_hits_total") == 0,
          "cache off, yet %r hits", s.get("extractd_answer_cache_hits_total"))

    # The same records either way, apart from the cache's headers.
    def by_source(records):
        out = {}
        for r in records:
            check(r.source() not in out, "two outputs for %s", r.source())
            out[r.source()] = r
        return out

    a, b = by_source(cached), by_source(plain)
    check(set(a) == set(b) and len(a) == ORIGINALS + REPEATS,
          "outputs for %d and %d sources", len(a), len(b))
    for src, ra in a.items():
        rb = b[src]
        check(ra.value == rb.value and ra.key == rb.key,
              "%s: cached %r / %r, paid %r / %r", src, ra.key, ra.value,
              rb.key, rb.value)
        ha = {k: v for k, v in ra.headers.items() if k not in CACHE_HEADERS}
        hb = {k: v for k, v in rb.headers.items() if k not in CACHE_HEADERS}
        check(ha == hb, "%s: headers %r with the cache, %r without", src,
              ha, hb)
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %r",
          coll.records[h.topics["dlq"]][:3])
    log("%d repeats of %d records answered from the cache: %d calls "
        "instead of %d, the same outputs", REPEATS, ORIGINALS + REPEATS,
        ORIGINALS, ORIGINALS + REPEATS)


if __name__ == "__main__":
    harness.run(body)
