"""ops.cli: the command line people meet first.

- `extractd --help` exits 0 and shows every option of main.c's getopt
  table on a line of its own (read from the source, so an option added
  without help fails here), with its short form where it has one;
- `--version` and `-V` print "extractd VERSION", VERSION being the
  project version in CMakeLists.txt;
- an unknown option exits 2 with the usage on stderr;
- `--check-config` accepts deploy/extractd.cfg (in the source tree, as
  the README's quick start runs it, and in the image's layout), and the
  configurations the deployment files use (the Kubernetes ConfigMap's, the
  compose file's and the container image's command lines) pass it too;
- config guards, on config files written here: equal topics, a
  kafka.properties name or value librdkafka refuses (alone, in
  combination, an SSL file, an exactly-once rule) and a secret given
  with -s exit 2 with the exact `FILE:LINE: setting:` (or `-s:N:`)
  prefix, from --check-config and from a plain start alike, and never
  show the secret; `${env:NAME}` and `${file:PATH}` pass; a property that
  extractd overrides is named in a warning.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, log  # noqa: E402


def run(a, *argv, env=None, timeout=30):
    r = subprocess.run([os.path.join(a.bin, "extractd")] + list(argv),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def options_in_source(source):
    """[(long, short or None)] of main.c's struct option table."""
    text = open(os.path.join(source, "daemon", "main.c")).read()
    table = re.search(r"struct option options\[\] = \{(.*?)\n\t\};", text,
                      re.S)
    check(table is not None, "no option table in daemon/main.c")
    opts = re.findall(r'\{ "([a-z-]+)", \w+, NULL, \'(.)\' \}',
                      table.group(1))
    shorts = re.search(r'getopt_long\(argc, argv, "([^"]*)"', text)
    check(opts and shorts, "cannot read the options from daemon/main.c")
    return [(name, c if c in shorts.group(1) else None)
            for name, c in opts]


