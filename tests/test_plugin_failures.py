"""The failure -> snapshot flow of the pytest plugin, in inner pytest sessions.

Which outcomes get a snapshot (setup, call and teardown failures, strict
XPASS; not xfail, skip or a pass), what the terminal section shows, what
the report carries, where files go and that they are never overwritten.
"""

from __future__ import annotations

import re

import pytest
from plugin_helpers import FAST, artifact_files, load, make_app, reports, section

import instrument

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

OUTCOMES = """
import pytest
from app import step, on_thread


def test_passes():
    step(1)


def test_call_fails():
    on_thread("helper-thread", 2)
    step(3, note="last before the failure")
    assert step(4) == 5


@pytest.fixture
def broken_setup():
    step(10)
    raise RuntimeError("setup broke")


def test_setup_fails(broken_setup):
    pass


@pytest.fixture
def broken_teardown():
    step(20)
    yield
    step(21)
    raise RuntimeError("teardown broke")


def test_teardown_fails(broken_teardown):
    step(22)


@pytest.mark.xfail(strict=True)
def test_strict_xpass():
    step(30)


@pytest.mark.xfail(strict=False)
def test_loose_xpass():
    step(31)


@pytest.mark.xfail
def test_xfails():
    step(40)
    assert False


def test_skips():
    step(50)
    pytest.skip("not today")
"""


@pytest.fixture
def outcomes(pytester: pytest.Pytester) -> pytest.Pytester:
    make_app(pytester)
    pytester.makepyfile(test_outcomes=OUTCOMES)
    return pytester


def _snapshotted(pytester: pytest.Pytester) -> dict[tuple[str, str], dict[str, object]]:
    return {
        (r["nodeid"].split("::")[-1], r["when"]): r["ringtrace"]
        for r in reports(pytester)
        if r["ringtrace"] is not None
    }


def test_failures_in_each_phase_and_strict_xpass_get_a_snapshot(outcomes: pytest.Pytester):
    result = outcomes.runpytest("--ringtrace", *FAST)
    result.assert_outcomes(passed=2, failed=2, errors=2, xfailed=1, xpassed=1, skipped=1)
    taken = _snapshotted(outcomes)
    assert sorted(taken) == [
        ("test_call_fails", "call"),
        ("test_setup_fails", "setup"),
        ("test_strict_xpass", "call"),
        ("test_teardown_fails", "teardown"),
    ]
    files = artifact_files(outcomes)
    assert [f.name for f in files] == [
        "test_outcomes.py__test_call_fails--call--attempt1.json",
        "test_outcomes.py__test_setup_fails--setup--attempt1.json",
        "test_outcomes.py__test_strict_xpass--call--attempt1.json",
        "test_outcomes.py__test_teardown_fails--teardown--attempt1.json",
    ]
    # each file holds its test's window only, from setup to the failure
    ticks = {
        f.name.split("--")[0]: [e.fields["n"] for e in load(f).events if e.name == "app.tick"]
        for f in files
    }
    assert ticks == {
        "test_outcomes.py__test_call_fails": [2, 3, 4],
        "test_outcomes.py__test_setup_fails": [10],
        "test_outcomes.py__test_strict_xpass": [30],
        "test_outcomes.py__test_teardown_fails": [20, 22, 21],
    }
    # one session directory, named once, relative to the invocation directory
    assert {f.parent for f in files} == {outcomes.path / ".ringtrace" / "session-000001"}
    result.stdout.fnmatch_lines(
        [
            "*- ringtrace: 4 snapshots in .ringtrace/session-000001 -*",
            "test_outcomes.py::test_call_fails [[]call]: "
            "test_outcomes.py__test_call_fails--call--attempt1.json",
        ]
    )


def test_xfail_is_snapshotted_only_when_asked(outcomes: pytest.Pytester):
    outcomes.runpytest("--ringtrace", "--ringtrace-xfail", *FAST, "-k", "xfails or skips")
    assert list(_snapshotted(outcomes)) == [("test_xfails", "call")]
    info = _snapshotted(outcomes)[("test_xfails", "call")]
    assert info["outcome"] == "xfailed"


def test_xfail_option_from_ini(outcomes: pytest.Pytester):
    outcomes.makeini("[pytest]\nringtrace = true\nringtrace_xfail = true\n")
    outcomes.runpytest(*FAST, "-k", "xfails")
    assert list(_snapshotted(outcomes)) == [("test_xfails", "call")]


