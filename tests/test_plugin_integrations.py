"""The plugin with the plugins CI runs it with: pytest-xdist, pytest-html,
JUnit XML, pytest-timeout (both methods) and pytest-rerunfailures; and the
example application's demo run. Runs that need their own process (xdist,
the timeout methods, the demo) run in a subprocess."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import FAST, artifact_files, load, make_app, reports, section

ROOT = Path(__file__).resolve().parent.parent

FAILURES = """
import pytest
from app import step, on_thread


def test_call_fails():
    on_thread("helper", 1)
    assert step(2) == 3


@pytest.fixture
def broken_teardown():
    yield
    step(20)
    raise RuntimeError("teardown broke")


def test_teardown_fails(broken_teardown):
    step(21)


@pytest.mark.parametrize("n", range(4))
def test_passes(n):
    step(n)
"""


def _html_tests(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The per-test data pytest-html 4 embeds in its report."""
    match = re.search(r'data-jsonblob="([^"]*)"', path.read_text())
    assert match, "no pytest-html data in the report"
    tests: dict[str, list[dict[str, Any]]] = json.loads(html.unescape(match.group(1)))["tests"]
    return tests


def _testcases(path: Path) -> dict[str, list[ET.Element]]:
    cases: dict[str, list[ET.Element]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        cases.setdefault(case.get("name", ""), []).append(case)
    return cases


def test_xdist_html_and_junit_together(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(test_failures=FAILURES)
    result = pytester.runpytest_subprocess(
        "--ringtrace",
        *FAST,
        "-n",
        "2",
        "--html=report/index.html",
        "--junitxml=junit.xml",
        "-o",
        "junit_logging=system-out",
    )
    result.assert_outcomes(passed=5, failed=1, errors=1)
    out = result.stdout.str()
    assert "INTERNALERROR" not in out
    # sections taken on the workers are shown by the controller
    call = section(out, "ringtrace call")
    assert call.startswith("6 events from 2 threads, 0 lost events")
    assert "helper" in call and "MainThread" in call
    assert section(out, "ringtrace teardown").startswith("6 events from 1 thread")
    # report attributes survived the trip to the controller, as plain data
    seen = {(r["nodeid"].split("::")[-1], r["when"]): r["ringtrace"] for r in reports(pytester)}
    workers = {
        seen[k]["worker"]
        for k in (("test_call_fails", "call"), ("test_teardown_fails", "teardown"))
    }
    assert workers <= {"gw0", "gw1"}
    files = artifact_files(pytester)
    assert len(files) == 2
    assert all(re.search(r"--attempt1--gw[01]\.json$", f.name) for f in files)
    assert {load(f).metadata["worker"] for f in files} == workers
    # pytest-html: the section text and a link to each file, from the workers
    tests = _html_tests(pytester.path / "report" / "index.html")
    (call_report,) = [r for r in tests["test_failures.py::test_call_fails"] if r["extras"]]
    extras = {e["name"]: e for e in call_report["extras"]}
    link = extras["ringtrace call (json)"]
    assert link["format_type"] == "url"
    assert (pytester.path / "report" / link["content"]).resolve() == files[0].resolve() or (
        pytester.path / "report" / link["content"]
    ).resolve() == files[1].resolve()
    assert extras["ringtrace call"]["format_type"] == "text"
    # JUnit (xunit2, the default family): an attachment line in system-out,
    # no test-case properties (the schema has none), valid against the schema
    assert xunit2_problems(pytester.path / "junit.xml") == []
    cases = _testcases(pytester.path / "junit.xml")
    for name, phase in (("test_call_fails", "call"), ("test_teardown_fails", "teardown")):
        path = seen[(name, phase)]["paths"]["json"]
        assert not [p for case in cases[name] for p in case.iter("property")]
        system_out = "".join(case.findtext("system-out") or "" for case in cases[name])
        assert f"[[ATTACHMENT|{path}]]" in system_out
        assert Path(path).is_absolute() and Path(path).exists()


# The constraints of the xunit2 schema pytest's default junit_family follows
# (Jenkins' junit-10.xsd, which pytest's own tests validate against with
# xmlschema): which children and attributes each element may have. The
# schema is not copied here; its element and attribute lists are. pytest
# writes <error> for setup/teardown errors, which is kept allowed.
_XUNIT2_CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"testsuite", "properties", "testcase", "system-out", "system-err"},
    "properties": {"property"},
    "property": set(),
    "testcase": {
        "skipped", "error", "failure", "rerunFailure", "rerunError", "flakyFailure",
        "flakyError", "system-out", "system-err",
    },
}  # fmt: skip
_XUNIT2_ATTRIBUTES = {
    "testsuites": ({"name", "time", "tests", "failures", "errors"}, set()),
    "testsuite": (
        {
            "name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp",
            "hostname", "id", "package", "file", "log", "url", "version",
        },
        {"name", "tests", "failures", "errors"},
    ),
    "testcase": ({"name", "time", "classname", "group"}, {"name"}),
    "property": ({"name", "value"}, {"name", "value"}),
}  # fmt: skip


