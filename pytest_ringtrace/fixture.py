"""The ``ringtrace`` fixture: the current test's events, for assertions.

In the style of ``caplog``::

    def test_refund_hits_the_cache(ringtrace):
        service.refund(order)
        assert [e.fields["key"] for e in ringtrace.select("cache.hit")] == ["order:7"]
        assert "cache.hit" in ringtrace.text
        assert [e.name for e in ringtrace.get_records("setup")] == ["db.connect"]
        ringtrace.clear()

The fixture sees the same events with and without ``--ringtrace``: those
recorded from the start of the test's setup (before any fixture runs) to
the end of its teardown. With ``--ringtrace`` it reads the session's
recorder; without, a recorder is started for the test at the start of its
setup and stopped after its teardown (:func:`begin_phase`, :func:`end_test`,
called by the always-loaded plugin only for tests that use the fixture).
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from .options import Settings
from .state import PLUGIN_NAME, SETTINGS

if TYPE_CHECKING:
    from instrument import Event, Recorder, Snapshot

_KINDS = ("event", "entry", "exit", "suspend", "resume")
_PHASES = ("setup", "call", "teardown")


@dataclass
class FixtureState:
    """One test's recording for the fixture: phase start times, and the
    recorder started for it (``None`` when the session's was used)."""

    phases: dict[str, int] = field(default_factory=dict)
    started: Recorder | None = None


FIXTURE = pytest.StashKey[FixtureState]()


def _start_recorder(config: pytest.Config) -> Recorder | None:
    """A recorder for one test, unless one is running already (``--ringtrace``)."""
    import instrument

    if instrument.active_recorder() is not None:
        return None
    settings = config.stash.get(SETTINGS, Settings())
    channel = instrument.Channel(subbuf_size=settings.subbuf_size, num_subbuf=settings.num_subbuf)
    return instrument.start([channel], **settings.start_options())  # type: ignore[arg-type]


def begin_phase(item: pytest.Item, phase: str) -> None:
    """Note when ``phase`` starts; at setup, start recording if nothing records."""
    if phase == "setup":
        end_test(item)  # a rerun (pytest-rerunfailures) starts afresh
        state = item.stash[FIXTURE] = FixtureState()
        state.phases["setup"] = time.monotonic_ns()
        state.started = _start_recorder(item.config)
        return
    current = item.stash.get(FIXTURE, None)
    if current is not None:
        current.phases[phase] = time.monotonic_ns()


def end_test(item: pytest.Item) -> None:
    """After the teardown: stop the recorder started for the test, if still ours."""
    import instrument

    state = item.stash.get(FIXTURE, None)
    if state is None or state.started is None:
        return
    started, state.started = state.started, None
    if instrument.active_recorder() is started:
        instrument.stop()


def _line(ev: Event) -> str:
    """An event as one line without its time: ``thread marker name fields``."""
    from instrument.view.render import describe_fields, printable

    marks = {"entry": "->", "exit": "<-", "event": " *"}
    detail = describe_fields(ev)
    text = f"{marks.get(ev.kind, ' ?')} {printable(ev.name)}"
    return f"{text}  {detail}" if detail else text


class _Text(str):
    """The text of the events; calling it, ``ringtrace.text(tail=5)``, is the
    older form and gives the last ``tail`` events as the failure section."""

    _fixture: RingtraceFixture

    def __new__(cls, value: str, fixture: RingtraceFixture) -> _Text:
        text = super().__new__(cls, value)
        text._fixture = fixture
        return text

    def __call__(self, tail: int = 20) -> str:
        return self._fixture.section(tail)


class RingtraceFixture:
    """What the code under test recorded since the test began (or :meth:`clear`).

    Like ``caplog``: :attr:`records` (the events), :attr:`messages` (one
    line per event), :attr:`text` (all of them as text), :meth:`clear`,
    :meth:`get_records` (one phase), ``len()`` and iteration. Reads are
    snapshots: each property call reads the rings again, from every
    thread, so events recorded by worker threads are seen as soon as they
    are written.
    """

    def __init__(
        self,
        since: int,
        recorder: Callable[[], Recorder | None],
        phases: dict[str, int] | None = None,
    ):
        self._since = since
        self._recorder = recorder
        self._phases = phases if phases is not None else {}

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
        """Every event of this test so far, all threads, in time order
        (span entries and exits are separate events)."""
        return self.snapshot().events

    @property
    def records(self) -> list[Event]:
        """The same as :attr:`events` (``caplog.records``' name)."""
        return self.events

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    @property
    def names(self) -> list[str]:
        """The name of each point event and each span, in order: a span is
        listed once, at its entry (its exit is not listed again)."""
        return [ev.name for ev in self.events if ev.kind != "exit"]

    @property
    def messages(self) -> list[str]:
        """One line per event: marker (``->`` entry, ``<-`` exit, ``*`` point
        event), name and fields, e.g. ``" * cache.hit  key='lamp'"``."""
        return [_line(ev) for ev in self.events]

    @property
    def text(self) -> _Text:
        """All the events as text, one line each (:attr:`messages` joined), so
        ``"cache.hit" in ringtrace.text`` works as with ``caplog.text``."""
        return _Text("".join(line + "\n" for line in self.messages), self)

    def get_records(self, when: str) -> list[Event]:
        """The events of one phase of the test: ``"setup"``, ``"call"`` or
        ``"teardown"`` (from its start to the next phase's, and after
        :meth:`clear` if that was later)."""
        if when not in _PHASES:
            raise ValueError(f"when must be one of {', '.join(_PHASES)}, got {when!r}")
        start = self._phases.get(when)
        if start is None:
            return []
        following = _PHASES[_PHASES.index(when) + 1 :]
        end = next((self._phases[p] for p in following if p in self._phases), None)
        return [
            ev
            for ev in self.events
            if ev.timestamp >= start and (end is None or ev.timestamp < end)
        ]

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

    def section(self, tail: int = 20) -> str:
        """The last ``tail`` events as the failure section shows them (time
        relative to now)."""
        from .report import section_text, summary

        snap = self.snapshot()
        return section_text(
            snap,
            counts=summary(snap),
            failure_ns=time.monotonic_ns(),
            paths={},
            tail=tail,
            view="flat",  # the last ``tail`` events, one line each
        )


@pytest.fixture
def ringtrace(request: pytest.FixtureRequest) -> Generator[RingtraceFixture, None, None]:
    """Access the events the code under test recorded during this test.

    ``ringtrace.records`` / ``.events``, ``ringtrace.text``,
    ``ringtrace.messages``, ``ringtrace.get_records("call")``,
    ``ringtrace.select("orders.*", kind="exit")``, ``ringtrace.names``,
    ``len(ringtrace)``, ``ringtrace.snapshot()``, ``ringtrace.clear()``.
    The same events with or without ``--ringtrace``: from the start of the
    test's setup.
    """
    import instrument

    config = request.config
    session = config.pluginmanager.get_plugin(PLUGIN_NAME)
    state = request.node.stash.get(FIXTURE, None)
    started: Recorder | None = None
    if state is None:  # requested dynamically (getfixturevalue): record from now
        state = FixtureState({"setup": time.monotonic_ns()})
        started = _start_recorder(config)
    own = state.started or started

    def current() -> Recorder | None:
        active = instrument.active_recorder()
        if active is not None:
            return active
        if own is not None:
            return own
        recording = getattr(session, "recording", None)
        return recording.current() if recording is not None else None

    yield RingtraceFixture(state.phases["setup"], current, state.phases)
    if started is not None and instrument.active_recorder() is started:
        instrument.stop()