def test_passing_tests_write_nothing(outcomes: pytest.Pytester):
    result = outcomes.runpytest("--ringtrace", *FAST, "-k", "passes or loose or skips")
    result.assert_outcomes(passed=1, xpassed=1, skipped=1)
    assert _snapshotted(outcomes) == {}
    assert artifact_files(outcomes) == []
    assert "ringtrace call" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "ringtrace: engine *, window test, rings 64x4 events per thread, formats json, "
            "dir *.ringtrace"
        ]
    )


def test_section_shows_counts_files_and_the_last_events(outcomes: pytest.Pytester):
    result = outcomes.runpytest(
        "--ringtrace", *FAST, "--ringtrace-view=flat", "--ringtrace-tail=5", "-k", "call_fails"
    )
    text = section(result.stdout.str(), "ringtrace call")
    lines = text.splitlines()
    path = artifact_files(outcomes)[0]
    assert lines[0] == (
        "9 events from 2 threads, 0 lost events, 0 skipped sub-buffers (window: this test)"
    )
    assert lines[1] == f"snapshot: {path.relative_to(outcomes.path)}"
    # the failure is an event of the snapshot (not counted as recorded), the last one
    assert lines[2] == "last 5 of 10 events (time relative to the failure):"
    failure = lines[-1]
    assert re.match(
        r"^\s*\+0\.000 ms  MainThread  >>> FAILURE at test_outcomes\.py:\d+: AssertionError: ",
        failure,
    ), failure
    events = lines[3:-1]
    assert len(events) == 4
    pattern = re.compile(r"^\s*-\d+\.\d{3} ms  MainThread  (->| \*|<-) (\S+)(  .*)?$")
    parsed = [pattern.match(line) for line in events]
    assert all(parsed), events
    assert [(m.group(1), m.group(2)) for m in parsed if m] == [
        ("<-", "app.step"),
        ("->", "app.step"),
        (" *", "app.tick"),
        ("<-", "app.step"),
    ]
    assert "n=4 note='' password='[redacted]'" in events[2]  # fields, redacted by default
    times = [float(line.split()[0]) for line in events]
    assert times == sorted(times) and times[-1] < 0


def test_tail_zero_shows_only_the_header(outcomes: pytest.Pytester):
    result = outcomes.runpytest("--ringtrace", *FAST, "--ringtrace-tail=0", "-k", "call_fails")
    text = section(result.stdout.str(), "ringtrace call")
    assert len(text.splitlines()) == 2
    assert text.startswith("9 events from 2 threads")


def test_show_capture_no_hides_the_section(outcomes: pytest.Pytester):
    hidden = outcomes.runpytest("--ringtrace", *FAST, "-k", "call_fails", "--show-capture=no")
    hidden.assert_outcomes(failed=1)
    assert "- ringtrace call -" not in hidden.stdout.str()
    assert "AssertionError" in hidden.stdout.str()


def test_report_attributes_are_plain_data(outcomes: pytest.Pytester):
    outcomes.runpytest("--ringtrace", *FAST, "-k", "call_fails")
    (report,) = [r for r in reports(outcomes) if r["ringtrace"]]
    info = report["ringtrace"]
    assert report["sections"][-1] == "ringtrace call"
    assert info == {
        "phase": "call",
        "attempt": 1,
        "worker": None,
        "outcome": "failed",
        "window": "test",
        "paths": {"json": str(artifact_files(outcomes)[0])},
        "events": 9,
        "threads": 2,
        "lost": 0,
        "dropped": 0,
        "skipped": 0,
        "skipped_subbufs": 0,
        "overwritten": 0,
    }


def test_snapshot_metadata_names_the_test(outcomes: pytest.Pytester):
    outcomes.runpytest("--ringtrace", *FAST, "-k", "call_fails")
    snap = load(artifact_files(outcomes)[0])
    meta = snap.metadata
    assert {k: meta[k] for k in ("test_id", "phase", "attempt", "worker", "outcome", "window")} == {
        "test_id": "test_outcomes.py::test_call_fails",
        "phase": "call",
        "attempt": 1,
        "worker": None,
        "outcome": "failed",
        "window": "test",
    }
    assert meta["exception"].startswith("AssertionError: assert 4 == 5")
    assert {e.thread_name for e in snap.events} == {"MainThread", "helper-thread"}


def test_each_session_writes_into_a_directory_of_its_own(outcomes: pytest.Pytester):
    for _ in range(2):
        outcomes.runpytest("--ringtrace", *FAST, "-k", "call_fails")
    names = [
        f.relative_to(outcomes.path / ".ringtrace").as_posix() for f in artifact_files(outcomes)
    ]
    assert names == [
        "session-000001/test_outcomes.py__test_call_fails--call--attempt1.json",
        "session-000002/test_outcomes.py__test_call_fails--call--attempt1.json",
    ]
    first, second = (load(f) for f in artifact_files(outcomes))
    assert first.taken_at < second.taken_at


