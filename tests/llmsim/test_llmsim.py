#!/usr/bin/python3
"""llmsim protocol test (ctest: llmsim.protocol).

Usage: test_llmsim.py PATH/TO/llmsim

Starts llmsim instances on ephemeral ports (one per configuration, all at
once), and checks what extractd relies on: the four answer modes, the
deterministic Person extraction (UTF-8, 999, refusals), --answers (and
its scripted errors: "status", "echo_headers" quoting the request's
headers, Authorization included, verbatim), every fault kind at rate 1, re-asks never getting the invalid fault, /stats as an
exact concurrency oracle, /reset, 400/404/413, --rpm/--tpm limiting (and
--no-rate-headers), --capacity (never more computing than N, the rest
queued in order, a queued client that leaves freeing its place), seeded
determinism, prompt caching (cached_tokens for a repeated prefix, from
--cache-min-tokens) and --reasoning-tokens, the Files and Batch APIs
(upload, create, poll, download, a line's fault in the error file,
--batch-expire, --batch-hold, cancel, delete, failed batches for bad
input files, the key, the batch counters in /stats), and a clean exit 0 on SIGTERM even
with a held or queued connection.

Standard library only (tests/lib/llmsim.py starts each llmsim); every
llmsim is killed in a finally block.
"""
import email.utils
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import llmsim  # noqa: E402

LLMSIM = None
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "occupation": {"type": "string"},
    },
    "required": ["name", "age", "occupation"],
    "additionalProperties": False,
}
MODES = ("json_schema", "tools", "json_object", "md_json")
REFUSAL = "I'm sorry, I can't help with that."
DURATION_RE = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$")
RATELIMIT_HEADERS = (
    "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")


class Sim(llmsim.Llmsim):
    """One llmsim process on an ephemeral port, and raw HTTP to it."""

    def __init__(self, workdir, name, *args):
        super().__init__(LLMSIM, workdir, name, extra=args, wait=False)

    def read_log(self):
        return self.proc.log_text()

    def conn(self, timeout=10.0):
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)

    def request(self, method, path, body=None, timeout=10.0, conn=None,
                headers=None):
        """Returns (status, headers dict (lower-case), raw body bytes)."""
        c = conn or self.conn(timeout)
        try:
            hdrs = {"Content-Type": "application/json"}
            hdrs.update(headers or {})
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            elif isinstance(body, str):
                body = body.encode()
            c.request(method, path, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            if conn is None:
                c.close()

    def chat(self, payload, **kw):
        return self.request("POST", "/v1/chat/completions", payload, **kw)

    def stats(self):
        status, _, data = self.request("GET", "/stats")
        assert status == 200, status
        return json.loads(data)

    def reset(self):
        status, _, data = self.request("POST", "/reset")
        assert status == 200, (status, data)


def payload(text, mode="json_schema", model="gpt-4o-mini", extra=None,
            parts=False):
    content = [{"type": "text", "text": text}] if parts else text
    messages = [
        {"role": "system",
         "content": "Extract the person described in the user's text."},
        {"role": "user", "content": content},
    ] + (extra or [])
    p = {"model": model, "messages": messages, "temperature": 0}
    if mode == "json_schema":
        p["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "Person", "strict": True,
                            "schema": PERSON_SCHEMA}}
    elif mode == "tools":
        p["tools"] = [{"type": "function", "function": {
            "name": "Person", "parameters": PERSON_SCHEMA}}]
        p["tool_choice"] = {"type": "function",
                            "function": {"name": "Person"}}
    elif mode == "json_object":
        p["response_format"] = {"type": "json_object"}
    return p


def answer_text(resp, mode):
    """The JSON text the model answered with, checked for its mode's shape;
    None for a refusal."""
    assert resp["object"] == "chat.completion", resp
    assert resp["id"].startswith("chatcmpl-"), resp
    assert isinstance(resp["created"], int), resp
    choice = resp["choices"][0]
    msg = choice["message"]
    assert msg["role"] == "assistant", msg
    usage = resp["usage"]
    assert usage["prompt_tokens"] >= 1 and usage["completion_tokens"] >= 1
    assert usage["total_tokens"] == (usage["prompt_tokens"] +
                                     usage["completion_tokens"]), usage
    if msg.get("refusal"):
        assert msg["content"] is None and "tool_calls" not in msg, msg
        assert choice["finish_reason"] == "stop", choice
        return None
    if mode == "tools":
        assert msg["content"] is None, msg
        assert choice["finish_reason"] == "stop", choice
        call = msg["tool_calls"][0]
        assert call["type"] == "function" and call["id"], call
        assert call["function"]["name"] == "Person", call
        return call["function"]["arguments"]
    assert choice["finish_reason"] == "stop", choice
    if mode == "md_json":
        m = re.search(r"```json\n(.*)\n```", msg["content"], re.S)
        assert m, msg["content"]
        return m.group(1)
    return msg["content"]


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def expect_person(sim, text, person, mode, **kw):
    status, headers, data = sim.chat(payload(text, mode, **kw))
    assert status == 200, (status, data)
    resp = json.loads(data)
    assert resp["model"] == "gpt-4o-mini", resp
    for h in RATELIMIT_HEADERS:
        assert h in headers, (h, headers)
    got = answer_text(resp, mode)
    # exactly as written, keys in order name, age, occupation
    assert got == compact(person), (mode, got)
    return resp


def expect_error(status_data, status, etype=None, code=None):
    got_status, headers, data = status_data
    assert got_status == status, (got_status, data)
    err = json.loads(data)["error"]
    assert isinstance(err["message"], str) and err["message"], err
    if etype:
        assert err["type"] == etype, err
    if code:
        assert err["code"] == code, err
    return headers


# ---- tests -----------------------------------------------------------------

def test_modes(sim):
    john = {"name": "John Smith", "age": 30, "occupation": "software engineer"}
    zoe = {"name": "Zoë Ångström", "age": 41, "occupation": "écrivain"}
    for mode in MODES:
        expect_person(sim, "John Smith is a 30-year-old software engineer",
                      john, mode)
        expect_person(sim, "Zoë Ångström is a 41-year-old écrivain.", zoe,
                      mode)
        expect_person(sim, "Zoë Ångström is a 41-year-old écrivain.", zoe,
                      mode, parts=True)
    expect_person(sim, "  Ann Lee is an 8-year-old pupil.\n",
                  {"name": "Ann Lee", "age": 8, "occupation": "pupil"},
                  "json_schema")
    expect_person(sim, "Old Tom is a 999-year-old wizard",
                  {"name": "Old Tom", "age": 999, "occupation": "wizard"},
                  "tools")


def test_refusal(sim):
    for text in ("The weather is nice today.",
                 "John is a 30-year-old\nsoftware engineer", ""):
        for mode in MODES:
            status, _, data = sim.chat(payload(text, mode))
            assert status == 200, (status, data)
            resp = json.loads(data)
            assert answer_text(resp, mode) is None, (text, mode, resp)
            assert resp["choices"][0]["message"]["refusal"] == REFUSAL


