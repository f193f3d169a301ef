"""sdk.instructor: the openai SDK and instructor get a Person from llmsim.

Proof that llmsim speaks OpenAI's chat-completions protocol as real clients
use it, not only as extractd does: the `openai` Python SDK (which parses
every response into its own types) wrapped by `instructor` extracts

    Person(name: str, age: int, occupation: str)

from "John Smith is a 30-year-old software engineer" in Instructor's modes
TOOLS, JSON, JSON_SCHEMA and MD_JSON (each with max_retries=0: the first
answer must do), then again against an llmsim whose first answers all
break the schema (--fault invalid=1.0), where Instructor's own re-ask
messages (a tool message in TOOLS, a user message elsewhere) must be
recognised as a re-ask and get the valid answer, in exactly two requests;
and, as the seed (seed/learn-async.md) does it, the seven
seed texts at once with AsyncOpenAI and asyncio.gather. Each call's raw
completion is checked too: its id, object, finish_reason and usage. And an
error as OpenAI sends it: from an llmsim with --fault 429=1.0, the SDK must
raise its RateLimitError with OpenAI's error code and headers. And the
Files and Batch APIs through the SDK's types: the seven texts uploaded,
batched, followed until completed, downloaded (each line's body a
ChatCompletion holding the right Person), deleted, and a batch cancelled.

One file, two roles:
- the driver (this file run by ctest with the machine's python3, standard
  library only) makes or reuses a venv (--venv), installs the pinned
  packages there from a wheel cache outside the tree (--wheels, default
  ~/.cache/extractd/sdk-wheels-KEY, built by `pip wheel` on the first run:
  the only step that needs the registry), starts llmsim (--llmsim;
  tests/lib/llmsim.py), and runs
- the client (this file again, with the venv's python and --client URL),
  which talks to llmsim through the SDK.

Exit status: 0 pass, 1 fail, 77 skip, only when the cache is empty and pip
cannot reach its registry (a network error, not a resolution error), and
not in CI (CI=true): there that is a failure. The reason is printed.
When a mode fails, the request instructor sent and llmsim's answer are
printed, to see exactly where llmsim and OpenAI's protocol part ways.
"""

import argparse
import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from llmsim import Llmsim  # noqa: E402
from procs import TestFailure  # noqa: E402

REQUIREMENTS = ["instructor==1.17.*", "openai==3.3.*"]
SKIP = 77
MIN_PYTHON = (3, 9)
PIP_TIMEOUT_S = 30       # per connection attempt
PIP_RETRIES = 2

# pip's words for "the registry could not be reached" (as opposed to "no
# version matches", which is a failure).
NETWORK_MARKERS = (
    "NewConnectionError", "Failed to establish a new connection",
    "Temporary failure in name resolution", "Name or service not known",
    "No address associated with hostname", "ConnectTimeoutError",
    "ReadTimeoutError", "Connection refused", "Network is unreachable",
    "ProxyError", "SSLError", "CERTIFICATE_VERIFY_FAILED",
    "Connection reset by peer", "RemoteDisconnected",
    "connection broken by",
)

SEED = [
    ("John Smith is a 30-year-old software engineer",
     "John Smith", 30, "software engineer"),
    ("Sarah Johnson is a 25-year-old data scientist",
     "Sarah Johnson", 25, "data scientist"),
    ("Mike Davis is a 35-year-old product manager",
     "Mike Davis", 35, "product manager"),
    ("Lisa Wilson is a 28-year-old UX designer",
     "Lisa Wilson", 28, "UX designer"),
    ("Tom Brown is a 32-year-old DevOps engineer",
     "Tom Brown", 32, "DevOps engineer"),
    ("Emma Garcia is a 27-year-old frontend developer",
     "Emma Garcia", 27, "frontend developer"),
    ("David Lee is a 33-year-old backend developer",
     "David Lee", 33, "backend developer"),
]


def say(msg, *args):
    print("[sdk] " + (msg % args if args else msg), flush=True)


# --------------------------------------------------------------------------
# The driver: venv, pip, llmsim.


class Skip(Exception):
    pass


class Fail(Exception):
    pass


def run(argv, timeout, **kw):
    return subprocess.run(argv, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout, **kw)


def venv_python(venv):
    return os.path.join(venv, "bin", "python")


