"""Helpers shared by the tests of generators and coroutines on both engines."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import instrument
from instrument import Snapshot, trace

#: The delays of the three overlapping jobs (seconds): started in this
#: order, they end in another, so a last-in-first-out pairing swaps them.
DELAYS = (0.06, 0.02, 0.04)


def own_code(func: Any) -> Any:
    """``func`` with a code object of its own. The sys.monitoring engine
    traces code objects and ``@trace`` returns the very function: a test's
    function needs code no earlier test registered (on either engine: the
    wrapt engine leaves alone what sysmon traces)."""
    return types.FunctionType(
        func.__code__.replace(),
        func.__globals__,
        func.__name__,
        func.__defaults__,
        func.__closure__,
    )


def run_jobs(
    job: Callable[[float], Coroutine[Any, Any, float]], delays: Sequence[float] = DELAYS
) -> Snapshot:
    """``job`` traced as ``"job"``, run once per delay, all at once on one
    thread (``asyncio.gather``), recording: the snapshot taken at the end."""
    traced = trace(name="job")(job)

    async def main() -> None:
        await asyncio.gather(*(traced(d) for d in delays))

    instrument.start()
    try:
        asyncio.run(main())
        return instrument.snapshot()
    finally:
        instrument.stop()
