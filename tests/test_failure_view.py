"""The failure view (instrument.view.tree) and the one time origin of every view.

Hand-built snapshots: a call tree with known arguments, return values,
durations, a run of similar calls, a failure, other threads and phases.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

import instrument
from instrument import Event, Snapshot, StreamInfo
from instrument.formats import html, perfetto, write_snapshot
from instrument.sources import note_source
from instrument.view import cli
from instrument.view.tree import FAILURE, Call, Filters, build_lanes, failure_tree
from pytest_ringtrace.report import section_text, summary

MS = 1_000_000
T0 = 10_000 * MS  # the failure
MAIN, WORKER = 1, 2


def event(
    ms: float,
    name: str,
    kind: str = "event",
    tid: int = MAIN,
    context: dict[str, Any] | None = None,
    **fields: Any,
) -> Event:
    ts = T0 + round(ms * MS)
    thread = {MAIN: "MainThread", WORKER: "worker"}.get(tid, f"t{tid}")
    return Event(ts, name, kind, tid, thread, fields, context or {}, "default", ts)


def call(ms: float, dur_ms: float, name: str, tid: int = MAIN, ret: Any = None, **args: Any):
    """Entry and exit events of one call (the exit's fields: duration and retval)."""
    exit_fields: dict[str, Any] = {"duration_ns": round(dur_ms * MS)}
    if ret is not None:
        exit_fields["retval"] = ret
    return [
        event(ms, name, "entry", tid, **args),
        event(ms + dur_ms, name, "exit", tid, **exit_fields),
    ]


def info(tid: int, name: str) -> StreamInfo:
    return StreamInfo("default", tid, name, True, "overwrite", 4096, 4, 100, 0, 99)


def snapshot(events: list[Event], **kw: Any) -> Snapshot:
    events = sorted(events, key=lambda e: e.timestamp)
    kw.setdefault("origin_ns", T0)
    return Snapshot(
        events, [info(MAIN, "MainThread"), info(WORKER, "worker")], 0, T0 + 5 * MS, **kw
    )


def failure(ms: float = 0.0, tid: int = MAIN) -> Event:
    return event(
        ms,
        FAILURE,
        "event",
        tid,
        type="AssertionError",
        message="assert 9 == 10\nmore",
        where="t.py:7",
    )


def pricing_snapshot() -> Snapshot:
    """total(cart) -> 9: price() x120 inside, then discount() returning the bad value."""
    events = [event(-50, "total", "entry", cart="c1")]
    for i in range(120):
        events += call(-49 + i * 0.1, 0.05, "shop.price", sku=f"s{i}", ret=i)
    events += call(-30, 2, "shop.discount", percent=15, ret=1)
    events += [event(-20, "total", "exit", duration_ns=30 * MS, retval=9), failure()]
    return snapshot(events)


# -- the tree ------------------------------------------------------------------


def test_entries_and_exits_fold_into_one_line_per_call() -> None:
    lines = failure_tree(pricing_snapshot())
    (total,) = [line for line in lines if " total(" in line]
    assert total.split()[:2] == ["-50.000", "ms"]
    assert total.endswith("total(cart='c1') -> 9  [30.00 ms]")
    (discount,) = [line for line in lines if "shop.discount(" in line]
    # nested one level inside total, with its argument, return value and duration
    assert discount.endswith("    shop.discount(percent=15) -> 1  [2.00 ms]")
    assert not any("<-" in line or "->  " in line for line in lines)


def test_a_run_of_similar_calls_is_collapsed() -> None:
    lines = failure_tree(pricing_snapshot())
    prices = [line for line in lines if "shop.price" in line]
    assert len(prices) == 3, lines
    assert prices[0].endswith("shop.price(sku='s0') -> 0  [50.0 us]")
    assert "… 118 more calls to shop.price (50.0 us to 50.0 us each)" in prices[1]
    assert prices[2].endswith("shop.price(sku='s119') -> 119  [50.0 us]")
    assert len(lines) < 12


def test_a_call_that_raised_is_never_collapsed() -> None:
    events = []
    for i in range(10):
        events += call(-20 + i, 0.5, "job.step", i=i)
    bad = [e for e in events if e.fields.get("i") == 5 or e.kind == "exit"]
    index = events.index(bad[0])
    events[index + 1] = event(
        -15 + 0.5, "job.step", "exit", duration_ns=MS // 2, exception="KeyError", message="'x'"
    )
    lines = failure_tree(snapshot([*events, failure()]))
    assert any("job.step(i=5)  !! raised KeyError: \"'x'\"" in line for line in lines), lines
    assert sum("more calls to job.step" in line for line in lines) == 2


def test_the_failure_is_marked_in_place() -> None:
    # the failure happened inside handle(), after step() returned, before the end
    events = [
        event(-10, "handle", "entry", order=3),
        *call(-9, 1, "step", ret="ok"),
        failure(-2),
        *call(-1, 0.5, "cleanup"),
        event(1, "handle", "exit", duration_ns=11 * MS),
    ]
    snap = snapshot(events, origin_ns=T0 - 2 * MS)
    lines = failure_tree(snap)
    marker = next(i for i, line in enumerate(lines) if ">>> FAILURE" in line)
    step = next(i for i, line in enumerate(lines) if "step() -> 'ok'" in line)
    assert step < marker
    assert lines[marker].split()[0] == "+0.000"
    assert lines[marker].endswith(">>> FAILURE at t.py:7: AssertionError: assert 9 == 10 …")
    # nested in handle, the call open at the failure: same depth as step
    assert re.match(r"^ +\+0\.000 ms    >>> ", lines[marker])
    assert lines[0] == "MainThread (failing):"


def test_teardown_and_setup_events_are_kept_apart() -> None:
    events = [
        *call(-40, 1, "fixture.open"),
        *call(-20, 2, "app.run", ret=3),
        failure(-10),
        *call(-5, 1, "fixture.close"),
        event(-4, "pool.closed", tid=WORKER),
    ]
    phases = {"setup": T0 - 50 * MS, "call": T0 - 30 * MS, "teardown": T0 - 8 * MS}
    snap = snapshot(events, origin_ns=T0 - 10 * MS)
    lines = failure_tree(snap, phases=phases, phase="call")
    calls = [line for line in lines if line.startswith(" ")]
    assert next(line for line in calls if "(" in line and "ms" in line).endswith(
        "app.run() -> 3  [2.00 ms]"
    )
    assert not any("fixture.open()" in line or "fixture.close()" in line for line in calls)
    assert "setup (apart from the call): 2 events on 1 thread (fixture.open)" in lines
    assert "teardown (apart from the call): 3 events on 2 threads (fixture.close, pool.closed)" in (
        lines
    )
    # a teardown failure: the teardown makes the tree, the call is apart
    events = [e for e in events if e.name != FAILURE] + [failure(-3)]
    snap = snapshot(events, origin_ns=T0 - 3 * MS)
    lines = failure_tree(snap, phases=phases, phase="teardown")
    assert any(line.endswith("fixture.close()  [1.00 ms]") for line in lines), lines
    assert "call (apart from the teardown): 2 events on 1 thread (app.run)" in lines


def test_other_threads_during_the_failing_call_and_what_was_left_out() -> None:
    events = [
        *call(-100, 1, "early", tid=WORKER),  # over before the failing call began
        event(-50, "handle", "entry"),
        *call(-30, 5, "fetch", tid=WORKER, ret=200),
        failure(-1),
        event(0, "handle", "exit", duration_ns=50 * MS),
    ]
    lines = failure_tree(snapshot(events))
    head = lines.index("worker (during the failing call):")
    assert lines[head + 1].endswith("fetch() -> 200  [5.00 ms]")
    assert not any("early" in line for line in lines)


def test_the_view_fits_its_budget_and_says_what_it_left_out() -> None:
    events = []
    for i in range(60):  # 60 different top-level calls, each with a nested call
        events += [event(-100 + i, f"op{i}", "entry")]
        events += call(-100 + i + 0.1, 0.1, f"inner{i}")
        events += [event(-100 + i + 0.5, f"op{i}", "exit", duration_ns=MS // 2)]
    lines = failure_tree(snapshot([*events, failure()]), budget=40)
    assert len(lines) <= 40
    assert any(re.search(r"… \d+ earlier calls on MainThread left out", line) for line in lines)
    assert ">>> FAILURE" in lines[-1]
    assert any("op59()" in line for line in lines)  # the latest calls are kept


def test_filters_are_those_of_ringtrace_show() -> None:
    events = [*call(-9, 1, "db.query"), *call(-5, 1, "cache.get"), failure()]
    events += call(-6, 1, "db.pool", tid=WORKER)
    lines = failure_tree(snapshot(events), filters=Filters(names=["db.*"]))
    assert any("db.query()" in line for line in lines)
    assert not any("cache.get" in line for line in lines)
    lines = failure_tree(snapshot(events), filters=Filters(threads=["Main*"]))
    assert not any("db.pool" in line for line in lines)
    assert any(">>> FAILURE" in line for line in lines)  # the failure is always kept


def test_calls_pair_within_their_asyncio_task() -> None:
    a, b = {"task": "Task-a"}, {"task": "Task-b"}
    events = [
        event(-10, "fetch", "entry", context=a),
        event(-9, "fetch", "entry", context=b),
        event(-8, "fetch", "exit", context=a, duration_ns=2 * MS),
        event(-2, "fetch", "exit", context=b, duration_ns=7 * MS),
        failure(),
    ]
    lanes = build_lanes(events)
    by_task = {key[2]: roots for key, roots in lanes.items()}
    (fa,) = by_task["Task-a"]
    (fb,) = by_task["Task-b"]
    assert isinstance(fa, Call) and isinstance(fb, Call)
    assert (fa.start, fa.end) == (T0 - 10 * MS, T0 - 8 * MS)
    assert (fb.start, fb.end) == (T0 - 9 * MS, T0 - 2 * MS)
    lines = failure_tree(snapshot(events))
    assert "MainThread task Task-a:" in lines and "MainThread task Task-b:" in lines


def test_source_locations_are_shown_where_space_allows() -> None:
    snap = pricing_snapshot()
    snap.sources = {"shop.discount": "/src/shop/pricing.py:42"}
    lines = failure_tree(snap)
    (discount,) = [line for line in lines if "shop.discount(" in line]
    assert discount.endswith("[2.00 ms]  @ /src/shop/pricing.py:42")
    narrow = failure_tree(snap, width=60)
    (discount,) = [line for line in narrow if "shop.discount(" in line]
    assert "@" not in discount and len(discount) <= 60


# -- source locations in the snapshot --------------------------------------------


def test_snapshot_sources_hold_the_traced_names_present(
    start_recording: Any, tmp_path: Path
) -> None:
    def located() -> int:
        return 1

    def absent() -> int:
        return 2

    note_source("tests.located", located.__code__)
    note_source("tests.absent", absent.__code__)
    start_recording()
    with instrument.span("tests.located"):
        pass
    snap = instrument.snapshot()
    line = located.__code__.co_firstlineno
    assert snap.sources == {"tests.located": f"{__file__}:{line}"}
    path = write_snapshot(snap, tmp_path / "s", "json")
    assert Snapshot.load(path).sources == snap.sources
    shown = _show(path)
    assert f"→ tests.located  @ {__file__}:{line}" in shown
    page = html.read_data(write_snapshot(snap, tmp_path / "s", "html"))
    assert page["snapshot"]["sources"] == snap.sources


def _show(path: Path, *args: str) -> str:
    import contextlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["show", str(path), "--no-header", "--color", "never", *args])
    assert code == 0
    return out.getvalue()


# -- one time origin ---------------------------------------------------------------


def test_the_time_origin_is_the_same_in_the_four_views(tmp_path: Path) -> None:
    """Terminal section, ringtrace show, HTML and Perfetto, from one snapshot:
    the failure is at time zero in each, and an event 2.5 ms before it at -2.5 ms."""
    events = [
        *call(-2.5, 1, "work"),
        failure(),
        event(3, "late", tid=WORKER),  # after the failure: later than the origin
    ]
    snap = snapshot(events)
    assert snap.origin == T0 != snap.events[-1].timestamp != snap.taken_at

    # the terminal section
    text = section_text(snap, counts=summary(snap), paths={}, tail=20, phase="call")
    (work,) = [line for line in text.splitlines() if "work()" in line]
    (marker,) = [line for line in text.splitlines() if ">>> FAILURE" in line]
    assert work.split()[0] == "-2.500" and marker.split()[0] == "+0.000"
    flat = section_text(snap, counts=summary(snap), paths={}, tail=20, view="flat")
    assert re.search(r"^\s*\+0\.000 ms  MainThread  >>> FAILURE", flat, re.M)
    assert re.search(r"^\s*-2\.500 ms  MainThread  -> work", flat, re.M)

    # ringtrace show, from the JSON file (origin_ns kept by the format)
    path = write_snapshot(snap, tmp_path / "s", "json")
    assert Snapshot.load(path).origin_ns == T0
    shown = _show(path).splitlines()
    assert next(line for line in shown if "test.failure" in line).split()[0] == "+0.000000"
    assert next(line for line in shown if "→ work" in line).split()[0] == "-0.002500"
    assert next(line for line in shown if "late" in line).split()[0] == "+0.003000"
    tree = _show(path, "--tree")
    assert re.search(r"^\s*-2\.500 ms  work\(\)", tree, re.M), tree

    # HTML: times in the page are ns after base_ns, the origin
    data = html.read_data(write_snapshot(snap, tmp_path / "s", "html"))
    assert data["snapshot"]["base_ns"] == str(T0)
    names = data["names"]
    times = {names[row[2]]: row[0] for row in data["events"] if data["kinds"][row[1]] != "exit"}
    assert times == {"work": -2_500_000, FAILURE: 0, "late": 3_000_000}
    assert html.read_html(tmp_path / "s.html").origin_ns == T0

    # Perfetto: ts in microseconds after otherData.origin_ns
    out = io.BytesIO()
    perfetto.write(snap, out)
    trace = json.loads(out.getvalue())
    assert trace["otherData"]["origin_ns"] == T0
    ts = {e["name"]: e["ts"] for e in trace["traceEvents"] if e["ph"] in ("B", "i")}
    assert (ts["work"], ts[FAILURE], ts["late"]) == (-2500.0, 0.0, 3000.0)


def test_outside_pytest_the_origin_is_the_moment_of_the_snapshot(start_recording: Any) -> None:
    start_recording()
    instrument.event("x")
    snap = instrument.snapshot()
    assert snap.origin_ns == snap.taken_at == snap.origin


def test_an_old_file_without_origin_reads_as_taken_at(tmp_path: Path) -> None:
    snap = snapshot([*call(-1, 0.5, "work")], origin_ns=None)
    path = write_snapshot(snap, tmp_path / "old", "json")
    doc = json.loads(path.read_text())
    del doc["origin_ns"], doc["sources"]
    path.write_text(json.dumps(doc))
    loaded = Snapshot.load(path)
    assert loaded.origin_ns is None and loaded.origin == loaded.taken_at


@pytest.mark.parametrize("bad", [{"a": 1}, [1]])
def test_bad_sources_are_refused(tmp_path: Path, bad: Any) -> None:
    path = write_snapshot(snapshot([]), tmp_path / "s", "json")
    doc = json.loads(path.read_text())
    doc["sources"] = bad
    path.write_text(json.dumps(doc))
    with pytest.raises(instrument.SnapshotFileError, match="sources"):
        Snapshot.load(path)


# -- in pytest ------------------------------------------------------------------


def test_the_plugin_records_the_failure_as_an_event_and_the_origin(
    pytester: pytest.Pytester,
) -> None:
    from plugin_helpers import FAST, artifact_files, make_app, section

    make_app(pytester)
    pytester.makepyfile(
        test_f="""
        import threading
        from app import on_thread, step

        def fixture_free():
            return 1

        def test_fails():
            step(1)
            on_thread("helper", 2)
            value = step(3)
            assert value == 4
        """
    )
    result = pytester.runpytest("--ringtrace", *FAST)
    result.assert_outcomes(failed=1)
    (path,) = artifact_files(pytester)
    snap = Snapshot.load(path)
    meta = snap.metadata
    assert snap.origin_ns == meta["failure_ns"]
    (fail,) = [ev for ev in snap.events if ev.name == FAILURE]
    assert fail.timestamp == snap.origin_ns and fail.thread_name == "MainThread"
    assert fail.fields["type"] == "AssertionError"
    assert fail.fields["message"].startswith("assert 3 == 4")
    assert fail.fields["where"] == f"{pytester.path / 'test_f.py'}:11"
    # after the test's last recorded event, before the snapshot was taken
    before = [ev for ev in snap.events if ev.name != FAILURE]
    assert before[-1].timestamp < fail.timestamp < snap.taken_at
    assert meta["setup_start_ns"] <= meta["call_start_ns"] < before[0].timestamp
    text = section(result.stdout.str(), "ringtrace call")
    lines = text.splitlines()
    assert lines[3] == "MainThread (failing):"
    assert re.search(r"ms  app\.step\(n=3\)  \[\d", text), text  # fields=["n"]: no return value
    assert "helper (during the test):" in lines
    (marker,) = [line for line in lines if ">>> FAILURE" in line]
    assert marker.endswith(">>> FAILURE at test_f.py:11: AssertionError: assert 3 == 4")
    assert lines.index(marker) > lines.index("MainThread (failing):")

    # the filters of ringtrace show, as options
    result = pytester.runpytest("--ringtrace", *FAST, "--ringtrace-thread=helper")
    text = section(result.stdout.str(), "ringtrace call")
    assert "app.step(n=2)" in text and "app.step(n=3)" not in text and ">>> FAILURE" in text
    result = pytester.runpytest("--ringtrace", *FAST, "--ringtrace-event=app.tick")
    text = section(result.stdout.str(), "ringtrace call")
    assert "* app.tick n=3" in text and "app.step(" not in text
    result = pytester.runpytest("--ringtrace", *FAST, "--ringtrace-view=sideways")
    assert "--ringtrace-view: expected 'tree' or 'flat', got 'sideways'" in result.stderr.str()


# -- asyncio task lanes -----------------------------------------------------------


def _two_tasks(start_recording: Any) -> Snapshot:
    import asyncio

    start_recording()

    async def fetch(n: int) -> None:
        async with instrument.span("fetch", n=n):
            await asyncio.sleep(0)
            await asyncio.sleep(0)

    async def main() -> None:
        instrument.event("main.start")
        await asyncio.gather(
            asyncio.create_task(fetch(1), name="Task-a"),
            asyncio.create_task(fetch(2), name="Task-b"),
        )

    asyncio.run(main())
    return instrument.snapshot()


def test_html_and_perfetto_show_task_lanes_under_their_thread(
    start_recording: Any, tmp_path: Path
) -> None:
    snap = _two_tasks(start_recording)
    tasks = {ev.context.get("task") for ev in snap.events if ev.name == "fetch"}
    assert tasks == {"Task-a", "Task-b"}

    data = html.read_data(write_snapshot(snap, tmp_path / "t", "html"))
    lanes = data["lanes"]
    by_task = {lane.get("task"): i for i, lane in enumerate(lanes) if lane.get("task")}
    assert set(by_task) >= {"Task-a", "Task-b"}
    for i in by_task.values():
        parent = lanes[lanes[i]["parent"]]
        assert parent["thread_name"] == "MainThread" and "task" not in parent
    # each task's span pairs within its task: one complete span per task lane
    names = data["names"]
    spans = [sp for sp in data["spans"] if names[sp[7]] == "fetch"]
    assert sorted(sp[0] for sp in spans) == sorted([by_task["Task-a"], by_task["Task-b"]])
    assert all(sp[6] == 0 and sp[3] >= 0 and sp[4] >= 0 for sp in spans)  # no flags: paired
    assert html.read_html(tmp_path / "t.html") == snap  # the task lanes read back as events

    out = io.BytesIO()
    perfetto.write(snap, out)
    trace = json.loads(out.getvalue())["traceEvents"]
    named = {e["args"]["name"]: e["tid"] for e in trace if e["name"] == "thread_name"}
    sort = {e["tid"]: e["args"]["sort_index"] for e in trace if e["name"] == "thread_sort_index"}
    thread = named["MainThread"]
    for task in ("Task-a", "Task-b"):
        tid = named[f"MainThread · task {task}"]
        assert thread * 1000 < sort[tid] < (thread + 1) * 1000  # right under its thread
        begins = [e for e in trace if e["ph"] == "B" and e["tid"] == tid]
        ends = [e for e in trace if e["ph"] == "E" and e["tid"] == tid]
        assert [e["name"] for e in begins] == [e["name"] for e in ends] == ["fetch"]
        assert "ringtrace" not in ends[0]["args"]  # a real exit, not one made up


def test_show_names_the_failure_and_swallowed_exceptions(tmp_path: Path) -> None:
    handled = event(
        -3,
        "exception.handled",
        type="KeyError",
        message="'timeout'",
        where="/src/conf.py:12",
        function="load",
    )
    snap = snapshot([*call(-5, 4, "load"), handled, failure()])
    path = write_snapshot(snap, tmp_path / "s", "json")
    lines = _show(path).splitlines()
    assert any(
        line.endswith(
            "· exception.handled  swallowed KeyError: 'timeout' (at /src/conf.py:12 in load)"
        )
        for line in lines
    ), lines
    assert lines[-1].endswith("· test.failure  AssertionError: assert 9 == 10 … (at t.py:7)")
    tree = failure_tree(snap)
    assert any(
        line.endswith("!! swallowed KeyError: \"'timeout'\" at /src/conf.py:12 in load")
        for line in tree
    ), tree


def test_long_arguments_are_cut_before_the_return_value_and_duration() -> None:
    events = [*call(-5, 2, "pkg.total", ret=9504, lines="x" * 500), failure()]
    (line,) = [line for line in failure_tree(snapshot(events), width=120) if "pkg.total(" in line]
    assert len(line) <= 120
    assert line.endswith("…) -> 9504  [2.00 ms]"), line
