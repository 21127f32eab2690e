"""Suspensions and resumptions of traced generators, coroutines and async
generators, on both engines: the same records, so that every view shows
when a coroutine really ran.

A traced generator records its entry at its first resumption, a
``suspend`` each time it hands a value out (to its consumer, or to the
event loop from an ``await``), a ``resume`` each time it is sent, thrown or
closed into, and its exit; each stores the entry's timestamp (see
``instrument.stream`` on pairing). The wrapt engine steps the wrapped
object by hand to see them; what it hands out and raises must stay exactly
what the original does (the last sections here, and the transparency
suites).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import traceback
import types
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import wrapt
from coroutine_helpers import own_code, run_jobs
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import instrument
from instrument import Recorder, Snapshot, trace
from instrument.formats import write_snapshot
from instrument.formats.html import read_data
from instrument.model import Event, span_start

ENGINES = ["wrapt"] + (["sysmon"] if instrument.engines.sysmon_available() is None else [])
HIDDEN = (instrument.__file__.rpartition("/")[0] + "/", wrapt.__file__.rpartition("/")[0] + "/")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each engine that can run here, in use for the test."""
    before = instrument.engines.setting()
    instrument.engines.use(request.param)
    yield request.param
    instrument.engines.use(before)


def kinds(name: str, events: list[Event] | None = None) -> list[str]:
    events = instrument.snapshot().events if events is None else events
    return [ev.kind for ev in events if ev.name == name]


def one_identity(name: str, events: list[Event]) -> None:
    """Every record of ``name`` carries the timestamp of the one entry."""
    mine = [ev for ev in events if ev.name == name]
    (entry,) = [ev for ev in mine if ev.kind == "entry"]
    assert all(span_start(ev) == entry.timestamp for ev in mine)


# -- coroutines overlapping on one thread: their real running slices ---------


def three_jobs() -> Snapshot:
    async def job(delay: float) -> float:
        await asyncio.sleep(0)  # lets the others start: they interleave
        await asyncio.sleep(delay)
        return delay

    return run_jobs(own_code(job))


def running_slices(snap: Snapshot, name: str) -> dict[int, list[tuple[int, int]]]:
    """Per entry timestamp, the intervals its coroutine ran: from its entry
    or a resumption to the next suspension or its exit, paired by identity."""
    open_at: dict[int, int] = {}
    slices: dict[int, list[tuple[int, int]]] = {}
    for ev in snap.events:
        if ev.name != name:
            continue
        start = ev.timestamp if ev.kind == "entry" else span_start(ev)
        assert start is not None
        if ev.kind in ("entry", "resume"):
            assert start not in open_at, "resumed while running"
            open_at[start] = ev.timestamp
        else:
            slices.setdefault(start, []).append((open_at.pop(start), ev.timestamp))
    assert not open_at, "a slice without its end"
    return slices


def test_three_overlapping_coroutines_show_their_real_running_slices(engine: str) -> None:
    snap = three_jobs()
    per_job = [
        kinds("job", [ev for ev in snap.events if span_start(ev) == start or ev.timestamp == start])
        for start in sorted(ev.timestamp for ev in snap.events if ev.kind == "entry")
    ]
    # entry, each of the two awaits suspends and resumes, exit
    assert per_job == [["entry", "suspend", "resume", "suspend", "resume", "exit"]] * 3
    slices = running_slices(snap, "job")
    assert len(slices) == 3 and all(len(s) == 3 for s in slices.values())
    # one thread: the coroutines took turns, their running slices never overlap
    every = sorted(s for job in slices.values() for s in job)
    assert all(end <= next_start for (_, end), (next_start, _) in pairwise(every))
    # each job's last slice starts when its sleep is over: 20, 40, then 60 ms
    last = [slices[start][-1][0] for start in sorted(slices)]
    assert sorted(range(3), key=lambda i: last[i]) == [1, 2, 0]
    # and each spent most of its span suspended, not running
    for job in slices.values():
        assert job[0][0] < job[-1][0]


