"""extraction: what the extraction tests (modes, re-asks, invoice) add to
harness.

- Recorder: a small HTTP proxy between extractd and llmsim that keeps every
  chat request and llmsim's answer, so a test can check what extractd put on
  the wire (the mode's request shape, the messages of a re-ask) and compare
  extractd's token headers with the usage llmsim reported.
- start_kafka_topics(): a Kafka with an input topic and one output/dead-letter
  pair per lane, so several extractd instances (one per mode, say) run side by
  side on one broker, each writing to its own topics.
- dead_letter_checks(): the checks every dead letter gets.
"""

import http.client
import http.server
import json
import os
import ssl
import threading
import urllib.parse

import harness
from harness import check, log

# What llmsim says when it refuses (sim_chat.h), as extractd quotes it.
LLMSIM_REFUSAL = "I'm sorry, I can't help with that."

# Headers of a hop, not of the message: the proxy does not pass them on.
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
        "proxy-connection", "te", "trailer", "upgrade"}


class Exchange:
    """One chat request through the Recorder and llmsim's answer to it."""

    __slots__ = ("request", "status", "response")

    def __init__(self, request, status, response):
        self.request = request      # the request body, parsed
        self.status = status        # llmsim's HTTP status
        self.response = response    # llmsim's body, parsed (None: not JSON)

    @property
    def messages(self):
        return self.request.get("messages") or []

    @property
    def text(self):
        """The first user message's content: the record's input text."""
        for m in self.messages:
            if m.get("role") == "user":
                return m.get("content")
        return None

    @property
    def usage(self):
        u = (self.response or {}).get("usage") or {}
        return u.get("prompt_tokens", 0), u.get("completion_tokens", 0)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as extractd's curl expects

    def log_message(self, fmt, *args):  # quiet: the test logs what matters
        pass

    def do_POST(self):
        rec = self.server.recorder
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        up = http.client.HTTPConnection(rec.upstream_host, rec.upstream_port,
                                        timeout=120)
        try:
            fwd = {k: v for k, v in self.headers.items()
                   if k.lower() not in _HOP and k.lower() != "host"}
            up.request("POST", self.path, body=body, headers=fwd)
            resp = up.getresponse()
            data = resp.read()
            headers = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in _HOP]
            status = resp.status
        finally:
            up.close()
        rec.add(body, status, data)
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Recorder:
    """A recording HTTP proxy in front of an llmsim (or any OpenAI URL).

    tls: (certfile, keyfile) to serve HTTPS instead of HTTP.
    """

    def __init__(self, h, upstream_base, tls=None):
        u = urllib.parse.urlsplit(upstream_base)
        self.upstream_host, self.upstream_port = u.hostname, u.port
        self._lock = threading.Lock()
        self._exchanges = []
        self._bad = []          # request bodies that were not JSON
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      _Handler)
        self.server.daemon_threads = True
        self.server.recorder = self
        # A client that refuses the certificate is what some tests want:
        # its failed handshake is no error worth printing.
        self.server.handle_error = lambda request, address: None
        self.scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket,
                                                 server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="recorder", daemon=True)
        self._thread.start()
        h.clients.append(self)      # Harness.close() calls close()
        log("recorder at 127.0.0.1:%d -> %s", self.port, upstream_base)

    @property
    def base_url(self):
        return "%s://127.0.0.1:%d/v1" % (self.scheme, self.port)

    def add(self, body, status, data):
        try:
            request = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            # Raising here would only end this handler's thread: keep it
            # for check_bodies(), with an empty request in its place.
            with self._lock:
                self._bad.append("%s: %r" % (e, body[:300]))
            request = {}
        try:
            response = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            response = None
        with self._lock:
            self._exchanges.append(Exchange(request, status, response))

    def check_bodies(self):
        """Fail if any request body was not JSON."""
        with self._lock:
            bad = list(self._bad)
        check(not bad, "%d request bodies are not JSON, e.g. %s", len(bad),
              bad[:1])

    def exchanges(self, model=None):
        """Every exchange so far (of one model), in arrival order."""
        with self._lock:
            return [x for x in self._exchanges
                    if model is None or x.request.get("model") == model]

    def by_text(self, model=None):
        """{input text: [exchanges in arrival order]}."""
        out = {}
        for x in self.exchanges(model):
            out.setdefault(x.text, []).append(x)
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def start_kafka_topics(h, lanes, partitions=1):
    """Kafka with one input topic and an output and a dlq topic per lane.

    Sets h.kafka and h.topics (input/output/dlq name the first lane, so
    the harness's defaults still work) and returns {lane: (output, dlq)}.
    """
    h.topics = {"input": h.unique("texts")}
    h.partitions = partitions
    topics = {h.topics["input"]: partitions}
    lane_topics = {}
    for lane in lanes:
        out = h.unique("out-%s" % lane.replace("_", "-"))
        dlq = h.unique("dlq-%s" % lane.replace("_", "-"))
        topics[out] = partitions
        topics[dlq] = partitions
        lane_topics[lane] = (out, dlq)
    first = lane_topics[lanes[0]]
    h.topics["output"], h.topics["dlq"] = first
    h.kafka = harness.Kafka(h, topics)
    return lane_topics