def test_answers(sim):
    for mode in MODES:
        status, _, data = sim.chat(payload("order ACME-42 please", mode))
        assert status == 200, data
        got = answer_text(json.loads(data), mode)
        assert got == '{"sku": "ACME-42", "qty": 3}', (mode, got)
    # checked before the regex; first matching line wins
    status, _, data = sim.chat(payload(
        "Bob Scripted is a 5-year-old kid", "json_schema"))
    assert answer_text(json.loads(data), "json_schema") == \
        '{"name":"Bob","age":"five"}', data


def test_scripted_errors(sim, workdir):
    key = "sk-llmsim-Echo-7f3a9c"
    auth = {"Authorization": "Bearer " + key, "X-Trace": "t-1 \"q\""}
    # echo_headers: the message quotes every request header verbatim
    status_data = sim.request("POST", "/v1/chat/completions",
                              payload("please ECHO-400 me"), headers=auth)
    expect_error(status_data, 400, "invalid_request_error")
    err = json.loads(status_data[2])["error"]
    assert err["code"] is None, err
    msg = err["message"]
    assert msg.startswith("llmsim: scripted error\nRequest headers:\n"), msg
    lines = msg.split("\n")[2:]
    assert "Authorization: Bearer " + key in lines, msg
    assert 'X-Trace: t-1 "q"' in lines, msg
    assert "Content-Type: application/json" in lines, msg
    assert any(x.startswith("Host: 127.0.0.1:") for x in lines), msg
    # status alone: the content is the message, type and code as given
    for mode in MODES:
        expect_error(sim.chat(payload("SCRIPTED-503 now", mode)), 503,
                     "server_error", "busy")
    status, _, data = sim.chat(payload("SCRIPTED-503 now"))
    assert json.loads(data)["error"]["message"] == "try later", data
    # texts the entries do not match are answered as before
    expect_person(sim, "Ann Echo is a 41-year-old nurse",
                  {"name": "Ann Echo", "age": 41, "occupation": "nurse"},
                  "json_schema")
    # bad entries are refused at start, naming file and line
    for entry, why in (
            ({"match": "x", "status": 200}, "\"status\" must be"),
            ({"match": "x", "status": "400"}, "\"status\" must be"),
            ({"match": "x", "echo_headers": True, "content": "c"},
             "need a \"status\""),
            ({"match": "x", "status": 400, "echo_headers": 1},
             "\"echo_headers\" must be"),
            ({"match": "x", "status": 400, "content": {"a": 1}},
             "the error's message: a string"),
            ({"match": "x"}, "want {")):
        path = os.path.join(workdir, "bad-answers.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps(entry) + "\n")
        r = subprocess.run([LLMSIM, "--listen", "127.0.0.1:0",
                            "--answers", path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=10)
        err_text = r.stderr.decode()
        assert r.returncode != 0, (entry, err_text)
        assert path + ":1: " in err_text and why in err_text, \
            (entry, err_text)


def test_scripted_retry_after(sim, workdir):
    """A scripted 429 with only Retry-After (--no-rate-headers), in
    seconds or as an HTTP date, answered "times" times, then the
    regex's Person."""
    ann = "Ann RA-SECONDS is a 41-year-old nurse"
    status, hdrs, data = sim.chat(payload(ann))
    expect_error((status, hdrs, data), 429, "requests",
                 "rate_limit_exceeded")
    assert hdrs.get("retry-after") == "3", hdrs
    assert "retry-after-ms" not in hdrs, hdrs
    assert not any(k.startswith("x-ratelimit") for k in hdrs), hdrs
    status, _, data = sim.chat(payload(ann))
    assert status == 200, data
    assert answer_text(json.loads(data), "json_schema") == compact(
        {"name": "Ann RA-SECONDS", "age": 41, "occupation": "nurse"}), data
    bob = "Bob RA-DATE is a 52-year-old baker"
    before = time.time()
    status, hdrs, data = sim.chat(payload(bob))
    after = time.time()
    expect_error((status, hdrs, data), 429)
    when = email.utils.parsedate_to_datetime(hdrs["retry-after"])
    assert hdrs["retry-after"].endswith(" GMT"), hdrs
    # whole seconds: now + 4, rounded down
    assert int(before) + 4 <= when.timestamp() <= after + 4, \
        (before, hdrs["retry-after"])
    assert "retry-after-ms" not in hdrs, hdrs
    status, _, data = sim.chat(payload(bob))
    assert status == 200, data
    assert answer_text(json.loads(data), "json_schema") == compact(
        {"name": "Bob RA-DATE", "age": 52, "occupation": "baker"}), data
    for entry, why in (
            ({"match": "x", "retry_after": 3, "content": "c"},
             "need a \"status\""),
            ({"match": "x", "status": 429, "retry_after": -1},
             "must be integers"),
            ({"match": "x", "status": 429, "retry_after": 1,
              "retry_after_date": 1}, "not both"),
            ({"match": "x", "content": "c", "times": 0},
             "\"times\" must be")):
        path = os.path.join(workdir, "bad-retry-after.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps(entry) + "\n")
        r = subprocess.run([LLMSIM, "--listen", "127.0.0.1:0",
                            "--answers", path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=10)
        err_text = r.stderr.decode()
        assert r.returncode != 0, (entry, err_text)
        assert path + ":1: " in err_text and why in err_text, \
            (entry, err_text)


def test_stats_tokens_arrivals(sim):
    """/stats "tokens" sums the answers' usage.total_tokens; the first and
    latest arrivals are null after a reset, then ms apart as sent."""
    sim.reset()
    st = sim.stats()
    assert st["tokens"] == 0, st
    assert st["first_arrival_ms"] is None, st
    assert st["last_arrival_ms"] is None, st
    total = 0
    for text in ("Ann Echo is a 41-year-old nurse",
                 "Bo Li is a 7-year-old pupil"):
        status, _, data = sim.chat(payload(text))
        assert status == 200, data
        total += json.loads(data)["usage"]["total_tokens"]
        time.sleep(0.3)
    status, _, data = sim.chat(payload("no person here"))
    assert status == 200, data
    total += json.loads(data)["usage"]["total_tokens"]
    st = sim.stats()
    assert st["tokens"] == total, (st, total)
    gap = st["last_arrival_ms"] - st["first_arrival_ms"]
    assert 600 <= gap < 10000, st


def usage_of(sim, p):
    status, _, data = sim.chat(p)
    assert status == 200, data
    u = json.loads(data)["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    return u


def cached_of(sim, p):
    u = usage_of(sim, p)
    cached = u["prompt_tokens_details"]["cached_tokens"]
    assert 0 <= cached <= u["prompt_tokens"], u
    return cached


def with_system(p, system):
    p["messages"][0]["content"] = system
    return p


def test_prompt_cache(sim):
    """--cache-min-tokens 5: a prefix (everything but the last user
    message: model, schema or tools, the messages before it) seen before
    reports its tokens (its messages' bytes / 4) as cached_tokens; the
    first time, another schema, another model, or a prefix under the
    threshold report 0."""
    system = "Cache test: extract the person described in the text."
    first = with_system(payload("Ann Echo is a 41-year-old nurse"), system)
    assert cached_of(sim, first) == 0
    again = with_system(payload("Bo Li is a 7-year-old pupil"), system)
    assert cached_of(sim, again) == len(system) // 4
    # The same messages with the tool definitions: another prefix.
    tools = with_system(payload("Bo Li is a 7-year-old pupil", "tools"),
                        system)
    assert cached_of(sim, tools) == 0
    assert cached_of(sim, tools) == len(system) // 4
    other = with_system(payload("Bo Li is a 7-year-old pupil",
                                model="other-model"), system)
    assert cached_of(sim, other) == 0
    # A re-ask: its prefix runs to the assistant's answer.
    text = "Cy Dee is a 30-year-old cook"
    answer = '{"name":"Cy Dee","age":"thirty","occupation":"cook"}'
    extra = [{"role": "assistant", "content": answer},
             {"role": "user", "content": "Errors: /age. Answer again."}]
    reask = with_system(payload(text, extra=extra), system)
    assert cached_of(sim, reask) == 0
    want = (len(system) + len(text) + len(answer)) // 4
    assert cached_of(sim, reask) == want
    # Under the threshold (4 tokens < 5): never cached.
    short = with_system(payload("Ann Echo is a 41-year-old nurse"), "Who?" * 4)
    assert cached_of(sim, short) == 0
    assert cached_of(sim, short) == 0


def test_prompt_cache_default(sim):
    """By default a prefix counts as cached from 1024 tokens, as OpenAI's:
    the usual short system message never is, a 4100-byte one is (1025)."""
    p = payload("Ann Echo is a 41-year-old nurse")
    assert cached_of(sim, p) == 0
    assert cached_of(sim, p) == 0
    long_system = "Extract the person. " * 205
    p = with_system(payload("Bo Li is a 7-year-old pupil"), long_system)
    cached_of(sim, p)
    assert cached_of(sim, p) == len(long_system) // 4 == 1025
    u = usage_of(sim, p)
    assert u["completion_tokens_details"]["reasoning_tokens"] == 0, u


def test_reasoning_tokens(plain, reasoning):
    """--reasoning-tokens 7: each answer reports 7 reasoning tokens, part
    of completion_tokens (7 more than without), the answer unchanged."""
    for mode in ("json_schema", "tools"):
        p = payload("Ann Echo is a 41-year-old nurse", mode)
        base = usage_of(plain, p)
        u = usage_of(reasoning, p)
        assert u["completion_tokens_details"]["reasoning_tokens"] == 7, u
        assert u["completion_tokens"] == base["completion_tokens"] + 7, \
            (u, base)
        assert u["prompt_tokens"] == base["prompt_tokens"], (u, base)


def test_bad_requests(sim):
    expect_error(sim.chat("{not json"), 400, "invalid_request_error")
    expect_error(sim.chat('{"messages": []}'), 400)
    expect_error(sim.chat('{"model": "m"}'), 400)
    expect_error(sim.chat('[1, 2]'), 400)
    expect_error(sim.chat({"model": "m", "messages": [
        {"role": "system", "content": "no user here"}]}), 400)
    expect_error(sim.chat('{"messages": [{"role": "user", "content": "x"}]}'
                          ' trailing'), 400)
    expect_error(sim.request("POST", "/v1/nothing", "{}"), 404)
    expect_error(sim.request("GET", "/v1/chat/completions"), 405)
    # an announced oversized body is refused before it is read
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Content-Length: 9000000\r\n\r\n{")
        head = s.recv(4096).decode("latin-1")
        assert head.startswith("HTTP/1.1 413"), head
    finally:
        s.close()


def test_stats_basic(sim):
    st = sim.stats()
    for key in ("requests", "by_status", "current_concurrent",
                "peak_concurrent", "by_mode"):
        assert key in st, st
    assert st["current_concurrent"] == 0, st
    assert st["by_status"].get("200", 0) > 0, st
    assert st["by_status"].get("400", 0) >= 6, st
    assert all(st["by_mode"][m] > 0 for m in MODES), st
    assert st["requests"] == sum(st["by_status"].values()), st


def test_faults(sims):
    john = "John Smith is a 30-year-old software engineer"

    headers = expect_error(sims["429"].chat(payload(john)), 429,
                           "requests", "rate_limit_exceeded")
    assert headers.get("retry-after") == "1", headers
    for h in RATELIMIT_HEADERS:
        assert h in headers, (h, headers)
    assert headers["x-ratelimit-remaining-requests"] == "0", headers
    expect_error(sims["quota"].chat(payload(john)), 429,
                 "insufficient_quota", "insufficient_quota")
    expect_error(sims["500"].chat(payload(john)), 500)
    expect_error(sims["403"].chat(payload(john)), 403, "request_forbidden",
                 "unsupported_country_region_territory")
    expect_error(sims["503"].chat(payload(john)), 503)

    status, _, data = sims["malformed"].chat(payload(john))
    assert status == 200, status
    try:
        json.loads(data)
    except ValueError:
        pass
    else:
        raise AssertionError("malformed fault sent valid JSON: %r" % data)

    for mode in MODES:
        status, _, data = sims["invalid"].chat(payload(john, mode))
        assert status == 200, data
        got = json.loads(answer_text(json.loads(data), mode))
        assert got["age"] == "thirty", got
    # a re-ask (an assistant message present) gets the matched answer
    reask = [{"role": "assistant", "content": '{"age":"thirty"}'},
             {"role": "user", "content": "/age: expected integer"}]
    for mode in MODES:
        expect_person(sims["invalid"], john,
                      {"name": "John Smith", "age": 30,
                       "occupation": "software engineer"}, mode,
                      extra=reask)

    for mode in MODES:
        status, _, data = sims["refusal"].chat(payload(john, mode))
        assert answer_text(json.loads(data), mode) is None, data

    # content_filter: 200, no content, no refusal, no tool call (as Azure
    # and OpenAI send a withheld answer); on a re-ask too.
    for extra in ([], reask):
        for mode in MODES:
            status, _, data = sims["content_filter"].chat(
                payload(john, mode, extra=extra))
            assert status == 200, data
            choice = json.loads(data)["choices"][0]
            assert choice["finish_reason"] == "content_filter", data
            msg = choice["message"]
            assert msg["content"] is None and msg["refusal"] is None, data
            assert not msg.get("tool_calls"), data
    # length: 200, the answer's first half, finish_reason "length"
    whole = json.dumps({"name": "John Smith", "age": 30,
                        "occupation": "software engineer"},
                       separators=(",", ":"))
    for mode in MODES:
        status, _, data = sims["length"].chat(payload(john, mode))
        assert status == 200, data
        resp = json.loads(data)
        assert resp["choices"][0]["finish_reason"] == "length", data
        resp["choices"][0]["finish_reason"] = "stop"  # for answer_text
        text = answer_text(resp, mode)
        assert text and len(text) < len(whole), (text, data)
        try:
            json.loads(text)
        except ValueError:
            pass
        else:
            raise AssertionError("length fault sent a whole answer: %r" %
                                 text)

    sim = sims["timeout"]
    t0 = time.monotonic()
    try:
        sim.chat(payload(john), timeout=1.0)
    except (socket.timeout, TimeoutError):
        pass
    else:
        raise AssertionError("timeout fault answered")
    waited = time.monotonic() - t0
    assert 0.9 <= waited < 3.0, waited
    # the client gave up: llmsim notices and the request is no longer open
    deadline = time.monotonic() + 3.0
    while True:
        st = sim.stats()
        if st["current_concurrent"] == 0:
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.05)
    assert st["dropped"] == 1 and st["peak_concurrent"] == 1, st
    assert st["faults"]["timeout"] == 1, st


def test_giveup_retry(sim):
    """Clients that give up on a held request and retry at once are never
    counted twice: peak stays 1 (the concurrency oracle must not lie)."""
    body = json.dumps(payload(
        "John Smith is a 30-year-old software engineer")).encode()
    raw = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: llmsim\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % len(body)) + body
    sim.reset()
    n = 40
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
        try:
            s.settimeout(0.02)
            s.sendall(raw)
            try:
                data = s.recv(100)
                raise AssertionError("held request answered: %r" % data)
            except (socket.timeout, TimeoutError):
                pass
        finally:
            s.close()
    # The last hang-up reaches llmsim's timer thread a moment later.
    end = time.monotonic() + 5
    st = sim.stats()
    while st["current_concurrent"] and time.monotonic() < end:
        time.sleep(0.01)
        st = sim.stats()
    assert st["requests"] == n and st["peak_concurrent"] == 1, st
    assert st["current_concurrent"] == 0 and st["dropped"] == n, st


def parallel_requests(sim, n, text):
    """n requests at once, one connection each; returns their statuses."""
    conns = [sim.conn(10.0) for _ in range(n)]
    for c in conns:
        c.connect()
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = sim.chat(payload(text), conn=conns[i])[0]
        except Exception as e:  # reported by the caller
            results[i] = repr(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for c in conns:
        c.close()
    return results


def test_concurrency(sim):
    n = 24
    text = "John Smith is a 30-year-old software engineer"
    sim.reset()
    t0 = time.monotonic()
    results = parallel_requests(sim, n, text)
    elapsed = time.monotonic() - t0
    assert results == [200] * n, results
    assert 0.29 <= elapsed < 3.0, elapsed
    st = sim.stats()
    assert st["requests"] == n, st
    assert st["peak_concurrent"] == n, st
    assert st["current_concurrent"] == 0, st
    assert st["by_status"] == {"200": n}, st

    sim.reset()
    st = sim.stats()
    assert st["requests"] == 0 and st["peak_concurrent"] == 0, st
    assert st["by_status"] == {} and st["current_concurrent"] == 0, st
    # sequential requests on one keep-alive connection: peak stays 1
    c = sim.conn()
    try:
        for _ in range(3):
            assert sim.chat(payload(text), conn=c)[0] == 200
    finally:
        c.close()
    st = sim.stats()
    assert st["requests"] == 3 and st["peak_concurrent"] == 1, st


def test_rpm(sim):
    text = "John Smith is a 30-year-old software engineer"
    for i in range(3):
        status, headers, data = sim.chat(payload(text))
        assert status == 200, (i, status, data)
        assert headers["x-ratelimit-limit-requests"] == "3", headers
        assert headers["x-ratelimit-remaining-requests"] == str(2 - i), \
            headers
        assert DURATION_RE.match(headers["x-ratelimit-reset-requests"]), \
            headers
    headers = expect_error(sim.chat(payload(text)), 429, "requests",
                           "rate_limit_exceeded")
    assert int(headers["retry-after"]) >= 1, headers
    assert headers["x-ratelimit-remaining-requests"] == "0", headers
    assert DURATION_RE.match(headers["x-ratelimit-reset-requests"]), headers
    assert sim.stats()["rate_limited"] == 1


def test_tpm(sim):
    small = "John Smith is a 30-year-old software engineer"
    status, headers, _ = sim.chat(payload(small))
    assert status == 200 and headers["x-ratelimit-limit-tokens"] == "100"
    big = "John Smith is a 30-year-old " + "very " * 100 + "busy engineer"
    headers = expect_error(sim.chat(payload(big)), 429, "tokens",
                           "rate_limit_exceeded")
    assert int(headers["retry-after"]) >= 1, headers


def test_no_rate_headers(sim):
    """--rpm 2 --no-rate-headers: no x-ratelimit-* on a 200 or on the
    429, which still comes, with Retry-After; /stats counts both."""
    text = "John Smith is a 30-year-old software engineer"
    for i in range(2):
        status, headers, data = sim.chat(payload(text))
        assert status == 200, (i, status, data)
        assert not [h for h in headers if h.startswith("x-ratelimit-")], \
            headers
    headers = expect_error(sim.chat(payload(text)), 429, "requests",
                           "rate_limit_exceeded")
    assert int(headers["retry-after"]) >= 1, headers
    assert not [h for h in headers if h.startswith("x-ratelimit-")], headers
    st = sim.stats()
    assert st["by_status"] == {"200": 2, "429": 1}, st
    assert st["rate_limited"] == 1, st


def test_capacity(sim):
    """--capacity 2 --latency-ms 200, 8 requests at once: all answered,
    never more than 2 computing, the rest queued, and the latency grows
    with the place in the queue: the last answer comes at least three
    service times (the fastest answer's latency) after they were sent."""
    n = 8
    text = "John Smith is a 30-year-old software engineer"
    sim.reset()
    conns = [sim.conn(30.0) for _ in range(n)]
    for c in conns:
        c.connect()
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        t0 = time.monotonic()
        try:
            status = sim.chat(payload(text), conn=conns[i])[0]
            results[i] = (status, t0, time.monotonic())
        except Exception as e:  # reported below
            results[i] = (repr(e), t0, time.monotonic())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for c in conns:
        c.close()
    assert [r[0] for r in results] == [200] * n, results
    st = sim.stats()
    assert st["capacity"] == 2, st
    assert st["computing_peak"] == 2, st
    assert st["queue_peak"] >= 5, st
    assert st["computing"] == 0 and st["queued"] == 0, st
    assert st["by_status"] == {"200": n}, st
    assert st["peak_concurrent"] == n, st
    service = min(end - start for _, start, end in results)
    first_sent = min(start for _, start, _ in results)
    last_done = max(end for _, _, end in results)
    assert last_done - first_sent >= 3 * service, (service, results)
    assert st["queue_wait_max_ms"] >= 1000 * service, (service, st)
    assert st["queue_wait_ms"] >= st["queue_wait_max_ms"], st


def send_raw_chat(sim, text):
    """A socket that has sent one chat request and not read the answer."""
    body = json.dumps(payload(text)).encode()
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=30)
    s.sendall((b"POST /v1/chat/completions HTTP/1.1\r\nHost: llmsim\r\n"
               b"Content-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body)
    return s


def wait_stats(sim, pred, what, timeout=10.0):
    """Poll /stats until pred(stats) holds; returns those stats."""
    end = time.monotonic() + timeout
    st = sim.stats()
    while not pred(st):
        assert time.monotonic() < end, (what, st)
        time.sleep(0.02)
        st = sim.stats()
    return st


def test_capacity_leave(sim):
    """--capacity 1: a client that hangs up while queued leaves the queue
    at once (dropped, not served later), and one that gives up and
    retries at once is never counted twice; SIGTERM with one request
    computing and one queued wakes both and exits 0, promptly. (Their
    answers are queued at once, but MHD_stop_daemon may close the
    connections before they are written, as for any delayed request.)"""
    text = "John Smith is a 30-year-old software engineer"
    first = send_raw_chat(sim, text)
    wait_stats(sim, lambda st: st["computing"] == 1, "first computing")
    second = send_raw_chat(sim, text)
    wait_stats(sim, lambda st: st["queued"] == 1, "second queued")
    second.close()
    # The queue and the request counters are two structures: wait until
    # both have seen it leave.
    st = wait_stats(sim, lambda st: st["queued"] == 0 and
                    st["dropped"] == 1, "second left")
    assert st["dropped"] == 1 and st["current_concurrent"] == 1, st
    assert st["computing"] == 1 and st["queue_peak"] == 1, st
    n = 20
    for _ in range(n):
        s = send_raw_chat(sim, text)
        try:
            s.settimeout(0.02)
            try:
                data = s.recv(100)
                raise AssertionError("queued request answered: %r" % data)
            except (socket.timeout, TimeoutError):
                pass
        finally:
            s.close()
    st = wait_stats(sim, lambda st: st["current_concurrent"] == 1,
                    "the retries left")
    assert st["requests"] == n + 2 and st["dropped"] == n + 1, st
    # A retry can be queued before the reaper has seen its predecessor
    # hang up (a slow machine, a sanitizer build): then two wait at once,
    # briefly. Each still counts once (above), and the queue empties.
    assert st["peak_concurrent"] <= 3 and st["queue_peak"] <= 2, st
    assert st["queued"] == 0 and st["computing_peak"] == 1, st
    third = send_raw_chat(sim, text)
    wait_stats(sim, lambda st: st["queued"] == 1, "third queued")
    try:
        t0 = time.monotonic()
        rc = sim.stop()
        assert rc == 0, (rc, sim.read_log())
        assert time.monotonic() - t0 < 5, "slow shutdown"
        for s in (first, third):
            got = s.recv(100)
            assert not got or got.startswith(b"HTTP/1.1 200 "), got
    finally:
        first.close()
        third.close()


def test_seeded(sim_a, sim_b):
    text = "John Smith is a 30-year-old software engineer"
    seq_a = [sim_a.chat(payload(text))[0] for _ in range(24)]
    seq_b = [sim_b.chat(payload(text))[0] for _ in range(24)]
    assert seq_a == seq_b, (seq_a, seq_b)
    assert set(seq_a) == {200, 500}, seq_a


def test_shutdown_with_held(sim):
    """SIGTERM while a timeout-fault request is held: exit 0, promptly."""
    text = "John Smith is a 30-year-old software engineer"
    outcome = []

    def run():
        try:
            sim.chat(payload(text), timeout=20.0)
            outcome.append("answered")
        except Exception as e:
            outcome.append(type(e).__name__)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 5
    while sim.stats()["current_concurrent"] != 1:
        assert time.monotonic() < deadline, "held request never arrived"
        time.sleep(0.02)
    t0 = time.monotonic()
    rc = sim.stop()
    assert rc == 0, (rc, sim.read_log())
    assert time.monotonic() - t0 < 5, "slow shutdown"
    t.join(10)
    assert outcome and outcome[0] != "answered", outcome


# ---- files and batches -----------------------------------------------------

BOUNDARY = "llmsim-test-boundary-5c1e"


def form(fields):
    """A multipart/form-data body: fields are (name, bytes, filename)."""
    out = b""
    for name, value, filename in fields:
        disp = 'form-data; name="%s"' % name
        if filename:
            disp += '; filename="%s"' % filename
        out += ("--%s\r\nContent-Disposition: %s\r\n" %
                (BOUNDARY, disp)).encode()
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + value + b"\r\n"
    return out + ("--%s--\r\n" % BOUNDARY).encode()


FORM_HEADERS = {"Content-Type":
                "multipart/form-data; boundary=" + BOUNDARY}


def batch_line(custom_id, text, mode="json_schema"):
    return {"custom_id": custom_id, "method": "POST",
            "url": "/v1/chat/completions", "body": payload(text, mode)}


def jsonl(lines):
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def upload(sim, data, filename="in.jsonl", purpose=b"batch"):
    """Returns (status, parsed body)."""
    status, _, body = sim.request(
        "POST", "/v1/files",
        form([("purpose", purpose, None), ("file", data, filename)]),
        headers=FORM_HEADERS)
    return status, json.loads(body)


def check_file_object(f, size, filename, purpose="batch"):
    assert f["object"] == "file" and f["id"].startswith("file-"), f
    assert f["bytes"] == size and f["filename"] == filename, f
    assert f["purpose"] == purpose and isinstance(f["created_at"], int), f
    assert f["status"] == "processed", f


BATCH_KEYS = ("id", "object", "endpoint", "errors", "input_file_id",
              "completion_window", "status", "output_file_id",
              "error_file_id", "created_at", "in_progress_at", "expires_at",
              "finalizing_at", "completed_at", "failed_at", "expired_at",
              "cancelling_at", "cancelled_at", "request_counts", "metadata")


def create_batch(sim, file_id, metadata=None, expect=200):
    req = {"input_file_id": file_id, "endpoint": "/v1/chat/completions",
           "completion_window": "24h"}
    if metadata is not None:
        req["metadata"] = metadata
    status, _, data = sim.request("POST", "/v1/batches", req)
    assert status == expect, (status, data)
    b = json.loads(data)
    if expect == 200:
        for k in BATCH_KEYS:
            assert k in b, (k, b)
        assert b["object"] == "batch" and b["id"].startswith("batch_"), b
        assert b["status"] == "validating", b
        assert b["input_file_id"] == file_id, b
        assert b["completion_window"] == "24h", b
        assert b["expires_at"] == b["created_at"] + 24 * 3600, b
    return b


def get_batch(sim, batch_id):
    status, _, data = sim.request("GET", "/v1/batches/" + batch_id)
    assert status == 200, (status, data)
    return json.loads(data)


def wait_batch(sim, batch_id, timeout=30.0):
    """Poll until the batch ends; returns (batch, statuses seen)."""
    end = time.monotonic() + timeout
    seen = []
    while True:
        b = get_batch(sim, batch_id)
        seen.append(b["status"])
        if b["status"] not in ("validating", "in_progress", "finalizing",
                               "cancelling"):
            return b, seen
        assert time.monotonic() < end, seen
        time.sleep(0.05)


def file_lines(sim, file_id):
    """The JSONL lines of a file, parsed, by custom_id (in order)."""
    if file_id is None:
        return {}
    status, hdrs, data = sim.request("GET", "/v1/files/%s/content" % file_id)
    assert status == 200, (status, data)
    out = {}
    for line in data.decode().splitlines():
        x = json.loads(line)
        assert x["id"].startswith("batch_req_"), x
        assert x["custom_id"] not in out, x
        out[x["custom_id"]] = x
    return out


def test_batch_roundtrip(sim):
    """Upload, create, poll until completed (never before
    --batch-delay-ms), download: every Person right in the output file in
    input order, a scripted 503 and a bad body in the error file with
    their responses, request_counts, usage and /stats exact; metadata
    kept; files listed and deleted."""
    sim.reset()
    people = [("p%04d" % i, "Person %d is a %d-year-old tester" %
               (i, 20 + i % 50)) for i in range(300)]
    lines = [batch_line(cid, text, MODES[i % len(MODES)])
             for i, (cid, text) in enumerate(people)]
    lines.append(batch_line("busy", "SCRIPTED-503 now"))
    bad = batch_line("bad-body", "x")
    bad["body"]["messages"] = []
    lines.append(bad)
    lines.append(batch_line("nobody", "The weather is nice today."))
    data = jsonl(lines)
    status, f = upload(sim, data, "people.jsonl")
    assert status == 200, f
    check_file_object(f, len(data), "people.jsonl")
    status, _, got = sim.request("GET", "/v1/files/%s/content" % f["id"])
    assert status == 200 and got == data, (status, len(got), len(data))
    t0 = time.monotonic()
    b = create_batch(sim, f["id"], metadata={"source": "texts/0/0-299"})
    b, seen = wait_batch(sim, b["id"])
    took = time.monotonic() - t0
    assert took >= 1.0, (took, seen)    # --batch-delay-ms 1000
    assert b["status"] == "completed", b
    assert b["metadata"] == {"source": "texts/0/0-299"}, b
    n = len(lines)
    assert b["request_counts"] == {"total": n, "completed": n - 2,
                                   "failed": 2}, b
    for k in ("in_progress_at", "finalizing_at", "completed_at"):
        assert isinstance(b[k], int) and b[k] >= b["created_at"], b
    assert b["failed_at"] is None and b["cancelled_at"] is None, b
    out = file_lines(sim, b["output_file_id"])
    err = file_lines(sim, b["error_file_id"])
    assert list(out) == [cid for cid, _ in people] + ["nobody"], list(out)
    tokens = 0
    for i, (cid, text) in enumerate(people):
        x = out[cid]
        assert x["error"] is None, x
        r = x["response"]
        assert r["status_code"] == 200 and r["request_id"], r
        mode = MODES[i % len(MODES)]
        name = "Person %d" % i
        assert answer_text(r["body"], mode) == compact(
            {"name": name, "age": 20 + i % 50, "occupation": "tester"}), r
        tokens += r["body"]["usage"]["total_tokens"]
    nobody = out["nobody"]["response"]["body"]
    assert answer_text(nobody, "json_schema") is None, nobody
    tokens += nobody["usage"]["total_tokens"]
    assert set(err) == {"busy", "bad-body"}, err
    busy = err["busy"]
    assert busy["error"] is None, busy
    assert busy["response"]["status_code"] == 503, busy
    assert busy["response"]["body"]["error"]["code"] == "busy", busy
    assert err["bad-body"]["response"]["status_code"] == 400, err
    usage = b["usage"]
    assert usage["total_tokens"] == tokens, (usage, tokens)
    assert usage["input_tokens"] + usage["output_tokens"] == tokens, usage
    # the files: output ones are batch_output, named after the batch
    status, _, meta = sim.request("GET", "/v1/files/" + b["output_file_id"])
    assert status == 200, meta
    meta = json.loads(meta)
    assert meta["purpose"] == "batch_output", meta
    assert meta["filename"] == b["id"] + "_output.jsonl", meta
    st = sim.stats()
    assert st["batches_created"] == 1 and st["batch_requests"] == n, st
    assert st["batch_tokens"] == tokens, (st, tokens)
    assert st["requests"] == 0 and st["tokens"] == 0, st
    assert st["files"] == 3, st
    # delete: gone for good, and counted out
    for fid in (f["id"], b["output_file_id"], b["error_file_id"]):
        status, _, data = sim.request("DELETE", "/v1/files/" + fid)
        assert status == 200, data
        assert json.loads(data) == {"id": fid, "object": "file",
                                    "deleted": True}, data
        expect_error(sim.request("GET", "/v1/files/%s/content" % fid), 404)
        expect_error(sim.request("DELETE", "/v1/files/" + fid), 404)
    st = sim.stats()
    assert st["files"] == 0 and st["file_bytes"] == 0, st
    # the batch still answers, naming its (deleted) files
    assert get_batch(sim, b["id"])["status"] == "completed"
    sim.reset()
    st = sim.stats()
    assert st["batches_created"] == 0 and st["batch_requests"] == 0, st
    assert st["batch_tokens"] == 0, st


def run_batch(sim, lines):
    status, f = upload(sim, jsonl(lines))
    assert status == 200, f
    b, _ = wait_batch(sim, create_batch(sim, f["id"])["id"])
    return b, file_lines(sim, b["output_file_id"]), \
        file_lines(sim, b["error_file_id"])


def test_batch_faults(faults):
    """A line's fault lands as a live request's would: an HTTP error in
    the error file with its response, the timeout fault there with
    error request_timeout and no response, the malformed one in the
    output file with the cut body as a string; each counted in faults."""
    lines = [batch_line("l%d" % i,
                        "John Smith is a 30-year-old software engineer")
             for i in range(3)]
    for kind, status in (("500", 500), ("429", 429), ("quota", 429)):
        sim = faults[kind]
        before = sim.stats()
        b, out, err = run_batch(sim, lines)
        assert b["status"] == "completed", b
        assert b["request_counts"] == {"total": 3, "completed": 0,
                                       "failed": 3}, b
        assert b["output_file_id"] is None and not out, b
        for x in err.values():
            assert x["error"] is None, x
            assert x["response"]["status_code"] == status, x
            assert x["response"]["body"]["error"]["message"], x
        after = sim.stats()
        assert after["faults"][kind] == before["faults"][kind] + 3, after
        assert after["requests"] == before["requests"], after
    b, out, err = run_batch(faults["timeout"], lines)
    assert b["request_counts"]["failed"] == 3 and not out, b
    for x in err.values():
        assert x["response"] is None, x
        assert x["error"]["code"] == "request_timeout", x
        assert x["error"]["message"], x
    b, out, err = run_batch(faults["malformed"], lines)
    assert b["request_counts"]["completed"] == 3 and not err, b
    for x in out.values():
        body = x["response"]["body"]
        assert isinstance(body, str) and body.startswith('{"id":'), x
        try:
            json.loads(body)
        except ValueError:
            pass
        else:
            raise AssertionError("malformed batch line is JSON: %r" % body)
    b, out, err = run_batch(faults["invalid"], lines)
    assert b["request_counts"]["completed"] == 3, b
    for x in out.values():
        got = json.loads(answer_text(x["response"]["body"], "json_schema"))
        assert got["age"] == "thirty", got


def test_batch_expire(sim):
    """--batch-expire 1: the first batch expires, its first half
    answered and the rest in the error file as batch_expired; the next
    one completes."""
    sim.reset()
    lines = [batch_line("e%d" % i, "Ann Lee is a %d-year-old pupil" % i)
             for i in range(1, 8)]
    b, out, err = run_batch(sim, lines)
    assert b["status"] == "expired", b
    assert isinstance(b["expired_at"], int) and b["completed_at"] is None, b
    assert b["request_counts"] == {"total": 7, "completed": 3,
                                   "failed": 4}, b
    assert list(out) == ["e1", "e2", "e3"], out
    assert list(err) == ["e4", "e5", "e6", "e7"], err
    for x in err.values():
        assert x["response"] is None, x
        assert x["error"]["code"] == "batch_expired", x
    assert sim.stats()["batch_requests"] == 3
    b, out, err = run_batch(sim, lines)
    assert b["status"] == "completed" and len(out) == 7 and not err, b
    st = sim.stats()
    assert st["batches_created"] == 2 and st["batch_requests"] == 10, st


def test_batch_hold(sim, hold):
    """--batch-hold FILE: a batch stays in_progress while FILE exists,
    however often it is asked for, and completes once FILE is gone."""
    sim.reset()
    lines = [batch_line("h%d" % i, "Ann Lee is a %d-year-old pupil" % i)
             for i in range(1, 4)]
    status, f = upload(sim, jsonl(lines))
    assert status == 200, f
    b = create_batch(sim, f["id"])
    for _ in range(5):
        time.sleep(0.1)
        assert get_batch(sim, b["id"])["status"] == "in_progress", b
    assert sim.stats()["batch_requests"] == 0
    os.remove(hold)
    b, _ = wait_batch(sim, b["id"])
    assert b["status"] == "completed", b
    assert len(file_lines(sim, b["output_file_id"])) == 3, b
    assert sim.stats()["batch_requests"] == 3


def test_batch_cancel(sim):
    """--batch-delay-ms 60000: in progress until cancelled; the cancel
    answers "cancelling", then it is "cancelled" with every line in the
    error file as batch_cancelled and none answered; a second cancel
    returns it as it is; a completed batch cannot be cancelled."""
    sim.reset()
    lines = [batch_line("c%d" % i, "Bo Li is a 7-year-old pupil")
             for i in range(4)]
    status, f = upload(sim, jsonl(lines))
    assert status == 200, f
    b = create_batch(sim, f["id"])
    got = get_batch(sim, b["id"])
    assert got["status"] == "in_progress", got
    assert got["request_counts"] == {"total": 4, "completed": 0,
                                     "failed": 0}, got
    status, _, data = sim.request("POST", "/v1/batches/%s/cancel" % b["id"])
    assert status == 200, data
    c = json.loads(data)
    assert c["status"] == "cancelling" and c["cancelling_at"], c
    got = get_batch(sim, b["id"])
    assert got["status"] == "cancelled" and got["cancelled_at"], got
    assert got["output_file_id"] is None, got
    assert got["request_counts"] == {"total": 4, "completed": 0,
                                     "failed": 4}, got
    err = file_lines(sim, got["error_file_id"])
    assert list(err) == ["c0", "c1", "c2", "c3"], err
    for x in err.values():
        assert x["error"]["code"] == "batch_cancelled", x
    status, _, data = sim.request("POST", "/v1/batches/%s/cancel" % b["id"])
    assert status == 200 and json.loads(data)["status"] == "cancelled", data
    st = sim.stats()
    assert st["batches_created"] == 1 and st["batch_requests"] == 0, st


def test_batch_cancel_done(sim):
    """A completed batch (--batch-delay-ms 0) cannot be cancelled: 400."""
    b, _, _ = run_batch(sim, [batch_line("x", "Bo Li is a 7-year-old pupil")])
    assert b["status"] == "completed", b
    expect_error(sim.request("POST", "/v1/batches/%s/cancel" % b["id"]), 400,
                 "invalid_request_error")


def test_batch_invalid(sim):
    """Input files that are not batch lines make failed batches naming
    the lines; bad requests get OpenAI's error shape."""
    good = batch_line("g", "Bo Li is a 7-year-old pupil")
    wrong_url = dict(good, custom_id="u", url="/v1/embeddings")
    no_body = {"custom_id": "n", "method": "POST",
               "url": "/v1/chat/completions"}
    for data, codes in (
            (jsonl([good]) + b"{not json\n" + jsonl([wrong_url, no_body]),
             [("invalid_json_line", 2), ("invalid_request", 3),
              ("invalid_request", 4)]),
            (jsonl([good, good]), [("duplicate_custom_id", None)]),
            (b"\n\n", [("empty_file", None)])):
        status, f = upload(sim, data)
        assert status == 200, f
        b = create_batch(sim, f["id"])
        got = get_batch(sim, b["id"])
        assert got["status"] == "failed" and got["failed_at"], got
        assert got["errors"]["object"] == "list", got
        assert [(e["code"], e["line"]) for e in got["errors"]["data"]] == \
            codes, got["errors"]
        assert all(e["message"] for e in got["errors"]["data"]), got
        assert got["output_file_id"] is None, got
    status, f = upload(sim, jsonl([good]))
    fid = f["id"]
    for req, param in (
            ({"input_file_id": "file-nope", "endpoint": "/v1/chat/completions",
              "completion_window": "24h"}, "input_file_id"),
            ({"input_file_id": fid, "endpoint": "/v1/embeddings",
              "completion_window": "24h"}, "endpoint"),
            ({"input_file_id": fid, "endpoint": "/v1/chat/completions",
              "completion_window": "1h"}, "completion_window"),
            ({"input_file_id": fid, "endpoint": "/v1/chat/completions",
              "completion_window": "24h", "metadata": {"n": 1}}, "metadata"),
            ({"endpoint": "/v1/chat/completions",
              "completion_window": "24h"}, "input_file_id")):
        r = sim.request("POST", "/v1/batches", req)
        expect_error(r, 400, "invalid_request_error")
        assert json.loads(r[2])["error"]["param"] == param, (req, r)
    expect_error(sim.request("POST", "/v1/batches", "{nope"), 400)
    expect_error(sim.request("GET", "/v1/batches/batch_nope"), 404)
    expect_error(sim.request("POST", "/v1/batches/batch_nope/cancel"), 404)
    expect_error(sim.request("GET", "/v1/files/file-nope/content"), 404)
    expect_error(sim.request("GET", "/v1/batches"), 405)
    expect_error(sim.request("DELETE", "/v1/batches/x"), 405)
    expect_error(sim.request("GET", "/v1/files/%s/other" % fid), 404)
    # uploads: purpose batch only, both fields needed, a real form
    status, err = upload(sim, b"x", purpose=b"fine-tune")
    assert status == 400 and err["error"]["param"] == "purpose", err
    status, _, data = sim.request(
        "POST", "/v1/files", form([("purpose", b"batch", None)]),
        headers=FORM_HEADERS)
    assert status == 400 and json.loads(data)["error"]["param"] == "file", \
        data
    expect_error(sim.request("POST", "/v1/files", "{}"), 400)
    expect_error(sim.request("POST", "/v1/files", b"--x\r\nbroken",
                             headers=FORM_HEADERS), 400)
    # past the chat body cap (8 MiB) a file still uploads whole; a body
    # announced past 200 MB (and the form's room) is refused unread
    big = (b"x" * 1023 + b"\n") * (10 << 10)
    status, f = upload(sim, big, "big.jsonl")
    assert status == 200 and f["bytes"] == len(big), f
    status, _, data = sim.request("DELETE", "/v1/files/" + f["id"])
    assert status == 200, data
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    try:
        s.sendall(b"POST /v1/files HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: " + FORM_HEADERS["Content-Type"].encode() +
                  b"\r\nContent-Length: 300000000\r\n\r\n--")
        head = s.recv(4096).decode("latin-1")
        assert head.startswith("HTTP/1.1 413"), head
    finally:
        s.close()
    # a file's bytes come back as sent, CR LF and boundary-like text too
    tricky = b"--" + BOUNDARY.encode() + b"x\r\n\r\n\x00\xff end"
    status, f = upload(sim, tricky, "tricky.bin")
    assert status == 200, f
    check_file_object(f, len(tricky), "tricky.bin")
    status, _, data = sim.request("GET", "/v1/files/%s/content" % f["id"])
    assert status == 200 and data == tricky, data


def test_batch_key(sim, key):
    """With --api-key-file the files and batches need the key too."""
    expect_error(sim.request("GET", "/v1/batches/batch_x"), 401,
                 "invalid_request_error", "invalid_api_key")
    expect_error(sim.request("POST", "/v1/files", form([]),
                             headers=dict(FORM_HEADERS,
                                          Authorization="Bearer wrong")),
                 401)
    expect_error(sim.request("GET", "/v1/batches/batch_x",
                             headers={"Authorization": "Bearer " + key}),
                 404)


# ---- runner ----------------------------------------------------------------

def main():
    global LLMSIM
    if len(sys.argv) != 2:
        print("usage: test_llmsim.py PATH/TO/llmsim", file=sys.stderr)
        return 2
    LLMSIM = os.path.abspath(sys.argv[1])
    workdir = tempfile.mkdtemp(prefix="llmsim-test-")
    answers = os.path.join(workdir, "answers.jsonl")
    with open(answers, "w") as f:
        f.write(json.dumps({"match": "ACME-42",
                            "content": '{"sku": "ACME-42", "qty": 3}'}) + "\n")
        f.write("\n")
        f.write(json.dumps({"match": "Scripted",
                            "content": '{"name":"Bob","age":"five"}'}) + "\n")
        f.write(json.dumps({"match": "Scripted", "content": "never"}) + "\n")
        f.write(json.dumps({"match": "ECHO-400", "status": 400,
                            "echo_headers": True}) + "\n")
        f.write(json.dumps({"match": "SCRIPTED-503", "status": 503,
                            "content": "try later", "code": "busy"}) + "\n")
        f.write(json.dumps({"match": "RA-SECONDS", "status": 429,
                            "retry_after": 3, "times": 1,
                            "type": "requests",
                            "code": "rate_limit_exceeded"}) + "\n")
        f.write(json.dumps({"match": "RA-DATE", "status": 429,
                            "retry_after_date": 4, "times": 1}) + "\n")

    sims = {}
    failures = []
    t_start = time.monotonic()
    try:
        def start(name, *args):
            sims[name] = Sim(workdir, name, *args)

        start("main", "--answers", answers)
        start("bare", "--answers", answers, "--no-rate-headers")
        start("latency", "--latency-ms", "300")
        start("rpm", "--rpm", "3")
        start("tpm", "--tpm", "100")
        start("rpm_bare", "--rpm", "2", "--no-rate-headers")
        start("capacity", "--capacity", "2", "--latency-ms", "200")
        start("capacity_leave", "--capacity", "1", "--latency-ms", "30000")
        start("cache", "--cache-min-tokens", "5")
        start("reasoning", "--reasoning-tokens", "7")
        start("seed_a", "--fault", "500=0.5", "--seed", "7")
        start("seed_b", "--fault", "500=0.5", "--seed", "7",
              "--latency-ms", "1", "--jitter-ms", "1")
        start("shutdown", "--fault", "timeout=1", "--latency-ms", "5")
        start("batch", "--answers", answers, "--batch-delay-ms", "1000")
        start("batch_expire", "--batch-expire", "1")
        start("batch_cancel", "--batch-delay-ms", "60000")
        hold = os.path.join(workdir, "batches.hold")
        open(hold, "w").close()
        start("batch_hold", "--batch-hold", hold)
        key_file = os.path.join(workdir, "key")
        with open(key_file, "w") as f:
            f.write("sk-llmsim-batch-key\n")
        start("batch_key", "--api-key-file", key_file)
        fault_kinds = ("429", "quota", "500", "503", "timeout", "malformed",
                       "invalid", "refusal", "content_filter", "length",
                       "403")
        for kind in fault_kinds:
            start("fault_" + kind, "--fault", kind + "=1",
                  "--latency-ms", "2", "--jitter-ms", "2")
        for s in sims.values():
            s.wait_port(10.0)
        faults = {k: sims["fault_" + k] for k in fault_kinds}

        tests = [
            ("modes", lambda: test_modes(sims["main"])),
            ("refusal", lambda: test_refusal(sims["main"])),
            ("answers", lambda: test_answers(sims["main"])),
            ("scripted_errors",
             lambda: test_scripted_errors(sims["main"], workdir)),
            ("scripted_retry_after",
             lambda: test_scripted_retry_after(sims["bare"], workdir)),
            ("stats_tokens_arrivals",
             lambda: test_stats_tokens_arrivals(sims["bare"])),
            ("prompt_cache", lambda: test_prompt_cache(sims["cache"])),
            ("prompt_cache_default",
             lambda: test_prompt_cache_default(sims["main"])),
            ("reasoning_tokens",
             lambda: test_reasoning_tokens(sims["bare"],
                                           sims["reasoning"])),
            ("bad_requests", lambda: test_bad_requests(sims["main"])),
            ("stats_basic", lambda: test_stats_basic(sims["main"])),
            ("faults", lambda: test_faults(faults)),
            ("giveup_retry", lambda: test_giveup_retry(faults["timeout"])),
            ("concurrency", lambda: test_concurrency(sims["latency"])),
            ("rpm", lambda: test_rpm(sims["rpm"])),
            ("tpm", lambda: test_tpm(sims["tpm"])),
            ("no_rate_headers",
             lambda: test_no_rate_headers(sims["rpm_bare"])),
            ("capacity", lambda: test_capacity(sims["capacity"])),
            ("capacity_leave",
             lambda: test_capacity_leave(sims["capacity_leave"])),
            ("seeded", lambda: test_seeded(sims["seed_a"], sims["seed_b"])),
            ("batch_roundtrip", lambda: test_batch_roundtrip(sims["batch"])),
            ("batch_faults", lambda: test_batch_faults(faults)),
            ("batch_expire", lambda: test_batch_expire(sims["batch_expire"])),
            ("batch_cancel", lambda: test_batch_cancel(sims["batch_cancel"])),
            ("batch_hold",
             lambda: test_batch_hold(sims["batch_hold"], hold)),
            ("batch_cancel_done",
             lambda: test_batch_cancel_done(sims["main"])),
            ("batch_invalid", lambda: test_batch_invalid(sims["main"])),
            ("batch_key", lambda: test_batch_key(sims["batch_key"],
                                                 "sk-llmsim-batch-key")),
            ("shutdown_with_held",
             lambda: test_shutdown_with_held(sims["shutdown"])),
        ]
        for name, fn in tests:
            t0 = time.monotonic()
            try:
                fn()
                print("ok   %-20s %.2fs" % (name, time.monotonic() - t0))
            except Exception as e:
                failures.append(name)
                print("FAIL %-20s %r" % (name, e))
        # every instance must exit 0 on SIGTERM
        for name, s in sims.items():
            rc = s.stop()
            if rc != 0:
                failures.append("exit:" + name)
                print("FAIL exit %-15s rc=%s\n%s" % (name, rc, s.read_log()))
    finally:
        for s in sims.values():
            if s.proc.alive():
                s.proc.popen.kill()
                s.proc.popen.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    print("%d failures, %.1fs" % (len(failures), time.monotonic() - t_start))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
