"""When a span that suspends really ran: :func:`instrument.model.activity`,
the one definition of a generator's or coroutine's running and suspended
stretches, and every view that shows them (``ringtrace stats``, the failure
view's tree, Perfetto, the HTML timeline)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from coroutine_helpers import DELAYS, run_jobs
from hypothesis import given
from hypothesis import strategies as st

import instrument
from instrument import Snapshot, trace
from instrument.formats import write_snapshot
from instrument.formats.html import read_data
from instrument.model import (
    RUNNING,
    SUSPENDED,
    UNKNOWN,
    Activity,
    Event,
    StreamInfo,
    activity,
    marks_by_span,
)
from instrument.view import stats as stats_view
from instrument.view.render import format_duration
from instrument.view.tree import Call, FailureView, build_lanes

ENGINES = ["wrapt"] + (["sysmon"] if instrument.engines.sysmon_available() is None else [])


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    before = instrument.engines.setting()
    instrument.engines.use(request.param)
    yield request.param
    instrument.engines.use(before)


# -- the definition --------------------------------------------------------------


def test_a_span_runs_from_entry_and_resumptions_to_suspensions_and_exit() -> None:
    act = activity(0, 100, [(10, "suspend"), (40, "resume"), (50, "suspend"), (90, "resume")])
    assert act == Activity(
        (
            (0, 10, RUNNING),
            (10, 40, SUSPENDED),
            (40, 50, RUNNING),
            (50, 90, SUSPENDED),
            (90, 100, RUNNING),
        ),
        2,
    )
    assert act.ran_ns == 30 and act.total(SUSPENDED) == 70 and act.unknown_ns == 0


def test_no_marks_means_one_stretch_as_drawn_today() -> None:
    assert activity(0, 100, []) is None
    assert activity(0, 100, [], entry=False) is None


def test_still_suspended_at_the_snapshot_or_at_the_exit() -> None:
    # a coroutine waiting when the snapshot was taken (end: the snapshot), or
    # a generator closed at its yield: suspended up to the end
    act = activity(0, 100, [(10, "suspend")])
    assert act is not None and act.stretches == ((0, 10, RUNNING), (10, 100, SUSPENDED))
    assert act.suspensions == 1


def test_an_entry_older_than_the_snapshot_leaves_its_start_unknown() -> None:
    act = activity(0, 100, [(30, "resume"), (60, "suspend"), (70, "resume")], entry=False)
    assert act is not None
    assert act.stretches == (
        (0, 30, UNKNOWN),
        (30, 60, RUNNING),
        (60, 70, SUSPENDED),
        (70, 100, RUNNING),
    )
    assert act.ran_ns == 60 and act.unknown_ns == 30
    act = activity(0, 100, [(30, "suspend")], entry=False)
    assert act is not None and act.stretches == ((0, 30, UNKNOWN), (30, 100, SUSPENDED))


def test_a_lost_record_between_two_makes_the_stretch_unknown() -> None:
    # a resumption without a suspension before it (the suspension was in a
    # skipped sub-buffer), and two suspensions in a row
    act = activity(0, 100, [(20, "resume"), (50, "suspend")])
    assert act is not None
    assert act.stretches == ((0, 20, UNKNOWN), (20, 50, RUNNING), (50, 100, SUSPENDED))
    act = activity(0, 100, [(20, "suspend"), (50, "suspend"), (60, "resume")])
    assert act is not None
    assert act.stretches == (
        (0, 20, RUNNING),
        (20, 50, UNKNOWN),
        (50, 60, SUSPENDED),
        (60, 100, RUNNING),
    )
    assert act.suspensions == 2


@pytest.mark.parametrize(
    "marks",
    [
        [(50, "suspend"), (40, "resume")],  # time going back
        [(-1, "suspend")],  # before the span
        [(101, "suspend")],  # after it
        [(50, "entry")],  # not a mark
        [(50.5, "suspend")],  # not a timestamp
    ],
)
def test_a_sequence_no_span_can_have_gives_the_whole_span(marks: list[Any]) -> None:
    assert activity(0, 100, marks) is None


def test_stretches_of_no_length_are_left_out() -> None:
    act = activity(0, 100, [(0, "suspend"), (30, "resume"), (30, "suspend"), (100, "resume")])
    assert act is not None
    assert act.stretches == ((0, 100, SUSPENDED),) and act.suspensions == 2


@given(
    st.integers(0, 50),
    st.integers(0, 50),
    st.lists(st.tuples(st.integers(-5, 110), st.sampled_from(["suspend", "resume", "exit"]))),
    st.booleans(),
)
def test_any_sequence_gives_contiguous_stretches_or_none(
    start: int, length: int, marks: list[tuple[int, str]], entry: bool
) -> None:
    end = start + length
    act = activity(start, end, marks, entry)
    if act is None:
        return
    assert act.stretches, marks
    assert act.stretches[0][0] == start and act.stretches[-1][1] == end
    assert all(a < b for a, b, _ in act.stretches)
    assert all(prev[1] == nxt[0] and prev[2] != nxt[2] for prev, nxt in pairwise(act.stretches))
    assert act.ran_ns + act.total(SUSPENDED) + act.unknown_ns == length
    assert act.suspensions == sum(kind == "suspend" for _, kind in marks)


def test_marks_are_found_by_span_identity() -> None:
    def ev(ts: int, kind: str, **fields: Any) -> Event:
        return Event(ts, "job", kind, 1, "main", fields, {}, "default", ts)

    events = [
        ev(0, "entry"),
        ev(5, "entry"),
        ev(10, "suspend", duration_ns=10),
        ev(12, "suspend", duration_ns=7),
        ev(20, "resume", duration_ns=20),
        ev(30, "resume", duration_ns=25),
        ev(31, "suspend"),  # no identity: left out
    ]
    assert marks_by_span(events) == {
        ("job", 0): [(10, "suspend"), (20, "resume")],
        ("job", 5): [(12, "suspend"), (30, "resume")],
    }


# -- real coroutines, on each engine --------------------------------------------

BUSY = 0.001  # each job runs this long (time.sleep holds the thread) between awaits


def three_jobs() -> Snapshot:
    """Three coroutines that overlap on one thread: each runs BUSY, waits
    its delay, runs BUSY again."""

    async def job(delay: float) -> float:
        time.sleep(BUSY)
        await asyncio.sleep(delay)
        time.sleep(BUSY)
        return delay

    return run_jobs(job)


def job_activities(snap: Snapshot) -> dict[int, tuple[int, Activity]]:
    """Each job's wall time and activity, by entry time, as stats finds them."""
    marks = marks_by_span(snap.events)
    found = {}
    for pair in stats_view.pair_spans(snap):
        duration, exit_, entry = pair
        if entry is not None and entry.name == "job":
            act = stats_view.pair_activity(pair, marks, snap.taken_at)
            assert act is not None and exit_ is not None
            found[entry.timestamp] = (duration, act)
    return found


