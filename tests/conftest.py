"""Shared fixtures: a recorder that is always stopped, and guards that no
test leaves the process-wide recorder running or a patch applied."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import instrument
from instrument import Channel, Recorder

# The suite's older tests assert the wrapt engine's objects (wrappers,
# ``__wrapped__``): they run on the wrapt engine on every version. Tests of
# the sysmon engine pick it with the ``sysmon`` fixture
# (tests/test_sysmon_engine.py and the transparency suite).
instrument.engines.use("wrapt")


@pytest.fixture
def sysmon() -> Iterator[None]:
    """Trace with the sysmon engine for this test (Python 3.12+ only)."""
    if not hasattr(__import__("sys"), "monitoring"):
        pytest.skip("sys.monitoring exists from Python 3.12")
    previous = instrument.engines.use("sysmon")
    try:
        yield
    finally:
        instrument.engines.use(previous if previous is not None else "wrapt")


@pytest.fixture(autouse=True)
def _no_recorder_left_running() -> Iterator[None]:
    """Fail the test that leaves ``instrument`` recording (and stop it, so
    the next test starts clean)."""
    was_recording = instrument.recording()
    yield
    if instrument.recording() and not was_recording:
        instrument.stop()
        pytest.fail("the test left the process-wide recorder running", pytrace=False)


@pytest.fixture(autouse=True)
def _no_patch_left_applied() -> Iterator[None]:
    """Fail the test that leaves a ``patch`` applied or waiting for its module
    (and undo it, so the next test starts clean)."""
    before = set(instrument.patched())
    yield
    left = [target for target in instrument.patched() if target not in before]
    for target in left:
        instrument.unpatch(target)
    if left:
        pytest.fail(f"the test left patches applied: {left}", pytrace=False)


@pytest.fixture
def start_recording() -> Iterator[Callable[..., Recorder]]:
    """``start_recording(*channels, **options)`` starts the process-wide
    recorder; it is stopped after the test whatever happens."""
    started: list[Recorder] = []

    def start(*channels: Channel, **options: Any) -> Recorder:
        rec = instrument.start(list(channels) or None, **options)
        started.append(rec)
        return rec

    yield start
    if started and instrument.active_recorder() is started[-1]:
        instrument.stop()


@pytest.fixture
def recorder(start_recording: Callable[..., Recorder]) -> Recorder:
    """A recorder with the default channel, running for the test."""
    return start_recording()


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


@pytest.fixture
def wait_until() -> Callable[..., bool]:
    """``wait_until(condition, timeout=5.0)`` polls until ``condition()`` holds.

    For state another thread changes (a thread's end being noticed); the
    caller asserts the outcome, never the time it took.
    """
    return _wait_until
