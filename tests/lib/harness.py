"""harness: what extractd's end-to-end tests share (and the ops and
realmodel tests, through opshelp.py and llamacpp.py).

A test is one script, tests/e2e/test_<name>.py (or tests/ops/,
tests/realmodel/), run by ctest as

    /usr/bin/python3 test_<name>.py --bin BUILD/bin --source REPO

It finds this module by putting tests/lib/ first on sys.path.

Its body is a function taking a Harness; harness.run(body) calls it and turns
the outcome into the exit status (0 pass, 1 fail) and, on failure, prints the
tail of every log the test produced.

The Harness owns everything the test starts: a Kafka (kafka-embedded, or the
cluster named by env KAFKA_BOOTSTRAP, where topics get unique names through the
Admin API), llmsim, extractd, and the Kafka clients. All of it lives in a
private temp dir, listens on ephemeral ports, and is stopped in close(), which
run() calls in a finally and atexit calls again should the interpreter leave
some other way. Child processes also get PR_SET_PDEATHSIG, so a test killed by
ctest's timeout does not leave a broker or a daemon behind. A sanitizer's
report in any child's log (ASan, LSan, TSan, UBSan) fails the test, whatever
the checks said.

Waiting is always "short polls until a condition holds or a deadline passes":
deadlines are generous (DEADLINE seconds) so a slow machine does not fail a
test, and a test finishes as soon as its condition is met.
"""

import argparse
import atexit
import bisect
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid

from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)

import llmsim
# What every test uses through harness: check, log, skip, TestFailure, Proc.
from procs import (LOG_TAIL, T0, Proc, TestFailure, check, log,  # noqa: F401
                   log_tail, skip)

DEADLINE = 120.0        # seconds: the default wait for any condition
POLL = 0.2              # seconds: one consumer poll / process check

SCHEMA_REL = "schemas/person.schema.json"

# The seed's seven texts (seed/learn-async.md) and what llmsim extracts.
SEED_TEXTS = [
    "John Smith is a 30-year-old software engineer",
    "Sarah Johnson is a 25-year-old data scientist",
    "Mike Davis is a 35-year-old product manager",
    "Lisa Wilson is a 28-year-old UX designer",
    "Tom Brown is a 32-year-old DevOps engineer",
    "Emma Garcia is a 27-year-old frontend developer",
    "David Lee is a 33-year-old backend developer",
]

DLQ_KINDS = ("input", "validation", "llm_http", "llm_timeout", "llm_refusal",
             "output_too_large")

# extractd's health check (common/llm.c): it finds the request format the
# server takes before the first record's call, so each extractd start
# sends STARTUP_CHECKS of them to a server that takes the configured mode.
HEALTH_CHECK_TEXT = "extractd health check: nothing to extract here."
STARTUP_CHECKS = 1


# A report of ASan, LSan, TSan or UBSan ("file:line:col: runtime error:").
_SANITIZER_RE = re.compile(r"(ERROR: (Address|Leak)Sanitizer|"
                           r"WARNING: ThreadSanitizer|"
                           r"^\S+:\d+:\d+: runtime error: )")


# --------------------------------------------------------------------------
# Records


class Record:
    """One consumed Kafka record, decoded for checks."""

    __slots__ = ("topic", "partition", "offset", "key", "value", "headers",
                 "timestamp")

    def __init__(self, msg):
        self.topic = msg.topic()
        self.partition = msg.partition()
        self.offset = msg.offset()
        self.key = msg.key()
        self.value = msg.value()
        self.timestamp = msg.timestamp()[1]
        self.headers = {}
        for k, v in msg.headers() or []:
            # Every extractd header is set once; a repeat is a bug to see.
            if k in self.headers:
                raise TestFailure("record %s/%d/%d repeats header %r" %
                                  (self.topic, self.partition, self.offset, k))
            self.headers[k] = v

    def header(self, name):
        """A header as text, or None when absent."""
        v = self.headers.get(name)
        return None if v is None else v.decode("utf-8")

    def int_header(self, name):
        """A header that must hold a non-negative decimal integer."""
        v = self.header(name)
        if v is None or not v.isdigit() or (len(v) > 1 and v[0] == "0"):
            raise TestFailure("%s: header %s = %r is not a decimal integer" %
                              (self.where(), name, v))
        return int(v)

    def source(self):
        """extractd.source "topic/partition/offset" as (topic, p, offset)."""
        v = self.header("extractd.source")
        check(v is not None, "%s: no extractd.source header", self.where())
        parts = v.rsplit("/", 2)
        check(len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit(),
              "%s: extractd.source %r is not topic/partition/offset",
              self.where(), v)
        return parts[0], int(parts[1]), int(parts[2])

    def json(self):
        try:
            return json.loads(self.value.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, AttributeError) as e:
            raise TestFailure("%s: value %r is not JSON: %s" %
                              (self.where(), self.value, e))

    def where(self):
        return "%s/%d/%d" % (self.topic, self.partition, self.offset)

    def __repr__(self):
        return "Record(%s key=%r value=%r headers=%r)" % (
            self.where(), self.key, self.value, self.headers)


# llmsim's pattern (DESIGN.md). Only ASCII blanks are used around texts:
# Python's \s also matches Unicode spaces, PCRE2 without UCP does not.
_PERSON_RE = re.compile(r"\s*(.+?) is an? ([0-9]{1,3})-year-old (.+?)\.?\s*")


def expected_person(text):
    """What llmsim answers for text, or None when it refuses (its regex)."""
    m = _PERSON_RE.fullmatch(text)
    if m is None:
        return None
    return {"name": m.group(1), "age": int(m.group(2)),
            "occupation": m.group(3)}