def test_three_overlapping_coroutines_ran_little_of_their_wall_time(engine: str) -> None:
    snap = three_jobs()
    found = job_activities(snap)
    assert len(found) == 3
    for (wall, act), delay in zip((found[t] for t in sorted(found)), DELAYS, strict=True):
        assert act.suspensions >= 1 and act.unknown_ns == 0
        assert act.stretches[0][2] == RUNNING and act.stretches[-1][2] == RUNNING
        assert act.ran_ns + act.total(SUSPENDED) == wall
        # it ran its two busy stretches at least, and was suspended at least
        # for its asyncio.sleep: most of its wall time
        assert act.ran_ns >= 2 * BUSY * 1e9
        assert act.total(SUSPENDED) >= 0.9 * delay * 1e9
        assert act.ran_ns <= wall - 0.9 * delay * 1e9
    # one thread: the coroutines took turns, their running stretches never overlap
    running = sorted(
        (a, b) for _, act in found.values() for a, b, state in act.stretches if state == RUNNING
    )
    assert len(running) >= 6
    assert all(end <= nxt for (_, end), (nxt, _) in pairwise(running))


def test_stats_show_ran_next_to_the_duration_and_per_name(engine: str) -> None:
    snap = three_jobs()
    figures = stats_view.compute(snap)
    (job,) = [n for n in figures.names if n.name == "job"]
    found = job_activities(snap)
    assert job.suspended == 3
    assert job.ran_ns == sum(act.ran_ns for _, act in found.values())
    assert job.ran_ns <= job.total_ns - 0.9 * sum(DELAYS) * 1e9
    spans = [s for s in figures.spans if s.name == "job"]
    assert sorted((s.duration_ns, s.ran_ns) for s in spans) == sorted(
        (wall, act.ran_ns) for wall, act in found.values()
    )
    # suspensions and resumptions are counted apart from point events
    (thread,) = figures.threads
    assert thread.pauses == sum(ev.kind in ("suspend", "resume") for ev in snap.events) >= 6
    assert thread.points == sum(ev.kind == "event" for ev in snap.events)
    text = "\n".join(stats_view.render(figures, snap))
    assert "suspend/resume" in text.splitlines()[3]
    header = next(line for line in text.splitlines() if line.startswith("name "))
    assert header.split()[-1] == "ran"
    assert "(suspended once)" in text or "(suspended 2x)" in text


