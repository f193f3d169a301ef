#!/usr/bin/env python3
"""bench.py: the benchmark driver behind scripts/bench.sh.

Measures extractd, and the seed article's stack as a Kafka pipeline
(peer_instructor.py), against llmsim at a fixed latency, on one Kafka, with
the same records; then the goodput runs (goodput.py) and the cost runs
(cost.py: live vs batch.mode = backlog). See scripts/bench.sh for the command and docs/benchmark.md
for what the figures mean. Run by the system python3 (confluent_kafka from
scripts/deps.sh); the peer runs in its own venv (--peer-python).

A point is (jitter, concurrency C). Its input topic is produced first, as a
backlog of about C / latency * STEADY seconds of records, then each system
runs on it in its own consumer group and output topic:
  extractd completion order, extractd offset order, the peer (completion).
A run ends when every record is delivered, or when it has delivered for
STEADY + 8 seconds (a system slower than Little's law would take too long
on the whole backlog): the figures are over what it did by then.

Measured per run:
  throughput   records / busy_seconds; busy_seconds = first record admitted
               to last output delivered, from the process's own final line
               (extractd's {"msg":"stopped"} log line; the peer prints the
               same fields)
  cpu          utime+stime of the process (/proc/PID/stat) read just before
               SIGTERM, minus what it had used when it became ready
               (extractd: when it logs "partitions assigned"; the peer: its
               own figure just before its consume loop), per record delivered
               by then
  rss          VmHWM (/proc/PID/status) read just before SIGTERM
  latency      p50/p99 of the output header extractd.latency_ms (the peer:
               latency_ms): admission (slot taken) to produce call. The
               backlog is produced before the run, so input timestamp to
               output timestamp would measure the backlog's wait, not the
               pipeline.
  load         the machine's 1-minute load average at the end, and how many
               cores other processes (not this benchmark's) used meanwhile
               (/proc/stat minus our processes' CPU): the noise indicator.
"""

import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

# llmsim starts the one way the tests start it (tests/lib/llmsim.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests", "lib"))
from llmsim import Llmsim  # noqa: E402
from procs import TestFailure  # noqa: E402

LATENCY_MS = 50
# Rows of these kinds come from goodput.py, cost.py and instructions.py
# and have their own tables.
OTHER_KINDS = ("goodput", "cost", "instructions", "idle")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
T0 = time.monotonic()

JOBS = ["software engineer", "data scientist", "product manager",
        "UX designer", "DevOps engineer", "frontend developer",
        "backend developer", "nurse", "teacher", "pilot", "barista"]
FIRST = ["John", "Sarah", "Mike", "Lisa", "Tom", "Emma", "David", "Zoë",
         "José", "Ngozi", "Aarav", "Mårten"]
LAST = ["Smith", "Johnson", "Davis", "Wilson", "Brown", "Garcia", "Lee",
        "Müller", "Okafor", "Nowak"]


