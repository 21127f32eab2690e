"""The tracing engines' costs, as ratios to baselines measured in the same process.

On Python 3.12+ (``sys.monitoring``), measured per operation (CPU ns, the
thread's time; minimum over interleaved rounds, as in ``bench_core.py``):

* a traced call ``f(a, b)`` (entry + exit) on the sysmon engine, against the
  floor for the same work (a wrapt decorator appending entry and exit
  tuples to a deque) and against the same call on the wrapt engine;
* the same call with values (every argument and the return value captured
  through ``instrument.values``, as whole-package tracing does), on both
  engines;
* a traced function before ``start()`` against an untraced call;
* ``instrument.event`` against its deque floor, with the sysmon engine on;
* code that raises and catches an exception in a loop (not traced itself)
  while the sysmon engine records (``PY_UNWIND`` and ``EXCEPTION_HANDLED``
  are global events before 3.15) against the same code not recording;
* the recursion depth a traced recursive function reaches, against an
  untraced one (once each);
* one step of a traced generator (``next``) and of a traced coroutine
  (``send``, an ``await`` that yields to the caller), each a suspension and
  a resumption recorded, against the same step untraced.

On 3.10 and 3.11 only the wrapt engine's figures are printed.

Usage::

    python benchmarks/bench_engine.py           # about a minute
    python benchmarks/bench_engine.py --quick
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from typing import Any

# The same floors as bench_core (this script runs from benchmarks/, beside it).
from bench_core import deque_tracer, floor_event

import instrument
from instrument import engines

UNROLL = 10
HAS_SYSMON = hasattr(sys, "monitoring")


def make(label: str) -> Callable[[int, int], int]:
    """A fresh function (its own code object) for one case."""
    namespace: dict[str, Any] = {}
    exec(compile("def f(a, b):\n    return a + b\n", f"<bench {label}>", "exec"), namespace)
    return namespace["f"]  # type: ignore[no-any-return]


@types.coroutine
def pause() -> Any:
    """Yields to whoever steps the coroutine (as an event loop's future does)."""
    yield


def make_suspendables(label: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """A fresh endless generator function and coroutine function."""
    source = (
        "def gen():\n    while True:\n        yield 1\n"
        "async def coro():\n    while True:\n        await pause()\n"
    )
    namespace: dict[str, Any] = {"pause": pause}
    exec(compile(source, f"<bench suspendables {label}>", "exec"), namespace)
    return namespace["gen"], namespace["coro"]


def suspendable_cases(engine_names: list[str]) -> tuple[dict[str, Any], list[Any]]:
    """Generator and coroutine steps, untraced and traced per engine (made
    while recording: the wrapt engine wraps only then). Also what to close."""
    made: list[Any] = []
    kinds: dict[str, Any] = {"untraced": make_suspendables("plain")}
    for engine in engine_names:
        previous = engines.use(engine)
        try:
            gen, coro = make_suspendables(engine)
            kinds[f"traced ({engine})"] = (
                instrument.trace(name=f"bench.gen.{engine}")(gen),
                instrument.trace(name=f"bench.coro.{engine}")(coro),
            )
        finally:
            engines.use(previous)
    cases: dict[str, Any] = {}
    for kind, (gen, coro) in kinds.items():
        g, c = gen(), coro()
        made += [g, c]
        cases[f"generator step, {kind}"] = unrolled("step()", {"step": g.__next__})
        cases[f"coroutine step, {kind}"] = unrolled("step(None)", {"step": c.send})
    return cases, made


def raiser() -> None:
    for _ in range(UNROLL):
        try:
            raise ValueError("x")
        except ValueError:
            pass


def unrolled(call: str, env: dict[str, Any]) -> Callable[[int], None]:
    body = "".join(f"        {call}\n" for _ in range(UNROLL))
    namespace = dict(env)
    exec(compile(f"def loop(n):\n    for _ in range(n):\n{body}", "<bench>", "exec"), namespace)
    return namespace["loop"]  # type: ignore[no-any-return]


def measure(cases: dict[str, Callable[[int], None]], rounds: int, turns: int) -> dict[str, float]:
    """Minimum CPU ns per operation of each case, cases interleaved."""
    for loop in cases.values():
        loop(max(turns // 4, 1))
    samples: dict[str, list[float]] = {name: [] for name in cases}
    gc.disable()
    try:
        for _ in range(rounds):
            for name, loop in cases.items():
                t0 = time.thread_time_ns()
                loop(turns)
                samples[name].append((time.thread_time_ns() - t0) / (turns * UNROLL))
    finally:
        gc.enable()
    for name, values in samples.items():
        print(f"  {name:<44} {min(values):9.1f} {statistics.median(values):9.1f}")
    return {name: min(values) for name, values in samples.items()}


def traced(engine: str, label: str, values: bool) -> Callable[[int, int], int]:
    previous = engines.use(engine)
    try:
        f = make(label)
        if values:
            return instrument.trace(name=label, fields="*", retval=True)(f)  # type: ignore[no-any-return]
        return instrument.trace(name=label)(f)  # type: ignore[no-any-return]
    finally:
        engines.use(previous)


def depth(fn: Callable[[Any, int], None]) -> int:
    reached = [0]

    def down(n: int) -> None:
        reached[0] = n
        fn(down, n + 1)

    with contextlib.suppress(RecursionError):
        down(0)
    return reached[0]


def step(down: Any, n: int) -> None:
    down(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rounds, turns = (5, 2_000) if args.quick else (15, 10_000)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"  {'CPU ns per operation':<44} {'min':>9} {'median':>9}")
    engine_names = ["wrapt", "sysmon"] if HAS_SYSMON else ["wrapt"]
    subjects = {
        (engine, values): traced(engine, f"bench.{engine}.{values}", values)
        for engine in engine_names
        for values in (False, True)
    }
    bare = make("bare")
    floor = deque_tracer(make("floor"))
    checks: list[tuple[str, bool | None]] = []

    print("before start():")
    off = {"untraced call": unrolled("f(1, 2)", {"f": bare})}
    for engine in engine_names:
        off[f"traced ({engine}), not recording"] = unrolled(
            "f(1, 2)", {"f": subjects[engine, False]}
        )
    off_ns = measure(off, rounds, turns)

    print("recording:")
    cases = {
        "untraced call": unrolled("f(1, 2)", {"f": bare}),
        "floor: wrapt + deque": unrolled("f(1, 2)", {"f": floor}),
    }
    for (engine, values), f in subjects.items():
        cases[f"traced ({engine}){', values' if values else ''}"] = unrolled("f(1, 2)", {"f": f})
    instrument.start()
    try:
        on_ns = measure(cases, rounds, turns)
        print("point events, engines on:")
        ev_ns = measure(
            {
                "floor: deque append": unrolled("ev('e', a=1, b=2.5, c='x')", {"ev": floor_event}),
                "instrument.event": unrolled(
                    "ev('e', a=1, b=2.5, c='x')", {"ev": instrument.event}
                ),
            },
            rounds,
            turns,
        )
        print("generator and coroutine steps, recording:")
        suspendables, made = suspendable_cases(engine_names)
        steps_ns = measure(suspendables, rounds, turns)
        for obj in made:
            obj.close()
        print("raise and catch, untraced code, recording:")
        raising_on = measure({"raise+catch": unrolled("r()", {"r": raiser})}, rounds, turns // 10)
    finally:
        instrument.stop()
    print("raise and catch, not recording:")
    raising_off = measure({"raise+catch": unrolled("r()", {"r": raiser})}, rounds, turns // 10)

    plain_depth = depth(step)
    depths = {}
    for engine in engine_names:
        previous = engines.use(engine)
        try:
            fn = instrument.trace(name=f"bench.depth.{engine}")(make_step(engine))
        finally:
            engines.use(previous)
        instrument.start()
        try:
            depths[engine] = depth(fn)
        finally:
            instrument.stop()

    floor_ns = on_ns["floor: wrapt + deque"]
    print("ratios (minima):")
    for engine in engine_names:
        plain = on_ns[f"traced ({engine})"]
        with_values = on_ns[f"traced ({engine}), values"]
        print(f"  traced ({engine}) / wrapt+deque floor: {plain / floor_ns:.2f}x")
        print(f"  traced ({engine}) with values / without: {with_values / plain:.2f}x")
        before = off_ns[f"traced ({engine}), not recording"] / off_ns["untraced call"]
        print(f"  traced ({engine}) before start() / untraced call: {before:.2f}x")
        print(
            f"  recursion depth traced ({engine}) / untraced: "
            f"{depths[engine]} / {plain_depth} = {depths[engine] / plain_depth:.3f}"
        )
    for engine in engine_names:
        for what in ("generator", "coroutine"):
            plain_step = steps_ns[f"{what} step, untraced"]
            traced_step = steps_ns[f"{what} step, traced ({engine})"]
            print(
                f"  {what} step traced ({engine}) / untraced: {traced_step / plain_step:.2f}x "
                f"(+{traced_step - plain_step:.0f} ns)"
            )
    event_floor = ev_ns["instrument.event"] / ev_ns["floor: deque append"]
    print(f"  instrument.event / deque floor: {event_floor:.2f}x")
    unwind = raising_on["raise+catch"] / raising_off["raise+catch"]
    print(f"  raise+catch while recording / not recording: {unwind:.2f}x")
    if HAS_SYSMON:
        call_floor = on_ns["traced (sysmon)"] / floor_ns
        before = off_ns["traced (sysmon), not recording"] / off_ns["untraced call"]
        checks += [
            (f"sysmon traced call <= 0.8x wrapt+deque floor: {call_floor:.2f}x", call_floor <= 0.8),
            (f"sysmon before start() <= 1.05x untraced: {before:.2f}x", before <= 1.05),
        ]
    print("targets:")
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {text}")
    return 0


def make_step(label: str) -> Callable[[Any, int], None]:
    namespace: dict[str, Any] = {}
    source = "def step(down, n):\n    down(n)\n"
    exec(compile(source, f"<bench step {label}>", "exec"), namespace)
    return namespace["step"]  # type: ignore[no-any-return]


if __name__ == "__main__":
    sys.exit(main())
