"""e2e.cost: every record's token headers are the sums of llmsim's usage
over the record's calls, by kind, and its extractd.cost_usd is their price.

llmsim, behind a recording proxy, answers with faults in the mix (429, 500,
malformed bodies: retries; invalid answers: re-asks), reports prompt
caching from 4 tokens (--cache-min-tokens 4: the system message and the
schema repeat across records) and 3 reasoning tokens an answer. Among the
Person texts are texts aged 999 (validation dead letters after the
re-asks) and texts with no person (refusal dead letters).

For each record, output or dead letter, the calls the proxy saw for its
text (retries and re-asks included) sum to its extractd.tokens.prompt,
.completion, .cached and .reasoning headers; its extractd.cost_usd is
((prompt - cached) x 0.15 + cached x 0.075 + completion x 0.6) / 1e6 to
the header's 12 decimals. Cached tokens appear on most records once the
prefix repeats; re-asks, retries and dead letters all occur; the metrics
extractd_llm_tokens_total (by kind) and extractd_cost_usd_total equal the
sums over the records.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
import opshelp  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

N = 120
N_OLD = 6       # aged 999: validation dead letters
N_NOBODY = 6    # no person: refusal dead letters
PRICE = {"input": 0.15, "cached_input": 0.075, "output": 0.6}
FAULTS = {"429": 0.08, "500": 0.08, "malformed": 0.04, "invalid": 0.2}
KINDS = ("prompt", "completion", "cached", "reasoning")


def usage(x):
    """(prompt, completion, cached, reasoning) of one exchange's answer."""
    u = (x.response or {}).get("usage") or {}
    return (u.get("prompt_tokens", 0), u.get("completion_tokens", 0),
            (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
            (u.get("completion_tokens_details") or {})
            .get("reasoning_tokens", 0))


def cost(prompt, completion, cached):
    return ((prompt - cached) * PRICE["input"] +
            cached * PRICE["cached_input"] +
            completion * PRICE["output"]) / 1e6


def body(h):
    h.start_kafka(partitions=2)
    sim = h.start_llmsim(latency_ms=5, faults=FAULTS, seed=17,
                         extra=["--cache-min-tokens", "4",
                                "--reasoning-tokens", "3"])
    rec = extraction.Recorder(h, sim.base_url)
    texts = person_texts(N, seed=23)
    texts += ["Old Timer #%d is a 999-year-old sage" % i
              for i in range(N_OLD)]
    texts += ["nobody to see here, case %d" % i for i in range(N_NOBODY)]
    check(len(set(texts)) == len(texts), "texts repeat")
    total = len(texts)
    h.produce([(None, t, i % 2) for i, t in enumerate(texts)])

    coll = h.collector()
    d = opshelp.start_extractd(h, {
        "llm": {"base_url": rec.base_url, "max_reasks": 2,
                "price": PRICE},
        "retry": {"max_attempts": 20, "base_delay_ms": 10,
                  "max_delay_ms": 100},
        "pool": {"workers": 4, "max_in_flight": 4},
    }, tag="cost")
    out, dlq = h.topics["output"], h.topics["dlq"]
    coll.until(lambda c: c.count() >= total, "%d records" % total,
               watch=[d])
    coll.poll(1.0)
    rec.check_bodies()
    check(coll.count() == total, "%d records, want %d", coll.count(), total)
    check(coll.count(dlq) == N_OLD + N_NOBODY, "%d dead letters, want %d",
          coll.count(dlq), N_OLD + N_NOBODY)

    calls = rec.by_text()
    sums = dict.fromkeys(KINDS, 0)
    cost_sum = 0.0
    with_cached = reasked = retried = 0
    for topic in (out, dlq):
        for r in coll.records[topic]:
            text = r.value.decode() if topic == dlq else None
            if text is None:
                # An output's text: the only text whose calls answered
                # with its name.
                name = r.json()["name"]
                text = next(t for t in texts
                            if t.strip().startswith(name + " is "))
            xs = calls.get(text, [])
            check(xs, "%s: no call for %r", r.where(), text)
            want = [sum(usage(x)[k] for x in xs) for k in range(4)]
            got = [r.int_header("extractd.tokens." + k) for k in KINDS]
            check(got == want, "%s: tokens %r (prompt, completion, cached, "
                  "reasoning), want the sums %r over its %d calls",
                  r.where(), got, want, len(xs))
            answered = sum(1 for x in xs if x.response and
                           "choices" in x.response)
            check(want[3] == 3 * answered, "%s: %d reasoning tokens over "
                  "%d answers", r.where(), want[3], answered)
            c = float(r.header("extractd.cost_usd"))
            check(abs(c - cost(want[0], want[1], want[2])) < 1e-12,
                  "%s: extractd.cost_usd %s, want %.12f", r.where(),
                  r.header("extractd.cost_usd"),
                  cost(want[0], want[1], want[2]))
            for k, v in zip(KINDS, got):
                sums[k] += v
            cost_sum += c
            with_cached += got[2] > 0
            asked = sum(1 for x in xs if x.status == 200 and
                        len(x.messages) > 2)
            reasked += asked > 0
            retried += any(x.status != 200 or x.response is None
                           for x in xs)
            if topic == dlq:
                check(r.header("extractd.error") in
                      ("validation", "llm_refusal"),
                      "%s: dead letter %r", r.where(),
                      r.header("extractd.error"))
    log("%d records: %r tokens, $%.6f; %d with cached tokens, %d re-asked, "
        "%d retried", total, sums, cost_sum, with_cached, reasked, retried)
    check(with_cached >= total // 2, "only %d of %d records had cached "
          "tokens: the prefix repeats", with_cached, total)
    check(reasked > 0 and retried > 0, "no re-ask (%d) or no retry (%d)",
          reasked, retried)

    m = opshelp.parse_metrics(d.metrics())
    for k in KINDS:
        got = m.get('extractd_llm_tokens_total{kind="%s"}' % k)
        check(got == sums[k], "metric tokens %s = %r, headers sum to %d",
              k, got, sums[k])
    got = m.get("extractd_cost_usd_total")
    check(got is not None and abs(got - cost_sum) < 1e-9,
          "extractd_cost_usd_total = %r, headers sum to %.12f", got,
          cost_sum)
    rc = d.terminate()
    check(rc == 0, "extractd exit status %d after SIGTERM", rc)


if __name__ == "__main__":
    harness.run(body)
