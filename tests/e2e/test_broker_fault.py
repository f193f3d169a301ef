"""e2e.broker_fault: on a real three-node Apache Kafka cluster (replication
factor 3, min.insync.replicas 2), one broker is stopped mid-stream and
started again; extractd loses nothing and keeps going.

The test starts its own cluster with scripts/kafka.sh --nodes 3, in its
temp dir (KAFKA_STATE_DIR), on ports of its own (KAFKA_PORT_BASE), with
KAFKA_OWNER_PID so that a test killed by ctest does not leave it running;
it stops it at the end. 2,400 texts (and a few bad ones) are produced at
RATE records/s over 6 partitions; llmsim answers after 20 ms (every 50th
text after 2 s: commits wait for it); one extractd (8 in flight). Once an
eighth is out, the broker leading the most input and output partitions is
stopped (SIGTERM: a controlled shutdown, the way a rolling restart does
it), kept down for DOWN_S seconds, and started again.
Proves:
  - the topics really have 3 replicas and min.insync.replicas 2, and the
    stopped broker really leads nothing while it is down;
  - records keep coming out while it is down (acks=all with 2 of 3 in
    sync): it stays down until OUT_WHILE_DOWN more inputs came out, and
    extractd stays up throughout, with no fatal error logged;
  - in every committed-offset sample, every input offset below the
    committed one already had its output written (CommitWatch);
  - every input ends as an output or a dead letter: none lost; repeats
    are counted and printed;
  - extractd commits to the end while running and exits 0 on SIGTERM.
Skipped (exit 77) without Java (Kafka's jars need it, and Maven once to
fetch them), and in the real-Kafka pass of scripts/test.sh
(KAFKA_BOOTSTRAP set): it brings its own real cluster, so it has already
run in the kafka-embedded pass.
"""

import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import harness  # noqa: E402
from harness import check, log, person_texts  # noqa: E402

from confluent_kafka import Consumer, KafkaError, KafkaException  # noqa
from confluent_kafka.admin import AdminClient, ConfigResource  # noqa: E402

NODES = 3
PARTITIONS = 6
GOOD = 2400
BAD = [b" ", b"No match here"]
RATE = 150.0
DOWN_S = 8            # seconds a broker stays down, at least
OUT_WHILE_DOWN = 100  # inputs that must come out meanwhile
WARMUP = 60
POOL = {"workers": 8, "max_in_flight": 8}
SLOW_EVERY = 50       # every 50th text is answered after SLOW_MS
SLOW_MS = 2000
START_TIMEOUT = 150  # seconds for kafka.sh start (the JVMs on 2 cores)
KAFKA_TOOL_MISSING = 4  # kafka.sh's exit status when Java or Maven is missing


