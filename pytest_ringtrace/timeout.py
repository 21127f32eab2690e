"""pytest-timeout: a snapshot file before a ``thread``-method deadline.

With the ``signal`` method the timeout raises inside the test and the normal
failure flow attaches a snapshot. With the ``thread`` method pytest-timeout
ends the process with ``os._exit(1)`` and no hook runs after it, so this
module wraps pytest-timeout's ``pytest_timeout_set_timer`` hook: a timer of
our own takes the snapshot shortly before the deadline and writes its files.
If the test ends in time after all, ``pytest_timeout_cancel_timer`` cancels
that timer, and deletes the files if they were already written.

The hooks are optional (``optionalhook=True``): without pytest-timeout this
plugin object is never called.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from .state import TEST
from .warning import describe, warn

if TYPE_CHECKING:
    from pathlib import Path

    from .session import RingtracePlugin


class _Pending:
    """A snapshot timer armed for one test, and the files it wrote."""

    def __init__(self, timer: threading.Timer):
        self.timer = timer
        self.paths: dict[str, Path] = {}


_PENDING = pytest.StashKey[_Pending]()


def lead_time(timeout: float) -> float:
    """Seconds before the deadline the snapshot is taken.

    Long enough to write a full snapshot before the process is ended, short
    enough to keep most of the hang in the window: 10% of the timeout, at
    least 0.2 s and at most 1 s, and never more than half the timeout.
    """
    return min(max(0.1 * timeout, 0.2), 1.0, timeout / 2)


def _ends_process(settings: Any) -> bool:
    method = getattr(settings, "method", None)
    if method == "thread":
        return True
    # pytest-timeout falls back to the thread method off the main thread
    return method == "signal" and threading.current_thread() is not threading.main_thread()


class TimeoutSnapshots:
    """Wraps pytest-timeout's timer hooks for the ``thread`` method."""

    def __init__(self, plugin: RingtracePlugin):
        self.plugin = plugin

    @pytest.hookimpl(wrapper=True, optionalhook=True)
    def pytest_timeout_set_timer(
        self, item: pytest.Item, settings: Any
    ) -> Generator[None, object, object]:
        result = yield
        try:
            self._arm(item, settings)
        except Exception as exc:
            warn(f"{item.nodeid}: cannot arm the timeout snapshot: {describe(exc)}")
        return result

    @pytest.hookimpl(wrapper=True, optionalhook=True)
    def pytest_timeout_cancel_timer(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            self._disarm(item)
        except Exception as exc:
            warn(f"{item.nodeid}: cannot cancel the timeout snapshot: {describe(exc)}")
        return (yield)

    def _arm(self, item: pytest.Item, settings: Any) -> None:
        timeout = getattr(settings, "timeout", None)
        if not timeout or timeout <= 0 or not _ends_process(settings):
            return
        self._disarm(item)
        deadline_ns = time.monotonic_ns() + int(timeout * 1e9)
        timer = threading.Timer(timeout - lead_time(timeout), self._dump)
        pending = item.stash[_PENDING] = _Pending(timer)
        timer.args = (item, pending, timeout, deadline_ns)
        timer.daemon = True
        timer.name = f"ringtrace-timeout {item.nodeid}"
        timer.start()

    def _disarm(self, item: pytest.Item) -> None:
        pending = item.stash.get(_PENDING, None)
        if pending is None:
            return
        del item.stash[_PENDING]
        pending.timer.cancel()
        pending.timer.join()
        if pending.paths:  # written, but the test ended before the deadline
            self.plugin.writer.remove(pending.paths)

    def _dump(self, item: pytest.Item, pending: _Pending, timeout: float, deadline_ns: int) -> None:
        # The timer is armed before the test's setup (pytest-timeout arms it
        # in pytest_runtest_protocol); the test's state exists by now unless
        # the hang is in an earlier plugin's setup hook.
        state = item.stash.get(TEST, None)
        if state is None:
            sys.stderr.write(f"ringtrace: no timeout snapshot of {item.nodeid}: not set up\n")
            return
        try:
            taken = self.plugin.take(
                item,
                state,
                phase="timeout",
                outcome="timeout",
                failure_ns=deadline_ns,
                extra={"timeout_s": timeout},
            )
        except BaseException as exc:  # a timer thread: report, never raise
            sys.stderr.write(f"ringtrace: timeout snapshot of {item.nodeid} failed: {exc!r}\n")
            return
        if taken is None:
            return
        snapshot, _counts, paths, _problems = taken
        pending.paths = paths
        where = (
            ", ".join(self.plugin.shown(p) for p in paths.values())
            or "no file: nothing was recorded"
        )
        sys.stderr.write(
            f"ringtrace: {item.nodeid} is {lead_time(timeout):.2f} s from its pytest-timeout "
            f"deadline ({timeout} s, thread method ends the process): snapshot {where}\n"
        )
        sys.stderr.flush()
        self.plugin.announce(snapshot, item, None, paths)