def test_the_tree_says_ran_x_of_y(engine: str) -> None:
    snap = three_jobs()
    calls = [
        node
        for nodes in build_lanes(snap.events).values()
        for node in nodes
        if isinstance(node, Call) and node.name == "job"
    ]
    assert len(calls) == 3 and all(c.marks for c in calls)
    view = FailureView(snap)
    found = job_activities(snap)
    for call in calls:
        assert call.entry is not None
        wall, act = found[call.entry.timestamp]
        assert call.activity(snap.taken_at) == act
        text = view.exit_text(call)
        ran, of = format_duration(act.ran_ns), format_duration(wall)
        assert f"  (ran {ran} of {of}, suspended " in text, text


def test_a_generator_suspended_at_its_yield_is_suspended(engine: str) -> None:
    def numbers() -> Iterator[int]:
        yield 1
        yield 2

    traced = trace(name="numbers")(numbers)
    instrument.start()
    try:
        it = traced()
        next(it)
        time.sleep(BUSY)  # the consumer runs: the generator waits at its yield
        snap = instrument.snapshot()
        next(it)
        it.close()
    finally:
        instrument.stop()
    (pair,) = [p for p in stats_view.pair_spans(snap) if (p[2] or p[1]).name == "numbers"]  # type: ignore[union-attr]
    assert pair[1] is None  # still open at the snapshot
    act = stats_view.pair_activity(pair, marks_by_span(snap.events), snap.taken_at)
    assert act is not None and act.suspensions == 1
    assert [s for _, _, s in act.stretches] == [RUNNING, SUSPENDED]
    assert act.total(SUSPENDED) >= BUSY * 1e9
    (call,) = [
        n
        for nodes in build_lanes(snap.events).values()
        for n in nodes
        if isinstance(n, Call) and n.name == "numbers"
    ]
    assert "suspended at the snapshot" in FailureView(snap).exit_text(call)


# -- Perfetto ---------------------------------------------------------------------


def nest_per_id(
    items: list[dict[str, Any]], ties_reversed: bool = False
) -> dict[str, list[tuple[float, float, str]]]:
    """The async slices of a Chrome trace per id, checked to nest (every
    ``e`` ends the innermost open ``b`` of its id, by name), taking events
    at equal times in file order or its reverse."""
    items = [it for it in items if it["ph"] in ("b", "e")]
    order = sorted(range(len(items)), key=lambda i: (items[i]["ts"], -i if ties_reversed else i))
    open_: dict[str, list[tuple[str, float]]] = {}
    slices: dict[str, list[tuple[float, float, str]]] = {}
    for i in order:
        item = items[i]
        if item["ph"] == "b":
            open_.setdefault(item["id"], []).append((item["name"], item["ts"]))
        elif item["ph"] == "e":
            name, start = open_[item["id"]].pop()
            assert name == item["name"], (item, name)
            slices.setdefault(item["id"], []).append((start, item["ts"], name))
    assert not any(open_.values()), open_
    return slices


def perfetto_items(snap: Snapshot, tmp_path: Path) -> list[dict[str, Any]]:
    path = write_snapshot(snap, tmp_path / "t", "perfetto")
    items: list[dict[str, Any]] = json.loads(path.read_text())["traceEvents"]
    return items


def test_perfetto_shows_each_coroutine_running_on_a_track_of_its_own(
    engine: str, tmp_path: Path
) -> None:
    snap = three_jobs()
    found = job_activities(snap)
    items = perfetto_items(snap, tmp_path)
    for reverse in (False, True):
        slices = nest_per_id(items, reverse)
    running = {span_id: got for span_id, got in slices.items() if got[0][2] == "running: job"}
    assert len(running) == 3
    origin = snap.origin
    expected = sorted(
        [((a - origin) / 1000, (b - origin) / 1000) for a, b, s in act.stretches if s == RUNNING]
        for _, act in found.values()
    )
    assert sorted(sorted((a, b) for a, b, _ in got) for got in running.values()) == expected
    # one thread: never two running at once
    every = sorted((a, b) for got in running.values() for a, b, _ in got)
    assert all(end <= nxt for (_, end), (nxt, _) in pairwise(every))
    args = [it["args"] for it in items if it.get("name") == "running: job"]
    assert all(a["span"] == "job" and a["ran_ns"] < a["wall_ns"] for a in args)


