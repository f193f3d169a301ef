"""ops.man: the man pages extractd(8) and llmsim(1) are clean and complete.

- `mandoc -T lint -W warning` finds nothing in man/extractd.8 and
  man/llmsim.1, and neither does `man --warnings -l` (groff's checks,
  where man-db is installed);
- every option the program's --help lists (long and short) is in its man
  page, and every long option its SYNOPSIS and DESCRIPTION (where the
  options are) name is in --help: an option added to or removed from the
  program without its page fails here.
"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, log  # noqa: E402

PAGES = (("extractd", "man/extractd.8"), ("llmsim", "man/llmsim.1"))
LONG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
SHORT = re.compile(r"(?<![\w-])-([A-Za-z])\b")


def run(argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    return (r.returncode, r.stdout.decode(errors="replace"),
            r.stderr.decode(errors="replace"))


def render(page):
    """The page as plain text: mandoc's output without overstrikes."""
    rc, out, err = run(["mandoc", "-T", "ascii", page])
    check(rc == 0, "mandoc -T ascii %s: status %d: %s", page, rc, err)
    return re.sub(r".\x08", "", out)


def sections(text, names):
    """The rendered text of the sections called names (headings are the
    lines in capitals at the left margin)."""
    out, keep = [], False
    for line in text.splitlines():
        if re.match(r"^[A-Z][A-Z ]+$", line):
            keep = line in names
        elif keep:
            out.append(line)
    return "\n".join(out)


def body(a):
    mandoc = shutil.which("mandoc")
    check(mandoc is not None, "mandoc not found (scripts/deps.sh "
          "installs it)")
    man = shutil.which("man")
    for prog, rel in PAGES:
        page = os.path.join(a.source, rel)
        rc, out, err = run([mandoc, "-T", "lint", "-W", "warning", page])
        check(rc == 0 and not (out + err).strip(),
              "mandoc -T lint %s: status %d:\n%s%s", rel, rc, out, err)
        if man:
            rc, out, err = run([man, "--warnings", "-l", page])
            check(rc == 0 and not err.strip(),
                  "man --warnings -l %s: status %d:\n%s", rel, rc, err)
        log("%s: no warnings (mandoc%s)", rel, ", man" if man else "")

        rc, help_text, err = run([os.path.join(a.bin, prog), "--help"])
        check(rc == 0, "%s --help: status %d: %s", prog, rc, err)
        text = render(page)
        help_long = set(LONG.findall(help_text))
        help_short = set(SHORT.findall(help_text))
        opts = sections(text, ("SYNOPSIS", "DESCRIPTION"))
        check(opts.strip(), "%s: no SYNOPSIS or DESCRIPTION", rel)
        page_long = set(LONG.findall(opts))
        page_short = set(SHORT.findall(opts))
        check(help_long, "%s --help lists no long option:\n%s", prog,
              help_text)
        missing = sorted(help_long - page_long)
        check(not missing, "%s: --%s in --help but not in %s", prog,
              ", --".join(missing), rel)
        missing = sorted(help_short - page_short)
        check(not missing, "%s: -%s in --help but not in %s", prog,
              ", -".join(missing), rel)
        extra = sorted(page_long - help_long)
        check(not extra, "%s: %s names --%s, which --help does not list",
              prog, rel, ", --".join(extra))
        log("%s: %d long and %d short options, page and --help agree", prog,
            len(help_long), len(help_short))


if __name__ == "__main__":
    opshelp.run_static(body)
