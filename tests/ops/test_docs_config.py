"""ops.docs_config: docs/configuration.md's settings table is the code's.

The settings live in one place, common/config.c's cfg_table. Two things
already follow it and are checked against it: deploy/extractd.cfg holds
every setting with its default (unit.test_config fails otherwise), and
extractd's own checks refuse a value out of a setting's range or names.
This test holds the docs table to both:

- the table names every setting of deploy/extractd.cfg exactly once, and
  no other;
- each row's Default is the value deploy/extractd.cfg gives it, as
  written there;
- each row's Type says what extractd itself says when given a value it
  must refuse (`-s SETTING=-99999999999` with --check-config): "must be
  an integer from LO to HI" for `integer LO..HI`, "must be a number from
  LO to HI" for `number LO..HI`, "must be one of A, B" for exactly the
  names `A` \\| `B`; a setting extractd does not check that way (a string,
  a list) is not documented as an integer, a number or a choice.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import opshelp  # noqa: E402
from opshelp import check, log  # noqa: E402

PROBE = "-99999999999"   # no setting takes it: every check says why
VALUE = re.compile(r'^(\w+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;#]*?)\s*;')
GROUP = re.compile(r"^(\w+)\s*[:=]\s*\{")


def example_settings(path):
    """{dotted path: value as written} of a libconfig file of groups and
    one-line settings, in file order (deploy/extractd.cfg's shape)."""
    out, groups = {}, []
    for no, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = GROUP.match(line)
        if m:
            groups.append(m.group(1))
            continue
        if line.startswith("}"):
            check(groups, "%s:%d: '}' closes no group", path, no)
            groups.pop()
            continue
        m = VALUE.match(line)
        check(m is not None, "%s:%d: cannot read %r", path, no, line)
        name = ".".join(groups + [m.group(1)])
        check(name not in out, "%s:%d: %s twice", path, no, name)
        out[name] = m.group(2)
    check(not groups, "%s: group %s is not closed", path, groups)
    return out


def cells(row):
    """A Markdown table row's cells; `\\|` is a | inside a cell."""
    parts = re.split(r"(?<!\\)\|", row.strip())
    check(parts[0] == "" and parts[-1] == "", "not a table row: %r", row)
    return [p.strip().replace("\\|", "|") for p in parts[1:-1]]


def docs_table(path):
    """{setting: (type, default, line number)} of the settings table."""
    lines = open(path, encoding="utf-8").read().splitlines()
    start = [i for i, l in enumerate(lines)
             if l.startswith("|") and
             cells(l) == ["Setting", "Type", "Default", "Meaning"]]
    check(len(start) == 1, "%s: want one table headed | Setting | Type | "
          "Default | Meaning |, found %d", path, len(start))
    out = {}
    for i in range(start[0] + 2, len(lines)):
        if not lines[i].startswith("|"):
            break
        c = cells(lines[i])
        check(len(c) == 4, "%s:%d: %d cells", path, i + 1, len(c))
        names = re.findall(r"`([^`]+)`", c[0])
        check(names and re.sub(r"`[^`]+`|[ ,]", "", c[0]) == "",
              "%s:%d: the first cell is not a list of `settings`: %r",
              path, i + 1, c[0])
        for name in names:
            check(name not in out, "%s:%d: %s is in the table twice", path,
                  i + 1, name)
            out[name] = (c[1], c[2], i + 1)
    check(out, "%s: the settings table is empty", path)
    return out


def refusal(a, setting):
    """What extractd says when `setting` is given PROBE: (kind, detail)
    with kind 'integer', 'number', 'enum' or None (not checked that way,
    or accepted)."""
    schema = os.path.join(a.source, "schemas", "person.schema.json")
    r = subprocess.run([os.path.join(a.bin, "extractd"), "--check-config",
                        "-s", "schema.file=" + schema,
                        "-s", "%s=%s" % (setting, PROBE)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       cwd=a.source, timeout=30)
    err = r.stderr.decode()
    if r.returncode == 0:
        return None, None
    check(r.returncode == 2, "%s=%s: status %d, %r", setting, PROBE,
          r.returncode, err)
    prefix = "-s:2: %s: " % setting
    check(err.startswith(prefix), "%s=%s: %r does not start with %r (an "
          "unknown setting?)", setting, PROBE, err, prefix)
    m = re.search(r"must be an integer from (-?\d+) to (-?\d+), got ", err)
    if m:
        return "integer", (int(m.group(1)), int(m.group(2)))
    m = re.search(r"must be a number from (\S+) to (\S+), got ", err)
    if m:
        return "number", (float(m.group(1)), float(m.group(2)))
    m = re.search(r"must be one of (.*), got ", err)
    if m:
        return "enum", set(m.group(1).split(", "))
    return None, None


def check_type(setting, doc_type, line, kind, detail):
    where = "docs/configuration.md:%d: %s" % (line, setting)
    if kind == "integer":
        m = re.match(r"integer (-?\d+)\.\.(-?\d+)\b", doc_type)
        check(m and (int(m.group(1)), int(m.group(2))) == detail,
              "%s: the type is %r, extractd takes an integer from %d to %d",
              where, doc_type, *detail)
    elif kind == "number":
        m = re.match(r"number (\S+?)\.\.(\S+?)(,|$| )", doc_type)
        check(m and (float(m.group(1)), float(m.group(2))) == detail,
              "%s: the type is %r, extractd takes a number from %g to %g",
              where, doc_type, *detail)
    elif kind == "enum":
        names = set(re.findall(r"`([^`]+)`", doc_type))
        check(names == detail and re.sub(r"`[^`]+`|[ |]", "", doc_type) ==
              "", "%s: the type is %r, extractd takes one of %s", where,
              doc_type, ", ".join(sorted(detail)))
    else:
        check(not re.match(r"(integer|number)\b", doc_type) and
              "|" not in doc_type,
              "%s: the type is %r, but extractd does not check it as an "
              "integer, a number or a choice", where, doc_type)


def body(a):
    example = example_settings(os.path.join(a.source, "deploy",
                                            "extractd.cfg"))
    check(len(example) >= 35, "deploy/extractd.cfg: only %d settings read",
          len(example))
    table = docs_table(os.path.join(a.source, "docs", "configuration.md"))

    missing = [s for s in example if s not in table]
    extra = [s for s in table if s not in example]
    check(not missing, "docs/configuration.md lacks %s", ", ".join(missing))
    check(not extra, "docs/configuration.md has %s, which is not a setting "
          "(not in deploy/extractd.cfg)", ", ".join(extra))
    log("the table names the %d settings of deploy/extractd.cfg",
        len(example))

    kinds = {}
    for setting, value in example.items():
        doc_type, doc_default, line = table[setting]
        want = "`%s`" % value
        check(doc_default == want, "docs/configuration.md:%d: %s: the "
              "default is %s, deploy/extractd.cfg has %s", line, setting,
              doc_default, want)
        kind, detail = refusal(a, setting)
        check_type(setting, doc_type, line, kind, detail)
        kinds[kind] = kinds.get(kind, 0) + 1
    # Not vacuous: extractd's checks answered for most settings.
    check(kinds.get("integer", 0) >= 15 and kinds.get("number", 0) >= 5 and
          kinds.get("enum", 0) >= 8, "extractd's refusals read: %s", kinds)
    log("defaults equal deploy/extractd.cfg's; types and ranges equal "
        "extractd's checks (%s)",
        ", ".join("%s %d" % (k or "other", n) for k, n in kinds.items()))


if __name__ == "__main__":
    opshelp.run_static(body)