def say(msg, *args):
    text = msg % args if args else msg
    el = time.monotonic() - T0
    print("[%02d:%02d] %s" % (el // 60, el % 60, text), flush=True)


def text_for(i):
    return "%s %s #%d is a %d-year-old %s" % (
        FIRST[i % len(FIRST)], LAST[(i // 7) % len(LAST)], i,
        20 + (i * 13) % 60, JOBS[(i // 3) % len(JOBS)])


# --------------------------------------------------------------------------
# /proc


def proc_cpu_s(pid, sys_only=False):
    """utime + stime of a process (stime alone with sys_only), seconds (all
    its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[12]) if sys_only else
            int(fields[11]) + int(fields[12])) / CLK_TCK


def threads_cpu(pid):
    """(CPU seconds, switches) of a process's live threads, from
    /proc/PID/task/*/schedstat: nanoseconds, where /proc/PID/stat counts
    10-ms ticks (at C = 1, 20 records a second, a tick is 60 us a record
    of an 8-s run). A thread that ended is not counted: take differences
    over spans no thread ends in."""
    cpu = n = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                v = f.read().split()
        except OSError:  # a thread that just ended
            continue
        cpu += int(v[0]) / 1e9
        n += int(v[2])
    return cpu, n


def proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def machine_busy_s():
    """Busy CPU seconds of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / CLK_TCK


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def self_cpu_s():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# --------------------------------------------------------------------------
# Processes


def die_with_parent():
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


class Proc:
    def __init__(self, argv, logpath, env=None, stdout=None):
        self.argv = argv
        self.logpath = logpath
        self.log = open(logpath, "ab")
        # Own session: a signal to some process group (a terminal's, a
        # job's) does not reach the services; they still die with us.
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else self.log,
            stderr=self.log, env=env, preexec_fn=die_with_parent,
            start_new_session=True)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def stop(self, grace=60):
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()
        return self.popen.returncode

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def tail(self, n=20):
        return "\n".join(self.text().splitlines()[-n:])


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = os.path.abspath(args.bin)
        self.source = os.path.abspath(args.source)
        self.out = os.path.abspath(args.out)
        os.makedirs(self.out, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix="extractd-bench-")
        self.uid = uuid.uuid4().hex[:6]
        self.procs = []
        self.kafka = None
        self.created = []  # topics made on KAFKA_BOOTSTRAP, deleted at close
        self.topic_config = {}  # {topic: {setting: value}} on KAFKA_BOOTSTRAP
        self.llmsims = {}
        self.results = []
        self.current = None  # the system process of the run under way
        # --variant NAME=BINARY: system "extractd-NAME" runs that binary
        self.variants = {}
        for v in args.variant or ():
            name, _, path = v.partition("=")
            self.variants["extractd-" + name] = os.path.abspath(path)

    # -- services

    def start_kafka(self, topics):
        ext = os.environ.get("KAFKA_BOOTSTRAP")
        if ext:
            from confluent_kafka.admin import AdminClient, NewTopic
            admin = AdminClient({"bootstrap.servers": ext})
            n = len(admin.list_topics(timeout=30).brokers)
            futs = admin.create_topics(
                [NewTopic(t, num_partitions=p,
                          replication_factor=min(3, max(n, 1)),
                          config=self.topic_config.get(t, {}))
                 for t, p in topics.items()], operation_timeout=60)
            for f in futs.values():
                f.result(timeout=120)
            self.bootstrap = ext
            self.created = list(topics)
            say("Kafka: %s (%d brokers), %d topics created", ext, n,
                len(topics))
            return
        self.created = []
        argv = [os.path.join(self.bin, "kafka-embedded")]
        for t, p in topics.items():
            argv += ["--topic", "%s:%d" % (t, p)]
        p = Proc(argv, os.path.join(self.work, "kafka.log"),
                 stdout=subprocess.PIPE)
        self.procs.append(p)
        self.kafka = p
        buf = b""
        end = time.monotonic() + 60
        while b"\n" not in buf:
            if time.monotonic() > end or not p.alive():
                raise SystemExit("kafka-embedded did not start:\n" + p.tail())
            r, _, _ = select.select([p.popen.stdout], [], [], 0.2)
            if r:
                buf += os.read(p.popen.stdout.fileno(), 4096)
        self.bootstrap = buf.split(b"\n")[0].decode().strip()
        say("Kafka: kafka-embedded at %s (pid %d), %d topics",
            self.bootstrap, p.pid, len(topics))

    def llmsim(self, name, latency_ms=LATENCY_MS, **kw):
        """An llmsim of the run (seed 1, its own session, stopped with the
        services); kw as Llmsim takes them. Exits when it cannot start."""
        sim = Llmsim(os.path.join(self.bin, "llmsim"), self.work, name,
                     latency_ms=latency_ms, seed=1, wait=False,
                     new_session=True, **kw)
        self.procs.append(sim.proc)
        try:
            sim.wait_port()
        except TestFailure as e:
            raise SystemExit("llmsim did not start: %s" % e)
        return sim

    def start_llmsim(self, jitter):
        sim = self.llmsim("llmsim-%d" % jitter, jitter_ms=jitter)
        self.llmsims[jitter] = (sim.proc, sim.base)
        say("llmsim at %s: latency %d ms, jitter %d ms (pid %d)", sim.base,
            LATENCY_MS, jitter, sim.proc.pid)

    def check_services(self):
        """Fail loudly when kafka-embedded or an llmsim is gone."""
        for q in self.procs:
            if not q.alive():
                raise SystemExit("%s exited (status %s) during the run:\n%s"
                                 % (os.path.basename(q.argv[0]),
                                    q.popen.returncode, q.tail()))

    def llm_call(self, jitter, path, post=False):
        base = self.llmsims[jitter][1]
        req = urllib.request.Request(base + path, data=b"" if post else None,
                                     method="POST" if post else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read().decode()
        return json.loads(body) if body.strip() else {}

    def close(self):
        if hasattr(self, "_wmc"):
            self._wmc.close()
            del self._wmc
        if self.current is not None and self.current.alive():
            self.current.stop(grace=5)
        for p in reversed(self.procs):
            try:
                p.stop(grace=30)
            except OSError:
                pass
        if self.created:
            from confluent_kafka.admin import AdminClient
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            for f in admin.delete_topics(self.created,
                                         operation_timeout=60).values():
                try:
                    f.result(timeout=120)
                except Exception:  # best effort
                    pass
        if self.args.keep:
            say("kept %s", self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    # -- Kafka clients

    def produce(self, topic, n, small=False):
        """n records (key k<i>, a text llmsim extracts) onto topic."""
        p = Producer({"bootstrap.servers": self.bootstrap,
                      "linger.ms": 50, "batch.num.messages": 10000,
                      "queue.buffering.max.messages": 2000000,
                      "enable.idempotence": True})
        errors = []

        def cb(err, msg):
            if err:
                errors.append(err)
        t = time.monotonic()
        for i in range(n):
            v = ("P%d is a 30-year-old x" % i) if small else text_for(i)
            while True:
                try:
                    p.produce(topic, value=v.encode(), key=b"k%d" % i,
                              on_delivery=cb)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % 10000 == 0:
                p.poll(0)
        left = p.flush(300)
        if left or errors:
            raise SystemExit("produce to %s: %d undelivered, %s" %
                             (topic, left, errors[:3]))
        say("produced %d records to %s in %.1fs", n, topic,
            time.monotonic() - t)

    def watermark_consumer(self):
        if not hasattr(self, "_wmc"):
            self._wmc = Consumer({"bootstrap.servers": self.bootstrap,
                                  "group.id": "bench-wm-" + self.uid,
                                  "enable.auto.commit": False})
        return self._wmc

    def count(self, topics):
        """Records in topics (sum of high watermarks: nothing is deleted)."""
        c = self.watermark_consumer()
        n = 0
        for t in topics:
            for p in range(self.args.partitions):
                n += c.get_watermark_offsets(TopicPartition(t, p),
                                             timeout=10, cached=False)[1]
        return n

    def latencies(self, topic, header, window=None):
        """(values of a numeric header, produce timestamps in ms) over
        every record of topic, or over those with timestamps in
        window = (from_ms, to_ms)."""
        c = Consumer({"bootstrap.servers": self.bootstrap,
                      "group.id": "bench-lat-" + uuid.uuid4().hex[:8],
                      "enable.auto.commit": False,
                      "enable.partition.eof": True,
                      "fetch.wait.max.ms": 10})
        c.assign([TopicPartition(topic, p, -2)
                  for p in range(self.args.partitions)])
        out, stamps, eof = [], [], set()
        end = time.monotonic() + 120
        while len(eof) < self.args.partitions and time.monotonic() < end:
            for m in c.consume(10000, 0.5):
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF
                        eof.add(m.partition())
                    continue
                ts = m.timestamp()[1]
                if window and not window[0] <= ts < window[1]:
                    continue
                stamps.append(ts)
                for k, v in m.headers() or ():
                    if k == header:
                        out.append(int(v))
        c.close()
        return out, stamps

    # -- one run

    def extractd_config(self, run, c, ordering, jitter, input_topic,
                        pool="", llm="", more=""):
        """The config of a run; pool, llm: more pool.* and llm.*
        settings; more: more groups."""
        base = self.llmsims[jitter][1] + "/v1"
        text = """
kafka: {
  brokers = "%s"; group = "%s";
  input_topic = "%s"; output_topic = "%s"; dlq_topic = "%s";
  consumer_threads = 1;
  properties = ( ("session.timeout.ms", 6000) );
};
llm: { base_url = "%s"; api_key_env = "OPENAI_API_KEY";
       model = "gpt-4o-mini"; mode = "json_schema"; timeout_ms = 30000;
       %s};
schema: { file = "%s"; name = "Person"; };
pool: { workers = %d; max_in_flight = %d; %s};
output: { ordering = "%s"; partitioning = "key";
          delivery = "at-least-once"; };
http: { listen = ""; };
log: { level = "info"; format = "json"; };
%s""" % (self.bootstrap, "bench-%s-%s" % (run, self.uid), input_topic,
            run + ".out", run + ".dlq", base, llm,
            os.path.join(self.source, "schemas/person.schema.json"),
            c, c, pool, ordering, more)
        path = os.path.join(self.work, run + ".cfg")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_system(self, system, run, c, mode, jitter, input_topic,
                     instance=0, pool="", peer_args=(), wrap=()):
        """(Proc, ready marker) for one run, or for one of its instances
        (instance > 0: its own log; every instance of a run is in the
        run's consumer group). pool: more pool.* settings for extractd;
        peer_args: more arguments for a peer; wrap: the argv extractd
        runs under (valgrind's). System "peer" is the Instructor peer,
        "litellm" the LiteLLM one."""
        logpath = os.path.join(self.work, run + (
            ".%d" % instance if instance else "") + ".log")
        if system.startswith("extractd"):
            # One config for all the instances, written once: a rewrite
            # could be read half-written by the instance before.
            cfg = self.extractd_config(run, c, mode, jitter, input_topic,
                                       pool) if not instance else \
                os.path.join(self.work, run + ".cfg")
            env = dict(os.environ, OPENAI_API_KEY="sk-bench")
            binary = self.variants.get(system) or \
                os.path.join(self.bin, "extractd")
            p = Proc(list(wrap) + [binary, "-c", cfg], logpath, env=env)
            marker = '"msg":"partitions assigned"'
        else:
            python, script = (self.args.litellm_python, "peer_litellm.py") \
                if system == "litellm" else \
                (self.args.peer_python, "peer_instructor.py")
            argv = [python,
                    os.path.join(self.source, "scripts/bench", script),
                    "--bootstrap", self.bootstrap, "--input", input_topic,
                    "--output", run + ".out", "--dlq", run + ".dlq",
                    "--group", "bench-%s-%s" % (run, self.uid),
                    "--concurrency", str(c),
                    "--base-url", self.llmsims[jitter][1] + "/v1"] + \
                list(peer_args)
            p = Proc(argv, logpath)
            marker = '"msg": "ready"'
        return p, marker

    def final_line(self, p, system):
        key = '"msg":"stopped"' if system.startswith("extractd") else \
            '"msg": "stopped"'
        for line in reversed(p.text().splitlines()):
            if key in line:
                return json.loads(line)
        return None

    def others_pids(self):
        return [p.pid for p in self.procs if p.alive()]

    def run_one(self, system, mode, c, jitter, input_topic, records, steady):
        run = "bench.%s.%s.j%d.c%d.%s" % (system, mode, jitter, c, self.uid)
        outs = [run + ".out", run + ".dlq"]
        label = "%s %s jitter=%dms C=%d" % (system, mode, jitter, c)
        self.llm_call(jitter, "/reset", post=True)
        ours = self.others_pids()
        llm_pid = self.llmsims[jitter][0].pid
        busy0 = machine_busy_s()
        ours0 = {pid: proc_cpu_s(pid) for pid in ours}
        self0 = self_cpu_s()
        t_start = time.monotonic()
        p, marker = self.start_system(system, run, c, mode, jitter,
                                      input_topic)
        self.current = p
        cpu_ready = None
        sys_ready = threads_ready = 0.0
        ready_at = None
        done = 0
        last_note = time.monotonic()
        last_done, last_t = 0, time.monotonic()
        first_out = None
        timed_out = False
        while True:
            if not p.alive():
                raise SystemExit("%s exited early (status %s):\n%s" %
                                 (label, p.popen.returncode, p.tail()))
            self.check_services()
            if cpu_ready is None:
                if marker in p.text():
                    cpu_ready = proc_cpu_s(p.pid)
                    sys_ready = proc_cpu_s(p.pid, sys_only=True)
                    threads_ready = threads_cpu(p.pid)[0]
                    ready_at = time.monotonic()
                time.sleep(0.01)
                continue
            done = self.count(outs)
            now = time.monotonic()
            if done and first_out is None:
                first_out = now
            if done >= records:
                break
            if first_out is not None and now - first_out > steady + 8:
                timed_out = True
                break
            if now - ready_at > 120 + steady and done == 0:
                raise SystemExit("%s: no output after %.0fs:\n%s" %
                                 (label, now - ready_at, p.tail()))
            if now - last_note >= 2:
                rate = (done - last_done) / (now - last_t)
                say("  %s: %d/%d delivered, %.0f/s, load %.2f", label, done,
                    records, rate, loadavg())
                last_note, last_done, last_t = now, done, now
            time.sleep(0.2)
        cpu_total = proc_cpu_s(p.pid)
        threads_total = threads_cpu(p.pid)[0]
        sys_net = proc_cpu_s(p.pid, sys_only=True) - sys_ready
        hwm_kb = proc_status_kb(p.pid, "VmHWM")
        delivered_at_read = done
        busy1 = machine_busy_s()
        ours1 = {pid: proc_cpu_s(pid) for pid in ours}
        self1 = self_cpu_s()
        t_end = time.monotonic()
        load1 = loadavg()
        rc = p.stop(grace=120)
        final = self.final_line(p, system)
        if rc != 0 or final is None:
            raise SystemExit("%s: exit status %s, final line %s:\n%s" %
                             (label, rc, final, p.tail()))
        stats = self.llm_call(jitter, "/stats")
        if system == "peer":
            cpu_ready = final.get("startup_cpu_s", cpu_ready)
            records_done = final["records"]
            errors = final["errors"]
            header = "latency_ms"
        else:
            records_done = final["records"] + final["dead_letters"]
            errors = final["dead_letters"]
            header = "extractd.latency_ms"
        secs = final["busy_seconds"]
        lat, stamps = self.latencies(run + ".out", header)
        lat.sort()
        stamps.sort()
        if self.args.dump_stamps:
            d = os.path.join(self.out, "stamps")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "%s-%s-j%d-c%d.txt" % (
                    system, mode, jitter, c)), "w") as f:
                f.write("# first_consumed_ms %s last_delivered_ms %s\n" % (
                    final.get("first_consumed_ms"),
                    final.get("last_delivered_ms")))
                f.writelines("%d\n" % t for t in stamps)
        # The middle 80 % of the outputs by produce time: the steady rate,
        # without the start (group join, first fetch) and the tail.
        steady_thr = None
        if len(stamps) >= 50:
            a, z = stamps[len(stamps) // 10], stamps[len(stamps) * 9 // 10]
            if z > a:
                steady_thr = (len(stamps) * 8 // 10) / ((z - a) / 1000.0)
        first_out_ms = (stamps[0] - final["first_consumed_ms"]) \
            if stamps and final.get("first_consumed_ms") else None

        def pct(q):
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None
        our_cpu = sum(ours1[k] - ours0.get(k, 0) for k in ours1) + \
            (cpu_total) + (self1 - self0)
        wall = t_end - t_start
        others = max(0.0, (busy1 - busy0) - our_cpu) / wall
        littles = c / (LATENCY_MS / 1000.0)
        thr = records_done / secs if secs else 0.0
        # extractd's threads all live from ready to the end: their
        # schedstat is exact where the ticks are not. The peer's own
        # start-up figure is process time, so its ticks.
        cpu_net = cpu_total - (cpu_ready or 0.0) if system == "peer" else \
            threads_total - threads_ready
        res = {
            "system": system, "mode": mode, "concurrency": c,
            "latency_ms": LATENCY_MS, "jitter_ms": jitter,
            "records": records_done, "dead_letters": errors,
            "seconds": round(secs, 3),
            "throughput": round(thr, 1),
            "littles_law": round(littles, 1),
            "efficiency": round(thr / littles, 4),
            "cpu_s_per_record": round(cpu_net / max(delivered_at_read, 1), 9),
            "cpu_us_per_record": round(cpu_net / max(delivered_at_read, 1)
                                       * 1e6, 1),
            "sys_us_per_record": round(sys_net / max(delivered_at_read, 1)
                                       * 1e6, 1),
            "cpu_s": round(cpu_net, 3), "cpu_startup_s": round(
                cpu_ready or 0.0, 3),
            "rss_mb": round(hwm_kb / 1024.0, 1),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "throughput_steady": round(steady_thr, 1) if steady_thr
            else None,
            "first_output_after_ms": first_out_ms,
            "llm_peak_concurrent": stats.get("peak_concurrent"),
            "llm_requests": stats.get("requests"),
            "stopped_early": timed_out,
            "load1": load1, "other_cores_busy": round(others, 2),
            "machine_cores_busy": round((busy1 - busy0) / wall, 2),
            "kafka_cpu_s": round(ours1.get(self.kafka.pid, 0) -
                                 ours0.get(self.kafka.pid, 0), 2)
            if self.kafka else None,
            "llmsim_cpu_s": round(ours1[llm_pid] - ours0[llm_pid], 2),
        }
        self.results.append(res)
        self.save()
        say("%s: %d records in %.2fs = %.0f/s (Little %.0f/s, eff %.3f; "
            "middle 80%%: %.0f/s), "
            "%.1f us CPU/record (system %.1f), RSS %.1f MiB, p50 %s p99 %s "
            "ms, peak %s in flight | load %.2f, other procs %.2f cores%s",
            label, records_done, secs, thr, littles, thr / littles,
            steady_thr or 0, res["cpu_us_per_record"],
            res["sys_us_per_record"], res["rss_mb"], res["p50_ms"],
            res["p99_ms"], res["llm_peak_concurrent"], load1, others,
            " (stopped at the time budget)" if timed_out else "")
        return res

    def run_floor(self, c, jitter, records):
        """The design's cost floor at C (tools/floor): the same calls to
        the same llmsim, with nothing of extractd around them (no Kafka):
        a row like run_one's, system "floor"."""
        label = "floor jitter=%dms C=%d" % (jitter, c)
        texts = os.path.join(self.work, "floor-texts.txt")
        if not os.path.exists(texts):
            with open(texts, "w") as f:
                f.writelines(text_for(i) + "\n" for i in range(10000))
        self.llm_call(jitter, "/reset", post=True)
        llm_pid = self.llmsims[jitter][0].pid
        llm0 = proc_cpu_s(llm_pid)
        busy0, t0 = machine_busy_s(), time.monotonic()
        r = subprocess.run(
            [os.path.join(self.bin, "floor"),
             "--base-url", self.llmsims[jitter][1] + "/v1",
             "--schema", os.path.join(self.source,
                                      "schemas/person.schema.json"),
             "--texts", texts, "--concurrency", str(c),
             "--requests", str(records)],
            capture_output=True, text=True, timeout=600)
        wall = time.monotonic() - t0
        busy = machine_busy_s() - busy0
        final = None
        for line in reversed(r.stdout.splitlines()):
            if '"msg":"stopped"' in line:
                final = json.loads(line)
                break
        if r.returncode != 0 or final is None:
            raise SystemExit("%s: exit status %d, %s\n%s" % (
                label, r.returncode, final, r.stderr[-2000:]))
        stats = self.llm_call(jitter, "/stats")
        llm_cpu = proc_cpu_s(llm_pid) - llm0
        secs = final["busy_seconds"]
        littles = c / (LATENCY_MS / 1000.0)
        thr = final["records"] / secs if secs else 0.0
        cpu = final["cpu_s"]
        others = max(0.0, busy - cpu - llm_cpu) / wall
        res = {
            "system": "floor", "mode": "completion", "concurrency": c,
            "latency_ms": LATENCY_MS, "jitter_ms": jitter,
            "records": final["records"], "dead_letters": final["errors"],
            "seconds": round(secs, 3), "throughput": round(thr, 1),
            "littles_law": round(littles, 1),
            "efficiency": round(thr / littles, 4),
            "cpu_s_per_record": round(cpu / max(final["records"], 1), 9),
            "cpu_us_per_record": round(cpu / max(final["records"], 1)
                                       * 1e6, 1),
            "sys_us_per_record": round(final["cpu_sys_s"] /
                                       max(final["records"], 1) * 1e6, 1),
            "cpu_s": round(cpu, 3),
            "rss_mb": round(final["rss_kb"] / 1024.0, 1),
            "p50_ms": final["p50_ms"], "p99_ms": final["p99_ms"],
            "llm_peak_concurrent": stats.get("peak_concurrent"),
            "llm_requests": stats.get("requests"),
            "load1": loadavg(), "other_cores_busy": round(others, 2),
            "machine_cores_busy": round(busy / wall, 2),
            "llmsim_cpu_s": round(llm_cpu, 2),
        }
        self.results.append(res)
        self.save()
        say("%s: %d calls in %.2fs = %.0f/s (Little %.0f/s, eff %.3f), "
            "%.1f us CPU/call (system %.1f), p50 %s p99 %s ms | load %.2f, "
            "other procs %.2f cores", label, final["records"], secs, thr,
            littles, thr / littles, res["cpu_us_per_record"],
            res["sys_us_per_record"], res["p50_ms"],
            res["p99_ms"], res["load1"], others)
        return res

    def run_idle(self, system, topic, seconds):
        """extractd ready on an empty topic: CPU and thread switches a
        second, over seconds, after as long to settle (the group's first
        commits and metadata rounds cost 0.5 ms a second more). Threads
        that end meanwhile are not counted."""
        run = "bench.%s.idle.%s" % (system, self.uid)
        p, marker = self.start_system(system, run, 64, "completion", 0,
                                      topic)
        self.current = p
        end = time.monotonic() + 120
        while marker not in p.text():
            if not p.alive() or time.monotonic() > end:
                raise SystemExit("%s (idle) did not get ready:\n%s" % (
                    system, p.tail()))
            time.sleep(0.01)
        time.sleep(seconds)

        (cpu0, sw0), t0 = threads_cpu(p.pid), time.monotonic()
        time.sleep(seconds)
        (cpu1, sw1), t1 = threads_cpu(p.pid), time.monotonic()
        rc = p.stop(grace=60)
        self.current = None
        if rc != 0:
            raise SystemExit("%s (idle): exit status %s:\n%s" % (
                system, rc, p.tail()))
        res = {"kind": "idle", "system": system, "seconds": round(t1 - t0, 1),
               "cpu_ms_per_s": round((cpu1 - cpu0) * 1000 / (t1 - t0), 3),
               "switches_per_s": round((sw1 - sw0) / (t1 - t0), 1),
               "load1": loadavg()}
        self.results.append(res)
        self.save()
        say("%s idle: %.3f ms of CPU a second, %.1f thread switches a second "
            "(over %.0f s)", system, res["cpu_ms_per_s"],
            res["switches_per_s"], res["seconds"])
        return res

    def run_backlog(self, topic, n, c, seconds):
        """extractd at C over an n-record backlog for seconds: RSS."""
        run = "bench.extractd.backlog.c%d.%s" % (c, self.uid)
        self.llm_call(0, "/reset", post=True)
        p, marker = self.start_system("extractd", run, c, "completion", 0,
                                      topic)
        self.current = p
        busy0, t0 = machine_busy_s(), time.monotonic()
        while marker not in p.text():
            if not p.alive():
                raise SystemExit("extractd exited:\n" + p.tail())
            time.sleep(0.01)
        cpu_ready = proc_cpu_s(p.pid)
        end = time.monotonic() + seconds
        peak_rss = 0
        while time.monotonic() < end:
            peak_rss = max(peak_rss, proc_status_kb(p.pid, "VmRSS"))
            time.sleep(1)
            say("  backlog %d, C=%d: %d delivered, RSS %.1f MiB, load %.2f",
                n, c, self.count([run + ".out", run + ".dlq"]),
                proc_status_kb(p.pid, "VmRSS") / 1024, loadavg())
        cpu = proc_cpu_s(p.pid) - cpu_ready
        hwm = proc_status_kb(p.pid, "VmHWM")
        done = self.count([run + ".out", run + ".dlq"])
        load1 = loadavg()
        wall = time.monotonic() - t0
        busy = machine_busy_s() - busy0
        p.stop(grace=120)
        final = self.final_line(p, "extractd") or {}
        res = {
            "system": "extractd", "mode": "completion", "concurrency": c,
            "latency_ms": LATENCY_MS, "jitter_ms": 0, "backlog": n,
            "records": done, "seconds": final.get("busy_seconds"),
            "throughput": round(done / final["busy_seconds"], 1)
            if final.get("busy_seconds") else None,
            "littles_law": c / (LATENCY_MS / 1000.0),
            "cpu_s_per_record": round(cpu / max(done, 1), 9),
            "cpu_us_per_record": round(cpu / max(done, 1) * 1e6, 1),
            "rss_mb": round(hwm / 1024.0, 1),
            "load1": load1, "machine_cores_busy": round(busy / wall, 2),
        }
        if res["throughput"]:
            res["efficiency"] = round(res["throughput"] / res["littles_law"],
                                      4)
        self.results.append(res)
        self.save()
        say("backlog %d at C=%d: VmHWM %.1f MiB after %.0fs, %d delivered, "
            "%.1f us CPU/record | load %.2f", n, c, res["rss_mb"], seconds,
            done, res["cpu_us_per_record"], load1)
        return res

    def save(self):
        path = os.path.join(self.out, "results.json")
        with open(path + ".tmp", "w") as f:
            json.dump(self.results, f, indent=1)
            f.write("\n")
        os.replace(path + ".tmp", path)


# --------------------------------------------------------------------------
# Plan, plots


def plan(args):
    """[(jitter, C, records, systems)]: systems [(system, mode)]."""
    steady = args.steady
    if args.quick:
        points = [(0, c) for c in (1, 8, 64, 256)] + [(20, 64)]
        peer_cs = {8, 64}
    else:
        cs = (1, 8, 64, 256, 1024)
        points = [(j, c) for j in (0, 20) for c in cs]
        peer_cs = set(cs)
    if args.concurrency:
        # Any list, not only the default points: jitter 0 and 20 for each.
        try:
            cs = sorted({int(x) for x in args.concurrency.split(",")})
        except ValueError:
            cs = []
        if not cs or cs[0] < 1:
            sys.exit("bench.py: --concurrency wants integers >= 1, "
                     "e.g. 64,256")
        points = [(j, c) for j in (0, 20) for c in cs]
        peer_cs = set(cs)
    if args.jitter:
        keep = {int(x) for x in args.jitter.split(",")}
        points = [pt for pt in points if pt[0] in keep]
    out = []
    for j, c in points:
        records = max(100, int(c / (LATENCY_MS / 1000.0) * (steady + 2)))
        systems = [("extractd", "completion"), ("extractd", "offset")]
        for v in args.variant or ():
            name = "extractd-" + v.partition("=")[0]
            systems += [(name, "completion"), (name, "offset")]
        if j == 0 and c in peer_cs and not args.no_peer:
            systems.append(("peer", "completion"))
        if not args.no_floor:
            systems.append(("floor", "completion"))
        out.append((j, c, records, systems))
    return out


def plots(out, results, gp_dir):
    if not shutil.which("gnuplot"):
        say("gnuplot not found: no plots")
        return
    series = {}
    for r in results:
        if "backlog" in r or r.get("kind") in OTHER_KINDS:
            continue
        key = "%s-%s-j%d" % (r["system"], r["mode"], r["jitter_ms"])
        series.setdefault(key, []).append(r)
    ddir = os.path.join(out, "data")
    os.makedirs(ddir, exist_ok=True)
    files, titles = [], []
    for key in sorted(series):
        rows = sorted(series[key], key=lambda r: r["concurrency"])
        path = os.path.join(ddir, key + ".dat")
        with open(path, "w") as f:
            f.write("# concurrency throughput littles efficiency "
                    "cpu_us_per_record rss_mb p50 p99\n")
            for r in rows:
                f.write("%d %s %s %s %s %s %s %s\n" % (
                    r["concurrency"], r["throughput"], r["littles_law"],
                    r["efficiency"], r["cpu_us_per_record"], r["rss_mb"],
                    r["p50_ms"] if r["p50_ms"] is not None else "NaN",
                    r["p99_ms"] if r["p99_ms"] is not None else "NaN"))
        files.append(path)
        titles.append(key.replace("-j", " jitter ").replace("-", " ") + "ms")
    backlog = os.path.join(ddir, "backlog.dat")
    with open(backlog, "w") as f:
        f.write("# concurrency rss_mb (the million-record backlog point)\n")
        for r in results:
            if "backlog" in r:
                f.write("%d %s\n" % (r["concurrency"], r["rss_mb"]))
    for name in ("throughput", "cpu", "rss", "efficiency"):
        gp = os.path.join(gp_dir, name + ".gp")
        png = os.path.join(out, name + ".png")
        cmd = ["gnuplot", "-e", "files='%s'; titles='%s'; out='%s'; "
               "latency_ms=%d; dir='%s'; backlog='%s'" % (" ".join(files),
                                  " ".join(t.replace(" ", "_")
                                           for t in titles),
                                  png, LATENCY_MS, gp_dir, backlog), gp]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            say("gnuplot %s failed: %s", name, r.stderr.strip())
        else:
            say("plot: %s", png)


def table(results):
    """results as a Markdown table (DIR/results.md); "" for none. The
    last two columns compare a run with the floor's at the same point
    (tools/floor: the bare call loop): CPU per record and efficiency, each
    divided by the floor's."""
    if all(r.get("kind") in OTHER_KINDS for r in results):
        return ""
    floor = {(r["jitter_ms"], r["concurrency"]): r for r in results
             if r.get("system") == "floor" and "kind" not in r}
    head = ("| system | order | jitter ms | C | records | s | records/s | "
            "Little's law | efficiency | middle 80 % /s | CPU us/record | "
            "RSS MiB | p50/p99 ms | load1 | other cores | CPU ÷ floor | "
            "efficiency ÷ floor |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "backlog" in r or r.get("kind") in OTHER_KINDS:
            continue
        f = floor.get((r["jitter_ms"], r["concurrency"]))
        vs = ("%.2f | %.3f" % (r["cpu_us_per_record"] /
                               f["cpu_us_per_record"],
                               r["efficiency"] / f["efficiency"])
              if f and r is not f and f["cpu_us_per_record"] and
              f["efficiency"] else "- | -")
        rows.append("| %s | %s | %d | %d | %d | %.1f | %.0f | %.0f | %.3f | "
                    "%s | %.0f | %.1f | %s/%s | %.2f | %.2f | %s |" % (
                        r["system"], r["mode"], r["jitter_ms"],
                        r["concurrency"], r["records"], r["seconds"],
                        r["throughput"], r["littles_law"], r["efficiency"],
                        "%.0f" % r["throughput_steady"]
                        if r.get("throughput_steady") else "-",
                        r["cpu_us_per_record"], r["rss_mb"], r["p50_ms"],
                        r["p99_ms"], r["load1"], r["other_cores_busy"], vs))
    for r in results:
        if "backlog" in r:
            rows.append("")
            rows.append("Backlog: extractd at C=%d over a %d-record backlog "
                        "for %.0f s: VmHWM %.1f MiB, %d records delivered, "
                        "%.0f us CPU/record, load1 %.2f." % (
                            r["concurrency"], r["backlog"],
                            r["seconds"] or 0, r["rss_mb"], r["records"],
                            r["cpu_us_per_record"], r["load1"]))
    for r in results:
        if r.get("kind") == "idle":
            rows.append("")
            rows.append("Idle: %s ready on an empty topic: %.3f ms of CPU a "
                        "second, %.1f thread switches a second (over %.0f "
                        "s), load1 %.2f." % (
                            r["system"], r["cpu_ms_per_s"],
                            r["switches_per_s"], r["seconds"], r["load1"]))
    return "\n".join(rows) + "\n"


def main():
    import cost  # they import this module, so not at the top
    import goodput
    import instructions

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--peer-python", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steady", type=float, default=None,
                    help="seconds of steady state per point (default 12, "
                    "quick 4)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--concurrency",
                    help="these instead, jitter 0 and 20 each, e.g. 64,256")
    ap.add_argument("--jitter", help="only these jitters (ms), e.g. 0")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--no-floor", action="store_true",
                    help="no floor runs (tools/floor: the bare call loop "
                    "extractd's CPU and efficiency are compared with)")
    ap.add_argument("--no-backlog", action="store_true")
    ap.add_argument("--no-idle", action="store_true",
                    help="no idle runs (extractd ready on an empty topic: "
                    "CPU a second)")
    ap.add_argument("--idle-seconds", type=float, default=10.0,
                    help="seconds measured an idle run (default 10)")
    ap.add_argument("--backlog", type=int, default=1000000)
    ap.add_argument("--backlog-seconds", type=float, default=None)
    ap.add_argument("--variant", action="append", metavar="NAME=BINARY",
                    help="also run another extractd binary at every point, "
                    "as system extractd-NAME (to compare a change)")
    ap.add_argument("--litellm-python", default=None,
                    help="the LiteLLM peer's venv python (goodput runs)")
    ap.add_argument("--no-goodput", action="store_true",
                    help="no goodput runs (goodput.py)")
    ap.add_argument("--no-cost", action="store_true",
                    help="no cost runs (cost.py: live vs batch.mode = "
                    "backlog)")
    ap.add_argument("--cost-records", type=int, default=cost.RECORDS,
                    help="records of the cost runs (default %d)" %
                    cost.RECORDS)
    ap.add_argument("--no-instructions", action="store_true",
                    help="no callgrind runs (instructions.py: instructions "
                    "per record of extractd and the floor)")
    ap.add_argument("--instructions-records", default=instructions.RECORDS,
                    metavar="SMALL,LARGE",
                    help="records of the two callgrind runs of each system "
                    "(default %s)" % instructions.RECORDS)
    ap.add_argument("--only", choices=("goodput", "cost", "instructions"),
                    help="only the goodput, cost or instructions runs; "
                    "the other runs already in DIR/results.json are kept")
    ap.add_argument("--goodput-steady", type=float, default=None,
                    help="seconds measured a goodput run (default 30, "
                    "quick 15)")
    ap.add_argument("--goodput-warmup", type=float, default=None,
                    help="seconds of warm-up before (default 10, quick 5)")
    ap.add_argument("--plots-only", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--dump-stamps", action="store_true",
                    help="write each run's output timestamps to DIR/stamps")
    args = ap.parse_args()
    if args.steady is None:
        args.steady = 4.0 if args.quick else 12.0
    if args.backlog_seconds is None:
        args.backlog_seconds = 10.0 if args.quick else 20.0
    if args.goodput_steady is None:
        args.goodput_steady = 15.0 if args.quick else 30.0
    if args.goodput_warmup is None:
        args.goodput_warmup = 5.0 if args.quick else 10.0
    if not args.peer_python:
        args.no_peer = True
    if args.only:
        args.no_backlog = True
        args.no_idle = True
        args.no_goodput = args.only != "goodput"
        args.no_cost = args.only != "cost"
        args.no_instructions = args.only != "instructions"
    gp_dir = os.path.dirname(os.path.abspath(__file__))

    if args.plots_only:
        with open(os.path.join(args.out, "results.json")) as f:
            results = json.load(f)
        report(os.path.abspath(args.out), results, gp_dir)
        return

    pts = [] if args.only else plan(args)
    b = Bench(args)
    if args.only:
        try:
            with open(os.path.join(b.out, "results.json")) as f:
                b.results = [r for r in json.load(f)
                             if r.get("kind") != args.only]
        except FileNotFoundError:
            pass
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    try:
        topics = {}
        for j, c, n, systems in pts:
            topics["bench.in.j%d.c%d.%s" % (j, c, b.uid)] = args.partitions
            for system, mode in systems:
                if system == "floor":  # no Kafka
                    continue
                run = "bench.%s.%s.j%d.c%d.%s" % (system, mode, j, c, b.uid)
                topics[run + ".out"] = args.partitions
                topics[run + ".dlq"] = args.partitions
        idle_topic = "bench.idle.in.%s" % b.uid
        idle_systems = ["extractd"] + sorted(b.variants)
        if not args.no_idle:
            topics[idle_topic] = args.partitions
            for system in idle_systems:
                run = "bench.%s.idle.%s" % (system, b.uid)
                topics[run + ".out"] = args.partitions
                topics[run + ".dlq"] = args.partitions
        bl_topic = "bench.backlog.%s" % b.uid
        bl_run = "bench.extractd.backlog.c256.%s" % b.uid
        if not args.no_backlog:
            topics[bl_topic] = args.partitions
            topics[bl_run + ".out"] = args.partitions
            topics[bl_run + ".dlq"] = args.partitions
        if not args.no_goodput:
            topics.update(goodput.topics(b, args))
        if not args.no_cost:
            topics.update(cost.topics(b, args))
        if not args.no_instructions:
            topics.update(instructions.topics(b, args))
        say("plan: %d points, %d runs, %.0fs of steady state each; "
            "machine: %d cores, load %.2f", len(pts),
            sum(len(p[3]) for p in pts), args.steady, os.cpu_count(),
            loadavg())
        b.start_kafka(topics)
        for j in sorted({p[0] for p in pts} |
                        (set() if args.no_backlog and args.no_idle and
                         args.no_instructions else {0})):
            b.start_llmsim(j)
        for j, c, n, systems in pts:
            topic = "bench.in.j%d.c%d.%s" % (j, c, b.uid)
            say("point jitter=%dms C=%d: %d records (Little's law %d/s)",
                j, c, n, c * 1000 // LATENCY_MS)
            b.produce(topic, n)
            for system, mode in systems:
                if system == "floor":
                    b.run_floor(c, j, n)
                else:
                    b.run_one(system, mode, c, j, topic, n, args.steady)
        if not args.no_idle:
            for system in idle_systems:
                b.run_idle(system, idle_topic, args.idle_seconds)
        if not args.no_backlog:
            say("million-record backlog: producing %d records", args.backlog)
            b.produce(bl_topic, args.backlog, small=True)
            b.run_backlog(bl_topic, args.backlog, 256, args.backlog_seconds)
        if not args.no_goodput:
            goodput.run(b, args)
        if not args.no_cost:
            cost.run(b, args)
        if not args.no_instructions:
            instructions.run(b, args)
    finally:
        b.close()
    sys.stdout.write(report(b.out, b.results, gp_dir))
    say("results: %s (and results.md)", os.path.join(b.out, "results.json"))


def report(out, results, gp_dir):
    """The plots and DIR/results.md; returns the tables."""
    import cost
    import goodput
    import instructions
    if any(r.get("kind") not in OTHER_KINDS
           for r in results):
        plots(out, results, gp_dir)
    goodput.plot(out, results, gp_dir)
    text = table(results) + goodput.table(results) + cost.table(results) + \
        instructions.table(results)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    return text


if __name__ == "__main__":
    main()
