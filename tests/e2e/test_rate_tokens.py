"""e2e.rate_tokens: a configured budget of tokens a minute
(rate.tokens_per_minute) paces the calls while there is a backlog: the
tokens the API serves never run ahead of the bucket, and, because each
call's estimate is corrected from the answer's usage, the budget is used,
not wasted on the estimates.

llmsim answers fast (5 ms) and counts, in /stats "tokens", the
usage.total_tokens of every answer as the call arrives. A call is
estimated at request bytes / 4 + 256 (llm.max_tokens unset), several
times what llmsim's usage says it costs (its prompt counts only the
messages' text, its answer is a short Person). The budget is 36000 a
minute: 600 tokens a second, and a burst of one second's worth, more than
one estimate, so no call waits for a bucket that is merely full.

Upper bound: a call starts only once the bucket, refilled since the first
call and corrected by the answers so far, pays for its estimate, and an
estimate is never below what the call costs; so from the first call on,
tokens served <= burst + 600/s * (time since). The test polls llmsim's
count and checks that at every poll, timing from the last poll that saw
no call (the bound errs on the generous side by a poll interval: SLACK).
A slow machine only lowers the count.

Lower bound: over the backlog at least half the budget is served. Paced
on the estimates alone (no correction) it would be about a tenth, as
llmsim's usage is; a loaded machine still sends 4 calls at once fast
enough for half. The 300 records all come out, with no dead letter.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, person_texts  # noqa: E402

N = 300
TPM = 36000
RATE = TPM / 60.0       # tokens a second
BURST = RATE            # the bucket holds one second's worth
POLL = 0.1              # seconds between two reads of llmsim's count
SLACK = 2 * POLL * RATE  # tokens: a poll interval's worth, and the send
MIN_SHARE = 0.5         # of the budget, over the backlog


def body(h):
    h.start_kafka(partitions=2)
    h.start_llmsim(latency_ms=5)
    coll = h.collector()
    d, _ = h.start_extractd({
        "rate": {"tokens_per_minute": TPM},
        "pool": {"workers": 4, "max_in_flight": 4},
    })
    # extractd's start-up check of the request format is a call too: the
    # records come after it, and the count starts with them.
    end = time.monotonic() + harness.DEADLINE
    while "takes the request format" not in d.proc.log_text():
        d.check_running()
        check(time.monotonic() < end, "no start-up check of the format "
              "after %ds", harness.DEADLINE)
        time.sleep(0.1)
    time.sleep(1.0)     # the bucket refills what the check took
    h.llm.reset()
    h.produce([(None, t, None) for t in person_texts(N, seed=11)])

    harness.check_bucket(h, d, N, "tokens", RATE, BURST, SLACK,
                         min_share=MIN_SHARE, poll=POLL)
    coll.until(lambda c: c.count() >= N, "%d records" % N, watch=[d])
    check(coll.count(h.topics["dlq"]) == 0, "dead letters: %d",
          coll.count(h.topics["dlq"]))


if __name__ == "__main__":
    harness.run(body)
