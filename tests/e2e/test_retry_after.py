"""e2e.retry_after: a 429 whose only hint is Retry-After (no
retry-after-ms, no x-ratelimit-*, as many servers send it) is waited out:
in seconds, and as an HTTP date.

llmsim runs with --no-rate-headers and an answers file whose entries
answer one record's first call 429 with "Retry-After: 3" and another's
with a Retry-After date 4 s ahead, each once ("times": 1), then the
Person. retry.base_delay_ms is 100, so an extractd that ignored the
header would call again after about 0.1 s. After extractd's start-up
check of the request format, the records go one at a time, llmsim's
counters reset before each: it sees exactly two calls, the 429
and the retry, and the gap between their arrivals, measured on llmsim's
clock, is a lower bound that a slow machine only lengthens:
- seconds: the retry comes at least 3 s after the 429 was answered,
  which was after it arrived (10 ms allowed for llmsim's ms rounding);
- date: llmsim writes now + 4 s in whole seconds (rounded down), and
  extractd reads it against its own whole-second clock, so the wait is
  more than 3 s after the 429 (100 ms allowed for the rounding).
Then each record comes out as its Person, with no dead letter.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log  # noqa: E402

SECS = 3                # Retry-After: 3
DATE_SECS = 4           # Retry-After: <now + 4 s as an HTTP date>
BASE_DELAY_MS = 100     # what a retry without the hint would wait

CASES = (
    # (name, text, answers-file members, least gap in ms)
    ("seconds", "Ann Retry-Seconds is a 41-year-old nurse",
     {"retry_after": SECS}, SECS * 1000 - 10),
    ("date", "Bob Retry-Date is a 52-year-old baker",
     {"retry_after_date": DATE_SECS}, (DATE_SECS - 1) * 1000 - 100),
)


def body(h):
    h.start_kafka(partitions=1)
    answers = os.path.join(h.dir, "retry-after-answers.jsonl")
    with open(answers, "w") as f:
        for _, text, members, _ in CASES:
            entry = {"match": text.split(" is ")[0], "status": 429,
                     "times": 1, "type": "requests",
                     "code": "rate_limit_exceeded",
                     "content": "Rate limit reached for requests "
                                "(llmsim). Please try again later."}
            entry.update(members)
            f.write(json.dumps(entry) + "\n")
    h.start_llmsim(latency_ms=5, extra=["--answers", answers,
                                        "--no-rate-headers"])
    coll = h.collector()
    d, _ = h.start_extractd({
        "retry": {"base_delay_ms": BASE_DELAY_MS, "max_delay_ms": 1000},
    })
    # extractd's start-up check of the request format is a call too: let
    # it pass before counting.
    end = time.monotonic() + harness.DEADLINE
    while "takes the request format" not in d.proc.log_text():
        d.check_running()
        check(time.monotonic() < end, "no start-up check of the format "
              "after %ds", harness.DEADLINE)
        time.sleep(0.1)
    for n, (name, text, _, least_ms) in enumerate(CASES, 1):
        h.llm.reset()
        h.produce([(None, text, 0)])
        coll.until(lambda c: c.count(h.topics["output"]) >= n,
                   "the %s record" % name, watch=[d])
        st = h.llm.stats()
        check(st["requests"] == 2 and
              st["by_status"] == {"429": 1, "200": 1},
              "%s: llmsim saw %d calls, %r; want the 429 and one retry",
              name, st["requests"], st["by_status"])
        gap = st["last_arrival_ms"] - st["first_arrival_ms"]
        log("%s: the retry came %d ms after the 429 (at least %d ms)",
            name, gap, least_ms)
        check(gap >= least_ms, "%s: the retry came %d ms after the 429; "
              "Retry-After asked for at least %d ms", name, gap, least_ms)
        out = json.loads(coll.records[h.topics["output"]][-1].value)
        check(out["name"] == text.split(" is ")[0],
              "%s: the output is %r", name, out)
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %d",
          coll.count(h.topics["dlq"]))


if __name__ == "__main__":
    harness.run(body)
