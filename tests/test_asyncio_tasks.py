"""asyncio: 1,000 concurrent traced tasks on one thread.

All tasks share the thread's stream, so only the ``task`` context tells
their events apart: every event must carry the name of the task that
emitted it, and each task's entry/exit events must pair up on their own,
however the loop interleaved the tasks.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

import instrument
from instrument import Channel, Event, Recorder
from instrument.model import span_start

TASKS = 1000
STEPS = 3


@instrument.trace(name="job.inner", fields=["i"])
async def inner(i: int) -> int:
    await asyncio.sleep(0)
    return i * 2


@instrument.trace(name="job.run", fields=["i"], retval=True)
async def job(i: int, gate: asyncio.Event) -> int:
    await gate.wait()  # every task is started before any runs on
    total = 0
    for step in range(STEPS):
        instrument.event("job.step", i=i, step=step)
        async with instrument.span("job.span", i=i, step=step):
            await asyncio.sleep(0)
        total += await inner(i)
    if i % 100 == 0:  # from a worker thread: no task runs there
        await asyncio.to_thread(instrument.event, "job.offloaded", i=i)
    if i % 10 == 0:
        raise ValueError(f"task {i} fails on purpose")
    return total


async def main() -> list[object]:
    gate = asyncio.Event()
    tasks = [asyncio.create_task(job(i, gate), name=f"task-{i}") for i in range(TASKS)]
    instrument.event("main.started", tasks=len(tasks))
    await asyncio.sleep(0)
    gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_1000_concurrent_tasks_each_event_carries_its_own_task(
    start_recording: Callable[..., Recorder],
) -> None:
    start_recording(Channel("tasks", subbuf_size=4096, num_subbuf=16, contexts=("thread", "task")))
    results = asyncio.run(main())
    snap = instrument.snapshot()

    # The program's results are what they are untraced.
    for i, result in enumerate(results):
        if i % 10 == 0:
            assert isinstance(result, ValueError) and str(result) == f"task {i} fails on purpose"
        else:
            assert result == STEPS * i * 2

    per_task = 2 + 5 * STEPS  # job entry/exit; per step an event, a span, an inner call
    assert snap.lost == 0 and snap.overwritten == 0
    offloaded = [ev for ev in snap.events if ev.name == "job.offloaded"]
    assert sorted(ev.fields["i"] for ev in offloaded) == list(range(0, TASKS, 100))
    assert all(ev.context["task"] is None for ev in offloaded)
    assert all(ev.thread_name != "MainThread" for ev in offloaded)
    by_task: dict[object, list[Event]] = defaultdict(list)
    for ev in snap.events:
        if ev.name != "job.offloaded":
            by_task[ev.context["task"]].append(ev)
    outside = [t for t in by_task if not str(t).startswith("task-")]
    assert len(outside) == 1  # asyncio.run's own task, running main()
    assert [ev.name for ev in by_task.pop(outside[0])] == ["main.started"]
    assert sorted(by_task) == sorted(f"task-{i}" for i in range(TASKS))

    interleaved = 0
    for task_name, events in by_task.items():
        i = int(str(task_name).removeprefix("task-"))
        # each traced coroutine's suspensions and resumptions alternate, and
        # carry the entry timestamp of their own coroutine (pairing by identity)
        starts = {ev.timestamp for ev in events if ev.kind == "entry"}
        running: dict[int | None, bool] = {}
        for ev in events:
            if ev.kind in ("suspend", "resume"):
                start = span_start(ev)
                assert start in starts, (task_name, ev)
                assert running.get(start, True) is (ev.kind == "suspend"), (task_name, ev)
                running[start] = ev.kind == "resume"
        assert running and all(running.values())
        events = [ev for ev in events if ev.kind not in ("suspend", "resume")]
        assert len(events) == per_task, task_name
        # every event that names its task's number is in that task's context
        assert all(ev.fields.get("i", i) == i for ev in events if ev.kind != "exit"), task_name
        assert all(ev.thread_name == "MainThread" for ev in events)
        # entries and exits nest like a stack, per task
        stack: list[str] = []
        for ev in events:
            if ev.kind == "entry":
                stack.append(ev.name)
            elif ev.kind == "exit":
                assert stack and stack.pop() == ev.name, (task_name, ev)
                assert ev.fields["duration_ns"] >= 0
        assert stack == []
        first, last = events[0], events[-1]
        assert (first.name, first.kind, first.fields) == ("job.run", "entry", {"i": i})
        assert (last.name, last.kind) == ("job.run", "exit")
        if i % 10 == 0:
            assert last.fields["exception"] == "ValueError"
            assert last.fields["message"] == f"task {i} fails on purpose"
        else:
            assert last.fields["retval"] == STEPS * i * 2
        steps = [ev.fields["step"] for ev in events if ev.name == "job.step"]
        assert steps == list(range(STEPS))
        # the loop really did interleave the tasks: others' events lie in between
        positions = [ev.position for ev in events]
        interleaved += positions[-1] - positions[0] + 1 > len(positions)
    assert interleaved == TASKS


def test_the_task_is_recorded_by_default_where_a_loop_runs(
    start_recording: Callable[..., Recorder],
) -> None:
    """The default channel does not list ``task``: it is recorded anyway by
    a thread while an asyncio loop runs on it, and only then; the thread's
    plain writer (no per-event context call) is used before and after."""
    from instrument import hotpath

    start_recording()  # Channel() lists thread and pid only
    instrument.event("shared")
    plain = hotpath._local.routes["shared"]

    async def work(n: int) -> None:
        instrument.event("shared", n=n)
        await asyncio.sleep(0)
        instrument.event("shared", n=n)

    async def main() -> None:
        tasks = [asyncio.create_task(work(n), name=f"worker-{n}") for n in (1, 2)]
        await asyncio.gather(*tasks)
        assert hotpath._local.routes["shared"] != plain  # chosen again, with the task

    asyncio.run(main())
    instrument.event("shared", n=9)
    assert hotpath._local.routes["shared"] == plain  # the loop stopped: plain again
    got = [(ev.fields.get("n"), ev.context.get("task")) for ev in instrument.snapshot().events]
    assert got == [
        (None, None),
        (1, "worker-1"),
        (2, "worker-2"),
        (1, "worker-1"),
        (2, "worker-2"),
        (9, None),
    ]