def body(a):
    rc, out, err = run(a, "--help")
    check(rc == 0 and not err, "--help: status %d, stderr %r", rc, err)
    lines = out.splitlines()
    opts = options_in_source(a.source)
    for name, short in opts:
        where = [l for l in lines if re.search(r"(^|\s)--%s\b" % name, l)]
        check(len(where) == 1, "--%s is on %d lines of --help:\n%s", name,
              len(where), out)
        if short:
            check(re.match(r"\s+-%s, --%s\b" % (short, name), where[0]),
                  "--help line for --%s lacks -%s: %r", name, short,
                  where[0])
    log("--help: %d options, one line each", len(opts))

    cmake = open(os.path.join(a.source, "CMakeLists.txt")).read()
    version = re.search(r"project\(extractd VERSION ([0-9.]+)", cmake)
    check(version is not None, "no project version in CMakeLists.txt")
    for flag in ("--version", "-V"):
        rc, out, err = run(a, flag)
        check(rc == 0 and out == "extractd %s\n" % version.group(1),
              "%s: status %d, %r", flag, rc, out)
    log("--version: %s", out.strip())

    rc, out, err = run(a, "--no-such-option")
    check(rc == 2 and "Usage:" in err, "unknown option: status %d, %r",
          rc, err)

    # In the source tree, as README's quick start runs it (deploy/schemas
    # links to the top-level schemas/).
    rc, out, err = run(a, "-c", os.path.join(a.source, "deploy",
                                             "extractd.cfg"),
                       "--check-config")
    check(rc == 0, "deploy/extractd.cfg in the source tree: %d %s", rc, err)

    # The image's layout: deploy/extractd.cfg beside schemas/, as
    # /usr/share/extractd holds them (its relative schema.file resolves).
    tmp = tempfile.mkdtemp(prefix="extractd-ops-cli-")
    try:
        share = os.path.join(tmp, "share")
        os.mkdir(share)
        cfg = os.path.join(share, "extractd.cfg")
        shutil.copyfile(os.path.join(a.source, "deploy", "extractd.cfg"),
                        cfg)
        shutil.copytree(os.path.join(a.source, "schemas"),
                        os.path.join(share, "schemas"))
        check_configs(a, tmp, share, cfg)
        check_guards(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_configs(a, tmp, share, cfg):
    rc, out, err = run(a, "-c", cfg, "--check-config")
    check(rc == 0, "deploy/extractd.cfg: %d %s", rc, err)

    # The Kubernetes ConfigMap's: its paths exist in the container only.
    k8s = os.path.join(a.source, "deploy", "k8s", "configmap.yaml")
    data = yaml.safe_load(open(k8s))["data"]["extractd.cfg"]
    k8s_cfg = os.path.join(tmp, "k8s.cfg")
    with open(k8s_cfg, "w") as f:
        f.write(data)
    check("/usr/share/extractd/schemas/person.schema.json" in data,
          "the ConfigMap's schema.file is not the image's")
    rc, out, err = run(a, "-c", k8s_cfg, "-s", "schema.file=" +
                       os.path.join(share, "schemas", "person.schema.json"),
                       "-s", "llm.api_key_file=", "--check-config")
    check(rc == 0, "the k8s ConfigMap's config: %d %s", rc, err)

    # The container image's default command, and the compose service's.
    docker = open(os.path.join(a.source, "deploy", "Dockerfile")).read()
    cmd = re.search(r'^CMD (\[.*\])$', docker, re.M)
    check(cmd is not None, "no CMD in deploy/Dockerfile")
    compose = yaml.safe_load(open(os.path.join(a.source, "deploy",
                                               "docker-compose.yml")))
    argvs = {"Dockerfile CMD": yaml.safe_load(cmd.group(1)),
             "compose": compose["services"]["extractd"]["command"]}
    for name, argv in argvs.items():
        argv = [cfg if x == "/usr/share/extractd/extractd.cfg" else
                re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", x) for x in argv]
        check(cfg in argv, "%s does not use the image's config", name)
        rc, out, err = run(a, *argv, "--check-config")
        check(rc == 0, "%s: extractd %s: %d %s", name, argv, rc, err)
    log("--check-config: extractd.cfg, the k8s ConfigMap, %s",
        ", ".join(argvs))


SECRET = "Hunter2-cli-5e1d"


def write_cfg(a, tmp, name, kafka):
    """tmp/name: the schema, then the kafka group's lines (its first on
    line 4). Returns the path."""
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write('schema: { file = "%s"; };\nhttp: { listen = ""; };\n'
                'kafka: {\n%s};\n' %
                (os.path.abspath(os.path.join(a.source, "schemas",
                                              "person.schema.json")),
                 "".join("  %s\n" % line for line in kafka)))
    return path


def props(*pairs):
    """kafka.properties lines, one pair a line: the first pair is on
    line 5 of write_cfg's file."""
    return (["properties = ("] +
            ["  (%s)%s" % (p, "," if i + 1 < len(pairs) else "")
             for i, p in enumerate(pairs)] + [");"])


def guard(a, argv, prefix, contains=None, start=False, env=None):
    """--check-config (and with start, a plain start) exits 2 with stderr
    one line starting with prefix."""
    runs = [list(argv) + ["--check-config"]]
    if start:
        runs.append(list(argv))
    for args in runs:
        try:
            # A start that passes the checks would run: stopped here.
            rc, out, err = run(a, *args, env=env, timeout=15)
        except subprocess.TimeoutExpired:
            rc, err = None, "(still running after 15 s)"
        check(rc == 2, "extractd %s: status %s (want 2), stderr %r", args,
              rc, err)
        check(err.startswith(prefix) and err.count("\n") == 1,
              "extractd %s: stderr %r does not start with %r (one line)",
              args, err, prefix)
        check(contains is None or contains in err,
              "extractd %s: %r not in %r", args, contains, err)
        check(SECRET not in err, "extractd %s shows the secret: %r", args,
              err)
    return err


def check_guards(a, tmp):
    """Config guards: exit 2 with FILE:LINE, or a pass with a warning."""
    env = dict(os.environ)
    env.pop("EXTRACTD_CLI_PW", None)

    # The three topics differ; the one given last is named.
    p = write_cfg(a, tmp, "dlq.cfg", ['input_topic = "texts";',
                                      'dlq_topic = "texts";'])
    guard(a, ["-c", p], p + ":5: kafka.dlq_topic: must differ from "
          "kafka.input_topic (both are 'texts'): ", start=True)
    p = write_cfg(a, tmp, "out.cfg", ['output_topic = "texts";'])
    guard(a, ["-c", p], p + ":4: kafka.output_topic: must differ from "
          "kafka.input_topic (both are 'texts'): ")
    guard(a, ["-c", p, "-s", "kafka.output_topic=out",
              "-s", "kafka.dlq_topic=out"],
          "-s:2: kafka.dlq_topic: must differ from kafka.output_topic "
          "(both are 'out'): ")
    log("topics: equal input/output/dead-letter topics exit 2")

    # What librdkafka refuses, at the line of the entry.
    cases = [
        ("name.cfg", props('"linger.ms", 5', '"sasl.pasword", "%s"' % SECRET),
         ":6: kafka.properties: sasl.pasword: ",
         "No such configuration property"),
        ("value.cfg", props('"acks", "all"', '"linger.ms", -5'),
         ":6: kafka.properties: linger.ms: ", "outside allowed range"),
        ("combo.cfg", props('"max.in.flight", 10'),
         ":5: kafka.properties: max.in.flight: ", "enable.idempotence"),
        ("ssl.cfg", props('"security.protocol", "ssl"',
                          '"ssl.key.password", "%s"' % SECRET,
                          '"ssl.ca.location", "/nonexistent/ca.pem"'),
         ":7: kafka.properties: ssl.ca.location: ", "/nonexistent/ca.pem"),
    ]
    for name, kafka, prefix, contains in cases:
        p = write_cfg(a, tmp, name, kafka)
        err = guard(a, ["-c", p], p + prefix, contains, start=True)
        log("%s: %s", name, err.strip())
    # Exactly-once: the transactional producer's own rules.
    p = write_cfg(a, tmp, "eos.cfg", props('"socket.timeout.ms", 300000'))
    rc, out, err = run(a, "-c", p, "--check-config")
    check(rc == 0, "socket.timeout.ms at least once: %d %s", rc, err)
    err = guard(a, ["-c", p, "-s", "output.delivery=exactly-once"],
                p + ":5: kafka.properties: socket.timeout.ms: ",
                "transaction.timeout.ms", start=True)
    log("eos.cfg: %s", err.strip())

    # A secret on the command line: refused, with the alternatives.
    err = guard(a, ["-c", p, "-s",
                    "kafka.properties.sasl.password=" + SECRET],
                "-s:1: kafka.properties.sasl.password: holds a secret",
                '"${env:NAME}" or "${file:PATH}"', start=True)
    check("config file (mode 600)" in err, "no mention of the file: %r",
          err)
    log("-s secret: %s", err.strip())

    # The alternatives: the environment, a file beside the config.
    with open(os.path.join(tmp, "kafka-password"), "w") as f:
        f.write(SECRET + "\n")
    p = write_cfg(a, tmp, "ref.cfg",
                  props('"sasl.mechanism", "PLAIN"',
                        '"sasl.password", "${file:kafka-password}"',
                        '"ssl.key.password", "${env:EXTRACTD_CLI_PW}"'))
    guard(a, ["-c", p], p + ":7: kafka.properties.ssl.key.password: "
          "${env:EXTRACTD_CLI_PW}: the environment variable is not set",
          env=env)
    env["EXTRACTD_CLI_PW"] = SECRET
    rc, out, err = run(a, "-c", p, "--check-config", env=env)
    check(rc == 0 and not err, "${env:} and ${file:}: %d %r", rc, err)
    rc, out, err = run(a, "--check-config", "-s", "schema.file=" +
                       os.path.join(a.source, "schemas",
                                    "person.schema.json"),
                       "-s", "kafka.properties.sasl.password="
                       "${env:EXTRACTD_CLI_PW}", env=env)
    check(rc == 0 and not err, "-s with ${env:}: %d %r", rc, err)
    log("${env:} and ${file:} pass, in a file and with -s")

    # Overridden by extractd: kept as it was (extractd's value wins),
    # and named.
    p = write_cfg(a, tmp, "auto.cfg", props('"linger.ms", 5',
                                            '"enable.auto.commit", false'))
    rc, out, err = run(a, "-c", p, "--check-config")
    want = (p + ":6: kafka.properties: enable.auto.commit: ignored by the "
            "consumer, which extractd runs with \"true\"")
    check(rc == 0 and err.startswith(want),
          "enable.auto.commit: %d %r, want %r", rc, err, want)
    log("warning: %s", err.strip())


if __name__ == "__main__":
    opshelp.run_static(body)