def test_perfetto_and_html_show_each_coroutines_suspensions_in_its_own_slice(
    engine: str, tmp_path: Path
) -> None:
    snap = three_jobs()
    trace_events = json.loads(write_snapshot(snap, tmp_path / "t", "perfetto").read_text())
    # each job runs in a task of its own, on a lane of its own: its bar, and
    # its suspensions and resumptions as instants within it
    lanes: dict[int, list[tuple[str, float]]] = {}
    for item in trace_events["traceEvents"]:
        if item.get("name") == "job":
            lanes.setdefault(item["tid"], []).append((item["ph"], item["ts"]))
    assert len(lanes) == 3
    for shown in lanes.values():
        assert [phase for phase, _ in shown] == ["B", "i", "i", "i", "i", "E"]
        assert [ts for _, ts in shown] == sorted(ts for _, ts in shown)

    data = read_data(write_snapshot(snap, tmp_path / "t", "html"))
    names, event_kinds = data["names"], data["kinds"]
    spans = [s for s in data["spans"] if names[s[7]] == "job"]
    assert len(spans) == 3
    for *_, entry, exit_, _depth, _flags, _name in spans:
        assert event_kinds[data["events"][entry][1]] == "entry"
        assert event_kinds[data["events"][exit_][1]] == "exit"
    marks = [ev for ev in data["events"] if names[ev[2]] == "job"]
    shown = [event_kinds[ev[1]] for ev in marks]
    assert shown.count("suspend") == shown.count("resume") == 6
    # each suspension lies within one job's bar
    for ev in marks:
        assert any(start <= ev[0] <= end for _lane, start, end, *_ in spans)


# -- generators ---------------------------------------------------------------


def accumulator() -> Iterator[int]:
    """Adds what is sent; a ValueError thrown in resets it."""
    total = 0
    while True:
        try:
            got = yield total
        except ValueError:
            total = 0
            continue
        total += got or 0


def test_a_generator_records_each_suspension_and_resumption(
    engine: str, recorder: Recorder
) -> None:
    gen = trace(name="acc")(own_code(accumulator))()
    assert [next(gen), gen.send(5), gen.throw(ValueError("reset")), gen.send(2)] == [0, 5, 0, 2]
    gen.close()
    events = instrument.snapshot().events
    assert kinds("acc", events) == ["entry"] + ["suspend", "resume"] * 4 + ["exit"]
    one_identity("acc", events)
    assert events[-1].fields["exception"] == "GeneratorExit"


def test_a_generator_ending_records_its_last_resumption_then_its_exit(
    engine: str, recorder: Recorder
) -> None:
    def two() -> Iterator[int]:
        yield 1
        yield 2

    assert list(trace(name="two")(own_code(two))()) == [1, 2]
    assert kinds("two") == ["entry", "suspend", "resume", "suspend", "resume", "exit"]


def test_a_generator_resumed_on_another_thread_pairs_by_identity(
    engine: str, recorder: Recorder
) -> None:
    import threading

    def two() -> Iterator[int]:
        yield 1
        yield 2

    gen = trace(name="moved")(own_code(two))()
    assert next(gen) == 1
    got: list[int] = []
    worker = threading.Thread(target=lambda: got.extend(gen))
    worker.start()
    worker.join()
    assert got == [2]
    events = instrument.snapshot().events
    one_identity("moved", events)
    threads = {ev.kind: ev.thread_id for ev in events if ev.name == "moved"}
    assert threads["entry"] != threads["exit"]


def test_a_generator_records_nothing_half_paired_across_recordings(
    engine: str, start_recording: Callable[..., Recorder]
) -> None:
    def three() -> Iterator[int]:
        yield 1
        yield 2
        yield 3

    traced = trace(name="three")(own_code(three))
    start_recording()
    gen = traced()
    assert next(gen) == 1  # entered while recording
    instrument.stop()
    assert next(gen) == 2  # resumed and suspended while not recording
    start_recording()
    assert list(gen) == [3]  # the rest: a recording its entry is not in
    assert kinds("three") == []
    instrument.stop()

    start_recording()
    later = traced()
    instrument.stop()
    assert next(later) == 1  # made while recording, started while not
    start_recording()
    assert list(later) == [2, 3]
    assert kinds("three") == []


# -- async generators ---------------------------------------------------------


def run(awaitable: Any) -> Any:
    """Step an awaitable that awaits only ``asyncio.sleep(0)``, without a loop."""
    steps = awaitable.__await__()
    while True:
        try:
            steps.send(None)
        except StopIteration as stop:
            return stop.value


async def ticker() -> AsyncIterator[int]:
    """Yields 0, 1, 2...; awaits once before each; a ValueError thrown in
    restarts it after one more await; closing it awaits once in cleanup."""
    n = 0
    try:
        while True:
            await asyncio.sleep(0)
            try:
                yield n
            except ValueError:
                await asyncio.sleep(0)
                n = -1
            n += 1
    finally:
        await asyncio.sleep(0)


