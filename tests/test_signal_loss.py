"""Nothing recorded is lost to a signal.

An exception raised from a signal handler between a write's reserve and its
commit (pytest-timeout's signal method, an alarm) abandons that position for
good. It must cost that record only, counted as lost, never the records
around it; a writer really still in a sub-buffer is still skipped whole.
Ground truth: with a ring that never wraps, every position the ring lacks
below ``produced`` was abandoned.
"""

from __future__ import annotations

import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_format_ctf import babeltrace2, run_babeltrace

import instrument
from instrument import Channel, Recorder, Snapshot, StreamInfo
from instrument.formats import write_snapshot
from instrument.stream import Stream

__all__ = ["babeltrace2"]  # a fixture, used by name

SIZE = 64
COUNT = 16


class Interrupted(Exception):
    """What the alarm's handler raises (as pytest-timeout raises Failed)."""


class Timeout(BaseException):
    """Like pytest-timeout's Failed: not an Exception."""


def my_stream(rec: Recorder) -> Stream:
    me = threading.get_ident()
    (found,) = [s for s in rec.streams() if s.thread_id == me]
    return found


class RaisingRing(deque):  # type: ignore[type-arg]
    """A ring whose appends at chosen positions raise instead of committing,
    as when a signal handler raises between a writer's reserve and commit."""

    def __init__(self, ring: deque[Any], fail_at: set[int]):
        super().__init__(ring, ring.maxlen)
        self.fail_at = fail_at

    def append(self, record: Any) -> None:
        if record[0] in self.fail_at:
            raise Interrupted(record[0])
        super().append(record)


def install(stream: Stream, ring: deque[Any]) -> None:
    stream.ring = ring
    instrument.hotpath._local.routes.clear()  # cached writer pairs were bound to the old ring


def write_through(n: int, exc: type[BaseException] = Interrupted) -> int:
    """Write ``n`` events, going on after each interruption; the interruptions."""
    hit = 0
    for i in range(n):
        try:
            instrument.event("e", i=i)
        except exc:
            hit += 1
    return hit


def assert_only_abandoned_lost(rec: Recorder, stream: Stream) -> set[int]:
    """Every record the ring holds is in the snapshot; the positions it
    lacks are exactly the lost ones, one-record gaps; returns them."""
    produced = stream.produced()
    assert produced <= stream.capacity  # the ring never wrapped: ground truth
    held = {r[0] for r in stream.ring}
    missing = set(range(produced)) - held
    snap = instrument.snapshot()
    (info,) = snap.streams
    assert [ev.position for ev in snap.events] == sorted(held)
    assert snap.lost == info.skipped == len(missing)
    assert info.skipped_subbufs == 0
    assert lost_positions(info) == missing
    assert len(snap.events) + snap.lost == produced
    return missing