def murmur2(data):
    """Kafka's murmur2 hash of bytes (Java's Utils.murmur2, unsigned)."""
    m, n = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ n) & 0xFFFFFFFF
    for i in range(0, n - n % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[n - n % 4:]
    if tail:
        for j in reversed(range(len(tail))):
            h ^= tail[j] << (8 * j)
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def key_partition(key, partitions):
    """The partition librdkafka's murmur2(_random) partitioner, like
    Java's default, gives a (non-NULL) key among partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# A text llmsim answers slowly with slow_answers(): the Person its regex
# gives, so expected_person() holds for it too.
SLOW_TEXT = "Slow Sam is a 40-year-old snail keeper"


def slow_answers(h, delay_ms, more=()):
    """Write an llmsim --answers file that answers SLOW_TEXT after delay_ms
    (whatever --latency-ms says), and each (text, ms) of more after its
    ms; returns its path. The answers are what llmsim's regex would give,
    so the texts must be Person texts. Records held in flight for a while
    make a kill or a rebalance catch them mid-work."""
    path = os.path.join(h.dir, "slow-answers.jsonl")
    with open(path, "w") as f:
        for text, ms in [(SLOW_TEXT, delay_ms)] + list(more):
            want = expected_person(text)
            check(want is not None, "%r is no Person text", text)
            f.write(json.dumps({"match": text, "content": want,
                                "delay_ms": ms}) + "\n")
    return path


_FIRST = ["John", "Zoë", "José", "Björk", "Łukasz", "Søren", "Chloé", "Ömer",
          "Ana María", "Nguyễn Văn", "Иван", "Δημήτρης", "李", "Siobhán",
          "François", "Çağla", "Ngozi", "Aarav", "Mårten", "Jürgen", "Ilse",
          "Renée", "Tomás", "Dorothée", "Kwame", "Yū", "O'Brien", "Mary-Kate"]
_LAST = ["Smith", "Müller", "García", "Ødegaard", "Nowak", "Kowalczyk",
         "Dvořák", "Öztürk", "Šimková", "Petrov", "Παπαδόπουλος", "王",
         "Ní Bhriain", "Núñez", "Lefèvre", "Đorđević", "Okafor", "Sæther",
         "van der Berg", "Jones", "d'Arcy", "Åberg"]
_JOBS = ["software engineer", "data scientist", "product manager",
         "UX designer", "DevOps engineer", "frontend developer",
         "backend developer", "café owner", "Straßenbahnfahrer", "nurse",
         "ingénieure", "pâtissier", "teacher of 3rd-grade maths",
         "site reliability engineer (on call)", "электрик", "翻訳者",
         "glass-blower", "retired", "pilot", "barista & DJ"]


def wait_until(cond, what, watch=(), timeout=None):
    """Poll cond() every POLL seconds until it is true, with the
    processes in watch alive meanwhile; fails after timeout (DEADLINE)."""
    end = time.monotonic() + (timeout or DEADLINE)
    while not cond():
        for p in watch:
            p.check_running()
        check(time.monotonic() < end, "timed out waiting for: %s", what)
        time.sleep(POLL)


def person_texts(n, seed, first=0):
    """n texts llmsim extracts (UTF-8 names, ages 0..150, many jobs).

    Deterministic for a seed. Ages 0 and 150 (the schema's bounds) appear.
    Some end with a period or carry surrounding spaces, as the regex allows.
    """
    rnd = random.Random(seed)
    out = []
    for i in range(first, first + n):
        name = "%s %s" % (rnd.choice(_FIRST), rnd.choice(_LAST))
        age = (0, 150)[i % 2] if i % 97 == 0 else rnd.randint(0, 150)
        art = "an" if str(age)[0] == "8" or age in (11, 18) else "a"
        text = "%s #%d is %s %d-year-old %s" % (name, i, art, age,
                                                 rnd.choice(_JOBS))
        if i % 7 == 3:
            text += "."
        if i % 11 == 5:
            text = "  %s \t" % text
        out.append(text)
    return out


def insert_bad(values, bad, n, seed):
    """Insert n values of bad (bad[0], bad[1], ... in turn) into the list
    values, each at a random place; deterministic for a seed."""
    rnd = random.Random(seed)
    for i in range(n):
        values.insert(rnd.randrange(len(values) + 1), bad[i % len(bad)])


# --------------------------------------------------------------------------
# Processes


class Kafka:
    """A Kafka to test against: kafka-embedded, or env KAFKA_BOOTSTRAP."""

    def __init__(self, h, topics, topic_config=None, configs=None,
                 control=False):
        """topics: {name: partitions}; names made unique by the caller.

        topic_config: topic-level settings ({"max.message.bytes": ...}) for
        the topics made on an external cluster; the mock cluster has none.
        configs: {name: settings} for some topics, over topic_config.
        control: start kafka-embedded with its control socket (cmd());
        an external cluster has none (self.controlled is False).
        """
        self.proc = None
        self.created = []  # topics to delete again on an external cluster
        self.controlled = False
        self._ctl = None
        external = os.environ.get("KAFKA_BOOTSTRAP")
        if external:
            self.bootstrap = external
            self._create_topics(topics, topic_config or {}, configs or {})
            return
        argv = [h.binary("kafka-embedded")]
        if control:
            sock_path = os.path.join(h.dir, "kafka-control.sock")
            argv += ["--control", sock_path]
        for name, n in topics.items():
            argv += ["--topic", "%s:%d" % (name, n)]
        self.proc = Proc("kafka-embedded", argv,
                         os.path.join(h.dir, "kafka-embedded.log"),
                         stdout_pipe=True)
        h.procs.append(self.proc)
        self.bootstrap = self._first_line(self.proc, 30.0)
        log("kafka-embedded at %s", self.bootstrap)
        if control:
            # The socket is bound before the bootstrap line is printed.
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect(sock_path)
            self._ctl = (sock, sock.makefile("rw", encoding="utf-8"))
            self.controlled = True

    def cmd(self, line):
        """Run a kafka-embedded control command (see its --control help);
        returns the words after "ok"."""
        check(self._ctl is not None, "no kafka-embedded control socket")
        f = self._ctl[1]
        f.write(line + "\n")
        f.flush()
        reply = f.readline().strip()
        check(reply.startswith("ok"), "kafka-embedded control %r: %r", line,
              reply)
        return reply[2:].strip()

    @staticmethod
    def _first_line(proc, timeout):
        end = time.monotonic() + timeout
        buf = b""
        fd = proc.popen.stdout.fileno()
        while b"\n" not in buf:
            left = end - time.monotonic()
            check(left > 0, "kafka-embedded printed no bootstrap line in %ds",
                  timeout)
            r, _, _ = select.select([fd], [], [], min(left, POLL))
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise TestFailure(
                        "kafka-embedded exited (status %s) before printing "
                        "its bootstrap servers:\n%s" %
                        (proc.wait(5), proc.tail()))
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode().strip()
        check(line, "kafka-embedded printed an empty first line")
        return line

    def _create_topics(self, topics, topic_config, configs):
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        brokers = len(admin.list_topics(timeout=30).brokers)

        def config(t):
            c = dict(topic_config)
            c.update(configs.get(t, {}))
            return {k: str(v) for k, v in c.items()}

        futs = admin.create_topics(
            [NewTopic(t, num_partitions=n,
                      replication_factor=min(3, max(brokers, 1)),
                      config=config(t))
             for t, n in topics.items()], operation_timeout=30)
        for t, f in futs.items():
            f.result(timeout=60)
            self.created.append(t)
        log("created %s on %s (%d brokers)", ", ".join(topics),
            self.bootstrap, brokers)

    def close(self):
        """Delete the topics this test created on an external cluster."""
        if self._ctl is not None:
            for c in reversed(self._ctl):
                try:
                    c.close()
                except OSError:
                    pass
            self._ctl = None
        if not self.created:
            return
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for t, f in admin.delete_topics(self.created,
                                        operation_timeout=30).items():
            try:
                f.result(timeout=60)
            except KafkaException as e:
                log("could not delete topic %s: %s", t, e)
        self.created = []


class Llmsim(llmsim.Llmsim):
    """llmsim in the test's temp dir, on an ephemeral port, stopped in
    close(); latency and jitter 0 unless given."""

    def __init__(self, h, latency_ms=0, jitter_ms=0, **kw):
        super().__init__(h.binary("llmsim"), h.dir,
                         "llmsim-%d" % len(h.procs), latency_ms=latency_ms,
                         jitter_ms=jitter_ms, wait=False, **kw)
        h.procs.append(self.proc)
        self.wait_port()
        log("llmsim at %s (latency %d ms, jitter %d ms)", self.base,
            latency_ms, jitter_ms)


def check_bucket(h, d, calls, key, rate, burst, slack, min_share=0.5,
                 poll=0.1):
    """Poll llmsim's /stats every poll seconds until it has seen calls
    requests, and check that stats[key] ("requests", or "tokens" served)
    keeps within a token bucket of burst that refills at rate a
    second, from the first request on:

      - never ahead of it: at every poll, stats[key] <= burst + rate x
        (time since the first request) + slack, timed from the last poll
        that still saw no request (before the first, so the bound errs
        on the generous side by up to a poll interval: slack). A slow
        machine only lowers the count;
      - not starved: past the burst, at least min_share of rate a second
        from the first poll that saw a request to the last.

    d (the Extractd spending it) must run throughout; what was seen is
    logged."""
    before = time.monotonic()   # the last poll that saw no request
    closest = None              # the smallest margin under the bound
    first = None                # (time, amount) of the first poll with one
    end = before + DEADLINE
    while True:
        d.check_running()
        asked = time.monotonic()    # llmsim counts after this
        st = h.llm.stats()
        t = time.monotonic()        # and before this
        n, amount = st["requests"], st[key]
        if n == 0:
            before = asked
        else:
            bound = burst + rate * (t - before) + slack
            check(amount <= bound, "%d %s %.2fs after the first call: "
                  "more than the bucket allows (%.1f)", amount, key,
                  t - before, bound)
            closest = min(closest if closest is not None else bound,
                          bound - amount)
            if first is None:
                first = (t, amount)
        if n >= calls:
            break
        check(t < end, "only %d of %d calls, %d %s, after %ds: starved "
              "(budget %.0f %s a second)", n, calls, amount, key,
              DEADLINE, rate, key)
        time.sleep(poll)
    # The rate past the burst, from the first poll that saw a request.
    spent = (amount - max(first[1], burst)) / (t - first[0])
    log("%d calls, %d %s in %.1fs after the first: %.1f %s a second "
        "(budget %.1f); at its closest, %.1f %s under the bound", n,
        amount, key, t - before, spent, key, rate, closest, key)
    check(spent >= min_share * rate, "%.1f %s a second with a backlog: "
          "less than %d%% of the budget of %.1f", spent, key,
          min_share * 100, rate)


def _cfg_value(v):
    if isinstance(v, (list, tuple)):
        return "(%s)" % ", ".join(_cfg_value(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
    raise TypeError("no libconfig form for %r" % (v,))


def _cfg_text(tree, indent=""):
    """A nested dict as libconfig text: dicts are groups, lists and tuples
    are lists (kafka.properties is a list of ("name", value) pairs)."""
    out = []
    for k, v in tree.items():
        if isinstance(v, dict):
            out.append("%s%s = {\n%s%s};\n" % (
                indent, _cfg_key(k), _cfg_text(v, indent + "  "), indent))
        else:
            out.append("%s%s = %s;\n" % (indent, _cfg_key(k), _cfg_value(v)))
    return "".join(out)


def _cfg_key(k):
    # libconfig names are [A-Za-z*][-A-Za-z0-9_*]*.
    if not k or not k[0].isalpha() or \
            not all(c.isalnum() or c in "_-*" for c in k):
        raise ValueError("%r is not a libconfig setting name" % k)
    return k


def _merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


class Extractd:
    """One extractd process on a config file the harness wrote."""

    def __init__(self, h, cfgpath, tag):
        self.h = h
        self.cfgpath = cfgpath
        env = dict(os.environ)
        env["OPENAI_API_KEY"] = "sk-test"
        self.proc = Proc("extractd", [h.binary("extractd"), "-c", cfgpath],
                         os.path.join(h.dir, "extractd-%s.log" % tag),
                         env=env)
        h.procs.append(self.proc)
        log("extractd started (pid %d, %s)", self.proc.pid, tag)

    def alive(self):
        return self.proc.alive()

    def kill(self):
        """SIGKILL, as a crash would."""
        self.proc.signal(signal.SIGKILL)
        self.proc.wait(30)
        log("extractd killed (SIGKILL)")

    def terminate(self, timeout):
        """SIGTERM; returns (status, seconds) or fails after timeout."""
        t = time.monotonic()
        self.proc.signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        took = time.monotonic() - t
        if rc is None:
            raise TestFailure("extractd still running %.0fs after SIGTERM:\n%s"
                              % (timeout, self.proc.tail()))
        log("extractd exited %d, %.2fs after SIGTERM", rc, took)
        return rc, took

    def check_running(self):
        if not self.proc.alive():
            raise TestFailure("extractd exited (status %s):\n%s" %
                              (self.proc.returncode(), self.proc.tail()))

    def check_no_fatal(self):
        """Fail if a line of extractd's log says "fatal" (in any case)."""
        fatal = [x for x in self.proc.log_text().splitlines()
                 if "fatal" in x.lower()]
        check(not fatal, "extractd logged a fatal error:\n%s",
              "\n".join(fatal)[:2000])


# --------------------------------------------------------------------------
# Consuming


class Collector:
    """Reads topics from the beginning, without a group, into lists.

    isolation: the reader's isolation.level; librdkafka's default,
    read_committed, skips records of aborted transactions, which
    read_uncommitted shows."""

    def __init__(self, h, topics, isolation="read_committed"):
        self.h = h
        self.records = {t: [] for t in topics}
        self.consumer = Consumer({
            "bootstrap.servers": h.kafka.bootstrap,
            "group.id": h.unique("collector"),
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 50,
            "isolation.level": isolation,
        })
        h.clients.append(self.consumer)
        tps = []
        for t in topics:
            md = self.consumer.list_topics(t, timeout=30)
            parts = md.topics[t].partitions
            check(parts, "topic %s has no partitions", t)
            tps += [TopicPartition(t, p, -2) for p in sorted(parts)]
        self.consumer.assign(tps)

    def poll(self, seconds):
        """Poll for about seconds; returns how many records arrived."""
        n = 0
        end = time.monotonic() + seconds
        while True:
            msgs = self.consumer.consume(500, POLL)
            for m in msgs:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise TestFailure("consumer error: %s" % m.error())
                self.records[m.topic()].append(Record(m))
                n += 1
            if time.monotonic() >= end:
                return n

    def until(self, cond, what, timeout=DEADLINE, watch=()):
        """Poll until cond(self) holds; fail after timeout seconds.

        watch: processes that must stay alive meanwhile (extractd).
        """
        end = time.monotonic() + timeout
        last = time.monotonic()
        while not cond(self):
            for p in watch:
                p.check_running()
            if time.monotonic() >= end:
                raise TestFailure("timed out after %.0fs waiting for %s; "
                                  "have %s" % (timeout, what, self.summary()))
            self.poll(POLL)
            if time.monotonic() - last > 10:
                log("waiting for %s: %s", what, self.summary())
                last = time.monotonic()
        log("have %s: %s", what, self.summary())

    def read_to_end(self, watch=()):
        """Poll until every topic read is read to its end offsets as they
        are now (for a check that nothing more came, e.g. duplicates)."""
        want = {t: sum(self.h.end_offsets(t).values()) for t in self.records}
        self.until(lambda c: all(c.count(t) >= n for t, n in want.items()),
                   "every topic read to its end %r" % want, watch=watch)

    def count(self, topic=None):
        if topic is None:
            return sum(len(v) for v in self.records.values())
        return len(self.records[topic])

    def summary(self):
        return ", ".join("%s=%d" % (t, len(v))
                         for t, v in self.records.items())

    def coverage(self, topics=None):
        """{(partition, offset): times out} of the input records, from the
        extractd.source headers of topics (default: all collected)."""
        seen = {}
        for t in topics or self.records:
            for r in self.records[t]:
                _, part, off = r.source()
                seen[(part, off)] = seen.get((part, off), 0) + 1
        return seen

    def check_covered(self, inputs, settle):
        """Poll settle seconds more (a late repeat shows up), then fail
        unless the records come from exactly the input offsets inputs (a
        set of (partition, offset)); returns coverage()."""
        self.poll(settle)
        seen = self.coverage()
        check(set(seen) == inputs, "records from unknown offsets: %r",
              sorted(set(seen) - inputs)[:5])
        return seen

    def check_reader_order(self, topics=None, by_key=False):
        """Fail unless, in each of topics (default: all collected), as
        this one consumer over every partition received them, each input
        partition's records came in offset order: what a reader sees.
        by_key: each key's records of an input partition apart, and its
        keyless ones apart (their order is kept only per key).

        Returns the number of records checked."""
        n = 0
        for t in topics or self.records:
            last = {}
            for r in self.records[t]:
                _, part, off = r.source()
                stream = (part, r.key if by_key else None)
                prev = last.get(stream)
                check(prev is None or off > prev[0],
                      "a reader of %s got input %d/%d (%s, key %r) after "
                      "input %d/%d (%s)", t, part, off, r.where(), r.key,
                      part, *(prev or (0, "")))
                last[stream] = (off, r.where())
                n += 1
        return n

    def check_each_once(self, placed, values):
        """Fail unless no record is a dead letter and every input placed
        (values[i] at placed[i]) has exactly one output, the Person
        llmsim extracts from it (read_to_end first, so that a duplicate
        cannot hide)."""
        check(self.count(self.h.topics["dlq"]) == 0, "dead letters: %r",
              self.records[self.h.topics["dlq"]][:3])
        self.check_persons(placed, values)
        sources = [r.source() for r in self.records[self.h.topics["output"]]]
        check(len(set(sources)) == len(sources) == len(placed),
              "%d outputs for %d sources, %d inputs", len(sources),
              len(set(sources)), len(placed))

    def check_persons(self, placed, values):
        """Fail unless every output is the Person llmsim extracts from its
        input: values[i] was produced at placed[i], (partition, offset)."""
        value_at = dict(zip(placed, values))
        for r in self.records[self.h.topics["output"]]:
            _, p, o = r.source()
            want = expected_person(value_at[(p, o)].decode())
            check(r.json() == want, "%s: %r, want %r", r.where(), r.value,
                  want)


def _as_bytes(x):
    return x.encode() if isinstance(x, str) else x


def settle_unknown_offsets(bootstrap, topic, placed, sent, producer_conf):
    """Make every acknowledged record's place known and real.

    librdkafka 2.0.2's idempotent producer sometimes acknowledges the
    first record sent to a new partition with no offset (a duplicate-
    sequence answer it takes as success), and on Kafka 4.4 that record
    may not be in the log at all (seen in 1 of 60 fresh 12-partition
    topics, always a partition's first record). Such a record never
    reached extractd, so a test that waits for its output would wait for
    ever. For each placed[i] = (partition, None): find sent[i] = (key,
    value[, headers]) in its partition among the offsets nobody else
    has; if the broker does not have it, produce it again (synchronously)
    and take that offset. Logs what it did; placed is updated in place.
    """
    unknown = [i for i, pl in enumerate(placed)
               if pl is not None and (pl[1] is None or pl[1] < 0)]
    if not unknown:
        return
    log("%d records of %s acknowledged with no offset: %r",
        len(unknown), topic, [(i, placed[i][0]) for i in unknown[:5]])
    known = {pl for pl in placed if pl is not None and pl[1] is not None
             and pl[1] >= 0}
    c = Consumer({"bootstrap.servers": bootstrap,
                  "group.id": "settle-%s" % uuid.uuid4().hex,
                  "enable.auto.commit": False,
                  "enable.partition.eof": True})
    try:
        for i in unknown:
            part = placed[i][0]
            key, value = (_as_bytes(x) for x in sent[i][:2])
            headers = sent[i][2] if len(sent[i]) > 2 else None
            hi = c.get_watermark_offsets(TopicPartition(topic, part),
                                         timeout=10)[1]
            c.assign([TopicPartition(topic, part, 0)])
            found = None
            while found is None:
                m = c.poll(5)
                if m is None or m.error():
                    break
                if ((part, m.offset()) not in known and
                        m.key() == key and m.value() == value):
                    found = m.offset()
                if m.offset() >= hi - 1:
                    break
            c.unassign()
            for _ in range(5):
                if found is not None:
                    break
                got = []
                p = Producer(dict(producer_conf,
                                  **{"enable.idempotence": False}))
                p.produce(topic, key=key, value=value, partition=part,
                          headers=headers,
                          on_delivery=lambda err, msg: got.append(
                              None if err else msg.offset()))
                p.flush(30)
                found = got[0] if got else None
                log("record %d was not in %s[%d]: produced again at "
                    "offset %s", i, topic, part, found)
            check(found is not None, "record %d of %s: no offset", i, topic)
            placed[i] = (part, found)
            known.add((part, found))
    finally:
        c.close()


class Feeder(threading.Thread):
    """Produces to the input topic from a thread at a steady rate, so that
    what a test does to extractd happens mid-stream.

    values[i] goes to partition i % partitions with key "k-i"; placed[i]
    becomes its (partition, offset). With gate_at, the record at that index
    waits until gate is set (the rate starts again from there). done is set
    once everything is acknowledged; errors collects delivery errors.
    """

    def __init__(self, h, values, rate, partitions, gate_at=None):
        super().__init__(daemon=True)
        self.h = h
        self.values = values
        self.rate = float(rate)
        self.partitions = partitions
        self.gate_at = gate_at
        self.gate = threading.Event()
        self.placed = [None] * len(values)
        self.errors = []
        self.sent = 0
        self.done = threading.Event()

    def run(self):
        p = Producer({"bootstrap.servers": self.h.kafka.bootstrap,
                      "enable.idempotence": True, "linger.ms": 5})
        topic = self.h.topics["input"]

        def cb(idx):
            def f(err, msg):
                if err:
                    self.errors.append(err)
                else:
                    self.placed[idx] = (msg.partition(), msg.offset())
            return f

        t0 = time.monotonic()
        for i, v in enumerate(self.values):
            if i == self.gate_at:
                while not self.gate.wait(0.1):
                    p.poll(0)
                t0 = time.monotonic() - i / self.rate
            # poll() returns early when it serves a delivery report.
            while True:
                delay = t0 + i / self.rate - time.monotonic()
                if delay <= 0:
                    break
                p.poll(delay)
            while True:
                try:
                    p.produce(topic, key=("k-%d" % i).encode(), value=v,
                              partition=i % self.partitions,
                              on_delivery=cb(i))
                    break
                except BufferError:
                    p.poll(0.1)
            self.sent = i + 1
            p.poll(0)
        left = p.flush(120)
        if left:
            self.errors.append("%d records unacknowledged" % left)
        else:
            try:
                settle_unknown_offsets(
                    self.h.kafka.bootstrap, topic, self.placed,
                    [("k-%d" % i, v) for i, v in enumerate(self.values)],
                    {"bootstrap.servers": self.h.kafka.bootstrap})
            except Exception as e:  # noqa: BLE001 (told by inputs())
                self.errors.append("settling offsets: %s" % e)
        self.done.set()

    def inputs(self):
        """Every record's (partition, offset); fails on delivery errors."""
        check(self.done.wait(180), "the producer did not finish")
        check(not self.errors, "produce errors: %r", self.errors[:3])
        return set(self.placed)


class CommitWatch:
    """Samples a group's committed input offsets, in a thread, for the
    check that a commit never passes the contiguous delivered prefix.

    Each sample reads the committed offsets, then the high watermarks of
    the output and dead-letter topics. An output delivered before the
    commit was read sits below the watermark read after it, so check()
    can tell, once everything is collected, whether every input offset
    below a sampled committed offset already had its output (or dead
    letter) written when that commit was seen; without knowing when the
    collector happened to read it. Samples whose reads fail (a broker
    down) are skipped, and the next one is read through a new client (a
    librdkafka 2.0 consumer that is not in the group may keep failing its
    committed() calls after the group's coordinator moved). A read can also
    hang well past its timeout while a leader is down: a sample that takes
    longer than STALL seconds is left to finish on its own (it is still
    valid when it does: its watermarks were read after its commits) and
    sampling goes on through a new client, so an outage is watched too.
    """

    MIN_SAMPLES = 3         # usable samples check() wants in each phase
    STALL = 2.0             # seconds before a sample is left behind
    MAX_STALLED = 8         # samples left behind at once, at most

    def __init__(self, h, group, period=0.2):
        self.h = h
        self.group = group
        self.period = period
        # (monotonic s at its start, {p: committed}, {(t, p): hw},
        #  monotonic s after its last read), in the order they finished
        self.samples = []
        self.phases = [("start", 0.0)]  # (name, monotonic s it began)
        self.failed_reads = 0
        self.stalled = 0
        self.last_error = None
        self._stop = threading.Event()
        self._consumer = self._new_consumer()
        self._old = []          # (thread, consumer) of stalled samples
        intopic = h.topics["input"]
        md = self._consumer.list_topics(timeout=30)
        self._in = [TopicPartition(intopic, p)
                    for p in sorted(md.topics[intopic].partitions)]
        self._out = [TopicPartition(t, p)
                     for t in (h.topics["output"], h.topics["dlq"])
                     for p in sorted(md.topics[t].partitions)]
        h.clients.append(self)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _new_consumer(self):
        return Consumer({
            "bootstrap.servers": self.h.kafka.bootstrap,
            "group.id": self.group, "enable.auto.commit": False,
            "socket.timeout.ms": 5000})

    def _one(self, consumer, result):
        try:
            self.samples.append(self.sample(consumer))
        except Exception as e:  # noqa: BLE001 -- any failure: skip
            self.failed_reads += 1
            self.last_error = "%s: %s" % (type(e).__name__, e)
            result.append(e)

    def _run(self):
        while not self._stop.is_set():
            self._old = [(t, c) for t, c in self._old if t.is_alive()]
            result = []
            th = threading.Thread(target=self._one,
                                  args=(self._consumer, result), daemon=True)
            th.start()
            th.join(self.STALL)
            if th.is_alive() and len(self._old) < self.MAX_STALLED:
                self.stalled += 1
                self._old.append((th, self._consumer))
                self._consumer = self._new_consumer()
            elif th.is_alive():
                th.join()
            if result:
                try:
                    self._consumer.close()
                except (KafkaException, RuntimeError):
                    pass
                self._consumer = self._new_consumer()
            self._stop.wait(self.period)

    def sample(self, consumer=None):
        """One sample (the thread takes one every period seconds)."""
        consumer = consumer or self._consumer
        t = time.monotonic()
        com = {}
        for tp in consumer.committed(self._in, timeout=5):
            if tp.error:
                raise KafkaException(tp.error)
            com[tp.partition] = tp.offset
        hw = {}
        for tp in self._out:
            hw[(tp.topic, tp.partition)] = \
                consumer.get_watermark_offsets(tp, timeout=5)[1]
        return (t, com, hw, time.monotonic())

    def usable(self):
        """Usable samples (ones that read a committed offset, so they
        constrain something) started in the current phase."""
        t0 = self.phases[-1][1]
        return sum(1 for t, com, _, _ in list(self.samples)
                   if t >= t0 and any(c > 0 for c in com.values()))

    def mark(self, phase, watch=()):
        """A new phase of the test starts (a fault, a kill, a restart).
        check() wants MIN_SAMPLES usable samples started in each, so that
        no part of the run goes unwatched: this first waits until the
        phase that ends has them. watch: processes that must stay up."""
        end = time.monotonic() + DEADLINE
        while self.usable() < self.MIN_SAMPLES:
            for p in watch:
                p.check_running()
            check(time.monotonic() < end, "phase %r: %d usable committed-"
                  "offset samples after %ds (%d reads failed, last: %s)",
                  self.phases[-1][0], self.usable(), DEADLINE,
                  self.failed_reads, self.last_error)
            time.sleep(0.05)
        self.phases.append((phase, time.monotonic()))

    def last(self):
        """The latest sample's {partition: committed}, or None."""
        return self.samples[-1][1] if self.samples else None

    def wait_for(self, want, what, timeout=30, watch=()):
        """Wait until a fresh sample reads {partition: committed} == want;
        fail after timeout seconds. watch: processes that must stay up."""
        n = len(self.samples)
        end = time.monotonic() + timeout
        while not (len(self.samples) > n and self.last() == want):
            for p in watch:
                p.check_running()
            if time.monotonic() >= end:
                raise TestFailure(
                    "%s: committed %r, want %r, after %ds (%d failed reads, "
                    "last: %s)" % (what, self.last(), want, timeout,
                                   self.failed_reads, self.last_error))
            time.sleep(0.1)
        log("committed %s: %s", want, what)

    def close(self):
        self._stop.set()
        self._thread.join(30)
        self._consumer.close()
        for th, c in self._old:
            th.join(1)
            if not th.is_alive():  # else it is still in a call on c
                c.close()

    def check(self, coll, inputs):
        """Fail unless, in every sample, every input offset below the
        committed offset had an output or dead letter below the watermark.

        coll: a Collector that has read the outputs and dead letters to
        the end; inputs: every input record as (partition, offset): the
        offsets that exist, gaps and all. Also fails unless every phase
        (mark()) had MIN_SAMPLES usable samples. Returns the number of
        samples.
        """
        out_topics = (self.h.topics["output"], self.h.topics["dlq"])
        samples = list(self.samples)
        check(samples, "no committed-offset sample was taken")
        # Each phase needs usable samples (ones that read a committed
        # offset, so they constrain something) started in it.
        starts = [t for _, t in self.phases[1:]] + [float("inf")]
        for (name, t0), t1 in zip(self.phases, starts):
            mine = [com for t, com, _, _ in samples if t0 <= t < t1]
            n = sum(1 for com in mine if any(c > 0 for c in com.values()))
            check(n >= self.MIN_SAMPLES, "phase %r: %d usable committed-"
                  "offset samples of %d, want at least %d (%d reads "
                  "failed, %d stalled, last error: %s)", name, n,
                  len(mine), self.MIN_SAMPLES, self.failed_reads,
                  self.stalled, self.last_error)
        outs = {}  # (p, o) -> [((topic, partition), output offset)]
        for t in out_topics:
            for r in coll.records[t]:
                _, p, o = r.source()
                outs.setdefault((p, o), []).append(
                    ((t, r.partition), r.offset))
        by_part = {}
        for p, o in sorted(inputs):
            by_part.setdefault(p, []).append(o)
        for t, com, hw, _ in sorted(samples, key=lambda x: x[0]):
            for p, c in com.items():
                if c <= 0 or p not in by_part:
                    continue
                offs = by_part[p]
                for o in offs[:bisect.bisect_left(offs, c)]:
                    if any(off < hw[k] for k, off in outs.get((p, o), ())):
                        continue
                    raise TestFailure(
                        "at %.2fs partition %d was committed to %d, but "
                        "input offset %d had no output or dead letter "
                        "written yet%s" % (
                            t - T0, p, c, o,
                            "" if (p, o) in outs else
                            " (and never got one)"))
        return len(samples)


# --------------------------------------------------------------------------
# The harness


class Harness:
    """Per-test state: temp dir, unique names, everything started."""

    def __init__(self, name, bindir, source):
        self.name = name
        self.bindir = os.path.abspath(bindir)
        self.source = os.path.abspath(source)
        self.dir = tempfile.mkdtemp(prefix="extractd-e2e-%s-" % name)
        self.uid = uuid.uuid4().hex[:8]
        self.procs = []
        self.clients = []
        self.kafka = None
        self.llm = None
        self._closed = False
        self._n_extractd = 0
        atexit.register(self.close)

    def unique(self, base):
        """A name no other test run uses (topics, groups)."""
        return "%s-%s-%s" % (base, self.name, self.uid)

    def binary(self, name):
        path = os.path.join(self.bindir, name)
        check(os.access(path, os.X_OK), "no executable %s (build first)",
              path)
        return path

    def sanitized(self):
        """Whether extractd is built with a sanitizer (RSS means little then:
        ASan keeps freed memory in quarantine, TSan shadows everything)."""
        with open(self.binary("extractd"), "rb") as f:
            data = f.read()
        return b"__asan_init" in data or b"__tsan_init" in data

    # -- services

    def start_kafka(self, partitions=1, out_partitions=None,
                    topic_config=None, out_config=None, control=False,
                    more_topics=None):
        """Kafka with unique input/output/dlq topics; sets self.topics.

        topic_config: settings for the topics on an external cluster;
        out_config: more for the output and dead-letter topics only.
        control: kafka-embedded with its control socket (Kafka.cmd()).
        more_topics: {role: partitions} of more topics, each named
        unique(role) and found as self.topics[role].
        """
        if out_partitions is None:
            out_partitions = partitions
        self.topics = {
            "input": self.unique("texts"),
            "output": self.unique("persons"),
            "dlq": self.unique("texts.dlq"),
        }
        self.partitions = partitions
        counts = {
            self.topics["input"]: partitions,
            self.topics["output"]: out_partitions,
            self.topics["dlq"]: out_partitions,
        }
        for role, n in (more_topics or {}).items():
            self.topics[role] = self.unique(role)
            counts[self.topics[role]] = n
        self.kafka = Kafka(self, counts, topic_config,
                           {self.topics[k]: out_config or {}
                            for k in ("output", "dlq")}, control)
        return self.kafka

    def start_llmsim(self, **kw):
        self.llm = Llmsim(self, **kw)
        return self.llm

    def config(self, overrides=None, group=None):
        """Write an extractd config; returns (path, group)."""
        group = group or self.unique("group")
        tree = {
            "kafka": {
                "brokers": self.kafka.bootstrap,
                "group": group,
                "input_topic": self.topics["input"],
                "output_topic": self.topics["output"],
                "dlq_topic": self.topics["dlq"],
                "consumer_threads": 1,
                # librdkafka's mock cluster waits session.timeout.ms - 1 s
                # before every rebalance of a group it has seen (45 s by
                # default), even after a clean leave; 6 s is also a real
                # broker's minimum and lets a restart after SIGKILL take
                # over the partitions quickly.
                "properties": [("session.timeout.ms", 6000)],
            },
            "llm": {
                "base_url": self.llm.base_url,
                "api_key_env": "OPENAI_API_KEY",
                "model": "gpt-4o-mini",
                "mode": "json_schema",
                "timeout_ms": 30000,
                "max_reasks": 2,
            },
            "schema": {
                "file": os.path.join(self.source, SCHEMA_REL),
                "name": "Person",
            },
            "pool": {"workers": 16, "max_in_flight": 16},
            "retry": {"max_attempts": 6, "base_delay_ms": 500,
                      "max_delay_ms": 30000},
            "input": {"max_bytes": 65536},
            # output.partitioning: extractd's default, as users have it.
            "output": {"ordering": "completion",
                       "delivery": "at-least-once"},
            "http": {"listen": ""},
            "log": {"level": "info", "format": "json"},
        }
        _merge(tree, overrides or {})
        path = os.path.join(self.dir, "extractd-%d.cfg" % self._n_extractd)
        with open(path, "w") as f:
            f.write(_cfg_text(tree))
        return path, group

    def start_extractd(self, overrides=None, group=None):
        """Write a config and start extractd on it; returns (Extractd, group)."""
        path, group = self.config(overrides, group)
        self._n_extractd += 1
        return Extractd(self, path, str(self._n_extractd)), group

    # -- Kafka clients

    def produce(self, records, topic=None, conf=None):
        """Produce [(key, value, partition)]; returns [(partition, offset)].

        key and value are bytes or str (str goes as UTF-8); partition None
        lets the partitioner pick; a fourth element, when present, is the
        record's headers [(name, value)]. Every record must be acknowledged.
        conf: more producer settings (e.g. message.max.bytes).
        """
        topic = topic or self.topics["input"]
        settings = {"bootstrap.servers": self.kafka.bootstrap,
                    "enable.idempotence": True, "linger.ms": 5}
        settings.update(conf or {})
        p = Producer(settings)
        placed = [None] * len(records)
        errors = []

        def on_delivery(idx):
            def cb(err, msg):
                if err:
                    errors.append(err)
                else:
                    placed[idx] = (msg.partition(), msg.offset())
            return cb

        for i, rec in enumerate(records):
            key, value, part = rec[:3]
            kw = {"key": key, "value": value, "on_delivery": on_delivery(i)}
            if part is not None:
                kw["partition"] = part
            if len(rec) > 3:
                kw["headers"] = rec[3]
            while True:
                try:
                    p.produce(topic, **kw)
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
        left = p.flush(60)
        check(left == 0 and not errors,
              "produce: %d undelivered, errors %s", left, errors[:3])
        settle_unknown_offsets(
            self.kafka.bootstrap, topic, placed,
            [(r[0], r[1], r[3] if len(r) > 3 else None) for r in records],
            settings)
        log("produced %d records to %s", len(records), topic)
        return placed

    def end_offsets(self, topic=None):
        """{partition: high watermark} of a topic."""
        topic = topic or self.topics["input"]
        c = self._plain_consumer(self.unique("wm"))
        try:
            md = c.list_topics(topic, timeout=30)
            return {p: c.get_watermark_offsets(TopicPartition(topic, p),
                                               timeout=30)[1]
                    for p in sorted(md.topics[topic].partitions)}
        finally:
            c.close()

    def committed(self, group, topic=None):
        """{partition: committed offset} of group on topic (-1001: none)."""
        topic = topic or self.topics["input"]
        c = self._plain_consumer(group)
        try:
            md = c.list_topics(topic, timeout=30)
            tps = [TopicPartition(topic, p)
                   for p in sorted(md.topics[topic].partitions)]
            return {tp.partition: tp.offset
                    for tp in c.committed(tps, timeout=30)}
        finally:
            c.close()

    def _plain_consumer(self, group):
        # Not subscribed, so it never joins the group: committed() is a
        # plain OffsetFetch and does not disturb a running extractd.
        return Consumer({"bootstrap.servers": self.kafka.bootstrap,
                         "group.id": group, "enable.auto.commit": False})

    def collector(self, topics=None, isolation="read_committed"):
        topics = topics or [self.topics["output"], self.topics["dlq"]]
        return Collector(self, topics, isolation)

    def stop_all_out(self, coll, daemons, records):
        """SIGTERM each of daemons (Extractd, or opshelp's Daemon) in turn:
        each must exit 0; then coll, read a second more, must hold exactly
        records outputs and no dead letter."""
        for d in daemons:
            d.proc.signal(signal.SIGTERM)
            rc = d.proc.wait(60)
            check(rc is not None, "extractd still running 60s after "
                  "SIGTERM")
            check(rc == 0, "extractd exit status %d after SIGTERM", rc)
        coll.poll(1.0)
        dlq = self.topics["dlq"]
        check(coll.count(dlq) == 0, "dead letters: %r",
              coll.records[dlq][:3])
        check(coll.count() == records, "%d outputs for %d texts",
              coll.count(), records)

    def until_committed_end(self, group, watch=(), timeout=DEADLINE):
        """Poll until group has committed the input topic's end offsets
        (extractd commits as it goes), with watch alive meanwhile. For a
        run that redoes records an earlier run already delivered: every
        input has an output then, while the redo may still be in flight,
        and only the commits tell that it is done."""
        end_at = time.monotonic() + timeout
        end = self.end_offsets()
        while True:
            committed = self.committed(group)
            if committed == end:
                log("committed %r == end offsets, still running", committed)
                return
            for p in watch:
                p.check_running()
            check(time.monotonic() < end_at, "timed out after %.0fs "
                  "waiting for the commits to reach the end: committed "
                  "%r, end offsets %r", timeout, committed, end)
            time.sleep(POLL)

    def stop_at_end(self, group, *daemons):
        """SIGTERM each of daemons (Extractd) in turn: each must exit 0, and
        group must then have committed the input topic's end offsets."""
        for d in daemons:
            rc, _ = d.terminate(60)
            check(rc == 0, "extractd exit status %d after SIGTERM", rc)
        committed = self.committed(group)
        end = self.end_offsets()
        check(committed == end, "committed %r, want the end offsets %r",
              committed, end)
        log("committed %r == end offsets", committed)

    # -- teardown

    def sanitizer_reports(self):
        """Lines of a sanitizer report in any child's log ([] if none): a
        report fails the test even when the process carried on or was
        killed before its exit status could tell."""
        found = []
        for p in self.procs:
            try:
                with open(p.logpath, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            for line in text.splitlines():
                if _SANITIZER_RE.search(line):
                    found.append("%s (pid %d): %s" % (p.name, p.pid,
                                                      line.strip()))
        return found

    def close(self, failed=False):
        """Stop everything, delete the temp dir; returns whether the test
        failed (failed, or a sanitizer report in a log)."""
        if self._closed:
            return failed
        self._closed = True
        for c in self.clients:
            try:
                c.close()
            except (KafkaException, RuntimeError):
                pass
        self.clients = []
        # extractd first, Kafka last: the daemon may still be flushing.
        for p in reversed(self.procs):
            try:
                p.stop()
            except OSError:
                pass
        if self.kafka is not None:
            try:
                self.kafka.close()
            except (KafkaException, RuntimeError) as e:
                log("external Kafka cleanup failed: %s", e)
        reports = self.sanitizer_reports()
        if reports:
            print("FAIL: %d sanitizer report line(s):\n%s" % (
                len(reports), "\n".join(reports[:20])), flush=True)
            failed = True
        if failed:
            for p in self.procs:
                sys.stdout.write("---- %s (pid %d) log tail: %s ----\n%s\n" %
                                 (p.name, p.pid, p.logpath, p.tail()))
        keep = failed and os.environ.get("E2E_KEEP")
        if keep:
            sys.stdout.write("kept %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        sys.stdout.flush()
        return failed


def run(body):
    """main() of every test: parse --bin/--source, run body(h), exit."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="build dir's bin/")
    ap.add_argument("--source", required=True, help="repository root")
    args = ap.parse_args()
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    name = name[len("test_"):] if name.startswith("test_") else name
    h = Harness(name, args.bin, args.source)
    # SIGTERM (ctest timeout, a CI cancel) should still run the cleanup.
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    failed = True
    try:
        body(h)
        failed = False
    except TestFailure as e:
        print("FAIL: %s" % e, flush=True)
    except Exception:
        traceback.print_exc()
        print("FAIL: unexpected error", flush=True)
    finally:
        failed = h.close(failed)
    print("PASS" if not failed else "FAILED", flush=True)
    sys.exit(1 if failed else 0)
