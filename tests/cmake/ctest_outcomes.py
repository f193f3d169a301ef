"""ctest_outcomes.py: what a ctest run did, read from its JUnit file.

    python3 tests/cmake/ctest_outcomes.py JUNIT.xml

scripts/test.sh runs ctest with --output-junit and reads this back. One
line per test, tab-separated:

    passed  NAME
    failed  NAME
    skipped NAME    REASON

"skipped" is every test that did not run to a verdict: a SKIP_RETURN_CODE
exit, "Not Run" (a missing executable or a failed requirement) or
"Disabled". REASON is the test's own last line that mentions a skip (its
"SKIP: why"), else what ctest says. Standard library only.
"""

import sys
import xml.etree.ElementTree as ET


def reason(case):
    out = case.findtext("system-out") or ""
    said = [ln.strip() for ln in out.splitlines() if "SKIP" in ln.upper()]
    if said:
        return said[-1]
    for tag in ("skipped", "failure"):
        el = case.find(tag)
        if el is not None and el.get("message"):
            return el.get("message")
    return "status %s" % case.get("status", "?")


def main(path):
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = case.get("name", "?")
        status = case.get("status", "")
        if status == "run":
            print("passed\t%s" % name)
        elif status == "fail" or case.find("failure") is not None:
            print("failed\t%s" % name)
        else:  # notrun, disabled
            print("skipped\t%s\t%s" % (name, " ".join(reason(case).split())))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: ctest_outcomes.py JUNIT.xml")
    sys.exit(main(sys.argv[1]))
