"""procs: a test's child processes, and how a test fails, logs and skips.

Standard library only, so every Python test can use it, including those
that run on an interpreter without confluent_kafka (llmsim.protocol, the
SDK test's driver) and the benchmark driver.

- check(), log(), skip() and TestFailure: a failed check raises
  TestFailure with what was expected and what was seen; log() prints a
  progress line stamped with the seconds since start (T0).
- Proc: a child process with its output in a log file (the command line
  first, as "$ ..."), killed with the test (PR_SET_PDEATHSIG), stopped
  with SIGTERM and then SIGKILL after a grace period.
"""

import ctypes
import signal
import subprocess
import sys
import time

STOP_GRACE = 10.0       # seconds: SIGTERM to SIGKILL in cleanup
LOG_TAIL = 60           # lines of each log printed on failure
SKIP = 77               # exit status of a skipped test (SKIP_RETURN_CODE)

T0 = time.monotonic()


class TestFailure(Exception):
    """A check failed: the message says what was expected and what was seen."""


def check(cond, msg, *args):
    """Fail the test with msg % args unless cond."""
    if not cond:
        raise TestFailure(msg % args if args else msg)


def log(msg, *args):
    """Progress line on stdout (ctest shows it with --output-on-failure)."""
    text = msg % args if args else msg
    print("[%7.2f] %s" % (time.monotonic() - T0, text), flush=True)


def skip(why):
    """End the test as skipped (exit status SKIP), saying why."""
    print("SKIP: %s" % why, flush=True)
    sys.exit(SKIP)


# prctl(PR_SET_PDEATHSIG, SIGKILL) in the child: it dies with the test.
_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def _die_with_parent():
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def log_tail(path, n=LOG_TAIL):
    """The last n lines of the log file path, or "(no log)"."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


class Proc:
    """A child process with its output in a log file.

    new_session: start it in a session of its own, so a signal to the
    caller's process group (a terminal's Ctrl-C) does not reach it; it
    still dies with its parent."""

    def __init__(self, name, argv, logpath, env=None, stdout_pipe=False,
                 new_session=False):
        self.name = name
        self.argv = argv
        self.logpath = logpath
        self._log = open(logpath, "ab")
        self._log.write(("$ %s\n" % " ".join(argv)).encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log, env=env, close_fds=True,
            preexec_fn=_die_with_parent, start_new_session=new_session)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def returncode(self):
        return self.popen.poll()

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """Exit status, or None if still running after timeout seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace=STOP_GRACE):
        """SIGTERM, then SIGKILL after grace seconds; returns the status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            if self.wait(grace) is None:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout:
            self.popen.stdout.close()
        self._log.close()
        return self.popen.returncode

    def tail(self, n=LOG_TAIL):
        return log_tail(self.logpath, n)

    def log_text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def rss_bytes(self):
        """The process's resident set size (VmRSS), in bytes."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise TestFailure("no VmRSS for pid %d" % self.pid)
