"""The ``ringtrace`` fixture: the current test's events, for assertions.

In the style of ``caplog``::

    def test_refund_hits_the_cache(ringtrace):
        service.refund(order)
        assert [e.fields["key"] for e in ringtrace.select("cache.hit")] == ["order:7"]
        ringtrace.clear()

With ``--ringtrace`` the fixture reads the session's recorder from the start
of the test's setup; without it, the fixture records for the duration of the
test only (and stops afterwards what it started).
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import pytest

from .options import Settings
from .state import PLUGIN_NAME, SETTINGS, TEST

if TYPE_CHECKING:
    from instrument import Event, Recorder, Snapshot

_KINDS = ("event", "entry", "exit")


class RingtraceFixture:
    """What the code under test recorded since the test began (or :meth:`clear`).

    Reads are snapshots: each property call reads the rings again, from
    every thread, so events recorded by worker threads are seen as soon as
    they are written.
    """

    def __init__(self, since: int, recorder: Callable[[], Recorder | None]):
        self._since = since
        self._recorder = recorder

    @property
    def since(self) -> int:
        """Monotonic time (ns) the events are read from."""
        return self._since

    @property
    def recording(self) -> bool:
        """Whether events are being recorded now."""
        import instrument

        return instrument.recording()

    def snapshot(self) -> Snapshot:
        """A :class:`instrument.Snapshot` of this test's events so far."""
        import instrument

        recorder = self._recorder()
        if recorder is None:
            raise RuntimeError("ringtrace fixture: no recorder to read (recording was stopped)")
        return instrument.snapshot(since=self._since, recorder=recorder)

    @property
    def events(self) -> list[Event]:
        """Every event of this test so far, all threads, in time order."""
        return self.snapshot().events

    @property
    def names(self) -> list[str]:
        """The name of each event of :attr:`events`, in order."""
        return [ev.name for ev in self.events]

    def select(
        self, pattern: str = "*", *, kind: str | None = None, thread: str | None = None
    ) -> list[Event]:
        """Events whose name matches the glob ``pattern``.

        ``kind`` keeps one kind (``"event"``, ``"entry"``, ``"exit"``);
        ``thread`` is a glob on the thread name (``"worker-*"``).
        """
        if kind is not None and kind not in _KINDS:
            raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
        name_re = re.compile(fnmatch.translate(pattern))
        thread_re = re.compile(fnmatch.translate(thread)) if thread is not None else None
        return [
            ev
            for ev in self.events
            if name_re.match(ev.name)
            and (kind is None or ev.kind == kind)
            and (thread_re is None or thread_re.match(ev.thread_name))
        ]

    def clear(self) -> None:
        """Forget the events so far: later reads start from now."""
        self._since = time.monotonic_ns()

    def text(self, tail: int = 20) -> str:
        """The events as the failure section shows them (time relative to now)."""
        from .report import section_text, summary

        snap = self.snapshot()
        return section_text(
            snap, counts=summary(snap), failure_ns=time.monotonic_ns(), paths={}, tail=tail
        )


@pytest.fixture
def ringtrace(request: pytest.FixtureRequest) -> Generator[RingtraceFixture, None, None]:
    """Access the events the code under test recorded during this test.

    ``ringtrace.events``, ``ringtrace.select("orders.*", kind="exit")``,
    ``ringtrace.names``, ``ringtrace.snapshot()``, ``ringtrace.clear()``.
    Without ``--ringtrace`` the fixture records for this test only.
    """
    import instrument

    config = request.config
    session = config.pluginmanager.get_plugin(PLUGIN_NAME)
    started: Recorder | None = None
    if instrument.active_recorder() is None:
        settings = config.stash.get(SETTINGS, Settings())
        channel = instrument.Channel(
            subbuf_size=settings.subbuf_size, num_subbuf=settings.num_subbuf
        )
        started = instrument.start([channel], max_dead_streams=settings.max_dead_streams)
    state = request.node.stash.get(TEST, None)
    since = state.since if state is not None and state.since else time.monotonic_ns()

    def current() -> Recorder | None:
        active = instrument.active_recorder()
        if active is not None:
            return active
        if started is not None:
            return started
        recording = getattr(session, "recording", None)
        return recording.current() if recording is not None else None

    yield RingtraceFixture(since, current)
    if started is not None and instrument.active_recorder() is started:
        instrument.stop()
