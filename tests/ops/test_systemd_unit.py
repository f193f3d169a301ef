"""ops.systemd_unit: deploy/extractd.service is a valid, hardened unit.

- `systemd-analyze verify` accepts it, the binary's path aside: a copy
  with ExecStart pointing at the built extractd is verified (verify checks
  that the executable exists);
- it is Type=notify with a watchdog, takes the API key as a credential
  (LoadCredential= and llm.api_key_file=%d/...), does not restart on a bad
  configuration (exit status 2), has a RuntimeDirectory= (where
  exactly-once keeps its transactional.id slot lock) and the sandboxing
  settings the issue asks for;
- `systemd-analyze security --offline` rates its exposure at most 2.0
  ("OK"), so a later edit that loosens the sandbox fails here.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, log  # noqa: E402

INSTALLED = "/usr/local/bin/extractd"

REQUIRED = {
    "Type": "notify",
    "NotifyAccess": "main",
    "DynamicUser": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "MemoryDenyWriteExecute": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "RestartPreventExitStatus": "2",
    # exactly-once: the transactional.id slot's lock file
    "RuntimeDirectory": "extractd",
}


def unit_settings(text):
    """{key: [values]} of the [Service] section."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def body(a):
    tool = shutil.which("systemd-analyze")
    check(tool is not None, "systemd-analyze not found (scripts/deps.sh "
          "installs systemd)")
    src = os.path.join(a.source, "deploy", "extractd.service")
    text = open(src).read()
    s = unit_settings(text)

    for k, v in REQUIRED.items():
        check(v in s.get(k, []), "%s=%s missing (have %r)", k, v, s.get(k))
    check("@system-service" in s.get("SystemCallFilter", []),
          "SystemCallFilter=@system-service missing")
    check(any(re.match(r"\d+", v) for v in s.get("WatchdogSec", [])),
          "no WatchdogSec=")
    # SIGTERM ends extractd within shutdown.timeout_ms: systemd must wait
    # longer before it SIGKILLs.
    cfg = open(os.path.join(a.source, "deploy", "extractd.cfg")).read()
    m = re.search(r"^shutdown:\s*\{[^}]*timeout_ms\s*=\s*(\d+);", cfg,
                  re.M | re.S)
    check(m is not None, "no shutdown.timeout_ms in deploy/extractd.cfg")
    stop = s.get("TimeoutStopSec", ["90s"])[-1]
    check(re.fullmatch(r"\d+s?", stop) is not None,
          "TimeoutStopSec=%s is not in seconds", stop)
    check(int(stop.rstrip("s")) * 1000 > int(m.group(1)) + 2000,
          "TimeoutStopSec=%s is not above shutdown.timeout_ms = %s",
          stop, m.group(1))
    creds = [v.split(":", 1)[0] for v in s.get("LoadCredential", [])]
    check(creds, "no LoadCredential=")
    execstart = s["ExecStart"][0]
    check(execstart.startswith(INSTALLED + " "),
          "ExecStart %r does not run %s", execstart, INSTALLED)
    check("llm.api_key_file=%%d/%s" % creds[0] in execstart,
          "ExecStart does not read the credential %r: %r", creds[0],
          execstart)
    check("Environment" not in s or not any(
        "KEY" in v.upper() for v in s["Environment"]),
        "an API key in Environment=")

    built = os.path.join(os.path.abspath(a.bin), "extractd")
    check(os.access(built, os.X_OK), "no built %s", built)
    tmp = tempfile.mkdtemp(prefix="extractd-ops-unit-")
    try:
        unit = os.path.join(tmp, "extractd.service")
        with open(unit, "w") as f:
            f.write(text.replace(INSTALLED, built))
        r = subprocess.run([tool, "verify", unit], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode(errors="replace").strip()
        check(r.returncode == 0 and "extractd.service" not in out,
              "systemd-analyze verify: status %d:\n%s", r.returncode, out)
        log("systemd-analyze verify: clean%s",
            " (other units: %s)" % out if out else "")

        r = subprocess.run([tool, "security", "--offline=yes", unit],
                           stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode(errors="replace")
        m = re.search(r"Overall exposure level for extractd\.service: "
                      r"([0-9.]+)", out)
        check(m is not None, "no exposure level from systemd-analyze "
              "security:\n%s", out[-2000:])
        check(float(m.group(1)) <= 2.0, "exposure level %s > 2.0:\n%s",
              m.group(1), out)
        log("systemd-analyze security: exposure %s", m.group(1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    opshelp.run_static(body)