def default_wheels():
    """Outside the tree, so a fresh clone reuses it (like kafka.sh's jars);
    keyed by the requirements and the interpreter."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    key = hashlib.sha256(marker_text().encode()).hexdigest()[:12]
    return os.path.join(cache, "extractd", "sdk-wheels-" + key)


def marker_text():
    return json.dumps({"requirements": REQUIREMENTS,
                       "base": os.path.realpath(sys.executable),
                       "version": list(sys.version_info[:3])})


def venv_complete(venv):
    """The venv was made by us for these requirements and imports them."""
    try:
        with open(os.path.join(venv, ".extractd-sdk-complete")) as f:
            if f.read() != marker_text():
                return False
    except OSError:
        return False
    p = run([venv_python(venv), "-c", "import instructor, openai, pydantic"],
            120)
    return p.returncode == 0


def in_ci():
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unreachable(why):
    """The registry cannot be reached: a skip, but a failure in CI (a
    skip there would hide the only SDK check; the wheel cache makes the
    network needed once per machine, not once per run)."""
    if in_ci():
        return Fail("%s\n(CI=true: this would be a skip; fill the wheel "
                    "cache once with network access)" % why)
    return Skip(why)


def pip(venv, args, timeout):
    argv = [venv_python(venv), "-m", "pip"] + args[:1] + [
        "--disable-pip-version-check", "--no-input"] + args[1:]
    say("$ %s", " ".join(argv))
    try:
        p = run(argv, timeout)
    except subprocess.TimeoutExpired:
        return None, "pip did not finish in %d s" % timeout
    return p.returncode, p.stdout.decode("utf-8", "replace")


def fill_wheels(venv, wheels):
    """Build every wheel the requirements need into the cache wheels,
    once (the only step that needs the registry). A stamp file with
    marker_text() marks a complete cache."""
    stamp = os.path.join(wheels, ".extractd-sdk-complete")
    try:
        with open(stamp) as f:
            if f.read() == marker_text():
                say("wheels from the cache in %s", wheels)
                return
    except OSError:
        pass
    partial = wheels + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    rc, out = pip(venv, ["wheel", "--wheel-dir", partial,
                         "--timeout", str(PIP_TIMEOUT_S),
                         "--retries", str(PIP_RETRIES)] + REQUIREMENTS, 480)
    if rc != 0:
        shutil.rmtree(partial, ignore_errors=True)
        tail = "\n".join(out.splitlines()[-25:])
        hit = [m for m in NETWORK_MARKERS if m in out]
        if rc is None or hit:
            raise unreachable("pip cannot reach its registry (%s):\n%s" %
                              (hit[0] if hit else "timeout", tail))
        raise Fail("pip wheel failed (exit %d), not for want of a "
                   "network:\n%s" % (rc, tail))
    shutil.rmtree(wheels, ignore_errors=True)
    os.rename(partial, wheels)
    with open(stamp, "w") as f:
        f.write(marker_text())
    say("%d wheels cached in %s", len(os.listdir(wheels)) - 1, wheels)


def make_venv(venv, wheels):
    if sys.version_info < MIN_PYTHON:
        raise Fail("%s is Python %s; the SDK test needs >= %d.%d" %
                   ((sys.executable, sys.version.split()[0]) + MIN_PYTHON))
    shutil.rmtree(venv, ignore_errors=True)
    say("making a venv in %s with %s (Python %s)", venv, sys.executable,
        sys.version.split()[0])
    p = run([sys.executable, "-m", "venv", venv], 300)
    if p.returncode != 0:
        raise Fail("python -m venv failed (exit %d); on Debian install "
                   "python3-venv:\n%s" % (p.returncode,
                                          p.stdout.decode("utf-8", "replace")))
    os.makedirs(os.path.dirname(wheels), exist_ok=True)
    with open(wheels + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one fill at a time
        fill_wheels(venv, wheels)
        rc, out = pip(venv, ["install", "--no-index", "--find-links",
                             wheels] + REQUIREMENTS, 300)
    if rc != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise Fail("pip install from the wheel cache %s failed (exit %s; "
                   "remove the cache to fetch it again):\n%s" %
                   (wheels, rc, "\n".join(out.splitlines()[-25:])))
    for ln in out.splitlines():
        if ln.startswith("Successfully installed"):
            say("%s", ln)
    with open(os.path.join(venv, ".extractd-sdk-complete"), "w") as f:
        f.write(marker_text())


def ensure_venv(venv, wheels):
    os.makedirs(os.path.dirname(os.path.abspath(venv)), exist_ok=True)
    with open(os.path.abspath(venv) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs never build it at once
        if venv_complete(venv):
            say("reusing the venv in %s", venv)
            return
        make_venv(venv, wheels)
        if not venv_complete(venv):
            raise Fail("the new venv in %s cannot import instructor and "
                       "openai" % venv)


def driver(args):
    llmsim = os.path.abspath(args.llmsim)
    if not os.access(llmsim, os.X_OK):
        raise Fail("no executable llmsim at %s (build first)" % llmsim)
    ensure_venv(args.venv, os.path.abspath(args.wheels))
    tmp = tempfile.mkdtemp(prefix="extractd-sdk-")
    sims = []
    try:
        # The 429 one keeps its batches in progress (for the cancel).
        for tag, faults, extra in (
                ("ok", None, ()),
                ("429", {"429": "1.0"}, ("--batch-delay-ms", "600000")),
                ("invalid", {"invalid": "1.0"}, ())):
            sims.append(Llmsim(llmsim, tmp, "llmsim-" + tag, latency_ms=5,
                               faults=faults, extra=extra))
        base, errors, invalid = (s.base_url for s in sims)
        say("llmsim at %s; one answering 429 at %s; one whose first answers "
            "are invalid at %s", base, errors, invalid)
        p = subprocess.run([venv_python(args.venv), os.path.abspath(__file__),
                            "--client", base, "--errors", errors,
                            "--invalid", invalid],
                           stdin=subprocess.DEVNULL, timeout=300)
        if p.returncode != 0:
            for s in sims:
                sys.stdout.write("---- %s log ----\n%s\n" %
                                 (s.name, s.proc.log_text()[-4000:]))
            raise Fail("the SDK client failed (exit %d)" % p.returncode)
    finally:
        for s in sims:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# The client: runs inside the venv.


def client(base_url, errors_url, invalid_url):
    import instructor
    import openai
    import pydantic

    class Person(pydantic.BaseModel):
        name: str
        age: int
        occupation: str

    versions = {"instructor": instructor.__version__,
                "openai": openai.__version__,
                "pydantic": pydantic.VERSION}
    try:
        import httpx2
        versions["httpx2"] = httpx2.__version__
    except ImportError:
        pass
    say("versions: %s", ", ".join("%s %s" % kv for kv in versions.items()))

    seen = []   # (request, response) of the current mode, for the report

    def on_request(req):
        seen.append(["%s %s\n%s" % (req.method, req.url,
                                    req.content.decode("utf-8", "replace")),
                     None])

    def on_response(resp):
        resp.read()
        if seen:
            seen[-1][1] = "%d\n%s" % (resp.status_code,
                                      resp.text)

    http = openai.DefaultHttpx2Client(
        event_hooks={"request": [on_request], "response": [on_response]})
    oa = openai.OpenAI(base_url=base_url, api_key="sk-test", http_client=http,
                       max_retries=0)
    oa_invalid = openai.OpenAI(base_url=invalid_url, api_key="sk-test",
                               http_client=http, max_retries=0)

    modes = ["TOOLS", "JSON", "JSON_SCHEMA", "MD_JSON"]
    required = {"TOOLS", "JSON", "JSON_SCHEMA"}
    # A forced named tool_choice: OpenAI answers finish_reason "stop" (only
    # "auto"/"required" give "tool_calls"); llmsim says "tool_calls".
    # Clients must take either, so either passes.
    finish_for = {"TOOLS": ("tool_calls", "stop")}
    text, name, age, occ = SEED[0]
    failed, passed = [], []

    def extract(mode, api, retries):
        """One Person through instructor; raises on any deviation."""
        msg = {"role": "user", "content": text}
        if mode == "MD_JSON":
            # Instructor's MD_JSON appends "Return the correct JSON response
            # within a ```json codeblock..." to the last user message when
            # it can merge into it. llmsim (DESIGN.md) extracts from the
            # whole first user message, so the merged text would not match
            # its pattern and it would refuse; a real model would not. A
            # user message with a "name" (valid OpenAI) is not merged, so
            # instructor sends its request as its own user message.
            msg["name"] = "reader"
        ic = instructor.from_openai(api, mode=getattr(instructor.Mode, mode))
        person, completion = ic.chat.completions.create_with_completion(
            model="gpt-4o-mini", response_model=Person, max_retries=retries,
            messages=[msg])
        got = (person.name, person.age, person.occupation)
        if got != (name, age, occ):
            raise AssertionError("got %r, want %r" % (got, (name, age, occ)))
        want_finish = finish_for.get(mode, ("stop",))
        choice = completion.choices[0]
        problems = []
        if completion.object != "chat.completion":
            problems.append("object %r" % completion.object)
        if not completion.id.startswith("chatcmpl-"):
            problems.append("id %r" % completion.id)
        if choice.finish_reason not in want_finish:
            problems.append("finish_reason %r, want %r" %
                            (choice.finish_reason, want_finish))
        u = completion.usage
        if not (u and u.prompt_tokens > 0 and u.completion_tokens > 0 and
                u.total_tokens == u.prompt_tokens + u.completion_tokens):
            problems.append("usage %r" % (u,))
        if completion.model != "gpt-4o-mini":
            problems.append("model %r" % completion.model)
        if len(seen) != retries + 1:
            problems.append("%d HTTP requests, want %d" %
                            (len(seen), retries + 1))
        if problems:
            raise AssertionError("; ".join(problems))
        return person, choice.finish_reason, u

    # First plainly (the first answer must do), then against an llmsim
    # whose first answers all break the schema (--fault invalid=1.0):
    # instructor's own re-ask (its messages, per mode) must get the valid
    # answer llmsim gives a re-ask, in exactly two requests.
    runs = [("", oa, 0), (" re-ask", oa_invalid, 1)]
    for label, api, retries in runs:
        for mode in modes:
            if not hasattr(instructor.Mode, mode):
                if mode in required:
                    failed.append(mode + label)
                    say("FAIL %s: instructor %s has no Mode.%s", mode,
                        instructor.__version__, mode)
                elif not label:
                    say("note: instructor %s has no Mode.%s; not tested",
                        instructor.__version__, mode)
                continue
            seen.clear()
            try:
                person, finish, u = extract(mode, api, retries)
                passed.append(mode + label)
                say("ok %s%s: %r (finish_reason %s, usage %d+%d, %d "
                    "requests)", mode, label, person, finish,
                    u.prompt_tokens, u.completion_tokens, len(seen))
            except Exception as e:
                failed.append(mode + label)
                say("FAIL %s%s: %s: %s", mode, label, type(e).__name__,
                    str(e)[:3000])
                for req, resp in seen:
                    say("request instructor sent:\n%s", req)
                    say("llmsim answered:\n%s", resp)

    # The seed's own pattern: AsyncOpenAI, asyncio.gather, seven texts.
    async def gather():
        aoa = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test",
                                 max_retries=0)
        ac = instructor.from_openai(aoa, mode=instructor.Mode.TOOLS)

        async def one(t):
            return await ac.chat.completions.create(
                model="gpt-4o-mini", response_model=Person, max_retries=0,
                messages=[{"role": "user", "content": t}])
        try:
            return await asyncio.gather(*(one(s[0]) for s in SEED))
        finally:
            await aoa.close()
    try:
        people = asyncio.run(gather())
        got = [(p.name, p.age, p.occupation) for p in people]
        want = [s[1:] for s in SEED]
        if got != want:
            raise AssertionError("got %r, want %r" % (got, want))
        passed.append("async-gather")
        say("ok AsyncOpenAI + asyncio.gather: %d people", len(people))
    except Exception as e:
        failed.append("async-gather")
        say("FAIL AsyncOpenAI + asyncio.gather: %s: %s", type(e).__name__,
            str(e)[:3000])

    # An error as OpenAI sends it: the SDK's own exception, code, headers.
    try:
        bad = openai.OpenAI(base_url=errors_url, api_key="sk-test",
                            max_retries=0)
        try:
            bad.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": text}])
            raise AssertionError("no error from an llmsim with 429=1.0")
        except openai.RateLimitError as e:
            h = e.response.headers
            problems = []
            if e.status_code != 429:
                problems.append("status %r" % e.status_code)
            if e.code != "rate_limit_exceeded":
                problems.append("code %r" % e.code)
            if not e.message or not isinstance(e.body, dict):
                problems.append("message %r body %r" % (e.message, e.body))
            for k in ("retry-after", "x-ratelimit-limit-requests",
                      "x-ratelimit-remaining-requests",
                      "x-ratelimit-reset-requests", "x-request-id"):
                if k not in h:
                    problems.append("no %s header" % k)
            if problems:
                raise AssertionError("; ".join(problems))
            seen_code, seen_retry = e.code, h.get("retry-after")
        passed.append("rate-limit-error")
        say("ok RateLimitError: code %s, retry-after %s", seen_code,
            seen_retry)
    except Exception as e:
        failed.append("rate-limit-error")
        say("FAIL RateLimitError: %s: %s", type(e).__name__, str(e)[:3000])

    try:
        batch_check(openai, Person, base_url, errors_url)
        passed.append("batch")
    except Exception as e:
        failed.append("batch")
        say("FAIL batch: %s: %s", type(e).__name__, str(e)[:3000])

    say("passed: %s", ", ".join(passed) or "none")
    if failed:
        say("failed: %s", ", ".join(failed))
        return 1
    return 0


def batch_check(openai, Person, base_url, slow_url):
    """The Files and Batch APIs through the SDK's own types: the seed's
    texts uploaded (files.create), batched (batches.create), followed
    (batches.retrieve) until completed, the output downloaded
    (files.content), each line's body a ChatCompletion holding the right
    Person; the input deleted (files.delete); and on the llmsim whose
    batches stay in progress, batches.cancel then "cancelled"."""
    import time
    from openai.types.chat import ChatCompletion

    sdk = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    lines = [{"custom_id": "seed-%d" % i, "method": "POST",
              "url": "/v1/chat/completions",
              "body": {"model": "gpt-4o-mini",
                       "response_format": {"type": "json_object"},
                       "messages": [{"role": "user", "content": s[0]}]}}
             for i, s in enumerate(SEED)]
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    f = sdk.files.create(file=("seed.jsonl", data), purpose="batch")
    assert f.object == "file" and f.bytes == len(data), f
    assert f.purpose == "batch" and f.filename == "seed.jsonl", f
    b = sdk.batches.create(input_file_id=f.id,
                           endpoint="/v1/chat/completions",
                           completion_window="24h",
                           metadata={"source": "seed"})
    assert b.status == "validating" and b.input_file_id == f.id, b
    end = time.monotonic() + 30
    while b.status in ("validating", "in_progress", "finalizing"):
        assert time.monotonic() < end, b
        time.sleep(0.05)
        b = sdk.batches.retrieve(b.id)
    assert b.status == "completed", b
    assert b.metadata == {"source": "seed"}, b
    counts = b.request_counts
    assert (counts.total, counts.completed, counts.failed) == \
        (len(SEED), len(SEED), 0), counts
    assert b.error_file_id is None and b.output_file_id, b
    out = sdk.files.content(b.output_file_id).content.decode()
    got = {}
    for line in out.splitlines():
        x = json.loads(line)
        assert x["error"] is None and x["response"]["status_code"] == 200, x
        completion = ChatCompletion.model_validate(x["response"]["body"])
        got[x["custom_id"]] = Person.model_validate_json(
            completion.choices[0].message.content)
    for i, (_, name, age, occ) in enumerate(SEED):
        p = got["seed-%d" % i]
        assert (p.name, p.age, p.occupation) == (name, age, occ), p
    deleted = sdk.files.delete(f.id)
    assert deleted.deleted and deleted.id == f.id, deleted
    try:
        sdk.files.content(f.id)
        raise AssertionError("a deleted file's content came back")
    except openai.NotFoundError:
        pass

    slow = openai.OpenAI(base_url=slow_url, api_key="sk-test",
                         max_retries=0)
    f = slow.files.create(file=("one.jsonl", data), purpose="batch")
    b = slow.batches.create(input_file_id=f.id,
                            endpoint="/v1/chat/completions",
                            completion_window="24h")
    assert slow.batches.retrieve(b.id).status == "in_progress"
    c = slow.batches.cancel(b.id)
    assert c.status == "cancelling" and c.cancelling_at, c
    c = slow.batches.retrieve(b.id)
    assert c.status == "cancelled" and c.request_counts.completed == 0, c
    say("ok batch: %d lines through files.create, batches.create/retrieve, "
        "files.content, files.delete; batches.cancel", len(SEED))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmsim", help="the llmsim binary (driver)")
    ap.add_argument("--venv", help="the venv to make or reuse (driver)")
    ap.add_argument("--wheels", default=default_wheels(),
                    help="the wheel cache (driver; default %(default)s)")
    ap.add_argument("--client", metavar="BASE_URL",
                    help="run the SDK client against BASE_URL (in the venv)")
    ap.add_argument("--errors", metavar="BASE_URL",
                    help="(client) an llmsim that answers every call 429")
    ap.add_argument("--invalid", metavar="BASE_URL",
                    help="(client) an llmsim with --fault invalid=1.0")
    args = ap.parse_args()
    if args.client:
        try:
            return client(args.client, args.errors, args.invalid)
        except Exception:
            traceback.print_exc()
            return 1
    if not args.llmsim or not args.venv:
        ap.error("--llmsim and --venv are required")
    try:
        driver(args)
    except Skip as e:
        say("SKIPPED: %s", e)
        return SKIP
    except (Fail, TestFailure) as e:
        say("FAIL: %s", e)
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    say("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
