"""peer_instructor: the seed article's approach as a Kafka pipeline.

The benchmark's peer (scripts/bench.sh measures it beside extractd on the same
Kafka, llmsim and records). It is the article's code (seed/learn-async.md)
plus the Kafka loop a real deployment needs, written the way a Python team
would write it today and tuned fairly:

  - one shared AsyncOpenAI client, wrapped once by instructor.from_openai
    (instructor's default mode, TOOLS), with response_model=Person: the
    article's Person model, validated by pydantic;
  - the client's HTTP pool sized for the concurrency (the library default
    keeps only 100 idle keep-alive connections, which would make it reconnect
    above C=100);
  - asyncio.Semaphore(C) around the LLM call, as the article's rate-limited
    variants do; the consume loop also waits for a free slot before it makes
    a task, so a backlog of a million records costs C tasks, not a million
    (the article's gather over all tasks would hold every record in memory);
  - aiokafka: a consumer of the input topic (auto-commit, its defaults) and an
    idempotent acks=all producer with linger 5 ms, as extractd's producer;
  - the request is extractd's: a system message with the instructions, then
    the text verbatim as the user message (the article's "Extract person
    info: {text}" prefix would end up in the name llmsim extracts).

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

import httpx2
import instructor
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from pydantic import BaseModel

INSTRUCTIONS = "Extract the person described in the user's text."


class Person(BaseModel):
    name: str
    age: int
    occupation: str


def emit(msg, **fields):
    fields = {"msg": msg, **fields}
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def wall_ms():
    return int(time.time() * 1000)


class Peer:
    def __init__(self, args):
        self.args = args
        limits = httpx2.Limits(max_connections=args.concurrency,
                               max_keepalive_connections=args.concurrency)
        self.client = instructor.from_openai(AsyncOpenAI(
            base_url=args.base_url, api_key=args.api_key,
            max_retries=args.max_retries,
            timeout=args.timeout,
            http_client=DefaultAsyncHttpxClient(limits=limits,
                                                timeout=args.timeout)))
        self.sem = asyncio.Semaphore(args.concurrency)
        self.stopping = asyncio.Event()
        self.tasks = set()
        self.records = 0
        self.errors = 0
        self.first_consumed_ms = 0
        self.last_delivered_ms = 0

    async def extract_person(self, text):
        return await self.client.chat.completions.create(
            model=self.args.model,
            response_model=Person,
            messages=[{"role": "system", "content": INSTRUCTIONS},
                      {"role": "user", "content": text}])

    async def handle(self, msg):
        """One record: the LLM call under the slot, then produce; the slot
        is taken by the consume loop and given back here."""
        try:
            t0 = time.monotonic()
            try:
                person = await self.extract_person(
                    msg.value.decode("utf-8"))
                value = person.model_dump_json().encode()
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
                batches = await self.consumer.getmany(timeout_ms=100,
                                                      max_records=a.concurrency)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    ap.add_argument("--max-retries", type=int, default=2)
    args = ap.parse_args()
    asyncio.run(Peer(args).run())


if __name__ == "__main__":
    main()
