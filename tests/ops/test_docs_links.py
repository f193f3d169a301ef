"""ops.docs_links: the README and docs/ hold together.

- README.md is at most 300 lines (the rest lives in docs/, by subject);
- every relative link in README.md and docs/*.md resolves: the file
  exists, and a `#anchor` (in the same document or another Markdown file)
  names one of its headings, as GitHub makes anchors of them (lower case,
  punctuation dropped, spaces as hyphens, -1, -2... for repeats);
- every docs/*.md is linked from README.md, so every fact moved out of the
  README can be reached from it.

Links inside code (fenced blocks, `inline code`) are not links.
"""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, log  # noqa: E402

README_MAX_LINES = 300

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6}) +(.*?) *#*$")


def prose(text):
    """The lines of a Markdown text outside fenced code blocks."""
    out, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if not fence:
            out.append(line)
    return out


def slug(heading):
    """GitHub's anchor for a heading's text."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    seen, out = {}, set()
    for line in prose(open(path, encoding="utf-8").read()):
        m = HEADING.match(line)
        if not m:
            continue
        s = slug(m.group(2))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else "%s-%d" % (s, n))
    return out


def links(path):
    """[(line number, target)] of the relative links in a Markdown file."""
    out = []
    fence = False
    for no, line in enumerate(open(path, encoding="utf-8").read()
                              .splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        line = re.sub(r"(`+)[^`]*?\1", "", line)    # inline code
        for m in LINK.finditer(line):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, mailto:
                continue
            out.append((no, target))
    return out


def check_links(source, docs):
    """Every relative link of these files resolves. Returns the count."""
    cache, bad, n = {}, [], 0
    for doc in docs:
        for no, target in links(doc):
            n += 1
            where = "%s:%d: %s" % (os.path.relpath(doc, source), no, target)
            file, _, anchor = target.partition("#")
            dest = (os.path.normpath(os.path.join(os.path.dirname(doc),
                                                  file)) if file else doc)
            if not os.path.exists(dest):
                bad.append(where + ": no such file")
                continue
            if not anchor:
                continue
            if not dest.endswith(".md"):
                bad.append(where + ": an anchor into a file that is not "
                           "Markdown")
                continue
            if dest not in cache:
                cache[dest] = anchors(dest)
            if anchor not in cache[dest]:
                bad.append(where + ": no heading makes #" + anchor)
    check(not bad, "broken links:\n  %s", "\n  ".join(bad))
    return n


def body(a):
    a.source = os.path.abspath(a.source)
    readme = os.path.join(a.source, "README.md")
    lines = open(readme, encoding="utf-8").read().count("\n")
    check(lines <= README_MAX_LINES, "README.md has %d lines, more than %d: "
          "move the detail to docs/", lines, README_MAX_LINES)
    log("README.md: %d lines (at most %d)", lines, README_MAX_LINES)

    docdir = os.path.join(a.source, "docs")
    docs = sorted(os.path.join(docdir, f) for f in os.listdir(docdir)
                  if f.endswith(".md"))
    check(len(docs) >= 2, "no docs/*.md found in %s", docdir)
    n = check_links(a.source, [readme] + docs)
    # Not vacuous: the README and docs/ link to each other throughout.
    check(n >= 30, "only %d relative links found: the link reader is "
          "broken", n)
    log("%d relative links in README.md and %d docs resolve", n, len(docs))

    linked = {os.path.normpath(os.path.join(a.source, t.partition("#")[0]))
              for _, t in links(readme)}
    unlinked = [os.path.relpath(d, a.source) for d in docs
                if d not in linked]
    check(not unlinked, "not linked from README.md: %s",
          ", ".join(unlinked))
    log("every docs/*.md is linked from README.md")


if __name__ == "__main__":
    opshelp.run_static(body)