def xunit2_problems(path: Path) -> list[str]:
    """Where a JUnit XML file breaks the xunit2 schema's structure (empty: valid)."""
    problems: list[str] = []

    def check(element: ET.Element) -> None:
        tag = element.tag
        allowed, required = _XUNIT2_ATTRIBUTES.get(tag, (None, set()))
        label = f"{tag} {element.get('name')}" if element.get("name") else tag
        if allowed is not None:
            problems.extend(
                f"{label}: attribute {a} not allowed" for a in element.attrib if a not in allowed
            )
            problems.extend(
                f"{label}: attribute {a} missing" for a in required if a not in element.attrib
            )
        children = _XUNIT2_CHILDREN.get(tag)
        if children is None:
            return  # text-only elements (failure, skipped, system-out...)
        problems.extend(
            f"{label}: <{child.tag}> not allowed" for child in element if child.tag not in children
        )
        for child in element:
            if child.tag in children:
                check(child)

    root = ET.parse(path).getroot()
    if root.tag not in ("testsuites", "testsuite"):
        return [f"root element <{root.tag}>"]
    check(root)
    return problems


def test_html_report_embeds_the_timeline(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(test_failures=FAILURES)
    options = [o for o in FAST if not o.startswith("--ringtrace-formats")]  # json and html
    result = pytester.runpytest_subprocess(
        "--ringtrace", *options, "-k", "call_fails", "--html=out.html", "--self-contained-html"
    )
    result.assert_outcomes(failed=1)
    (call_report,) = [
        r for r in _html_tests(pytester.path / "out.html")["test_failures.py::test_call_fails"]
    ]
    kinds = [(e["name"], e["format_type"]) for e in call_report["extras"]]
    assert kinds == [
        ("ringtrace call", "text"),
        (None, "html"),
        ("ringtrace call (json)", "url"),
        ("ringtrace call (html)", "url"),
    ]
    frame = call_report["extras"][1]["content"]
    assert frame.startswith('<iframe title="ringtrace call timeline"')
    timeline = (pytester.path / call_report["extras"][3]["content"]).read_text()
    assert html.escape(timeline, quote=True) in frame


def test_junit_default_family_is_valid_xunit2_with_suite_properties(pytester: pytest.Pytester):
    """Without system-out, xunit2 has no valid place in a test case: the files
    are named by test-suite properties, which the schema allows."""
    make_app(pytester)
    pytester.makepyfile(test_failures=FAILURES)
    pytester.runpytest("--ringtrace", *FAST, "--junitxml=junit.xml")
    assert xunit2_problems(pytester.path / "junit.xml") == []
    cases = _testcases(pytester.path / "junit.xml")
    assert not list(cases["test_call_fails"][0].iter("property"))
    assert cases["test_call_fails"][0].find("system-out") is None
    suite = ET.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iterfind("properties/property")}
    path = props["ringtrace:test_failures.py::test_call_fails:call:json"]
    assert path is not None and Path(path).is_absolute() and Path(path).exists()
    assert "ringtrace:test_failures.py::test_teardown_fails:teardown:json" in props


