"""e2e.window: an answered record gives its LLM slot back, within a window.

Ordered mode, one partition, pool.max_in_flight = C = 4. The first text is
answered after SLOW_MS, every other one after 20 ms. While the first call
is open, nothing can be delivered (offset order), yet the calls go on: each
answered record gives its slot back while at most C answered records wait,
so exactly 2 C = 8 texts reach llmsim (the slow one, C answered records
waiting without a slot and C - 1 answered but still holding theirs) and no
more until the slow answer comes. Without the window the calls stop at C; without its bound they go
on through the whole backlog. Then every record comes out once, in offset
order, exact, and llmsim never saw more than C requests open at once.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import SLOW_TEXT, check, expected_person, log, person_texts  # noqa: E402,E501

C = 4
SLOW_MS = 6000
MORE = 40


def body(h):
    texts = [SLOW_TEXT] + person_texts(MORE, seed=21)
    h.start_kafka(partitions=1)
    h.start_llmsim(latency_ms=20,
                   extra=["--answers", harness.slow_answers(h, SLOW_MS)])
    h.produce([(("w-%d" % i).encode(), t.encode(), 0)
               for i, t in enumerate(texts)])
    coll = h.collector()
    d, group = h.start_extractd({
        "output": {"ordering": "offset", "partitioning": "source"},
        "pool": {"workers": C, "max_in_flight": C},
    })

    want = 2 * C + harness.STARTUP_CHECKS
    end = time.monotonic() + 30
    while h.llm.stats()["requests"] < want:
        d.check_running()
        check(time.monotonic() < end, "llmsim saw %d requests in 30 s, "
              "want %d", h.llm.stats()["requests"], want)
        time.sleep(0.05)
    # The window is full: nothing more may reach llmsim until the slow
    # answer. Look again a little later, while it is still pending (no
    # output yet proves it was).
    time.sleep(1.0)
    seen = h.llm.stats()["requests"]
    coll.poll(0.2)
    check(coll.count() == 0, "%d outputs before the slow answer, in offset "
          "order", coll.count())
    check(seen == want, "with the first call open, llmsim saw %d requests; "
          "want %d (the health check, the slow call, C = %d answered "
          "without a slot and C - 1 answered holding theirs)", seen, want,
          C)
    log("slow call open: %d requests, 0 outputs", seen)

    coll.until(lambda c: c.count() >= len(texts),
               "%d outputs" % len(texts), watch=[d])
    coll.poll(0.5)
    offsets = []
    for r in coll.records[h.topics["output"]]:
        _, _, off = r.source()
        offsets.append(off)
        check(r.json() == expected_person(texts[off]), "%s: %r", r.where(),
              r.value)
    check(offsets == list(range(len(texts))), "output offsets %r", offsets)
    stats = h.llm.stats()
    check(stats["peak_concurrent"] <= C, "llmsim saw %d requests open at "
          "once, max_in_flight %d", stats["peak_concurrent"], C)
    check(stats["requests"] == len(texts) + harness.STARTUP_CHECKS,
          "llmsim saw %d requests for %d texts and the health check",
          stats["requests"], len(texts))
    h.stop_at_end(group, d)


if __name__ == "__main__":
    harness.run(body)