def test_files_are_never_overwritten_within_a_session(outcomes: pytest.Pytester):
    from pytest_ringtrace.artifacts import ArtifactWriter, SessionDirectory

    writer = ArtifactWriter(SessionDirectory(outcomes.path / "out", keep=3))
    snap = instrument.Snapshot(events=[], streams=[], clock_offset_ns=0, taken_at=0)
    first, _ = writer.write(snap, "t--call--attempt1", ["json"])
    second, _ = writer.write(snap, "t--call--attempt1", ["json"])
    assert [first["json"].name, second["json"].name] == [
        "t--call--attempt1.json",
        "t--call--attempt1~2.json",
    ]


def test_default_formats_are_json_and_the_html_timeline(outcomes: pytest.Pytester):
    options = [o for o in FAST if not o.startswith("--ringtrace-formats")]
    outcomes.runpytest("--ringtrace", *options, "-k", "call_fails")
    names = sorted(f.name for f in artifact_files(outcomes))
    assert names == [
        "test_outcomes.py__test_call_fails--call--attempt1.html",
        "test_outcomes.py__test_call_fails--call--attempt1.json",
    ]
    html = next(f for f in artifact_files(outcomes) if f.suffix == ".html").read_text()
    assert "<html" in html.lower() and "app.tick" in html


def test_other_formats_on_request(outcomes: pytest.Pytester):
    options = [o for o in FAST if not o.startswith("--ringtrace-formats")]
    outcomes.runpytest("--ringtrace", *options, "--ringtrace-formats=json.gz,perfetto")
    names = [f.name for f in artifact_files(outcomes) if "call_fails" in f.name]
    assert sorted(names) == [
        "test_outcomes.py__test_call_fails--call--attempt1.json.gz",
        "test_outcomes.py__test_call_fails--call--attempt1.perfetto.json",
    ]


def test_ringtrace_dir_option(outcomes: pytest.Pytester):
    outcomes.runpytest("--ringtrace", *FAST, "--ringtrace-dir=out/snaps", "-k", "call_fails")
    assert len(artifact_files(outcomes, "out/snaps")) == 1
    assert artifact_files(outcomes) == []


def test_session_window_keeps_earlier_tests_events(outcomes: pytest.Pytester):
    outcomes.runpytest("--ringtrace", *FAST, "--ringtrace-window=session", "-k", "passes or call")
    (path,) = artifact_files(outcomes)
    ns = [e.fields.get("n") for e in load(path).events if e.name == "app.tick"]
    assert ns == [1, 2, 3, 4]  # test_passes ran first; its events are kept


def test_without_the_option_nothing_is_recorded(outcomes: pytest.Pytester):
    result = outcomes.runpytest(*FAST)
    result.assert_outcomes(passed=2, failed=2, errors=2, xfailed=1, xpassed=1, skipped=1)
    assert "ringtrace call" not in result.stdout.str()
    assert "ringtrace: window" not in result.stdout.str()
    assert artifact_files(outcomes) == []


def test_instrument_option_traces_an_undecorated_package(pytester: pytest.Pytester):
    make_app(pytester)
    pkg = pytester.mkpydir("plainpkg")
    (pkg / "calc.py").write_text("def double(x):\n    return 2 * x\n")
    pytester.makepyfile(
        test_plain="""
        from plainpkg.calc import double

        def test_double():
            assert double(2) == 5
        """
    )
    result = pytester.runpytest("--ringtrace", *FAST, "--ringtrace-instrument", "plainpkg")
    text = section(result.stdout.str(), "ringtrace call")
    # entry and exit on one line, with the argument and the return value
    assert re.search(r"ms  plainpkg\.calc\.double\(x=2\) -> 4  \[\d", text), text


def test_the_header_counts_what_instrument_traced_and_left_untraced(pytester: pytest.Pytester):
    make_app(pytester)
    pkg = pytester.mkpydir("framepkg")
    (pkg / "calc.py").write_text(
        "import sys\n\n"
        "def double(x):\n    return 2 * x\n\n"
        "def triple(x):\n    return 3 * x\n\n"
        "def caller():\n    return sys._getframe(1).f_code.co_name\n"
    )
    pytester.makepyfile(
        test_frames="""
        from framepkg.calc import caller, double

        def test_caller():
            assert double(1) == 2
            assert caller() == "test_caller"
        """
    )
    # In a child process: an in-process run restores sys.meta_path afterwards,
    # taking away wrapt's import hook finder for the rest of this process.
    # the wrapt engine leaves frame readers untraced (the sysmon engine adds
    # no frame, so it traces them)
    result = pytester.runpytest_subprocess(
        "--ringtrace", *FAST, "--ringtrace-engine=wrapt", "--ringtrace-instrument", "framepkg"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "collected 1 item",
            "ringtrace: instrument framepkg: 2 functions traced, 1 left untraced because "
            "they read frames (framepkg.calc.caller)",
        ]
    )