def crossing_generators() -> Snapshot:
    """Two generators interleaved on one thread, the first ending while the
    second runs on: the first crosses it (an async slice in Perfetto)."""

    def numbers(n: int) -> Iterator[int]:
        for i in range(n):
            time.sleep(0.001)
            yield i

    traced = trace(name="numbers")(numbers)
    instrument.start()
    try:
        first, second = traced(2), traced(3)
        next(first)
        next(second)
        time.sleep(BUSY)
        assert list(first) == [1]
        assert list(second) == [1, 2]
        return instrument.snapshot()
    finally:
        instrument.stop()


def test_perfetto_nests_running_slices_in_a_crossing_spans_slice(
    engine: str, tmp_path: Path
) -> None:
    snap = crossing_generators()
    items = perfetto_items(snap, tmp_path)
    for reverse in (False, True):
        slices = nest_per_id(items, reverse)
    (crossing,) = [got for got in slices.values() if any(n == "numbers" for *_, n in got)]
    (outer,) = [(a, b) for a, b, n in crossing if n == "numbers"]
    inner = sorted((a, b) for a, b, n in crossing if n == "running")
    assert len(inner) == 3  # from its entry, its two resumptions, to its suspensions and exit
    assert all(outer[0] < a < b < outer[1] for a, b in inner)
    # the other one is a B/E bar with its running stretches on a track of their own
    own = [got for got in slices.values() if got[0][2] == "running: numbers"]
    assert len(own) == 1 and len(own[0]) == 4


def test_perfetto_without_suspensions_has_no_running_slices(tmp_path: Path) -> None:
    @trace(name="plain")
    def plain() -> int:
        return 1

    instrument.start()
    try:
        plain()
        snap = instrument.snapshot()
    finally:
        instrument.stop()
    items = perfetto_items(snap, tmp_path)
    assert not [it for it in items if str(it.get("name", "")).startswith("running")]


# -- the HTML timeline ------------------------------------------------------------------


def test_the_html_model_has_each_coroutines_stretches(engine: str, tmp_path: Path) -> None:
    snap = three_jobs()
    found = job_activities(snap)
    data = read_data(write_snapshot(snap, tmp_path / "t", "html"))
    spans, names = data["spans"], data["names"]
    assert len(data["activity"]) == 3
    base = snap.origin
    for index, suspensions, flat in data["activity"]:
        span = spans[index]
        assert names[span[7]] == "job"
        _wall, act = found[span[1] + base]
        assert suspensions == act.suspensions
        codes = {RUNNING: 0, SUSPENDED: 1, UNKNOWN: 2}
        expected = [v for a, b, s in act.stretches for v in (a - base, b - base, codes[s])]
        assert flat == expected


T0 = 5_000_000_000  # a monotonic time for hand-made snapshots
US = 1000

# (time in us, span, kind, its entry's time for a suspension, resumption or exit)
EDGES: list[tuple[int, str, str, int | None]] = [
    (0, "lost", "suspend", -100),  # its entry, at -100 us, is not in the snapshot
    (10, "whole", "entry", None),
    (20, "whole", "suspend", 10),
    (20, "plain", "entry", None),  # never suspends: no stretches
    (30, "plain", "exit", 20),
    (40, "lost", "resume", -100),
    (60, "back", "entry", None),
    (70, "odd", "entry", None),
    (80, "whole", "resume", 10),
    (90, "odd", "resume", 70),  # a resumption without its suspension (lost)
    (100, "back", "exit", 60),
    (110, "whole", "suspend", 10),
    (120, "lost", "exit", -100),
    (130, "odd", "suspend", 70),
    (140, "open", "entry", None),
    (150, "back", "suspend", 60),  # after its exit: no span has that, drawn whole
    (160, "open", "suspend", 140),  # still suspended when the snapshot is taken
    (170, "odd", "exit", 70),  # ended while suspended (closed at its yield)
    (175, "whole", "resume", 10),
    (180, "whole", "exit", 10),
]
TAKEN_US = 200

# What activity() makes of them, in us (the page ends an open span at the snapshot).
EDGE_STRETCHES = {
    "lost": (1, [(-100, 0, UNKNOWN), (0, 40, SUSPENDED), (40, 120, RUNNING)]),
    "whole": (
        2,
        [
            (10, 20, RUNNING),
            (20, 80, SUSPENDED),
            (80, 110, RUNNING),
            (110, 175, SUSPENDED),
            (175, 180, RUNNING),
        ],
    ),
    "odd": (1, [(70, 90, UNKNOWN), (90, 130, RUNNING), (130, 170, SUSPENDED)]),
    "open": (1, [(140, 160, RUNNING), (160, TAKEN_US, SUSPENDED)]),
}


