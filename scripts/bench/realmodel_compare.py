"""realmodel_compare: per-mode correctness of extractd and Instructor on a
real model, the same server and the same texts.

    python3 scripts/bench/realmodel_compare.py --bin build/bin --source . \
        [--venv DIR]

Starts kafka-embedded and llama-cpp-python's server with SmolLM2-135M
(tests/lib/llamacpp.py; scripts/llamacpp.sh fetch first), then:

- extractd, once per llm.mode (auto and the five formats), on TEXTS, each
  in its own lane, llm.max_reasks 2, temperature 0, max_tokens 200
  (json_schema, which this server refuses, pauses at start);
- Instructor (instructor 1.17.0, openai 3.3.0, in a venv this script makes
  once: --venv) in its modes JSON_SCHEMA, TOOLS, JSON and MD_JSON, with
  max_retries 2 and the same instructions, temperature and max_tokens.

Both go through one recording proxy, so LLM calls are counted the same
way. Prints a Markdown table (docs/llm-servers.md keeps one): per mode,
records right (name and age exact, occupation in any case), valid but
wrong, failed (a dead letter; an exception for Instructor), and calls
(extractd's health checks left out).

Not a test (its numbers are the model's as much as the tools'): run by
hand, a few minutes on 2 cores.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
import llamacpp  # noqa: E402

INSTRUCTIONS = "Extract the person described in the user's text."
REQUIREMENTS = ["instructor==1.17.0", "openai==3.3.0"]
EXTRACTD_MODES = ("auto", "json_schema", "json_object_schema", "tools",
                  "json_object", "md_json")
INSTRUCTOR_MODES = {"json_schema": "JSON_SCHEMA", "tools": "TOOLS",
                    "json_object": "JSON", "md_json": "MD_JSON"}

# The seed's seven, and fifteen more worded otherwise: (text, expected).
TEXTS = [(t, harness.expected_person(t)) for t in harness.SEED_TEXTS] + [
    ("Anna Kowalski, 41, works as a veterinarian.",
     {"name": "Anna Kowalski", "age": 41, "occupation": "veterinarian"}),
    ("Meet Carlos Ruiz: a 52-year-old electrician from Seville.",
     {"name": "Carlos Ruiz", "age": 52, "occupation": "electrician"}),
    ("At 19, Priya Patel is already a professional chess player.",
     {"name": "Priya Patel", "age": 19,
      "occupation": "professional chess player"}),
    ("The pilot, Hans Becker, turned 45 last week.",
     {"name": "Hans Becker", "age": 45, "occupation": "pilot"}),
    ("Yuki Tanaka (38) teaches mathematics at a high school.",
     {"name": "Yuki Tanaka", "age": 38, "occupation": "mathematics teacher"}),
    ("Olivia Brown is a nurse; she is 29 years old.",
     {"name": "Olivia Brown", "age": 29, "occupation": "nurse"}),
    ("Name: Ahmed Hassan. Age: 60. Job: taxi driver.",
     {"name": "Ahmed Hassan", "age": 60, "occupation": "taxi driver"}),
    ("Sophie Martin, a 33-year-old architect, designed the library.",
     {"name": "Sophie Martin", "age": 33, "occupation": "architect"}),
    ("Our new accountant is Peter Novak, who is 27.",
     {"name": "Peter Novak", "age": 27, "occupation": "accountant"}),
    ("Grace Kim is a 24-year-old graphic designer.",
     {"name": "Grace Kim", "age": 24, "occupation": "graphic designer"}),
    ("Luca Rossi, chef, 36.",
     {"name": "Luca Rossi", "age": 36, "occupation": "chef"}),
    ("Fatima Zahra is 31 and works as a pharmacist.",
     {"name": "Fatima Zahra", "age": 31, "occupation": "pharmacist"}),
    ("Retired firefighter Bill Turner is 70.",
     {"name": "Bill Turner", "age": 70, "occupation": "retired firefighter"}),
    ("Elena Petrova, aged 47, is a university professor.",
     {"name": "Elena Petrova", "age": 47,
      "occupation": "university professor"}),
    ("Jack Wilson is a 22-year-old barista.",
     {"name": "Jack Wilson", "age": 22, "occupation": "barista"}),
]

CLIENT = r'''
import json, sys
import instructor
from openai import OpenAI
from pydantic import BaseModel, Field

class Person(BaseModel):
    name: str = Field(min_length=1,
                      description="The person's full name, as written")
    age: int = Field(ge=0, le=150, description="Age in years")
    occupation: str = Field(min_length=1,
                            description="What the person does for a living")

base_url, mode, model, instructions, texts = (
    sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4],
    json.loads(sys.argv[5]))
client = instructor.from_openai(OpenAI(base_url=base_url, api_key="none",
                                       max_retries=0, timeout=120),
                                mode=getattr(instructor.Mode, mode))
for text in texts:
    try:
        p = client.chat.completions.create(
            model=model, response_model=Person, max_retries=2,
            temperature=0, max_tokens=200,
            messages=[{"role": "system", "content": instructions},
                      {"role": "user", "content": text}])
        print(json.dumps({"text": text, "value": p.model_dump()}))
    except Exception as e:
        print(json.dumps({"text": text, "error": type(e).__name__}))
    sys.stdout.flush()
'''


def right(got, want):
    return (isinstance(got, dict) and got.get("name") == want["name"] and
            got.get("age") == want["age"] and
            str(got.get("occupation", "")).lower() ==
            want["occupation"].lower())


def venv_python(path):
    py = os.path.join(path, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q"] + REQUIREMENTS,
                       check=True)
    return py


def run_extractd(h, rec, by_offset, lanes):
    src = h.topics["input"]
    procs = []
    for mode in EXTRACTD_MODES:
        over = llamacpp.config(extraction.lane_config(lanes, mode))
        over["llm"].update({"base_url": rec.base_url, "mode": mode,
                            "model": "x-" + mode, "max_tokens": 200,
                            "max_reasks": 2})
        over["schema"] = {"instructions": INSTRUCTIONS}
        d, _ = h.start_extractd(over, group=h.unique("g-" + mode))
        procs.append(d)
    coll = h.collector([t for m in EXTRACTD_MODES for t in lanes[m]])
    n = len(TEXTS)
    # json_schema is refused by this server: that extractd pauses at start
    # and waits (llm.mode is never changed behind the user's back).
    working = [m for m in EXTRACTD_MODES if m != "json_schema"]
    coll.until(lambda c: all(c.count(lanes[m][0]) + c.count(lanes[m][1]) >=
                             n for m in working),
               "every record in every mode", timeout=1800, watch=procs)
    rows = {}
    for mode in working:
        out, dlq = lanes[mode]
        good = wrong = 0
        for r in coll.records[out]:
            i = extraction.source_index(r, src, by_offset)
            if right(r.json(), TEXTS[i][1]):
                good += 1
            else:
                wrong += 1
        calls = sum(x.text != harness.HEALTH_CHECK_TEXT
                    for x in rec.exchanges("x-" + mode))
        rows[mode] = (good, wrong, coll.count(dlq), calls)
    for d in procs:
        d.terminate(60)
    return rows


def run_instructor(py, rec):
    rows = {}
    texts = json.dumps([t for t, _ in TEXTS])
    for mode, imode in INSTRUCTOR_MODES.items():
        r = subprocess.run([py, "-c", CLIENT, rec.base_url, imode,
                            "i-" + mode, INSTRUCTIONS, texts],
                           stdout=subprocess.PIPE, timeout=1800, check=True)
        good = wrong = failed = 0
        want = dict(TEXTS)
        for line in r.stdout.decode().splitlines():
            x = json.loads(line)
            if "error" in x:
                failed += 1
            elif right(x["value"], want[x["text"]]):
                good += 1
            else:
                wrong += 1
        rows[mode] = (good, wrong, failed, len(rec.exchanges("i-" + mode)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--venv", default=os.path.expanduser(
        "~/.cache/extractd/instructor-venv"))
    args = ap.parse_args()
    h = harness.Harness("compare", args.bin, args.source)
    try:
        lanes = extraction.start_kafka_topics(h, list(EXTRACTD_MODES))
        h.llm = llamacpp.LlamaServer(h)
        rec = extraction.Recorder(h, h.llm.base_url)
        placed = h.produce([(None, t, 0) for t, _ in TEXTS])
        by_offset = extraction.index_placed(placed)
        t0 = time.monotonic()
        xrows = run_extractd(h, rec, by_offset, lanes)
        irows = run_instructor(venv_python(args.venv), rec)
        n = len(TEXTS)
        print("\n%d texts, SmolLM2-135M-Instruct Q4_1 on llama-cpp-python "
              "0.3.36, temperature 0, max_tokens 200, 2 re-asks (%.0f s)\n"
              % (n, time.monotonic() - t0))
        print("| mode | extractd: right / wrong / failed, calls "
              "| Instructor: right / wrong / failed, calls |")
        print("|---|---|---|")
        for mode in EXTRACTD_MODES:
            x = ("%d / %d / %d, %d" % xrows[mode]) if mode in xrows \
                else "refused at start (paused, no record sent)"
            i = ("%d / %d / %d, %d" % irows[mode]) if mode in irows \
                else "(no such mode)"
            print("| %s | %s | %s |" % (mode, x, i))
    finally:
        h.close()


if __name__ == "__main__":
    main()
