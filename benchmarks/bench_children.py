"""What recording in child processes costs.

1. The write path of a child's event: ``instrument.event`` with 3 fields into
   a shared-memory stream (``instrument.shared``: the in-process ring plus a
   marshal'd copy in an mmap'd slot) against the same call into the
   in-process ring alone. Interleaved rounds, minimum per event, thread CPU
   time.
2. Child start-up: ``python -c pass`` with ``RINGTRACE_CHILDREN`` set (the
   start-up hook imports the kit, starts a recorder, writes its process
   file) against the same without it, and a fork child's first event (a
   stream file created) against a fork child recording in-process only.
   Medians of interleaved runs, wall time.
3. What the hook costs a Python start-up when the variable is unset: its
   line, executed.

Only the ratios carry to another machine.

Usage::

    python benchmarks/bench_children.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable

import instrument
from instrument import childstart
from instrument.childstart import _SharedFactory

UNROLL = 10


def _per_event(n: int) -> float:
    event = instrument.event
    start = time.thread_time_ns()
    for i in range(n // UNROLL):
        event("order.step", order_id=i, sku="lamp", qty=1)
        event("order.step", order_id=i, sku="lamp", qty=1)
        event("order.step", order_id=i, sku="lamp", qty=1)
        event("order.step", order_id=i, sku="lamp", qty=1)
        event("order.step", order_id=i, sku="lamp", qty=1)
        event("order.step", order_id=i, sku="lamp", qty=1)
        event("order.step", order_id=i, sku="lamp", qty=1)
        event("order.step", order_id=i, sku="lamp", qty=1)
        event("order.step", order_id=i, sku="lamp", qty=1)
        event("order.step", order_id=i, sku="lamp", qty=1)
    return (time.thread_time_ns() - start) / n


def write_path(rounds: int, n: int, directory: str) -> None:
    local, shared = [], []
    for _ in range(rounds):
        instrument.start()
        local.append(_per_event(n))
        instrument.stop()
        rec = instrument.start()
        rec.stream_factory = _SharedFactory(directory, "bench")
        shared.append(_per_event(n))
        instrument.stop()
    a, b = min(local), min(shared)
    print(f"write path, per event (3 fields), minimum of {rounds} rounds x {n:,}:")
    print(f"  in-process ring      {a:7.0f} ns")
    print(f"  shared-memory stream {b:7.0f} ns   = {b / a:.2f}x the in-process ring")


def _wall(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def startup(runs: int, directory: str) -> None:
    plain = {k: v for k, v in os.environ.items() if k != childstart.ENV}
    traced = {**plain, childstart.ENV: directory}
    cmd = [sys.executable, "-c", "pass"]
    off, on = [], []
    for _ in range(runs):
        off.append(_wall(lambda: subprocess.run(cmd, env=plain, check=True)))
        on.append(_wall(lambda: subprocess.run(cmd, env=traced, check=True)))
    a, b = statistics.median(off), statistics.median(on)
    print(f"python -c pass, median of {runs} interleaved runs:")
    print(f"  without RINGTRACE_CHILDREN {a * 1e3:6.1f} ms")
    print(
        f"  with it (kit imported, recorder started) {b * 1e3:6.1f} ms   (+{(b - a) * 1e3:.1f} ms)"
    )

    def fork_child(shared: bool) -> float:
        rec = instrument.start()
        if shared:
            os.environ[childstart.ENV] = directory
        try:
            t0 = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                instrument.event("first", n=1)
                os._exit(0)
            os.waitpid(pid, 0)
            return time.perf_counter() - t0
        finally:
            os.environ.pop(childstart.ENV, None)
            instrument.stop()
            del rec

    local = [fork_child(False) for _ in range(runs)]
    shared = [fork_child(True) for _ in range(runs)]
    a, b = statistics.median(local), statistics.median(shared)
    print(f"fork, first event, exit (median of {runs}):")
    print(f"  in-process only {a * 1e3:6.2f} ms")
    print(
        f"  shared stream   {b * 1e3:6.2f} ms   (+{(b - a) * 1e3:.2f} ms: process and stream files)"
    )


def hook_when_unset() -> None:
    os.environ.pop(childstart.ENV, None)
    code = compile(childstart.PTH_LINE, "ringtrace-children.pth", "exec")
    n = 200_000
    per = timeit.timeit(lambda: exec(code, {}), number=n) / n
    print(f"the .pth line with RINGTRACE_CHILDREN unset: {per * 1e9:.0f} ns per interpreter start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, n, runs = (5, 20_000, 5) if args.quick else (15, 50_000, 15)
    with tempfile.TemporaryDirectory(prefix="ringtrace-bench-") as directory:
        childstart.enable(directory, channels=[instrument.Channel()])
        os.environ.pop(childstart.ENV, None)
        write_path(rounds, n, directory)
        startup(runs, directory)
        hook_when_unset()


if __name__ == "__main__":
    main()