def test_an_async_generator_records_its_awaits_and_its_yields(
    engine: str, recorder: Recorder
) -> None:
    agen = trace(name="tick")(own_code(ticker))()
    assert run(agen.__anext__()) == 0
    assert run(agen.asend(None)) == 1
    assert run(agen.athrow(ValueError("restart"))) == 0
    run(agen.aclose())
    events = instrument.snapshot().events
    await_ = ["suspend", "resume"]
    assert kinds("tick", events) == [
        "entry",
        *await_,  # the first await
        "suspend",  # yields 0
        "resume",  # asend
        *await_,
        "suspend",  # yields 1
        "resume",  # athrow
        *await_,  # the await in the handler
        *await_,  # the loop's await
        "suspend",  # yields 0
        "resume",  # aclose
        *await_,  # the await in cleanup
        "exit",
    ]
    one_identity("tick", events)
    assert events[-1].fields["exception"] == "GeneratorExit"


def test_an_async_generator_athrow_that_ends_it_is_its_exit(
    engine: str, recorder: Recorder
) -> None:
    agen = trace(name="tick")(own_code(ticker))()
    assert run(agen.__anext__()) == 0
    with pytest.raises(KeyError):
        run(agen.athrow(KeyError("stop")))
    events = instrument.snapshot().events
    assert kinds("tick", events)[-4:] == ["resume", "suspend", "resume", "exit"]
    assert events[-1].fields["exception"] == "KeyError"
    with pytest.raises(StopAsyncIteration):
        run(agen.__anext__())


# -- cancellation -------------------------------------------------------------


async def sleeper(started: asyncio.Event) -> str:
    started.set()
    await asyncio.sleep(60)
    return "not cancelled"


def test_a_cancelled_coroutine_records_its_resumption_by_the_cancellation(
    engine: str, recorder: Recorder
) -> None:
    traced = trace(name="sleeper")(own_code(sleeper))

    async def scenario() -> bool:
        started = asyncio.Event()
        task = asyncio.create_task(traced(started))
        await started.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return task.cancelled()

    assert asyncio.run(scenario()) is True
    events = instrument.snapshot().events
    assert kinds("sleeper", events) == ["entry", "suspend", "resume", "exit"]
    assert events[-1].fields["exception"].endswith("CancelledError")


# -- the wrapt engine stays transparent ----------------------------------------


