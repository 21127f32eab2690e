"""The recorder: streams of ended threads, contexts, routing to channels,
discard mode, start/stop, fork."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import os
import subprocess
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator

import pytest

import instrument
from instrument import Channel, Recorder


def run_thread(target: Callable[[], object], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join()
    return thread


# -- streams of ended threads -------------------------------------------------


def test_the_stream_of_an_ended_thread_stays_readable(
    recorder: Recorder, wait_until: Callable[..., bool]
) -> None:
    def work() -> None:
        instrument.event("worker.step", n=1)
        instrument.event("worker.done")

    worker = run_thread(work, "worker-1")
    instrument.event("main.after")
    assert wait_until(
        lambda: not any(s.alive for s in recorder.streams() if s.thread_name == "worker-1")
    )
    snap = instrument.snapshot()
    by_thread = {info.thread_name: info for info in snap.streams}
    assert by_thread["worker-1"].alive is False
    assert by_thread["worker-1"].thread_id == worker.ident
    assert by_thread[threading.current_thread().name].alive is True
    names = [(ev.thread_name, ev.name) for ev in snap.events]
    assert names == [
        ("worker-1", "worker.step"),
        ("worker-1", "worker.done"),
        (threading.current_thread().name, "main.after"),
    ]


def test_dead_streams_beyond_the_cap_are_evicted_oldest_first(
    start_recording: Callable[..., Recorder], wait_until: Callable[..., bool]
) -> None:
    rec = start_recording(max_dead_streams=2)
    instrument.event("main")  # a live stream, never evicted
    for i in range(5):
        run_thread(lambda i=i: instrument.event("w", i=i), f"w{i}")  # type: ignore[misc]
    assert wait_until(lambda: sum(not s.alive for s in rec.streams()) <= 2 and rec.evicted == 3)
    snap = instrument.snapshot()
    assert [ev.fields.get("i") for ev in snap.events if ev.name == "w"] == [3, 4]
    assert sorted(info.thread_name for info in snap.streams if not info.alive) == ["w3", "w4"]
    assert any(info.alive and ev.name == "main" for info in snap.streams for ev in snap.events)
    assert rec.evicted == 3


def test_no_dead_streams_kept_with_a_zero_cap(
    start_recording: Callable[..., Recorder], wait_until: Callable[..., bool]
) -> None:
    rec = start_recording(max_dead_streams=0)
    run_thread(lambda: instrument.event("w"), "short-lived")
    assert wait_until(lambda: rec.streams() == [])  # evicted when streams are listed
    assert rec.evicted == 1
    assert instrument.snapshot().events == []


def test_stopping_does_not_end_or_evict_the_streams_of_live_threads(
    start_recording: Callable[..., Recorder],
) -> None:
    rec = start_recording(max_dead_streams=0)
    instrument.event("before.stop")
    instrument.stop()
    gc.collect()
    snap = instrument.snapshot(recorder=rec)
    assert [ev.name for ev in snap.events] == ["before.stop"]
    assert [info.alive for info in snap.streams] == [True]
    assert rec.evicted == 0


def test_a_renamed_thread_shows_its_current_name(recorder: Recorder) -> None:
    ready, go = threading.Event(), threading.Event()

    def work() -> None:
        instrument.event("w")
        ready.set()
        go.wait(5)

    thread = threading.Thread(target=work, name="before")
    thread.start()
    try:
        assert ready.wait(5)
        thread.name = "after"
        snap = instrument.snapshot()
        assert [ev.thread_name for ev in snap.events] == ["after"]
    finally:
        go.set()
        thread.join()


# -- contexts -----------------------------------------------------------------


def test_static_context_is_per_stream_and_only_what_the_channel_lists(
    start_recording: Callable[..., Recorder],
) -> None:
    start_recording(
        Channel("both", events=["both.*"]),
        Channel("threadonly", events=["bare.*"], contexts=["thread"]),
    )
    instrument.event("both.e")
    instrument.event("bare.e")
    snap = instrument.snapshot()
    by_name = {ev.name: ev for ev in snap.events}
    assert by_name["both.e"].context == {"pid": os.getpid()}
    assert by_name["bare.e"].context == {}
    me = threading.current_thread()
    for ev in snap.events:
        assert (ev.thread_id, ev.thread_name) == (me.ident, me.name)
    for info in snap.streams:
        assert info.context == {"pid": os.getpid(), "thread_id": me.ident, "thread_name": me.name}
    assert snap.pid == os.getpid()


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Names registered by the test; unregistered afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(KeyError):
            instrument.unregister_context(name)


def test_a_contextvar_is_recorded_per_event(
    start_recording: Callable[..., Recorder], registered: list[str]
) -> None:
    request: contextvars.ContextVar[object] = contextvars.ContextVar("request")
    instrument.register_context("request", request)
    registered.append("request")
    start_recording(Channel("c", contexts=["thread", "pid", "request"]))
    instrument.event("a")
    token = request.set("r-1")
    instrument.event("b")
    request.set({"id": 2})
    instrument.event("c")
    request.reset(token)
    instrument.event("d")
    contexts = {ev.name: ev.context for ev in instrument.snapshot().events}
    pid = os.getpid()
    assert contexts == {
        "a": {"pid": pid, "request": None},
        "b": {"pid": pid, "request": "r-1"},
        "c": {"pid": pid, "request": "{'id': 2}"},  # converted like a field value
        "d": {"pid": pid, "request": None},
    }


def test_a_callable_provider_is_called_per_event_only_on_channels_listing_it(
    start_recording: Callable[..., Recorder], registered: list[str]
) -> None:
    calls = []

    def tenant() -> object:
        calls.append(1)
        return f"tenant-{len(calls)}"

    instrument.register_context("tenant", tenant)
    registered.append("tenant")
    start_recording(
        Channel("with", events=["x.*"], contexts=["tenant"]),
        Channel("without", events=["y.*"], contexts=[]),
    )
    instrument.event("x.1")
    instrument.event("y.1")
    instrument.event("x.2")
    snap = instrument.snapshot()
    assert [(ev.name, ev.context) for ev in snap.events] == [
        ("x.1", {"tenant": "tenant-1"}),
        ("y.1", {}),
        ("x.2", {"tenant": "tenant-2"}),
    ]
    assert len(calls) == 2


def test_a_raising_provider_records_its_error_text_and_warns(
    start_recording: Callable[..., Recorder], registered: list[str]
) -> None:
    def broken() -> object:
        raise LookupError("no tenant here")

    instrument.register_context("broken", broken)
    registered.append("broken")
    start_recording(Channel("c", contexts=["broken"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        instrument.event("e")
        instrument.event("e")  # the program goes on
    (ev, again) = instrument.snapshot().events
    assert ev.context == again.context
    assert "LookupError" in ev.context["broken"] and "no tenant here" in ev.context["broken"]
    assert any("broken" in str(w.message) for w in caught)


def test_a_provider_that_records_an_event_does_not_recurse(
    start_recording: Callable[..., Recorder], registered: list[str]
) -> None:
    def chatty() -> object:
        instrument.event("from.provider")
        return "ok"

    instrument.register_context("chatty", chatty)
    registered.append("chatty")
    start_recording(Channel("c", contexts=["chatty"]))
    instrument.event("outer")
    instrument.event("outer")
    events = instrument.snapshot().events
    # the provider ran once per outer event; its own event has no context,
    # and timestamps follow positions (the outer event is written last)
    assert [(ev.name, ev.context["chatty"], ev.position) for ev in events] == [
        ("from.provider", None, 0),
        ("outer", "ok", 1),
        ("from.provider", None, 2),
        ("outer", "ok", 3),
    ]


def test_credential_like_context_names_are_redacted(
    start_recording: Callable[..., Recorder], registered: list[str]
) -> None:
    instrument.register_context("session_id", lambda: "s3cr3t")
    registered.append("session_id")
    start_recording(Channel("c", contexts=["session_id"]))
    instrument.event("e")
    (ev,) = instrument.snapshot().events
    assert ev.context == {"session_id": "[redacted]"}


def test_the_asyncio_task_name_is_recorded(start_recording: Callable[..., Recorder]) -> None:
    start_recording(Channel("c", contexts=["task"]))

    async def job(n: int) -> None:
        instrument.event("job", n=n)
        await asyncio.sleep(0)
        instrument.event("job", n=n)

    async def main() -> None:
        await asyncio.gather(
            asyncio.create_task(job(1), name="task-one"),
            asyncio.create_task(job(2), name="task-two"),
        )

    instrument.event("outside")
    asyncio.run(main())
    snap = instrument.snapshot()
    seen = [(ev.fields.get("n"), ev.context["task"]) for ev in snap.events]
    assert seen[0] == (None, None)
    assert sorted(seen[1:]) == [(1, "task-one"), (1, "task-one"), (2, "task-two"), (2, "task-two")]


def test_register_and_unregister_context(
    start_recording: Callable[..., Recorder], registered: list[str]
) -> None:
    instrument.register_context("temp", lambda: 1)
    instrument.unregister_context("temp")
    with pytest.raises(KeyError, match="temp"):
        instrument.unregister_context("temp")
    with pytest.raises(ValueError, match="temp"):
        start_recording(Channel("c", contexts=["temp"]))
    assert not instrument.recording()


# -- routing to channels ------------------------------------------------------


def test_events_go_to_every_channel_whose_globs_match(
    start_recording: Callable[..., Recorder],
) -> None:
    rec = start_recording(
        Channel("db", events=["db.*"]),
        Channel("http", events=["http.*", "*.error"]),
        Channel("all"),
    )
    for name in ("db.query", "http.get", "db.error", "other"):
        instrument.event(name)
    snap = instrument.snapshot()
    got = sorted((ev.channel, ev.name) for ev in snap.events)
    assert got == [
        ("all", "db.error"),
        ("all", "db.query"),
        ("all", "http.get"),
        ("all", "other"),
        ("db", "db.error"),
        ("db", "db.query"),
        ("http", "db.error"),
        ("http", "http.get"),
    ]
    # one stream per thread per channel
    assert sorted(s.channel.name for s in rec.streams()) == ["all", "db", "http"]


def test_an_event_no_channel_takes_is_not_recorded(
    start_recording: Callable[..., Recorder],
) -> None:
    start_recording(Channel("db", events=["db.*"]))
    instrument.event("http.get")
    instrument.event("db.query")
    assert [ev.name for ev in instrument.snapshot().events] == ["db.query"]


@pytest.mark.parametrize(
    "channels",
    [
        pytest.param((Channel("a"), Channel("b")), id="two-channels"),
        pytest.param((Channel("none", events=["db.*"]),), id="no-channel"),
        pytest.param((Channel("d", subbuf_size=2, num_subbuf=2, mode="discard"),), id="discard"),
    ],
)
def test_traced_calls_work_on_every_kind_of_route(
    start_recording: Callable[..., Recorder], channels: tuple[Channel, ...]
) -> None:
    @instrument.trace(name="work")
    def work(x: int) -> int:
        return x * 2

    start_recording(*channels)
    assert [work(i) for i in range(6)] == [0, 2, 4, 6, 8, 10]
    snap = instrument.snapshot()
    per_channel: dict[str, list[str]] = {}
    for ev in snap.events:
        per_channel.setdefault(ev.channel, []).append(ev.kind)
    if channels[0].name == "none":
        assert per_channel == {}
    elif channels[0].mode == "discard":
        assert per_channel == {"d": ["entry", "exit"] * 2}
        assert snap.dropped == 8
    else:
        assert per_channel == {"a": ["entry", "exit"] * 6, "b": ["entry", "exit"] * 6}


def test_discard_mode_through_a_route_counts_drops_per_stream(
    start_recording: Callable[..., Recorder],
) -> None:
    start_recording(
        Channel("small", subbuf_size=2, num_subbuf=2, mode="discard"),
        Channel("big"),
    )
    for i in range(10):
        instrument.event("e", i=i)
    snap = instrument.snapshot()
    by_channel = {info.channel: info for info in snap.streams}
    assert by_channel["small"].dropped == 6 and by_channel["big"].dropped == 0
    assert [ev.fields["i"] for ev in snap.events if ev.channel == "small"] == [0, 1, 2, 3]
    assert [ev.fields["i"] for ev in snap.events if ev.channel == "big"] == list(range(10))


def test_explicit_channel_bypasses_the_globs(start_recording: Callable[..., Recorder]) -> None:
    start_recording(Channel("main"), Channel("db", events=["db.*"]))

    @instrument.trace(name="load", channel="db")
    def load() -> str:
        return "ok"

    with instrument.span("block", channel="db"):
        assert load() == "ok"
    snap = instrument.snapshot()
    assert {ev.channel for ev in snap.events} == {"db"}
    assert [(ev.name, ev.kind) for ev in snap.events] == [
        ("block", "entry"),
        ("load", "entry"),
        ("load", "exit"),
        ("block", "exit"),
    ]


# -- start and stop -----------------------------------------------------------


def test_start_stop_life_cycle() -> None:
    assert not instrument.recording() and instrument.active_recorder() is None
    rec = instrument.start()
    try:
        assert instrument.recording() and instrument.active_recorder() is rec
        with pytest.raises(RuntimeError, match="already recording"):
            instrument.start()
        instrument.event("one")
    finally:
        assert instrument.stop() is rec
    assert not instrument.recording()
    with pytest.raises(RuntimeError, match="not recording"):
        instrument.stop()
    with pytest.raises(RuntimeError, match="not recording"):
        instrument.snapshot()
    with pytest.raises(RuntimeError, match="not recording"):
        list(instrument.consume())
    instrument.event("while.stopped")  # a no-op
    assert [ev.name for ev in instrument.snapshot(recorder=rec).events] == ["one"]


def test_a_new_start_has_fresh_rings(start_recording: Callable[..., Recorder]) -> None:
    first = start_recording()
    instrument.event("first")
    instrument.stop()
    second = start_recording()
    instrument.event("second")
    assert second is not first
    assert [ev.name for ev in instrument.snapshot().events] == ["second"]
    assert [ev.name for ev in instrument.snapshot(recorder=first).events] == ["first"]


def test_environment_variable_starts_recording_at_import() -> None:
    code = (
        "import instrument; instrument.event('e');"
        "print(instrument.recording(), len(instrument.snapshot()))"
    )
    env = {**os.environ, "RINGTRACE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "1"]
    env["RINGTRACE"] = "0"
    code = "import instrument; print(instrument.recording())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork exists only on POSIX")
def test_a_forked_child_starts_with_fresh_streams(recorder: Recorder) -> None:
    instrument.event("parent.before")
    parent_refs = [weakref.ref(s) for s in recorder.streams()]
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 1
        try:
            instrument.event("child.event")
            snap = instrument.snapshot()
            gc.collect()
            result = [
                [ev.name for ev in snap.events],
                snap.pid == os.getpid(),
                [info.context["pid"] == os.getpid() for info in snap.streams],
                all(ref() is None for ref in parent_refs),  # parent's rings released
            ]
            os.write(write_end, repr(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        reported = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert reported == repr([["child.event"], True, [True], True])
    # the parent's rings are untouched
    assert [ev.name for ev in instrument.snapshot().events] == ["parent.before"]
