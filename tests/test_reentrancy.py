"""Re-entrancy: events emitted by code that runs in the middle of the kit's own.

A signal handler runs between any two bytecodes of the thread it interrupts,
so it can record an event while that thread is half-way through writing
another, creating its first stream, or holding the recorder's lock. A
field's ``__repr__`` runs while a snapshot converts it; a context provider
runs while an event is being written. None of these may corrupt a ring, lose
an event without counting it, raise, deadlock, or recurse without end.

Two kinds of test: a real ``SIGALRM`` timer firing at a high rate while the
main thread writes (the realistic case, random interruption points), and a
profile hook that records an event at *every* call and return inside the
kit (each point where CPython may run a pending signal handler, made
deterministic).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pytest

import instrument
from instrument import Channel, Recorder, Snapshot

KIT = os.path.dirname(instrument.__file__) + os.sep


def check_positions(snap: Snapshot, produced: dict[str, int]) -> None:
    """Every stream holds exactly the positions it produced, each once, and
    its timestamps rise with its positions (what the formats rely on)."""
    by_stream: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for ev in snap.events:
        by_stream.setdefault((ev.channel, ev.thread_id), []).append((ev.position, ev.timestamp))
    for info in snap.streams:
        assert info.gaps == [] and info.dropped == 0
        got = sorted(by_stream.get((info.channel, info.thread_id), []))
        positions = [p for p, _ in got]
        assert positions == list(range(info.overwritten, info.produced)), info
        stamps = [ts for _, ts in got]
        assert all(a <= b for a, b in pairwise(stamps)), "timestamps go back in a stream"
        # and so the snapshot's time order keeps each stream's position order
    for key, items in by_stream.items():
        in_snapshot_order = [p for p, _ in items]
        assert in_snapshot_order == sorted(in_snapshot_order), key
    assert {info.channel: info.produced for info in snap.streams} == produced


# -- a real signal, at a high rate -------------------------------------------


@instrument.trace(name="main.call")
def traced_call(i: int) -> int:
    return i


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_events_from_a_signal_handler_interrupting_writes_are_all_kept(
    start_recording: Callable[..., Recorder],
) -> None:
    start_recording(Channel("c", subbuf_size=256, num_subbuf=16))
    calls = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal calls
        calls += 1
        instrument.event("signal.event", n=calls)
        traced_call(calls)
        with instrument.span("signal.span"):
            pass

    written = 0
    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
        deadline = time.monotonic() + 3.0
        while calls < 3000 and time.monotonic() < deadline:
            for i in range(100):
                instrument.event("main.event", i=i)
                traced_call(i)
                with instrument.span("main.span", i=i):
                    pass
            written += 500
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    snap = instrument.snapshot()
    print(f"\nsignal handler ran {calls} times during {written} writes")
    assert calls >= 500  # the handler really did interrupt the writer, often
    # Every event of the main thread and of the handler took one position:
    # nothing was written over, nothing lost uncounted.
    check_positions(snap, {"c": written + 5 * calls})


# -- an interruption at every call and return inside the kit ----------------


@dataclass
class Interrupter:
    """A profile hook that records an event at each call/return in the kit.

    Like a signal handler, it runs in the middle of the kit's code on the
    same thread; unlike one, it runs at every such point, every time.
    """

    name: str = "interrupt"
    fired: int = 0
    errors: list[BaseException] = field(default_factory=list)

    def __call__(self, frame: Any, what: str, arg: Any) -> None:
        if frame.f_code.co_filename.startswith(KIT):
            self.fired += 1
            instrument.event(self.name, n=self.fired)


def run_interrupted(
    body: Callable[[], object], hook: Callable[..., None], name: str = "interrupted"
) -> threading.Thread:
    """Run ``body`` in a new thread under ``hook``; fail if it hangs or raises."""
    failures: list[BaseException] = []

    def target() -> None:
        sys.setprofile(hook)
        try:
            body()
        except BaseException as exc:
            failures.append(exc)
        finally:
            sys.setprofile(None)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "deadlock: the interrupted thread never finished"
    assert failures == []
    return thread


@instrument.trace
def plain(i: int) -> int:
    return i


@instrument.trace(fields=["i"], retval=True)
def with_fields(i: int) -> int:
    return i


@instrument.trace
def gen(n: int) -> Iterator[int]:
    yield from range(n)


def _events() -> int:
    for i in range(50):
        instrument.event("work", i=i)
    return 50


def _calls() -> int:
    for i in range(20):
        plain(i)
        with_fields(i)
    return 80


def _spans_and_generators() -> int:
    for i in range(10):
        with instrument.span("work.span", i=i):
            list(gen(3))
    return 100  # per span: its two ends, the generator's two and 3 suspensions and resumptions


WORKLOADS = {
    "events": _events,
    "traced calls": _calls,
    "spans and generators": _spans_and_generators,
}


@pytest.fixture(params=["one channel", "two channels", "dynamic context"])
def channels(request: pytest.FixtureRequest) -> list[Channel]:
    """The write paths: a plain stream, a route to two streams, a route with
    per-event context."""
    # Rings big enough for every interruption: capturing values at record
    # time makes calls the profile hook interrupts too.
    if request.param == "one channel":
        return [Channel("c", subbuf_size=4096, num_subbuf=4)]
    if request.param == "two channels":
        return [
            Channel("c", subbuf_size=4096, num_subbuf=4),
            Channel("d", subbuf_size=4096, num_subbuf=4),
        ]
    return [Channel("c", subbuf_size=4096, num_subbuf=4, contexts=("thread", "task"))]


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_an_event_at_every_interruption_point_is_recorded_without_corruption(
    start_recording: Callable[..., Recorder], channels: list[Channel], workload: str
) -> None:
    """From the thread's very first event (stream creation, the recorder's
    lock) through the steady hot path: no deadlock, no exception, every
    event at its own position, one stream per channel for the thread."""
    rec = start_recording(*channels)
    hook = Interrupter()
    thread = run_interrupted(WORKLOADS[workload], hook)
    expected = WORKLOADS[workload]()  # the count, run again uninterrupted on this thread
    assert hook.fired > expected  # interrupted at many points of every write

    snap = instrument.snapshot(recorder=rec)
    mine = [s for s in snap.streams if s.thread_id == thread.ident]
    assert sorted(s.channel for s in mine) == sorted(c.name for c in channels)
    assert all(not s.alive for s in mine)  # it ended, and was noticed once
    mine_snap = Snapshot(
        events=[ev for ev in snap.events if ev.thread_id == thread.ident],
        streams=mine,
        clock_offset_ns=snap.clock_offset_ns,
        taken_at=snap.taken_at,
    )
    check_positions(mine_snap, {c.name: expected + hook.fired for c in channels})
    for chan in channels:
        events = [ev for ev in mine_snap.events if ev.channel == chan.name]
        fired = [ev.fields["n"] for ev in events if ev.name == "interrupt"]
        assert sorted(fired) == list(range(1, hook.fired + 1))


@dataclass
class InterruptOnce:
    """A profile hook that records one event at the ``at``-th call or return
    inside the kit, as one signal arriving at that moment would."""

    at: int
    seen: int = 0
    where: str = ""

    def __call__(self, frame: Any, what: str, arg: Any) -> None:
        if frame.f_code.co_filename.startswith(KIT):
            self.seen += 1
            if self.seen == self.at:
                self.where = f"{what} in {frame.f_code.co_name}"
                instrument.event("interrupt")


def test_one_interruption_anywhere_in_a_threads_first_event(
    start_recording: Callable[..., Recorder],
) -> None:
    """The first event of a thread creates its stream and takes the
    recorder's lock to register it; a handler recording at any point of that
    must neither deadlock, nor raise, nor leave the thread two streams."""
    rec = start_recording(Channel("c", subbuf_size=16, num_subbuf=4), max_dead_streams=1000)
    points = InterruptOnce(at=0)
    run_interrupted(lambda: instrument.event("first"), points)  # counts the points
    assert points.seen > 5
    for at in range(1, points.seen + 1):
        hook = InterruptOnce(at=at)
        run_interrupted(lambda: instrument.event("first"), hook, name=f"t{at}")
        assert hook.where, at
        streams = [s for s in rec.streams() if s.thread_name == f"t{at}"]
        assert len(streams) == 1, f"{len(streams)} streams after an interruption at {hook.where}"
        (stream,) = streams
        assert stream.produced() == 2, hook.where
        records = sorted(stream.ring)  # every committed record, by position
        assert sorted(r[2] for r in records) == ["first", "interrupt"], hook.where
        assert [r[0] for r in records] == [0, 1], hook.where


# -- a field's __repr__ that records, during a snapshot ------------------------


class Noisy:
    """A field value whose ``repr`` records an event (and can say so)."""

    def __init__(self) -> None:
        self.reprs = 0

    def __repr__(self) -> str:
        self.reprs += 1
        instrument.event("repr.called", n=self.reprs)
        return f"Noisy({self.reprs})"


def test_an_event_recorded_by_a_fields_repr_is_dropped_and_counted(
    start_recording: Callable[..., Recorder],
) -> None:
    """repr mode calls the field's __repr__ once, when the event is recorded;
    the event it records from inside is dropped and counted, not recursed
    into. Snapshots only read what was captured."""
    rec = start_recording(Channel("c", subbuf_size=64, num_subbuf=4), values="repr")
    noisy = Noisy()
    instrument.event("holder", value=noisy)
    assert noisy.reprs == 1
    snaps: list[Snapshot] = []

    def take() -> None:
        snaps.extend(instrument.snapshot() for _ in range(3))

    t = threading.Thread(target=take, name="snapshotter")
    t.start()
    t.join(timeout=20)
    assert not t.is_alive()
    assert noisy.reprs == 1  # reading never calls it
    for snap in snaps:
        assert [ev.name for ev in snap.events] == ["holder"]
        assert snap.events[0].fields == {"value": "Noisy(1)"}
        (stream,) = snap.streams
        assert stream.dropped == 1  # the event recorded inside the repr, counted
    assert rec.dropped_nested == 1
    instrument.event("after", n=1)  # recording on this thread goes on as before
    assert [ev.name for ev in instrument.snapshot().events] == ["holder", "after"]


def test_safe_mode_never_calls_the_fields_repr(recorder: Recorder) -> None:
    noisy = Noisy()
    instrument.event("holder", value=noisy)
    snap = instrument.snapshot()
    assert noisy.reprs == 0
    assert snap.events[0].fields == {"value": "<Noisy>"}


def test_a_repr_that_takes_a_snapshot_does_not_recurse_without_end(
    start_recording: Callable[..., Recorder],
) -> None:
    start_recording(Channel("c", subbuf_size=64, num_subbuf=4), values="repr")
    inner: list[Snapshot] = []

    class Snapshotting:
        def __repr__(self) -> str:
            inner.append(instrument.snapshot())
            return "Snapshotting()"

    instrument.event("holder", value=Snapshotting())
    snap = instrument.snapshot()
    assert [ev.fields for ev in snap.events] == [{"value": "Snapshotting()"}]
    # captured before the record was written: the snapshot inside saw nothing yet
    assert len(inner) == 1 and inner[0].events == []


# -- a context provider that records --------------------------------------------


@pytest.fixture
def noisy_context() -> Iterator[list[int]]:
    """A context provider ``noisy`` that records an event each time it runs."""
    calls: list[int] = []

    def provider() -> int:
        calls.append(len(calls))
        instrument.event("provider.event", n=len(calls))
        return len(calls)

    instrument.register_context("noisy", provider)
    yield calls
    instrument.unregister_context("noisy")


def test_an_event_recorded_by_a_context_provider(
    start_recording: Callable[..., Recorder], noisy_context: list[int]
) -> None:
    start_recording(
        Channel("c", subbuf_size=64, num_subbuf=4, contexts=("thread", "noisy")),
        Channel("other", subbuf_size=64, num_subbuf=4, events=["outer"]),
    )
    for i in range(3):
        instrument.event("outer", i=i)
    snap = instrument.snapshot()
    c = [ev for ev in snap.events if ev.channel == "c"]
    # each outer event ran the provider once; the provider's own event was
    # recorded without running the provider again (no recursion)
    assert len(noisy_context) == 3
    assert [(ev.name, ev.fields.get("i", ev.fields.get("n"))) for ev in c] == [
        ("provider.event", 1),
        ("outer", 0),
        ("provider.event", 2),
        ("outer", 1),
        ("provider.event", 3),
        ("outer", 2),
    ]
    assert [ev.context["noisy"] for ev in c if ev.name == "outer"] == [1, 2, 3]
    assert [ev.context["noisy"] for ev in c if ev.name == "provider.event"] == [None] * 3
    assert [ev.name for ev in snap.events if ev.channel == "other"] == ["outer"] * 3
    check_positions(snap, {"c": 6, "other": 3})