def test_lost_events_are_counted_in_the_header(pytester: pytest.Pytester):
    # a discard-mode channel (through our channels hook) drops what does not fit
    make_app(
        pytester,
        conftest="""
import instrument

def pytest_ringtrace_channels(config):
    return [instrument.Channel(subbuf_size=4, num_subbuf=2, mode="discard")]
""",
    )
    pytester.makepyfile(
        test_lost="""
        from app import step

        def test_many():
            for n in range(10):
                step(n)
            assert False
        """
    )
    result = pytester.runpytest("--ringtrace", *FAST)
    text = section(result.stdout.str(), "ringtrace call")
    assert text.splitlines()[0].startswith("8 events from 1 thread, 22 lost events, 0 skipped")
    assert "note: full discard-mode rings dropped 22 events" in text


def test_idle_threads_of_earlier_tests_are_left_out_of_the_test_window(
    pytester: pytest.Pytester,
):
    make_app(pytester)
    pytester.makepyfile(
        """
        from app import step, on_thread

        def test_earlier():
            on_thread("earlier-thread", 1)

        def test_fails():
            on_thread("current-thread", 2)
            step(3)
            assert 0
        """
    )
    pytester.runpytest("--ringtrace", *FAST)
    snap = load(artifact_files(pytester)[0])
    assert sorted(s.thread_name for s in snap.streams) == ["MainThread", "current-thread"]
    assert snap.metadata["idle_streams_left_out"] == 1
    # with the session window everything the rings hold is kept
    pytester.runpytest("--ringtrace", *FAST, "--ringtrace-window=session")
    snap = load(artifact_files(pytester)[1])
    names = sorted(s.thread_name for s in snap.streams)
    assert names == ["MainThread", "current-thread", "earlier-thread"]
    assert snap.metadata["idle_streams_left_out"] == 0


def test_a_ring_that_wrapped_during_the_test_is_noted(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(
        """
        from app import step

        def test_busy():
            for n in range(10):
                step(n)
            assert 0
        """
    )
    result = pytester.runpytest(
        "--ringtrace", *FAST, "--ringtrace-subbuf-size=4", "--ringtrace-num-subbuf=2"
    )
    text = section(result.stdout.str(), "ringtrace call")
    # 30 events into an 8-event ring: the writer's sub-buffer holds 2, one full one 4
    assert text.splitlines()[0].startswith("6 events from 1 thread, 0 lost events")
    assert (
        "note: the ring of MainThread wrapped during this test: its oldest events are gone "
        "(raise --ringtrace-num-subbuf or --ringtrace-subbuf-size)"
    ) in text


OTHER_THREAD_ONLY = """
from app import on_thread


def test_only_another_thread_records():
    on_thread("helper-thread", 7)
    assert False
"""


def test_failure_event_gets_a_stream_when_the_test_thread_recorded_nothing(
    pytester: pytest.Pytester,
):
    # The test's own thread recorded nothing in the window: its idle stream
    # is left out, yet the test.failure event lands on that thread, so every
    # format (CTF maps each event to a stream) needs the stream back.
    make_app(pytester)
    pytester.makepyfile(test_other=OTHER_THREAD_ONLY)
    fast = [a for a in FAST if not a.startswith("--ringtrace-formats")]
    result = pytester.runpytest("--ringtrace", *fast, "--ringtrace-formats=json,ctf,perfetto")
    result.assert_outcomes(failed=1)
    assert "could not write" not in result.stdout.str()
    assert "could not write" not in result.stderr.str()
    root = pytester.path / ".ringtrace"
    assert len(list(root.rglob("*.ctf"))) == 1
    assert len(list(root.rglob("*.perfetto.json"))) == 1
    (json_file,) = root.rglob("test_other.py__*--attempt1.json")
    snap = load(json_file)
    failure = [e for e in snap.events if e.name == "test.failure"]
    assert len(failure) == 1
    assert any(
        s.thread_id == failure[0].thread_id and s.channel == failure[0].channel
        for s in snap.streams
    )
    assert [e.fields["n"] for e in snap.events if e.name == "app.tick"] == [7]
