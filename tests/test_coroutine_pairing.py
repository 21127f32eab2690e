"""Overlapping coroutines on one thread: every view pairs each exit with its
own coroutine's entry (by name and entry timestamp), never last in, first
out. Three jobs of 60, 20 and 40 ms start in that order on one thread; the
first one started must show the longest duration everywhere."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from coroutine_helpers import run_jobs

from instrument import Snapshot
from instrument.formats import write_snapshot
from instrument.formats.html import read_data
from instrument.model import span_start
from instrument.view.stats import pair_spans


@pytest.fixture(params=["wrapt", "sysmon"])
def engine(request: pytest.FixtureRequest) -> Any:
    if request.param == "sysmon":
        if not hasattr(sys, "monitoring"):
            pytest.skip("sys.monitoring is 3.12+")
        request.getfixturevalue("sysmon")
    return request.param


def overlapping() -> Snapshot:
    async def job(delay: float) -> float:
        await asyncio.sleep(delay)
        return delay

    return run_jobs(job)


def in_start_order(durations: dict[int, int]) -> list[int]:
    return [durations[start] for start in sorted(durations)]


def check(durations: list[int]) -> None:
    """60, 20, 40 ms in start order: the order of the delays, not swapped."""
    assert len(durations) == 3
    ranked = sorted(range(3), key=lambda i: durations[i])
    assert ranked == [1, 2, 0], durations


def test_records_carry_their_entry_timestamp(engine: str) -> None:
    snap = overlapping()
    jobs = [ev for ev in snap.events if ev.name == "job"]
    starts = {ev.timestamp for ev in jobs if ev.kind == "entry"}
    assert len(starts) == 3
    assert all(span_start(ev) in starts for ev in jobs)
    # on both engines, each await that yields to the loop is a suspension and
    # a resumption of its own coroutine
    assert [ev.kind for ev in jobs].count("suspend") == 3
    assert {ev.kind for ev in jobs} == {"entry", "suspend", "resume", "exit"}


def test_stats_pair_each_coroutine_with_its_own_entry(engine: str) -> None:
    snap = overlapping()
    pairs = [(d, entry) for d, _exit, entry in pair_spans(snap) if entry and entry.name == "job"]
    check(in_start_order({entry.timestamp: d for d, entry in pairs}))


def test_html_bars_pair_each_coroutine_with_its_own_entry(engine: str, tmp_path: Path) -> None:
    snap = overlapping()
    data = read_data(write_snapshot(snap, tmp_path / "t", "html"))
    names = data["names"]
    spans = [s for s in data["spans"] if names[s[7]] == "job"]
    check(in_start_order({s[1]: s[2] - s[1] for s in spans}))


def test_perfetto_slices_pair_each_coroutine_with_its_own_entry(
    engine: str, tmp_path: Path
) -> None:
    snap = overlapping()
    trace_events = json.loads(write_snapshot(snap, tmp_path / "t", "perfetto").read_text())
    items = [e for e in trace_events["traceEvents"] if e.get("name") == "job"]
    begun: dict[str, float] = {}
    stacks: dict[int, list[float]] = {}  # B/E nest per track
    durations: dict[float, float] = {}
    for item in items:
        phase = item["ph"]
        if phase == "b":
            begun[item["id"]] = item["ts"]
        elif phase == "e":
            start = begun.pop(item["id"])
            durations[start] = item["ts"] - start
        elif phase == "B":
            stacks.setdefault(item["tid"], []).append(item["ts"])
        elif phase == "E":
            start = stacks[item["tid"]].pop()
            durations[start] = item["ts"] - start
    check([durations[start] for start in sorted(durations)])


def test_the_terminal_shows_each_exit_with_its_own_duration(engine: str) -> None:
    from instrument.view.render import describe_fields as describe

    snap = overlapping()
    entries = sorted(ev.timestamp for ev in snap.events if ev.name == "job" and ev.kind == "entry")
    exits = {
        span_start(ev): describe(ev) for ev in snap.events if ev.name == "job" and ev.kind == "exit"
    }
    shown = [exits[start] for start in entries]
    assert all(text.startswith("(") and "ms)" in text for text in shown), shown


def test_the_failure_view_tree_pairs_each_coroutine_with_its_own_entry(engine: str) -> None:
    from instrument.view.tree import Call, build_lanes

    snap = overlapping()
    calls = [
        node
        for nodes in build_lanes(snap.events).values()
        for node in nodes
        if isinstance(node, Call) and node.name == "job"
    ]
    durations = {
        c.entry.timestamp: c.exit.fields["duration_ns"]
        for c in calls
        if c.entry is not None and c.exit is not None
    }
    for c in calls:
        if c.entry is not None and c.exit is not None:
            assert span_start(c.exit) == c.entry.timestamp
    check(in_start_order(durations))
