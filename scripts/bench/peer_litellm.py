"""peer_litellm: LiteLLM's Router as a Kafka pipeline.

The benchmark's second peer for the goodput runs (scripts/bench/goodput.py):
what a team picks when it wants rate limits, retries and cool-downs handled
for it. The Router is configured the way LiteLLM's docs say: one
deployment of the model with the provider's rpm (and tpm) on it, the
usage-based-routing-v2 strategy (the one that keeps a deployment under
its rpm/tpm), num_retries, allowed_fails and cooldown_time. Its retries
are the only ones: the Router sets the openai client's own to 0.

Each call asks for json_schema structured output from the same Person
model (response_format=Person) and validates the answer with pydantic; the
request is extractd's (system instructions, then the text verbatim). The
Kafka loop (a semaphore of C around the call, aiokafka in and out) is
peer_kafka.py's, as for the Instructor peer; its stdout lines and headers
are described there.
"""

import asyncio
import os

# The model price map is fetched from the network at import unless told
# to use the copy in the package; the benchmark has no network to spare.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from litellm import Router  # noqa: E402
from pydantic import BaseModel  # noqa: E402

import peer_kafka  # noqa: E402


class Person(BaseModel):
    name: str
    age: int
    occupation: str


class LiteLLM:
    def __init__(self, args):
        self.args = args
        litellm.suppress_debug_info = True
        params = {"model": "openai/" + args.model,
                  "api_base": args.base_url, "api_key": args.api_key}
        deployment = {"model_name": args.model, "litellm_params": params}
        # A deployment's limits, where its provider publishes them.
        if args.rpm:
            deployment["rpm"] = args.rpm
        if args.tpm:
            deployment["tpm"] = args.tpm
        self.router = Router(
            model_list=[deployment],
            routing_strategy="usage-based-routing-v2",
            num_retries=args.num_retries,
            allowed_fails=args.allowed_fails,
            cooldown_time=args.cooldown_time,
            timeout=args.timeout)

    async def extract(self, text):
        res = await self.router.acompletion(
            model=self.args.model, response_format=Person,
            messages=[{"role": "system",
                       "content": peer_kafka.INSTRUCTIONS},
                      {"role": "user", "content": text}])
        person = Person.model_validate_json(res.choices[0].message.content)
        return person.model_dump_json().encode()


def main():
    ap = peer_kafka.arguments(__doc__.split("\n")[0])
    ap.add_argument("--rpm", type=int, default=0,
                    help="the deployment's requests per minute (0: none)")
    ap.add_argument("--tpm", type=int, default=0,
                    help="its tokens per minute (0: none)")
    ap.add_argument("--num-retries", type=int, default=3)
    ap.add_argument("--allowed-fails", type=int, default=3)
    ap.add_argument("--cooldown-time", type=float, default=5.0)
    args = ap.parse_args()
    asyncio.run(peer_kafka.Pipeline(args, LiteLLM(args).extract).run())


if __name__ == "__main__":
    main()