def warned(make: Callable[[], Any], action: Callable[[Any], Any]) -> list[str]:
    """The warnings of making a coroutine, acting on it and dropping it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coro = make()
        action(coro)
        del coro
        gc.collect()
    return [f"{w.category.__name__}: {w.message}" for w in caught]


def cancel_at_once(coro: Any) -> None:
    async def scenario() -> None:
        task = asyncio.ensure_future(coro)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "action",
    [lambda c: None, lambda c: c.close(), cancel_at_once],
    ids=["never awaited", "closed unstarted", "cancelled before its first step"],
)
def test_coroutines_never_run_warn_as_the_originals(recorder: Recorder, action: Any) -> None:
    async def job() -> int:
        await asyncio.sleep(0)
        return 1

    plain = warned(job, action)
    assert warned(trace(job), action) == plain
    assert len(plain) == (1 if plain and "never awaited" in plain[0] else 0)


def user_frames(tb: types.TracebackType | None) -> list[tuple[str, str]]:
    """(function, line) of each traceback frame outside the kit and wrapt."""
    frames = traceback.extract_tb(tb)
    return [(f.name, f.line or "") for f in frames if not f.filename.startswith(HIDDEN)]


def step(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("value", call())
    except StopIteration as stop:
        return ("returned", stop.value)
    except BaseException as exc:
        return (
            "raised",
            type(exc),
            str(exc),
            user_frames(exc.__traceback__),
            type(exc.__context__),
            type(exc.__cause__),
        )


@types.coroutine
def pause(tag: Any) -> Any:
    """Hands ``tag`` out to whoever steps the coroutine; returns what it is sent."""
    return (yield tag)


def coroutine_of(shape: dict[str, Any]) -> Callable[[], Coroutine[Any, Any, Any]]:
    """A coroutine function that pauses at each of ``items``, catches
    ``catch`` (then raising ``later`` at its next pause, if set), and on
    ``GeneratorExit`` does ``on_exit``."""

    async def coro() -> Any:
        received = []
        failed = None
        for item in shape["items"]:
            try:
                received.append(await pause(item))
                if failed is not None and shape["later"]:
                    raise LookupError("after handling")
            except GeneratorExit:
                if shape["on_exit"] == "raise":
                    raise RuntimeError("cleanup failed") from None
                if shape["on_exit"] == "pause":
                    await pause("ignored close")
                raise
            except shape["catch"] as exc:
                failed = type(exc).__name__
                received.append(("caught", failed))
        return received

    return coro


coroutine_shapes = st.fixed_dictionaries(
    {
        "items": st.lists(st.integers(0, 9), max_size=4),
        "catch": st.sampled_from([(), (ValueError,), (ValueError, KeyError)]),
        "later": st.booleans(),
        "on_exit": st.sampled_from(["propagate", "raise", "pause"]),
    }
)
coroutine_ops = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.none() | st.integers(0, 9)),
        st.tuples(st.just("throw"), st.sampled_from([ValueError, KeyError, GeneratorExit])),
        st.just(("close",)),
    ),
    max_size=7,
)


def drive(coro: Any, ops: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    steps = []
    started = False
    for op in ops:
        if op[0] == "send":
            got = step(lambda v=op[1]: coro.send(v))
        elif op[0] == "throw":
            got = step(lambda e=op[1]: coro.throw(e("thrown")))
            if not started and got[0] == "raised":
                got = got[:3]  # raised in the wrapper's first line, not the coroutine's
        else:
            got = step(coro.close)
        started = started or got[0] == "value"
        steps.append(got)
    steps.append(step(coro.close))
    return steps


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(shape=coroutine_shapes, ops=coroutine_ops)
@example(  # GeneratorExit thrown in reaches the coroutine (an await would close it)
    shape={"items": [0], "catch": (), "later": False, "on_exit": "propagate"},
    ops=[("send", None), ("throw", GeneratorExit)],
)
@example(  # which may go on: throw() returns what it hands out next
    shape={"items": [0, 1], "catch": (), "later": False, "on_exit": "pause"},
    ops=[("send", None), ("throw", GeneratorExit), ("send", 5)],
)
@example(  # a handled exception is no __context__ of a later one
    shape={"items": [0, 1, 2], "catch": (ValueError,), "later": True, "on_exit": "raise"},
    ops=[("send", None), ("throw", ValueError), ("send", 1), ("close",)],
)
def test_traced_coroutines_behave_as_the_originals_under_send_throw_close(
    start_recording: Callable[..., Recorder], shape: dict[str, Any], ops: list[tuple[Any, ...]]
) -> None:
    """Stepped by hand as an event loop does: what each step hands out,
    returns or raises (type, message, user frames, ``__context__``,
    ``__cause__``) is the original's, recording or not."""
    function = coroutine_of(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # coroutines left unfinished
        expected = drive(function(), ops)
        if not instrument.recording():
            start_recording()
        assert drive(trace(function)(), ops) == expected
        instrument.stop()
        assert drive(trace(function)(), ops) == expected


def test_an_exception_raised_after_a_handled_throw_has_no_context_from_it(
    recorder: Recorder,
) -> None:
    async def handles_then_fails() -> None:
        with contextlib.suppress(ValueError):  # handled: over before the raise
            await pause(1)
        await pause(2)
        raise KeyError("later")

    for function in (handles_then_fails, trace(handles_then_fails)):
        coro = function()
        assert coro.send(None) == 1
        assert coro.throw(ValueError("handled")) == 2
        with pytest.raises(KeyError) as raised:
            coro.send(None)
        assert raised.value.__context__ is None


def test_a_traced_coroutine_is_a_coroutine_named_as_the_original(recorder: Recorder) -> None:
    async def job() -> int:
        return 1

    coro = trace(job)()
    assert asyncio.iscoroutine(coro) and isinstance(coro, types.CoroutineType)
    assert coro.__qualname__ == job.__qualname__
    assert asyncio.run(coro) == 1


def test_closing_a_suspended_coroutine_that_ignores_it_raises_as_the_original(
    recorder: Recorder,
) -> None:
    async def stubborn() -> None:
        try:
            await pause(1)
        except GeneratorExit:
            await pause(2)

    outcomes = []
    for function in (stubborn, trace(stubborn)):
        coro = function()
        coro.send(None)
        outcomes.append(step(coro.close))
        coro.close()
    assert outcomes[1] == outcomes[0]
    assert outcomes[0][1] is RuntimeError and "ignored GeneratorExit" in outcomes[0][2]