def test_junit_old_families_get_test_case_properties(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(test_failures=FAILURES)
    pytester.runpytest("--ringtrace", *FAST, "--junitxml=junit.xml", "-o", "junit_family=xunit1")
    cases = _testcases(pytester.path / "junit.xml")
    (prop,) = cases["test_call_fails"][0].iter("property")
    assert prop.get("name") == "ringtrace_json"
    assert Path(prop.get("value", "")).exists()
    # what makes xunit1 output invalid xunit2: the check sees it
    problems = xunit2_problems(pytester.path / "junit.xml")
    assert "testcase test_call_fails: <properties> not allowed" in problems
    assert "testcase test_teardown_fails: <properties> not allowed" in problems


def test_junit_paths_relative_to_the_rootdir(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(test_failures=FAILURES)
    sub = pytester.mkdir("sub")
    pytester.makeini("[pytest]\nringtrace_junit_paths = rootdir\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sub)  # invoked from elsewhere: still relative to the rootdir
        pytester.runpytest(
            "--ringtrace", *FAST, f"--rootdir={pytester.path}", str(pytester.path),
            "--junitxml=../junit.xml", "-o", "junit_logging=system-out",
        )  # fmt: skip
    assert xunit2_problems(pytester.path / "junit.xml") == []
    cases = _testcases(pytester.path / "junit.xml")
    system_out = cases["test_call_fails"][0].findtext("system-out") or ""
    (line,) = [x for x in system_out.splitlines() if x.startswith("[[ATTACHMENT|")]
    relative = line[len("[[ATTACHMENT|") : -2]
    assert relative.startswith(".ringtrace/session-000001/") and relative.endswith(".json")
    assert (pytester.path / relative).is_file()


def test_junit_paths_option_is_checked(pytester: pytest.Pytester):
    with pytest.raises(pytest.UsageError, match="--ringtrace-junit-paths: expected 'absolute'"):
        pytester.parseconfigure("--ringtrace-junit-paths=project")


def test_junit_attachment_when_only_failures_are_logged(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(test_failures=FAILURES)
    pytester.runpytest(
        "--ringtrace",
        *FAST,
        "-k",
        "call_fails",
        "--junitxml=junit.xml",
        "-o",
        "junit_logging=all",
        "-o",
        "junit_log_passing_tests=false",
    )
    (case,) = _testcases(pytester.path / "junit.xml")["test_call_fails"]
    (path,) = artifact_files(pytester)
    assert f"[[ATTACHMENT|{path}]]" in (case.findtext("system-out") or "")


HANG = """
import threading
import time

import instrument


def test_hangs():
    def spin():
        for i in range(1000):
            instrument.event("spin", i=i)
            time.sleep(0.01)

    threading.Thread(target=spin, name="spinner", daemon=True).start()
    instrument.event("waiting.forever")
    time.sleep(60)
"""


def test_timeout_signal_method_attaches_like_any_failure(pytester: pytest.Pytester):
    pytester.makepyfile(test_hang=HANG)
    result = pytester.runpytest_subprocess(
        "--ringtrace", *FAST, "--timeout=1", "--timeout-method=signal"
    )
    result.assert_outcomes(failed=1)
    text = section(result.stdout.str(), "ringtrace call")
    assert "spinner (during the test):" in text and "* spin i=" in text
    (path,) = artifact_files(pytester)
    snap = load(path)
    assert snap.metadata["exception"].startswith("Failed: Timeout")
    assert {e.name for e in snap.events} >= {"spin", "waiting.forever"}


def test_timeout_thread_method_leaves_a_file_before_the_process_ends(pytester: pytest.Pytester):
    pytester.makepyfile(test_hang=HANG)
    result = pytester.runpytest_subprocess(
        "--ringtrace", *FAST, "--timeout=1", "--timeout-method=thread"
    )
    assert result.ret == 1
    out = result.stdout.str()
    assert "Timeout" in out
    (path,) = artifact_files(pytester)
    assert path.name == "test_hang.py__test_hangs--timeout--attempt1.json"
    # printed where pytest-timeout shows captured stderr, relative to where pytest ran
    assert f"snapshot {path.relative_to(pytester.path)}" in out
    snap = load(path)
    assert snap.metadata["phase"] == "timeout"
    assert snap.metadata["timeout_s"] == 1.0
    names = [e.name for e in snap.events]
    assert "waiting.forever" in names
    # the spinner kept recording up to shortly before the deadline
    spins = [e for e in snap.events if e.name == "spin"]
    assert len(spins) > 20
    assert snap.metadata["failure_ns"] - spins[-1].timestamp < 500_000_000


def test_timeout_thread_method_under_xdist_is_named_in_the_output_and_summary(
    pytester: pytest.Pytester,
):
    """The worker is ended by pytest-timeout; the controller finds the file the
    worker wrote in the session directory and names it."""
    pytester.makepyfile(test_hang=HANG)
    result = pytester.runpytest_subprocess(
        "--ringtrace", *FAST, "--timeout=1", "--timeout-method=thread", "-n", "1"
    )
    assert result.ret == 1
    (path,) = artifact_files(pytester)
    assert path.name == "test_hang.py__test_hangs--timeout--attempt1--gw0.json"
    assert load(path).metadata["phase"] == "timeout"
    relative = path.relative_to(pytester.path)
    out = result.stdout.str()
    assert section(out, "ringtrace timeout").splitlines() == [
        "snapshot written before pytest-timeout (thread method) ended the worker:",
        f"  {relative}",
    ]
    result.stdout.fnmatch_lines(
        [
            f"*- ringtrace: 1 snapshot in {relative.parent} -*",
            f"test_hang.py::test_hangs [[]timeout]: {path.name}",
        ]
    )


def test_timeout_thread_method_file_removed_when_the_test_ends_in_time(
    pytester: pytest.Pytester,
):
    # The test waits until the snapshot file exists (0.3 s before its 3 s
    # deadline), then returns: the test did not time out, so the file goes.
    pytester.makepyfile(
        test_close="""
        import pathlib, time
        import instrument

        def test_just_in_time():
            instrument.event("slow.start")
            snaps = pathlib.Path(".ringtrace")
            while not any(p.suffix == ".json" for p in snaps.glob("session-*/*")):
                time.sleep(0.005)
        """
    )
    result = pytester.runpytest_subprocess(
        "--ringtrace", *FAST, "--timeout=3", "--timeout-method=thread"
    )
    result.assert_outcomes(passed=1)
    assert artifact_files(pytester) == []


FLAKY = """
import pathlib
from app import step


def test_flaky():
    counter = pathlib.Path("attempts.txt")
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    step(n)
    assert n >= {passes_at}
"""


def test_each_failed_rerun_attempt_gets_its_own_snapshot(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(test_flaky=FLAKY.format(passes_at=3))
    result = pytester.runpytest("--ringtrace", *FAST, "--reruns=3")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 2}
    files = artifact_files(pytester)
    assert [f.name for f in files] == [
        "test_flaky.py__test_flaky--call--attempt1.json",
        "test_flaky.py__test_flaky--call--attempt2.json",
    ]
    # each attempt's window holds its own events only
    assert [[e.fields["n"] for e in load(f).events if e.name == "app.tick"] for f in files] == [
        [1],
        [2],
    ]
    attempts = [
        (r["outcome"], r["ringtrace"]["attempt"]) for r in reports(pytester) if r["ringtrace"]
    ]
    assert attempts == [("rerun", 1), ("rerun", 2)]


def test_rerun_attempts_that_all_fail(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(test_flaky=FLAKY.format(passes_at=99))
    result = pytester.runpytest("--ringtrace", *FAST, "--reruns=1")
    assert result.parseoutcomes() == {"failed": 1, "rerun": 1}
    assert len(artifact_files(pytester)) == 2
    # the final failure shows its own section, not the first attempt's again
    text = result.stdout.str().split("= FAILURES =")[1]
    assert text.count("- ringtrace call -") == 1
    assert "n=2" in section(text, "ringtrace call")


def test_reruns_under_xdist(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(test_flaky=FLAKY.format(passes_at=2))
    result = pytester.runpytest_subprocess("--ringtrace", *FAST, "--reruns=1", "-n", "2")
    assert result.parseoutcomes() == {"passed": 1, "rerun": 1}
    (path,) = artifact_files(pytester)
    assert re.fullmatch(r"test_flaky\.py__test_flaky--call--attempt1--gw[01]\.json", path.name)


def test_example_application_demo(tmp_path: Path):
    """README's first command: the example's race is explained by the snapshot."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--ringtrace",
            "examples/",
            "-p",
            "no:cacheprovider",
            "--ringtrace-formats=json",
            "--ringtrace-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "3 failed, 7 passed" in out.stdout, out.stdout + out.stderr
    failed = {line.split()[1] for line in out.stdout.splitlines() if line.startswith("FAILED ")}
    assert failed == {
        "examples/test_shop.py::test_last_item_is_sold_once",
        "examples/test_invoice.py::test_coupon_takes_its_percentage_off",
        "examples/test_settings.py::test_timeout_is_read",
    }
    shop = failure_section(out.stdout, "test_last_item_is_sold_once").splitlines()
    # both workers checked the stock level before either committed
    by_worker: dict[str, dict[str, float]] = {}
    worker = ""
    for line in shop:
        if line.startswith("order-worker-"):
            worker = line.split()[0]
        for what in ("inventory.checked", "inventory.committed"):
            if worker and f"* {what}" in line:
                by_worker.setdefault(worker, {})[what] = float(line.split()[0])
                assert ("level=1" if what.endswith("checked") else "level=0") in line
    assert set(by_worker) == {"order-worker-1", "order-worker-2"}
    checks = [t["inventory.checked"] for t in by_worker.values()]
    commits = [t["inventory.committed"] for t in by_worker.values()]
    assert max(checks) < min(commits)
    assert sum("order.confirmed" in line for line in shop) == 2
    assert any(">>> FAILURE at examples/test_shop.py:" in line for line in shop)
    # the exception confkit swallowed is in the view, before the failure
    settings = failure_section(out.stdout, "test_timeout_is_read")
    assert "confkit.loading.convert(" in settings
    assert "ValueError" in settings and "'30s'" in settings
    assert ">>> FAILURE at examples/test_settings.py:" in settings
    invoice = failure_section(out.stdout, "test_coupon_takes_its_percentage_off")
    assert "invoice.invoice_total(" in invoice
    assert ">>> FAILURE at examples/test_invoice.py:" in invoice
    assert len(list(tmp_path.glob("session-*/*.json"))) == 3


def failure_section(output: str, test: str) -> str:
    """The ``ringtrace call`` section under the failure of ``test``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^_+ {test} _+$", line))
    return section("\n".join(lines[start:]), "ringtrace call")


def test_default_run_does_not_collect_the_examples():
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        "tests/test_plugin_integrations.py::test_default_run_does_not_collect_the_examples"
        in out.stdout
    )
    assert "examples/" not in out.stdout
