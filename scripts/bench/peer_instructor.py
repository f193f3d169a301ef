"""peer_instructor: the seed article's approach as a Kafka pipeline.

The benchmark's peer (scripts/bench.sh measures it beside extractd on the same
Kafka, llmsim and records). It is the article's code (seed/learn-async.md)
plus the Kafka loop a real deployment needs (peer_kafka.py: a semaphore of C
around the call, aiokafka in and out), written the way a Python team would
write it today and tuned fairly:

  - one shared AsyncOpenAI client, wrapped once by instructor.from_openai
    (instructor's default mode, TOOLS), with response_model=Person: the
    article's Person model, validated by pydantic; the SDK retries 429s
    and 5xx itself (max_retries, 2 by default as openai's);
  - the client's HTTP pool sized for the concurrency (the library default
    keeps only 100 idle keep-alive connections, which would make it reconnect
    above C=100);
  - the request is extractd's: a system message with the instructions, then
    the text verbatim as the user message (the article's "Extract person
    info: {text}" prefix would end up in the name llmsim extracts).

Output, stdout lines and headers: see peer_kafka.py.
"""

import asyncio

import httpx2
import instructor
from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from pydantic import BaseModel

import peer_kafka


class Person(BaseModel):
    name: str
    age: int
    occupation: str


class Instructor:
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

    async def extract(self, text):
        person = await self.client.chat.completions.create(
            model=self.args.model,
            response_model=Person,
            messages=[{"role": "system",
                       "content": peer_kafka.INSTRUCTIONS},
                      {"role": "user", "content": text}])
        return person.model_dump_json().encode()


def main():
    ap = peer_kafka.arguments(__doc__.split("\n")[0])
    ap.add_argument("--max-retries", type=int, default=2)
    args = ap.parse_args()
    asyncio.run(peer_kafka.Pipeline(args, Instructor(args).extract).run())


if __name__ == "__main__":
    main()