def lane_config(lane_topics, lane):
    """The kafka.* overrides that point an extractd at one lane."""
    out, dlq = lane_topics[lane]
    return {"kafka": {"output_topic": out, "dlq_topic": dlq}}


def dead_letter_checks(r, text, key, error, attempts):
    """A dead letter: original bytes, key, error kind, attempts."""
    check(r.value == text.encode("utf-8"),
          "%s: dead-letter value %r is not the original text %r",
          r.where(), r.value, text)
    check(r.key == key, "%s: key %r, want %r", r.where(), r.key, key)
    check(r.header("extractd.error") == error,
          "%s: extractd.error %r, want %r (detail %r)", r.where(),
          r.header("extractd.error"), error,
          r.header("extractd.error.detail"))
    check(r.int_header("extractd.attempts") == attempts,
          "%s: extractd.attempts %r, want %d (detail %r)", r.where(),
          r.header("extractd.attempts"), attempts,
          r.header("extractd.error.detail"))
    detail = r.header("extractd.error.detail")
    check(detail, "%s: empty extractd.error.detail", r.where())
    return detail


def unfenced(text):
    """The body of the first ```json fenced block in text, or text."""
    if "```" not in text:
        return text
    body = text.split("```", 1)[1]
    body = body.split("\n", 1)[1] if "\n" in body else ""
    return body.split("```", 1)[0]


def answer_json(r):
    """extractd.error.answer, parsed (fails when absent or not JSON). An
    md_json answer is what the model said: its fenced block is parsed."""
    a = r.header("extractd.error.answer")
    check(a is not None, "%s: no extractd.error.answer", r.where())
    try:
        return json.loads(unfenced(a))
    except ValueError as e:
        raise harness.TestFailure("%s: extractd.error.answer %r is not JSON: "
                                  "%s" % (r.where(), a, e))


def source_index(r, topic, by_offset):
    """The input index an output or dead letter comes from."""
    t, part, off = r.source()
    check(t == topic and off in by_offset.get(part, {}),
          "%s: extractd.source %s/%d/%d is no input record", r.where(), t,
          part, off)
    return by_offset[part][off]


def index_placed(placed):
    """produce()'s [(partition, offset)] as {partition: {offset: index}}."""
    out = {}
    for i, (part, off) in enumerate(placed):
        out.setdefault(part, {})[off] = i
    return out


def schema_in_text(text, schema):
    """Whether text carries schema as a JSON value (anywhere in it)."""
    dec = json.JSONDecoder()
    i = text.find("{")
    while i >= 0:
        try:
            val, _ = dec.raw_decode(text, i)
            if val == schema:
                return True
        except ValueError:
            pass
        i = text.find("{", i + 1)
    return False


def load_schema(h, rel):
    with open(os.path.join(h.source, rel), encoding="utf-8") as f:
        return json.load(f)
