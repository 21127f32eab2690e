"""The ``ringtrace`` fixture, the ``ringtrace`` marker, our hooks, and the
rule that the plugin's own errors are warnings, never a changed outcome."""

from __future__ import annotations

import json

import pytest
from plugin_helpers import FAST, artifact_files, load, make_app, reports, section

import instrument


def test_fixture_reads_this_tests_events(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(
        """
        import pytest
        from app import step, on_thread

        @pytest.fixture
        def warmed():
            step(0, note="in setup")

        def test_earlier():
            step(99)

        def test_events(warmed, ringtrace):
            on_thread("worker-1", 1)
            step(2)
            assert [e.fields["n"] for e in ringtrace.select("app.tick")] == [0, 1, 2]
            assert ringtrace.select("app.tick", thread="worker-*")[0].fields["n"] == 1
            assert [e.kind for e in ringtrace.select("app.step", kind="exit")] == ["exit"] * 3
            assert ringtrace.names[:3] == ["app.step", "app.tick", "app.step"]
            assert ringtrace.select("nothing.*") == []
            with pytest.raises(ValueError, match="kind must be one of event, entry, exit"):
                ringtrace.select(kind="start")
            snap = ringtrace.snapshot()
            assert len(snap) == len(ringtrace.events) == 9
            assert "app.tick" in ringtrace.text(tail=3)
            ringtrace.clear()
            assert ringtrace.events == []
            step(3)
            assert [e.fields["n"] for e in ringtrace.select("app.tick")] == [3]
        """
    )
    pytester.runpytest("--ringtrace", *FAST).assert_outcomes(passed=2)
    assert not instrument.recording()  # the plugin stopped the recorder it started


def test_fixture_records_on_its_own_without_the_option(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(
        """
        import instrument
        from app import step

        def test_before():
            assert not instrument.recording()

        def test_events(ringtrace):
            assert ringtrace.recording
            step(1)
            assert [e.name for e in ringtrace.events] == ["app.step", "app.tick", "app.step"]

        def test_after():
            assert not instrument.recording()
        """
    )
    pytester.runpytest(*FAST).assert_outcomes(passed=3)
    assert artifact_files(pytester) == []


def test_recorder_started_before_the_session_is_used_and_left_running(pytester: pytest.Pytester):
    make_app(
        pytester,
        conftest="""
import instrument

def pytest_configure(config):
    config._outer = instrument.start()

def pytest_unconfigure(config):
    with open("left-running.txt", "w") as out:
        out.write(str(instrument.active_recorder() is config._outer))
    instrument.stop()
""",
    )
    pytester.makepyfile("from app import step\ndef test_x():\n    step(1)\n    assert 0\n")
    result = pytester.runpytest("--ringtrace", *FAST)
    result.assert_outcomes(failed=1)
    # the outer recorder (default 4096x16 rings, not the 64x4 of the options) was read
    snap = load(artifact_files(pytester)[0])
    assert [s.subbuf_size for s in snap.streams] == [4096]
    assert (pytester.path / "left-running.txt").read_text() == "True"


def test_marker_always_snapshots_a_passing_test(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(
        """
        import pytest
        from app import step

        @pytest.mark.ringtrace(always=True, tail=2)
        def test_kept():
            step(1)

        def test_not_kept():
            step(2)
        """
    )
    result = pytester.runpytest("--ringtrace", *FAST, "-rP")
    result.assert_outcomes(passed=2)
    (path,) = artifact_files(pytester)
    assert (
        path.name
        == "test_marker_always_snapshots_a_passing_test.py__test_kept--call--attempt1.json"
    )
    assert load(path).metadata["outcome"] == "passed"
    text = section(result.stdout.str(), "ringtrace call")
    lines = text.splitlines()
    assert lines[2].startswith("calls of the test (time relative to the end of the phase;")
    assert lines[3] == "MainThread:"
    assert "app.step(" in lines[4]


def test_marker_patch_traces_a_target_during_the_test_only(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(
        helpers="def plain(x):\n    return x + 1\n",
        test_patch="""
        import pytest
        import helpers

        @pytest.mark.ringtrace(patch="helpers:plain")
        def test_patched(ringtrace):
            helpers.plain(1)
            assert [e.kind for e in ringtrace.select("helpers.plain")] == ["entry", "exit"]

        def test_unpatched(ringtrace):
            helpers.plain(1)
            assert ringtrace.events == []
        """,
    )
    pytester.runpytest("--ringtrace", *FAST).assert_outcomes(passed=2)


def test_marker_ring_size_gives_the_test_fresh_rings(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(
        """
        import pytest
        from app import step

        @pytest.mark.ringtrace(subbuf_size=8, num_subbuf=2)
        def test_small(ringtrace):
            for n in range(10):
                step(n)
            snap = ringtrace.snapshot()
            assert [(s.subbuf_size, s.num_subbuf) for s in snap.streams] == [(8, 2)]
            assert snap.overwritten == 16

        def test_back_to_the_session_rings(ringtrace):
            step(1)
            assert [(s.subbuf_size, s.num_subbuf) for s in ringtrace.snapshot().streams] == [
                (64, 4)
            ]
        """
    )
    pytester.runpytest("--ringtrace", *FAST).assert_outcomes(passed=2)


def test_marker_window_and_formats(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(
        """
        import pytest
        from app import step

        def test_first():
            step(1)

        @pytest.mark.ringtrace(window="session", formats=["json.gz"])
        def test_second():
            step(2)
            assert 0
        """
    )
    pytester.runpytest("--ringtrace", *FAST)
    (path,) = artifact_files(pytester)
    assert path.name.endswith("test_second--call--attempt1.json.gz")
    assert [e.fields["n"] for e in load(path).events if e.name == "app.tick"] == [1, 2]


def test_class_marker_applies_and_the_closest_wins(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(
        """
        import pytest
        from app import step

        @pytest.mark.ringtrace(always=True, tail=1)
        class TestOrders:
            def test_inherits(self):
                step(1)

            @pytest.mark.ringtrace(always=False)
            def test_overrides(self):
                step(2)
        """
    )
    pytester.runpytest("--ringtrace", *FAST).assert_outcomes(passed=2)
    assert [p.name.split("--")[0] for p in artifact_files(pytester)] == [
        "test_class_marker_applies_and_the_closest_wins.py__TestOrders__test_inherits"
    ]


def test_bad_marker_is_a_warning_and_the_rest_applies(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(
        """
        import pytest
        from app import step

        @pytest.mark.ringtrace("oops", alway=True, tail="ten", always=True)
        def test_x():
            step(1)
        """
    )
    result = pytester.runpytest("--ringtrace", *FAST)
    result.assert_outcomes(passed=1, warnings=3)
    result.stdout.fnmatch_lines(
        [
            "*PytestRingtraceWarning: ringtrace: *test_x: @pytest.mark.ringtrace: takes keyword "
            "arguments only (e.g. always=True), got ('oops',)",
            "*PytestRingtraceWarning: ringtrace: *test_x: @pytest.mark.ringtrace: unknown option "
            "'alway'; known: always, xfail, tail, window, patch, instrument, subbuf_size, "
            "num_subbuf, formats",
            "*@pytest.mark.ringtrace: tail: expected a whole number between 0 and 100000, "
            "got 'ten'",
        ]
    )
    assert len(artifact_files(pytester)) == 1  # always=True still applied


def test_snapshot_hook_is_called_with_each_snapshot(pytester: pytest.Pytester):
    make_app(
        pytester,
        conftest="""
import json

def pytest_ringtrace_snapshot(snapshot, item, report, paths):
    with open("hook.jsonl", "a") as out:
        out.write(json.dumps({
            "item": item.nodeid,
            "when": report.when,
            "events": len(snapshot.events),
            "test_id": snapshot.metadata["test_id"],
            "paths": {fmt: str(p) for fmt, p in paths.items()},
            "exists": all(p.exists() for p in paths.values()),
        }) + "\\n")
""",
    )
    pytester.makepyfile("from app import step\ndef test_x():\n    step(1)\n    assert 0\n")
    pytester.runpytest("--ringtrace", *FAST).assert_outcomes(failed=1)
    import json

    (line,) = (pytester.path / "hook.jsonl").read_text().splitlines()
    seen = json.loads(line)
    assert seen == {
        "item": "test_snapshot_hook_is_called_with_each_snapshot.py::test_x",
        "when": "call",
        "events": 4,  # step's entry, exit and event, and the test.failure event
        "test_id": "test_snapshot_hook_is_called_with_each_snapshot.py::test_x",
        "paths": {"json": str(artifact_files(pytester)[0])},
        "exists": True,
    }


def test_raising_hook_is_a_warning_and_the_outcome_stands(pytester: pytest.Pytester):
    make_app(
        pytester,
        conftest="""
def pytest_ringtrace_snapshot(snapshot, item, report, paths):
    raise ConnectionError("upload server down")
""",
    )
    pytester.makepyfile(
        """
        import pytest
        from app import step

        def test_fails():
            step(1)
            assert 0

        @pytest.mark.ringtrace(always=True)
        def test_passes():
            step(2)
        """
    )
    result = pytester.runpytest("--ringtrace", *FAST)
    result.assert_outcomes(failed=1, passed=1, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*ringtrace: *test_fails: a pytest_ringtrace_snapshot hook raised ConnectionError: "
            "upload server down"
        ]
    )
    assert "- ringtrace call -" in result.stdout.str()  # still attached


def test_channels_hook_must_return_channels(pytester: pytest.Pytester):
    pytester.makeconftest("def pytest_ringtrace_channels(config):\n    return ['default']\n")
    with pytest.raises(
        pytest.UsageError, match=r"must return a non-empty list of instrument\.Channel"
    ):
        pytester.parseconfigure("--ringtrace")


def test_unwritable_directory_is_a_warning_and_the_outcome_stands(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makefile(".txt", blocker="a file where a directory would go")
    pytester.makepyfile(
        """
        import pytest
        from app import step

        def test_fails():
            step(1)
            assert 0

        @pytest.mark.ringtrace(always=True)
        def test_passes():
            step(2)
        """
    )
    result = pytester.runpytest("--ringtrace", *FAST, "--ringtrace-dir=blocker.txt/snaps")
    result.assert_outcomes(failed=1, passed=1, warnings=2)
    result.stdout.fnmatch_lines(
        ["*PytestRingtraceWarning: ringtrace: *test_fails: snapshot at call failed: *"]
    )


def test_warnings_as_errors_still_do_not_change_outcomes(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makefile(".txt", blocker="x")
    pytester.makepyfile(
        """
        import pytest
        from app import step

        @pytest.mark.ringtrace(always=True)
        def test_passes():
            step(2)
        """
    )
    # In a process of its own: under -W error, an in-process inner session
    # turns the host process's leftovers into errors of its own test (garbage
    # of earlier tests whose finalizers warn, e.g. an unclosed file, collected
    # by a gc pass that happens to run during the inner test). Which tests ran
    # earlier in the process decided it: it failed under -n 2, passed alone.
    result = pytester.runpytest_subprocess(
        "--ringtrace", *FAST, "--ringtrace-dir=blocker.txt/s", "-W", "error"
    )
    result.assert_outcomes(passed=1)
    result.stderr.fnmatch_lines(
        ["PytestRingtraceWarning: ringtrace: *test_passes: snapshot at call failed*"]
    )


def test_broken_format_writer_is_reported_and_others_are_written(pytester: pytest.Pytester):
    make_app(
        pytester,
        conftest="""
from instrument import plugins
from instrument.formats import Format

class Broken:
    @plugins.hookimpl
    def ringtrace_formats(self):
        def write(snapshot, out):
            raise OSError("disk full")
        return [Format("broken", ".broken", write)]

def pytest_configure(config):
    config._broken = Broken()
    plugins.register(config._broken, name="broken-format")

def pytest_unconfigure(config):
    plugins.unregister(config._broken)
""",
    )
    pytester.makepyfile("from app import step\ndef test_x():\n    step(1)\n    assert 0\n")
    options = [o for o in FAST if not o.startswith("--ringtrace-formats")]
    result = pytester.runpytest("--ringtrace", *options, "--ringtrace-formats=broken,json")
    result.assert_outcomes(failed=1, warnings=1)
    text = section(result.stdout.str(), "ringtrace call")
    assert "problem: format broken: " in text and "disk full" in text
    assert [p.suffix for p in artifact_files(pytester)] == [".json"]
    (report,) = [r for r in reports(pytester) if r["ringtrace"]]
    assert list(report["ringtrace"]["paths"]) == ["json"]


CAPLOG_IDIOMS = """
import pytest
from app import step

@pytest.fixture
def prepared():
    step(1)
    yield
    step(3)

def test_idioms(prepared, ringtrace):
    step(2)
    # text is a property: `in` works, as with caplog.text
    assert "app.tick" in ringtrace.text and "n=2" in ringtrace.text
    assert ringtrace.text.splitlines() == ringtrace.messages
    assert ringtrace.messages[:2] == [
        "-> app.step  n=1",
        " * app.tick  n=1 note='' password='[redacted]'",
    ]
    # records and events are the same; len() and iteration
    assert ringtrace.records == ringtrace.events == list(ringtrace)
    assert len(ringtrace) == 6
    # each span once, at its entry
    assert ringtrace.names == ["app.step", "app.tick", "app.step", "app.tick"]
    # per phase
    assert [e.fields.get("n") for e in ringtrace.get_records("setup")] == [1, 1, None]
    assert [e.fields.get("n") for e in ringtrace.get_records("call")] == [2, 2, None]
    assert ringtrace.get_records("teardown") == []
    with pytest.raises(ValueError, match="when must be one of setup, call, teardown"):
        ringtrace.get_records("later")
    # the older method form still works
    assert "last 1 of 6 events" in ringtrace.text(tail=1)
    ringtrace.clear()
    assert len(ringtrace) == 0 and ringtrace.text == "" and ringtrace.get_records("setup") == []
    step(4)
    assert ringtrace.names == ["app.step", "app.tick"]
"""


@pytest.mark.parametrize("option", [[], ["--ringtrace"]], ids=["without", "with"])
def test_fixture_caplog_idioms_the_same_with_and_without_the_option(
    pytester: pytest.Pytester, option: list[str]
):
    make_app(pytester)
    pytester.makepyfile(CAPLOG_IDIOMS)
    pytester.runpytest(*option, *FAST).assert_outcomes(passed=1)
    assert not instrument.recording()


def test_fixture_sees_fixture_teardown_events_with_and_without_the_option(
    pytester: pytest.Pytester,
):
    make_app(pytester)
    pytester.makeconftest(
        """
import json, pytest
from app import step
SEEN = {}

@pytest.fixture
def early():
    step(1)
    yield
    step(9)

@pytest.fixture
def check(request):
    yield
    item = request.node
    SEEN[item.nodeid] = item.funcargs["ringtrace"]

def pytest_sessionfinish(session):
    out = {k: [e.fields.get("n") for e in v.get_records("teardown")] for k, v in SEEN.items()}
    with open("teardown.json", "w") as f:
        json.dump(out, f)
"""
    )
    pytester.makepyfile("from app import step\ndef test_x(early, check, ringtrace):\n    step(2)\n")
    results = []
    for option in ([], ["--ringtrace"]):
        pytester.runpytest(*option, *FAST).assert_outcomes(passed=1)
        results.append(json.loads((pytester.path / "teardown.json").read_text()))
    # the teardown of a fixture set up before `ringtrace` is recorded either way
    assert (
        results[0]
        == results[1]
        == {
            "test_fixture_sees_fixture_teardown_events_with_and_without_the_option.py::test_x": [
                9,
                9,
                None,
            ]
        }
    )


def test_section_is_coloured_only_when_pytest_colours(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile("from app import step\ndef test_x():\n    step(1)\n    assert 0\n")
    coloured = pytester.runpytest("--ringtrace", *FAST, "--color=yes").stdout.str()
    plain = pytester.runpytest("--ringtrace", *FAST, "--color=no").stdout.str()
    assert "\x1b[1m3 events from 1 thread, \x1b[0m" in section(coloured, "ringtrace call")
    assert "\x1b[" not in section(plain, "ringtrace call")
    assert "\x1b[" not in plain