def port_base():
    """A random block start below the ephemeral port range, where no
    client connection can take a port between kafka.sh's check and the
    broker's bind."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return random.Random().randrange(20000, max(low - 100, 20100), 20)


class RealCluster:
    """A scripts/kafka.sh cluster in the test's temp dir. It sits in the
    harness's process list (first, so it is stopped last), with the
    interface harness.close() uses: stop(), name, pid, logpath, tail()."""

    name = "kafka.sh"

    def __init__(self, h, nodes):
        self.h = h
        self.script = os.path.join(h.source, "scripts", "kafka.sh")
        self.state = os.path.join(h.dir, "kafka")
        self.logpath = os.path.join(h.dir, "kafka.sh.log")
        self.pid = os.getpid()
        self.env = dict(os.environ)
        self.env.pop("KAFKA_BOOTSTRAP", None)
        self.env.update({
            "KAFKA_STATE_DIR": self.state,
            "KAFKA_PORT_BASE": str(port_base()),
            "KAFKA_OWNER_PID": str(os.getpid()),
            "KAFKA_START_TIMEOUT": str(START_TIMEOUT - 30),
        })
        self.started = False
        h.procs.insert(0, self)
        t = time.monotonic()
        rc, out = self.run("start", "--nodes", str(nodes),
                           timeout=START_TIMEOUT)
        if rc == KAFKA_TOOL_MISSING:
            why = ("scripts/kafka.sh cannot start Kafka here (exit %d: no "
                   "usable Java, or no Maven for the first download):\n%s" %
                   (rc, self.tail()))
            h.close()
            harness.skip(why)
        check(rc == 0, "kafka.sh start exited %s:\n%s", rc, self.tail())
        self.started = True
        self.bootstrap = out.strip().splitlines()[-1]
        self.start_s = time.monotonic() - t
        log("%d-node Kafka at %s, started in %.1fs", nodes, self.bootstrap,
            self.start_s)

    def run(self, *args, timeout=120):
        """kafka.sh ARGS; returns (status, stdout); stderr to the log."""
        with open(self.logpath, "ab") as logf:
            logf.write(("$ kafka.sh %s\n" % " ".join(args)).encode())
            logf.flush()
            try:
                p = subprocess.run([self.script] + list(args), env=self.env,
                                   stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=logf,
                                   timeout=timeout)
            except subprocess.TimeoutExpired:
                return None, ""
        out = p.stdout.decode("utf-8", "replace")
        with open(self.logpath, "ab") as logf:
            logf.write(out.encode())
        return p.returncode, out

    def node_pid(self, node):
        with open(os.path.join(self.state, "node-%d" % node, "pid")) as f:
            return int(f.read().split()[0])

    def stop(self, grace=None):
        """Stop the whole cluster (harness.close() calls this last)."""
        if self.h.kafka is not None:
            self.h.kafka.created = []  # it all goes away with the cluster
        if self.started:
            self.started = False
            rc, _ = self.run("stop", timeout=120)
            if rc != 0:
                sys.stdout.write("kafka.sh stop exited %s\n" % rc)
        return 0

    def tail(self, n=harness.LOG_TAIL):
        return harness.log_tail(self.logpath, n)


def leaders(h, topics):
    """{(topic, partition): leader id} from the cluster's metadata."""
    c = Consumer({"bootstrap.servers": h.kafka.bootstrap,
                  "group.id": h.unique("md")})
    try:
        # The broker this client asks may learn of a new topic a moment
        # after the one that created it.
        end = time.monotonic() + 30
        while True:
            md = c.list_topics(timeout=30)
            if all(t in md.topics and md.topics[t].partitions
                   for t in topics):
                return {(t, p): md.topics[t].partitions[p].leader
                        for t in topics for p in md.topics[t].partitions}
            check(time.monotonic() < end, "topics %r not in the metadata",
                  topics)
            time.sleep(0.2)
    finally:
        c.close()


