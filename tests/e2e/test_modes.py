"""e2e.modes: every llm.mode works end to end, refusals and bad answers too.

Five extractd instances, one per explicit llm.mode (json_schema,
json_object_schema, tools, json_object, md_json), read the same input topic in their own groups and write to their
own output and dead-letter topics, through a recording proxy in front of one
llmsim. The input is the seed's seven texts, a text llmsim cannot extract
from (it refuses) and a 999-year-old (llmsim answers what it read, which the
Person schema rejects). For each mode:

- the seven outputs are exact, keyed, with the mode's model name and token
  headers equal to the usage llmsim reported;
- the refusal is a dead letter extractd.error=llm_refusal after one call,
  its detail quoting the model;
- the 999 text is a dead letter extractd.error=validation whose detail names
  /age, whose extractd.error.answer is the model's answer, after
  1 + llm.max_reasks calls (max_reasks differs per mode, so the count is
  not a coincidence);
- on the wire, every request has the mode's shape (strict response_format,
  json_object with the schema as its "schema" member, one forced tool,
  json_object or plain text with the schema's keys listed in the system
  message, which asks for the data, not the schema), starts with the system
  instructions and the text verbatim, and every re-ask carries the rejected
  answer as the assistant's message and the errors (naming /age) as the
  user's;
- llmsim's own counters agree: requests per mode as llmsim classified them
  (the health check at start included).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import extraction  # noqa: E402
import harness  # noqa: E402
from harness import SEED_TEXTS, check, expected_person, log  # noqa: E402

MODES = ("json_schema", "json_object_schema", "tools", "json_object",
         "md_json")
# Different per mode: attempts = 1 + max_reasks is then checked, not luck.
MAX_REASKS = {"json_schema": 2, "json_object_schema": 4, "tools": 1,
              "json_object": 3, "md_json": 2}
INSTRUCTIONS = "Extract the person described in the user's text (e2e.modes)."

REFUSED = "The weather in Lisbon is mild today, with a light breeze."
TOO_OLD = "Old Tom is a 999-year-old lighthouse keeper"
TOO_OLD_ANSWER = {"name": "Old Tom", "age": 999,
                  "occupation": "lighthouse keeper"}
TEXTS = SEED_TEXTS + [REFUSED, TOO_OLD]


def model_of(mode):
    return "gpt-4o-mini-%s" % mode.replace("_", "-")


def check_request_shape(mode, x, schema):
    """One request as the mode must shape it."""
    req = x.request
    msgs = x.messages
    what = "%s request for %r" % (mode, x.text)
    check(len(msgs) >= 2 and msgs[0].get("role") == "system",
          "%s: no system message first: %r", what, msgs[:1])
    system = msgs[0].get("content")
    check(isinstance(system, str) and system.startswith(INSTRUCTIONS),
          "%s: system message does not start with schema.instructions: %r",
          what, system)
    check(msgs[1].get("role") == "user" and
          (x.text in TEXTS or x.text == harness.HEALTH_CHECK_TEXT),
          "%s: second message is not the input text verbatim: %r", what,
          msgs[1])
    check(req.get("stream") in (None, False), "%s: asks to stream", what)
    rf, tools = req.get("response_format"), req.get("tools")
    if mode == "json_schema":
        check(tools is None, "%s: carries tools", what)
        check(isinstance(rf, dict) and rf.get("type") == "json_schema",
              "%s: response_format %r", what, rf)
        js = rf.get("json_schema") or {}
        check(js.get("name") == "Person" and js.get("strict") is True,
              "%s: json_schema name/strict %r", what,
              {k: js.get(k) for k in ("name", "strict")})
        check(js.get("schema") == schema,
              "%s: json_schema.schema is not the schema file: %r", what,
              js.get("schema"))
    elif mode == "tools":
        check(rf is None, "%s: carries response_format %r", what, rf)
        check(isinstance(tools, list) and len(tools) == 1,
              "%s: want exactly one tool, got %r", what, tools)
        fn = tools[0].get("function") or {}
        check(tools[0].get("type") == "function" and
              fn.get("name") == "Person" and fn.get("parameters") == schema,
              "%s: the tool is not function Person(schema): %r", what,
              tools[0])
        check(req.get("tool_choice") ==
              {"type": "function", "function": {"name": "Person"}},
              "%s: tool_choice does not force Person: %r", what,
              req.get("tool_choice"))
    elif mode == "json_object_schema":
        check(tools is None, "%s: carries tools", what)
        want = {"type": "json_object", "schema": schema}
        check(rf == want, "%s: response_format %r, want %r", what, rf, want)
        # The server's grammar carries the schema: the prompt is the
        # instructions alone.
        check(system == INSTRUCTIONS, "%s: system message %r", what, system)
    else:
        if mode == "json_object":
            check(tools is None and rf == {"type": "json_object"},
                  "%s: response_format %r, tools %r", what, rf, tools)
        else:
            check(rf is None and tools is None,
                  "%s: md_json must be plain text, got response_format "
                  "%r, tools %r", what, rf, tools)
            check("```json" in system, "%s: the system message does not "
                  "ask for a fenced json block: %r", what, system)
        # The schema as a list of keys, each with its type and
        # description, and a request for the data, not the schema.
        for key, sub in schema["properties"].items():
            line = '- "%s" (%s): %s' % (key, sub["type"],
                                        sub["description"])
            check(line in system, "%s: the system message lacks %r: %r",
                  what, line, system)
        check("not the schema" in system, "%s: the system message does not "
              "ask for an instance of the schema: %r", what, system)


def check_conversation(mode, calls):
    """The calls for the 999 text: each re-ask extends the last one."""
    want = 1 + MAX_REASKS[mode]
    check(len(calls) == want, "%s: %d calls for %r, want %d", mode,
          len(calls), TOO_OLD, want)
    for k, x in enumerate(calls):
        msgs = x.messages
        check(len(msgs) == 2 + 2 * k, "%s: call %d for %r has %d messages, "
              "want %d", mode, k + 1, TOO_OLD, len(msgs), 2 + 2 * k)
        if k:
            check(msgs[:-2] == calls[k - 1].messages,
                  "%s: re-ask %d does not extend the previous conversation",
                  mode, k)
        for j in range(2, len(msgs), 2):
            a, u = msgs[j], msgs[j + 1]
            check(a.get("role") == "assistant",
                  "%s: message %d of re-ask is %r, want the assistant's "
                  "answer", mode, j, a)
            # Exactly what the model said (in md_json, the prose and
            # the fenced block).
            try:
                answered = json.loads(extraction.unfenced(a.get("content") or
                                                      ""))
            except ValueError:
                answered = a.get("content")
            if mode == "md_json":
                check("```json" in a.get("content", ""), "%s: re-ask %d "
                      "does not send back what the model said: %r", mode,
                      k, a)
            check(answered == TOO_OLD_ANSWER,
                  "%s: re-ask carries %r as the rejected answer, want %r",
                  mode, a.get("content"), TOO_OLD_ANSWER)
            check(u.get("role") == "user" and "/age" in
                  (u.get("content") or "") and "999" in u.get("content"),
                  "%s: the re-ask's user message does not list the error "
                  "at /age: %r", mode, u)


def body(h):
    lanes = extraction.start_kafka_topics(h, list(MODES))
    sim = h.start_llmsim(latency_ms=5)
    rec = extraction.Recorder(h, sim.base_url)
    schema = extraction.load_schema(h, harness.SCHEMA_REL)
    # Guard the oracle: llmsim extracts the seven, refuses one, reads 999.
    for t in SEED_TEXTS:
        check(expected_person(t) is not None, "oracle: %r", t)
    check(expected_person(REFUSED) is None, "oracle: %r", REFUSED)
    check(expected_person(TOO_OLD) == TOO_OLD_ANSWER, "oracle: %r", TOO_OLD)

    src = h.topics["input"]
    keys = [("k%d" % i).encode() for i in range(len(TEXTS))]
    placed = h.produce([(k, t, 0) for k, t in zip(keys, TEXTS)])
    by_offset = extraction.index_placed(placed)

    topics = [t for m in MODES for t in lanes[m]]
    coll = h.collector(topics)
    procs = []
    for mode in MODES:
        over = extraction.lane_config(lanes, mode)
        over["llm"] = {"base_url": rec.base_url, "mode": mode,
                       "model": model_of(mode),
                       "max_reasks": MAX_REASKS[mode]}
        over["schema"] = {"instructions": INSTRUCTIONS}
        over["pool"] = {"workers": 4, "max_in_flight": 4}
        d, _ = h.start_extractd(over, group=h.unique("group-" + mode))
        procs.append(d)

    def done(c):
        return all(c.count(lanes[m][0]) + c.count(lanes[m][1]) >= len(TEXTS)
                   for m in MODES)
    coll.until(done, "%d records per mode" % len(TEXTS), timeout=90,
               watch=procs)
    coll.poll(1.0)  # anything extra would show up now

    rec.check_bodies()
    stats = sim.stats()
    for mode in MODES:
        out, dlq = lanes[mode]
        model = model_of(mode)
        check(coll.count(out) == 7 and coll.count(dlq) == 2,
              "%s: want 7 outputs and 2 dead letters, got %d and %d: %r",
              mode, coll.count(out), coll.count(dlq),
              coll.records[out] + coll.records[dlq])
        calls = rec.by_text(model)
        seen = set()
        for r in coll.records[out]:
            i = extraction.source_index(r, src, by_offset)
            check(i not in seen, "%s: input %d has two outputs", mode, i)
            seen.add(i)
            want = expected_person(TEXTS[i])
            check(i < 7 and r.json() == want, "%s: %s value %r, want %r",
                  mode, r.where(), r.value, want)
            check(r.key == keys[i], "%s: %s key %r", mode, r.where(), r.key)
            check(r.int_header("extractd.attempts") == 1,
                  "%s: %s attempts %r, want 1", mode, r.where(),
                  r.header("extractd.attempts"))
            check(r.header("extractd.model") == model,
                  "%s: %s extractd.model %r, want %r", mode, r.where(),
                  r.header("extractd.model"), model)
            xs = calls.get(TEXTS[i], [])
            check(len(xs) == 1, "%s: %d calls for %r, want 1", mode,
                  len(xs), TEXTS[i])
            p, c = xs[0].usage
            check(r.int_header("extractd.tokens.prompt") == p and
                  r.int_header("extractd.tokens.completion") == c,
                  "%s: %s tokens %s/%s, llmsim reported %d/%d", mode,
                  r.where(), r.header("extractd.tokens.prompt"),
                  r.header("extractd.tokens.completion"), p, c)
        kinds = {}
        for r in coll.records[dlq]:
            i = extraction.source_index(r, src, by_offset)
            check(TEXTS[i] in (REFUSED, TOO_OLD),
                  "%s: %r became a dead letter: %r", mode, TEXTS[i], r)
            kinds[TEXTS[i]] = r
        check(set(kinds) == {REFUSED, TOO_OLD},
              "%s: dead letters for %r", mode, sorted(kinds))

        r = kinds[REFUSED]
        detail = extraction.dead_letter_checks(r, REFUSED, keys[7], "llm_refusal",
                                           1)
        check(extraction.LLMSIM_REFUSAL in detail,
              "%s: refusal detail %r does not quote the model", mode, detail)

        r = kinds[TOO_OLD]
        detail = extraction.dead_letter_checks(r, TOO_OLD, keys[8], "validation",
                                           1 + MAX_REASKS[mode])
        check("/age" in detail and "999" in detail,
              "%s: validation detail %r does not name /age and 999", mode,
              detail)
        check(extraction.answer_json(r) == TOO_OLD_ANSWER,
              "%s: extractd.error.answer %r, want %r", mode,
              r.header("extractd.error.answer"), TOO_OLD_ANSWER)

        for x in rec.exchanges(model):
            check_request_shape(mode, x, schema)
        check_conversation(mode, calls.get(TOO_OLD, []))
        n = 7 + 1 + 1 + MAX_REASKS[mode] + harness.STARTUP_CHECKS
        check(len(rec.exchanges(model)) == n,
              "%s: %d requests on the wire, want %d", mode,
              len(rec.exchanges(model)), n)
        check(stats["by_mode"].get(mode) == n,
              "%s: llmsim classified %r requests as %s, want %d (by_mode "
              "%r)", mode, stats["by_mode"].get(mode), mode, n,
              stats["by_mode"])
        log("%s: 7 exact outputs, refusal and validation dead letters, "
            "%d requests of the right shape", mode, n)

    for d in procs:
        rc, _ = d.terminate(60)
        check(rc == 0, "extractd exit status %d after SIGTERM", rc)


if __name__ == "__main__":
    harness.run(body)
