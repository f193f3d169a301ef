"""ops.cli: the command line people meet first.

- `extractd --help` exits 0 and shows every option of main.c's getopt
  table on a line of its own (read from the source, so an option added
  without help fails here), with its short form where it has one;
- `--version` and `-V` print "extractd VERSION", VERSION being the
  project version in CMakeLists.txt;
- an unknown option exits 2 with the usage on stderr;
- `--check-config` accepts deploy/extractd.cfg (in the source tree, as
  README runs it, and in the image's layout), and the configurations
  the deployment files use (the Kubernetes ConfigMap's, the compose
  file's and the container image's command lines) pass it too.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opshelp  # noqa: E402
from opshelp import check, log  # noqa: E402


def run(a, *argv, env=None):
    r = subprocess.run([os.path.join(a.bin, "extractd")] + list(argv),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30, env=env)
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

    # In the source tree, as README's "Running it" runs it (deploy/schemas
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


if __name__ == "__main__":
    opshelp.run_static(body)
