"""peer_kafka: the Kafka pipeline around a peer's LLM call.

Shared by the benchmark's peers (peer_instructor.py, peer_litellm.py): each
gives an async extract(text) returning the output value (JSON bytes) or
raising, and this runs it as a pipeline, the way a Python team would write
one today:

  - asyncio.Semaphore(C) around the LLM call; the consume loop also waits
    for a free slot before it makes a task, so a backlog of a million
    records costs C tasks, not a million;
  - aiokafka: a consumer of the input topic (auto-commit, its defaults) and
    an idempotent acks=all producer with linger 5 ms, as extractd's
    producer; a record whose extract() raised goes to the dead-letter
    topic with its input value.

Stdout gets JSON lines: {"msg":"ready",...} once consuming starts and, on
SIGTERM or SIGINT, after the work in flight is delivered, {"msg":"stopped",
"records":N, "errors":N, "first_consumed_ms":..., "last_delivered_ms":...,
"busy_seconds":..., "startup_cpu_s":...}: the same fields and meaning as
extractd's final log line (first record admitted to last output delivered).
Each output record carries a header latency_ms: slot taken to produce call,
as extractd's extractd.latency_ms.
"""

import argparse
import asyncio
import json
import signal
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

INSTRUCTIONS = "Extract the person described in the user's text."


def emit(msg, **fields):
    fields = {"msg": msg, **fields}
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def wall_ms():
    return int(time.time() * 1000)


def arguments(description):
    """The options every peer takes; a peer adds its own."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--dlq", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--api-key", default="sk-bench")
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--timeout", type=float, default=30.0)
    return ap


class Pipeline:
    def __init__(self, args, extract):
        self.args = args
        self.extract = extract
        self.sem = asyncio.Semaphore(args.concurrency)
        self.stopping = asyncio.Event()
        self.tasks = set()
        self.records = 0
        self.errors = 0
        self.first_consumed_ms = 0
        self.last_delivered_ms = 0

    async def handle(self, msg):
        """One record: the LLM call under the slot, then produce; the slot
        is taken by the consume loop and given back here."""
        try:
            t0 = time.monotonic()
            try:
                value = await self.extract(msg.value.decode("utf-8"))
                topic = self.args.output
            except Exception as e:  # a failed record: its dead letter
                self.errors += 1
                if self.errors <= 5:
                    emit("record failed", error=repr(e)[:300])
                value = msg.value
                topic = self.args.dlq
            latency = int((time.monotonic() - t0) * 1000)
            fut = await self.producer.send(
                topic, value=value, key=msg.key,
                headers=[("latency_ms", str(latency).encode())])
        finally:
            self.sem.release()
        await fut
        self.records += 1
        self.last_delivered_ms = wall_ms()

    async def run(self):
        a = self.args
        self.consumer = AIOKafkaConsumer(
            a.input, bootstrap_servers=a.bootstrap, group_id=a.group,
            auto_offset_reset="earliest", enable_auto_commit=True)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=a.bootstrap, acks="all",
            enable_idempotence=True, linger_ms=5)
        await self.producer.start()
        await self.consumer.start()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, self.stopping.set)
        startup_cpu = time.process_time()
        emit("ready", concurrency=a.concurrency, startup_cpu_s=startup_cpu)
        try:
            while not self.stopping.is_set():
                batches = await self.consumer.getmany(
                    timeout_ms=100, max_records=a.concurrency)
                for msgs in batches.values():
                    for msg in msgs:
                        # Admission: a slot before the task exists.
                        await self.sem.acquire()
                        if not self.first_consumed_ms:
                            self.first_consumed_ms = wall_ms()
                        t = asyncio.create_task(self.handle(msg))
                        self.tasks.add(t)
                        t.add_done_callback(self.tasks.discard)
            # Stopping: what is in flight is finished and delivered.
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
        finally:
            await self.consumer.stop()  # commits what was consumed
            await self.producer.stop()
        first, last = self.first_consumed_ms, self.last_delivered_ms
        emit("stopped", records=self.records, errors=self.errors,
             first_consumed_ms=first, last_delivered_ms=last,
             busy_seconds=(last - first) / 1000 if first and last > first
             else 0.0,
             startup_cpu_s=startup_cpu, cpu_s=time.process_time())