def body(h):
    t_all = time.monotonic()
    cluster = RealCluster(h, NODES)
    os.environ["KAFKA_BOOTSTRAP"] = cluster.bootstrap  # for harness.Kafka
    try:
        h.start_kafka(partitions=PARTITIONS)
    finally:
        del os.environ["KAFKA_BOOTSTRAP"]
    topics = list(h.topics.values())
    out, dlq = h.topics["output"], h.topics["dlq"]

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    deadline = time.monotonic() + 30
    while True:  # a new topic reaches every broker's metadata soon after
        md = admin.list_topics(timeout=30)
        if all(t in md.topics and
               len(md.topics[t].partitions) == PARTITIONS for t in topics):
            break
        check(time.monotonic() < deadline, "topics %r not in the metadata",
              topics)
        time.sleep(0.2)
    for t in topics:
        for p, pm in md.topics[t].partitions.items():
            check(len(pm.replicas) == NODES, "%s[%d] has replicas %r", t, p,
                  pm.replicas)
    res = ConfigResource(ConfigResource.Type.TOPIC, out)
    deadline = time.monotonic() + 30
    while True:
        # describe_configs asks any broker, which may not have learnt of
        # the topic yet (UNKNOWN_TOPIC_OR_PART): ask again until one has.
        try:
            conf = admin.describe_configs([res])[res].result(timeout=30)
            break
        except KafkaException as e:
            check(e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART and
                  time.monotonic() < deadline,
                  "describe_configs %s: %s", out, e)
            time.sleep(0.2)
    check(conf["min.insync.replicas"].value == "2",
          "min.insync.replicas of %s is %s", out,
          conf["min.insync.replicas"].value)

    values = [t.encode() for t in person_texts(GOOD, seed=61)]
    for i in range(0, GOOD, SLOW_EVERY):
        values[i + SLOW_EVERY // 2] = harness.SLOW_TEXT.encode()
    harness.insert_bad(values, BAD, 10, seed=13)
    total = len(values)

    h.start_llmsim(latency_ms=20, jitter_ms=5,
                   extra=["--answers", harness.slow_answers(h, SLOW_MS)])
    coll = h.collector()
    d, group = h.start_extractd({"pool": POOL})
    watch = harness.CommitWatch(h, group)
    # The first records wait for extractd to work (its group join and its
    # producer id take a while on a fresh cluster); then the rest flows at
    # RATE, through the broker's stop and start.
    feeder = harness.Feeder(h, values, RATE, PARTITIONS, gate_at=WARMUP)
    feeder.start()
    coll.until(lambda c: c.count() >= WARMUP // 2, "extractd at work",
               watch=[d])
    feeder.gate.set()

    coll.until(lambda c: len(c.coverage()) >= total // 8, "an eighth out",
               watch=[d])
    lead = leaders(h, [h.topics["input"], out])
    count = {}
    for b in lead.values():
        count[b] = count.get(b, 0) + 1
    node = max(sorted(count), key=lambda b: count[b])
    pid = cluster.node_pid(node)
    watch.mark("node %d down" % node, watch=[d])
    t = time.monotonic()
    rc, _ = cluster.run("stop-node", str(node))
    check(rc == 0, "kafka.sh stop-node %d exited %s:\n%s", node, rc,
          cluster.tail())
    t_stop = time.monotonic() - t
    check(not os.path.exists("/proc/%d" % pid) or
          open("/proc/%d/stat" % pid).read().split(") ")[-1][0] in "ZX",
          "node %d (pid %d) still runs after stop-node", node, pid)
    n0 = len(coll.coverage())
    log("node %d (leader of %d input/output partitions) stopped in %.1fs; "
        "%d of %d out, %d produced", node, count[node], t_stop, n0, total,
        feeder.sent)
    t_down = time.monotonic()
    # Down for at least DOWN_S, and until OUT_WHILE_DOWN more inputs came
    # out (however long the failover takes on a loaded machine: the wait
    # is for the event, bounded only by the harness's deadline).
    coll.until(lambda c: time.monotonic() - t_down >= DOWN_S and
               len(c.coverage()) - n0 >= OUT_WHILE_DOWN,
               "%ds with node %d down, and %d inputs out meanwhile (2 of 3 "
               "replicas in sync should do)" % (DOWN_S, node,
                                                OUT_WHILE_DOWN), watch=[d])
    during = len(coll.coverage()) - n0
    now_lead = leaders(h, topics)
    led = sorted(k for k, b in now_lead.items() if b == node)
    check(not led, "node %d is down but still leads %r", node, led[:5])
    log("%d inputs came out in the %.1fs node %d was down", during,
        time.monotonic() - t_down, node)
    watch.mark("node %d back" % node, watch=[d])
    t = time.monotonic()
    rc, _ = cluster.run("start-node", str(node), timeout=START_TIMEOUT)
    check(rc == 0, "kafka.sh start-node %d exited %s:\n%s", node, rc,
          cluster.tail())
    log("node %d started again in %.1fs", node, time.monotonic() - t)

    inputs = feeder.inputs()
    coll.until(lambda c: inputs <= set(c.coverage()),
               "every input offset covered", watch=[d])
    seen = coll.check_covered(inputs, 1.0)
    coll.check_persons(feeder.placed, values)
    repeats = sum(n - 1 for n in seen.values())
    log("DUPLICATES: %d repeated outputs (%d inputs)", repeats, total)

    end = h.end_offsets()
    watch.wait_for(end, "the end, while running", watch=[d])
    h.stop_at_end(group, d)
    d.check_no_fatal()
    n = watch.check(coll, inputs)
    log("commit prefix held in all %d samples (%d reads failed)", n,
        watch.failed_reads)
    log("outputs %d, dead letters %d; cluster start %.1fs, whole test "
        "%.1fs", coll.count(out), coll.count(dlq), cluster.start_s,
        time.monotonic() - t_all)


if __name__ == "__main__":
    if os.environ.get("KAFKA_BOOTSTRAP"):
        harness.skip("broker_fault starts its own three-node Kafka; it ran "
                     "in the kafka-embedded pass (this pass's broker is not "
                     "its to stop)")
    java = shutil.which("java")
    if os.environ.get("JAVA_HOME"):
        java = os.path.join(os.environ["JAVA_HOME"], "bin", "java")
    if not java or not os.access(java, os.X_OK):
        harness.skip("no Java (JAVA_HOME or java on PATH): the three-node "
                     "Apache Kafka cluster this test stops a broker of "
                     "needs Java 17+")
    harness.run(body)