def handmade_suspensions() -> Snapshot:
    """Spans that suspended, as a window on the rings may show them (EDGES)."""
    events = [
        Event(
            T0 + us * US,
            name,
            kind,
            1,
            "MainThread",
            {} if began is None else {"duration_ns": (us - began) * US},
            {},
            "default",
            i,
        )
        for i, (us, name, kind, began) in enumerate(EDGES)
    ]
    info = StreamInfo(
        "default", 1, "MainThread", True, "overwrite", 64, 4, len(events), 0, len(events) - 1
    )
    return Snapshot(events=events, streams=[info], clock_offset_ns=0, taken_at=T0 + TAKEN_US * US)


def shown_activity(data: dict[str, Any]) -> dict[str, tuple[int, list[tuple[int, int, str]]]]:
    """The timeline's ``activity`` by span name, in us from T0."""
    names, spans = data["names"], data["spans"]
    states = [RUNNING, SUSPENDED, UNKNOWN]
    base = (TAKEN_US * US) if data["snapshot"]["base_ns"] == str(T0 + TAKEN_US * US) else None
    assert base is not None
    return {
        names[spans[i][7]]: (
            n,
            [
                ((flat[j] + base) // US, (flat[j + 1] + base) // US, states[flat[j + 2]])
                for j in range(0, len(flat), 3)
            ],
        )
        for i, n, flat in data["activity"]
    }


def test_the_html_model_follows_the_definition_at_the_windows_edges(tmp_path: Path) -> None:
    data = read_data(write_snapshot(handmade_suspensions(), tmp_path / "t", "html"))
    assert shown_activity(data) == EDGE_STRETCHES
    # the same spans as without suspensions: they pair as before
    names = sorted(data["names"][s[7]] for s in data["spans"])
    assert names == ["back", "lost", "odd", "open", "plain", "whole"]


def test_stats_and_the_tree_follow_the_definition_at_the_windows_edges() -> None:
    snap = handmade_suspensions()
    marks = marks_by_span(snap.events)
    found = {}
    for pair in stats_view.pair_spans(snap):
        name = (pair[1] or pair[2]).name  # type: ignore[union-attr]
        act = stats_view.pair_activity(pair, marks, snap.taken_at)
        if act is not None:
            found[name] = (
                act.suspensions,
                [((a - T0) // US, (b - T0) // US, s) for a, b, s in act.stretches],
            )
    assert found == EDGE_STRETCHES
    figures = stats_view.compute(snap)
    ran = {s.name: (s.ran_ns, s.unknown_ns > 0) for s in figures.spans}
    assert ran["lost"] == (80 * US, True) and ran["whole"] == (45 * US, False)
    assert ran["plain"] == (None, False) and ran["back"] == (None, False)
    view = FailureView(snap)
    calls: dict[str, Call] = {}
    todo = [n for nodes in build_lanes(snap.events).values() for n in nodes]
    while todo:
        node = todo.pop()
        if isinstance(node, Call):
            calls[node.name] = node
            todo += node.children
    assert "(ran ≥80.0 us of 220.0 us, suspended once)" in view.exit_text(calls["lost"])
    assert "(ran 45.0 us of 170.0 us, suspended 2 times)" in view.exit_text(calls["whole"])
    assert "no exit: suspended at the snapshot" in view.exit_text(calls["open"])
    assert "(ran " not in view.exit_text(calls["back"]) + view.exit_text(calls["plain"])


def test_perfetto_follows_the_definition_at_the_windows_edges(tmp_path: Path) -> None:
    items = perfetto_items(handmade_suspensions(), tmp_path)
    for reverse in (False, True):
        slices = nest_per_id(items, reverse)
    running = {
        got[0][2].removeprefix("running: "): sorted((a + TAKEN_US, b + TAKEN_US) for a, b, _ in got)
        for got in slices.values()
        if got[0][2].startswith("running: ")
    }
    expected = {
        name: [(a, b) for a, b, state in stretches if state == RUNNING]
        for name, (_, stretches) in EDGE_STRETCHES.items()
    }
    # what the records cannot tell (before the first record of "lost") is
    # not drawn as running; "back" (a suspension after its exit) has none
    assert running == expected