@pytest.fixture(params=["overwrite", "discard"])
def rec(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    recorder = instrument.start(
        [Channel("c", subbuf_size=SIZE, num_subbuf=COUNT, mode=request.param)]
    )
    yield recorder
    instrument.stop()


#: The issue's ring: 65,536 events, long enough to write for many alarms.
BIG_SIZE, BIG_COUNT = 4096, 16


@pytest.fixture(params=["overwrite", "discard"])
def big(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    recorder = instrument.start(
        [Channel("c", subbuf_size=BIG_SIZE, num_subbuf=BIG_COUNT, mode=request.param)]
    )
    yield recorder
    instrument.stop()


def test_abandoned_positions_cost_their_records_only(rec: Recorder) -> None:
    write_through(1)
    stream = my_stream(rec)
    fail_at = {3, SIZE, SIZE + 1, 2 * SIZE - 1, 5 * SIZE + 7}
    install(stream, RaisingRing(stream.ring, fail_at))
    assert write_through(6 * SIZE) == len(fail_at)
    assert assert_only_abandoned_lost(rec, stream) == fail_at
    # the same at every later snapshot: nothing waits for them
    assert assert_only_abandoned_lost(rec, stream) == fail_at


def test_a_writer_in_progress_still_has_its_sub_buffer_skipped(rec: Recorder) -> None:
    write_through(SIZE + 3)
    stream = my_stream(rec)
    # the newest position reserved, its record not committed: a writer is in it
    if stream.overwrite:
        next(stream.counter)
    else:
        stream.pos += 1
    # read from another thread (a writer's own thread is not writing while it reads)
    snaps: list[Snapshot] = []
    reader = threading.Thread(target=lambda: snaps.append(instrument.snapshot()))
    reader.start()
    reader.join()
    (snap,) = snaps
    (info,) = [i for i in snap.streams if i.thread_id == threading.get_ident()]
    assert info.gaps == [(SIZE, 2 * SIZE)]
    assert [ev.position for ev in snap.events] == list(range(SIZE))
    # the same read from the writer's own thread: no writer can be in it
    (info,) = instrument.snapshot().streams
    assert info.gaps == [(SIZE + 3, SIZE + 4)]


def test_discard_mode_consumer_is_not_stuck_by_an_abandoned_position() -> None:
    rec = instrument.start([Channel("c", subbuf_size=SIZE, num_subbuf=2, mode="discard")])
    try:
        write_through(1)
        stream = my_stream(rec)
        install(stream, RaisingRing(stream.ring, {5}))
        write_through(2 * SIZE - 1)
        batches = list(instrument.consume())
        assert [len(b) for _, b in batches] == [SIZE - 1, SIZE]
        assert batches[0][0].gaps == [(5, 6)]
        # the ring has room again: nothing more is dropped
        write_through(2 * SIZE)
        assert stream.dropped == 0
        assert sum(len(b) for _, b in instrument.consume()) == 2 * SIZE
    finally:
        instrument.stop()


@pytest.fixture
def alarm() -> Iterator[Callable[[float, type[BaseException], bool], None]]:
    """``alarm(interval, exc, once)``: SIGALRM every ``interval`` seconds whose
    handler raises ``exc`` when it interrupts ``instrument.event`` (anywhere
    else it lets the program go on, so the test's own code stays in control);
    ``once``: it raises once, then the alarm stops."""
    previous = signal.getsignal(signal.SIGALRM)
    event_code = instrument.hotpath.event.__code__

    def start(interval: float, exc: type[BaseException], once: bool) -> None:
        def handler(signum: int, frame: Any) -> None:
            if frame is not None and frame.f_code is event_code:
                if once:
                    signal.setitimer(signal.ITIMER_REAL, 0, 0)
                raise exc("alarm")

        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, interval, interval)

    yield start
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    signal.signal(signal.SIGALRM, previous)


def spin(stream: Stream, limit: int) -> int:
    """Write until ``limit`` positions are reserved; the interruptions."""
    hits = 0
    while stream.produced() < limit:
        try:
            instrument.event("e", i=1)
        except Interrupted:
            hits += 1
    return hits


def lost_positions(info: StreamInfo) -> set[int]:
    return {p for start, end in info.gaps for p in range(start, end)}


Alarm = Callable[[float, type[BaseException], bool], None]


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timers (Windows)")
def test_an_alarm_every_half_millisecond_costs_only_the_abandoned_records(
    big: Recorder, alarm: Alarm
) -> None:
    write_through(1)
    stream = my_stream(big)
    alarm(0.0005, Interrupted, False)
    interrupted = spin(stream, BIG_SIZE * BIG_COUNT - 1)
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    missing = assert_only_abandoned_lost(big, stream)
    # each interruption after a reserve abandoned its position; the others
    # (before it) abandoned nothing
    assert len(missing) <= interrupted
    print(f"{interrupted} interruptions, {len(missing)} abandoned positions")


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timers (Windows)")
def test_a_timeout_alarm_keeps_the_newest_events(big: Recorder, alarm: Alarm) -> None:
    # pytest-timeout's signal method: one alarm raising a BaseException ends
    # the test's loop, and the failure's snapshot is taken at once
    write_through(1)
    stream = my_stream(big)
    rec = big
    timeouts = 0
    for _round in range(12):
        alarm(0.001, Timeout, True)
        try:
            for _ in range(BIG_SIZE):
                instrument.event("work", n=1)
        except Timeout:
            timeouts += 1
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        if stream.produced() > BIG_SIZE * (BIG_COUNT - 2):
            break
    # the failure's snapshot, on the thread the timeout interrupted: every
    # event committed before it is read, the newest included; at most the
    # record being written when each timeout struck is lost
    newest = max(r[0] for r in stream.ring)
    missing = assert_only_abandoned_lost(rec, stream)
    assert len(missing) <= timeouts
    snap = instrument.snapshot()
    assert snap.events[-1].position == newest
    assert lost_positions(snap.streams[0]) == missing
    assert timeouts > 0


def test_ctf_reports_abandoned_records_as_discarded_events(
    rec: Recorder, babeltrace2: str, tmp_path: Path
) -> None:
    write_through(1)
    stream = my_stream(rec)
    install(stream, RaisingRing(stream.ring, {2 * SIZE + 5, 2 * SIZE + 6}))
    write_through(4 * SIZE)
    snap = instrument.snapshot()
    assert snap.lost == 2
    trace = write_snapshot(snap, tmp_path / "holes", "ctf")
    result = run_babeltrace(babeltrace2, trace)
    assert len(result.stdout.splitlines()) == len(snap.events)
    assert "discarded 2 events" in result.stderr, result.stderr
