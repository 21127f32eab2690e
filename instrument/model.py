"""The snapshot data model: what a reader got out of the rings, as plain data.

A :class:`Snapshot` is independent of the recorder it came from: every value
in it is a str, int, float, bool, None, or a list/dict/tuple of those, so it
can be pickled across processes (pytest-xdist), written in any format, and
read back equal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class SnapshotFileError(ValueError):
    """A file that cannot be read as a snapshot: missing, empty, truncated,
    corrupt, foreign, or of an unsupported version.

    The message is one line, the path and then what is wrong with it, so
    that a command can print it as it is; ``path`` and ``problem`` hold the
    two parts.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = os.fspath(path)
        self.problem = " ".join(problem.split())
        super().__init__(f"{self.path}: {self.problem}")


class Event(NamedTuple):
    """One recorded event.

    ``kind`` is ``"event"`` for a point event, ``"entry"``/``"exit"`` for
    the two ends of a traced call or span, ``"suspend"``/``"resume"`` for a
    generator's or coroutine's suspension and resumption (see
    :func:`span_start` for how they are paired). ``timestamp`` is monotonic
    nanoseconds (add ``Snapshot.clock_offset_ns`` for wall-clock time).
    ``fields`` and ``context`` may be shared between events: treat them as
    read-only.
    """

    timestamp: int
    name: str
    kind: str
    thread_id: int
    thread_name: str
    fields: dict[str, Any]
    context: dict[str, Any]
    channel: str
    position: int


def span_start(ev: Event) -> int | None:
    """When the span ``ev`` belongs to began, or ``None`` if unknown.

    The pairing identity of a span is its name and its entry's timestamp:
    an entry's own timestamp; for an exit, suspension or resumption, its
    timestamp minus its ``duration_ns``, which is exactly the entry's (see
    :mod:`instrument.stream`). Spans pair by it on any thread and in any
    order, so overlapping coroutines on one thread never swap.
    """
    if ev.kind == "entry":
        return ev.timestamp
    duration = ev.fields.get("duration_ns")
    return ev.timestamp - duration if type(duration) is int else None


#: The states of a span's stretches (see :func:`activity`).
RUNNING = "running"
SUSPENDED = "suspended"
#: A stretch the snapshot does not tell about: before the first suspension
#: or resumption it holds of a span whose entry it lacks, or between two
#: records that cannot follow each other (one between them was lost).
UNKNOWN = "unknown"

#: A stretch of a span: (start, end, state), monotonic ns.
Stretch = tuple[int, int, str]
#: Where each span's suspensions and resumptions are (see :func:`marks_by_span`).
SpanKey = tuple[str, int]


class Activity(NamedTuple):
    """When a span that suspended (a generator, coroutine or async
    generator) ran and when it waited, from its suspensions and resumptions.

    ``stretches`` follow each other from the span's start to its end
    (its exit, or the snapshot for a span still open), none empty.
    ``suspensions`` counts the ``suspend`` records in the snapshot.
    """

    stretches: tuple[Stretch, ...]
    suspensions: int

    def total(self, state: str) -> int:
        """Nanoseconds spent in ``state``."""
        return sum(end - start for start, end, s in self.stretches if s == state)

    @property
    def ran_ns(self) -> int:
        """Time it ran: the sum of its running stretches."""
        return self.total(RUNNING)

    @property
    def unknown_ns(self) -> int:
        """Time the snapshot does not tell about (see :data:`UNKNOWN`)."""
        return self.total(UNKNOWN)


def activity(
    start: int, end: int, marks: Iterable[tuple[int, str]], entry: bool = True
) -> Activity | None:
    """The running and suspended stretches of a span, the one definition
    every view uses.

    ``start``/``end``: the span's entry and exit times (or the snapshot's,
    for a span still open); ``marks``: its ``(timestamp, kind)``
    suspensions and resumptions in order; ``entry``: whether the snapshot
    holds the entry. A span runs from its entry to a suspension and from a
    resumption to the next suspension or its exit; it is suspended from a
    suspension to the next resumption, or to its end (a generator left at
    a ``yield``, a coroutine still waiting at the snapshot). What the
    records cannot tell is :data:`UNKNOWN`: the start of a span whose entry
    is older than the snapshot (up to its first record), and the stretch
    before a resumption that follows no suspension or a suspension that
    follows one.

    ``None`` when there are no marks or the span lasted no time (it is one
    stretch, as drawn without marks), and for a sequence no span can have (times going back, or
    outside the span): views then draw the whole span, never raise.
    """
    state = RUNNING if entry else UNKNOWN
    t = start
    out: list[Stretch] = []
    suspensions = seen = 0
    for ts, kind in marks:
        seen += 1
        if type(ts) is not int or ts < t or ts > end:
            return None
        if kind == "suspend":
            before = UNKNOWN if state == SUSPENDED else state
            state = SUSPENDED
            suspensions += 1
        elif kind == "resume":
            before = SUSPENDED if state == SUSPENDED else UNKNOWN
            state = RUNNING
        else:
            return None
        _stretch(out, t, ts, before)
        t = ts
    if not seen:
        return None
    _stretch(out, t, end, state)
    return Activity(tuple(out), suspensions) if out else None


def _stretch(out: list[Stretch], start: int, end: int, state: str) -> None:
    """Append a stretch, merged into the last one when of the same state."""
    if end <= start:
        return
    if out and out[-1][2] == state and out[-1][1] == start:
        out[-1] = (out[-1][0], end, state)
    else:
        out.append((start, end, state))


def marks_by_span(events: Iterable[Event]) -> dict[SpanKey, list[tuple[int, str]]]:
    """The ``(timestamp, kind)`` suspensions and resumptions of each span,
    by its identity ``(name, entry timestamp)`` (:func:`span_start`), in
    snapshot order. Empty for a snapshot without any."""
    found: dict[SpanKey, list[tuple[int, str]]] = {}
    for ev in events:
        kind = ev.kind
        if kind == "suspend" or kind == "resume":
            start = span_start(ev)
            if start is not None:
                found.setdefault((ev.name, start), []).append((ev.timestamp, kind))
    return found


@dataclass
class StreamInfo:
    """What a snapshot read from one stream (one thread on one channel).

    Positions are free-running: ``first_position``/``last_position`` are the
    first and last records read (``None`` when nothing was), ``gaps`` the
    ``[start, end)`` position ranges of skipped sub-buffers (each a whole
    number of sub-buffers). Loss counters: ``overwritten`` (records older than
    the ring still holds, by design in overwrite mode), ``dropped`` (discard
    mode, ring full), ``skipped`` (records in skipped sub-buffers).
    """

    channel: str
    thread_id: int
    thread_name: str
    alive: bool
    mode: str
    subbuf_size: int
    num_subbuf: int
    produced: int
    first_position: int | None = None
    last_position: int | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)
    overwritten: int = 0
    dropped: int = 0
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """Records lost in sub-buffers this snapshot skipped.

        A skipped sub-buffer the writer had only partly filled counts the
        records produced in it, not its whole size.
        """
        return sum(min(end, self.produced) - start for start, end in self.gaps)

    @property
    def skipped_subbufs(self) -> int:
        """Sub-buffers this snapshot skipped."""
        return sum((end - start) // self.subbuf_size for start, end in self.gaps)


@dataclass
class Snapshot:
    """Events read from every stream, merged in timestamp order.

    ``clock_offset_ns`` is wall-clock time minus monotonic time when the
    snapshot was taken; ``taken_at`` is the monotonic time it was taken;
    ``since`` the lower bound it was taken with; ``metadata`` free-form plain
    data (the pytest plugin puts the test id, phase and worker there).

    ``origin_ns`` is time zero of every view of the snapshot (the terminal,
    ``ringtrace show``, HTML, Perfetto): the moment it was taken, or the
    failure when the pytest plugin took it (see :attr:`origin`).
    ``sources`` maps traced names present in the events to the ``file:line``
    where their code starts (see :mod:`instrument.sources`).
    """

    events: list[Event]
    streams: list[StreamInfo]
    clock_offset_ns: int
    taken_at: int
    since: int | None = None
    pid: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    origin_ns: int | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> int:
        """Time zero of every view: ``origin_ns``, or ``taken_at`` when unset
        (a snapshot made by hand, or a file written before it existed)."""
        return self.taken_at if self.origin_ns is None else self.origin_ns

    def __len__(self) -> int:
        return len(self.events)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Snapshot:
        """Read back a snapshot written in our JSON format (``.json`` or ``.json.gz``).

        The result equals the snapshot that was written. A file that is not
        one raises :class:`SnapshotFileError` (a ``ValueError``). The file is
        validated whole; its events are built a block at a time when first
        used (``events`` is then a
        :class:`~instrument.formats.json_format.BlockEvents`, which reads like
        the list and becomes one when changed), so loading needs about the
        file's size in memory.
        """
        from .formats.json_format import read

        return read(path)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    @property
    def threads(self) -> list[tuple[int, str]]:
        """(thread id, thread name) of every stream, in stream order, unique."""
        seen: dict[int, str] = {}
        for info in self.streams:
            seen.setdefault(info.thread_id, info.thread_name)
        return list(seen.items())

    @property
    def dropped(self) -> int:
        """Events dropped by full discard-mode rings."""
        return sum(s.dropped for s in self.streams)

    @property
    def skipped(self) -> int:
        """Events lost in sub-buffers skipped by this snapshot."""
        return sum(s.skipped for s in self.streams)

    @property
    def skipped_subbufs(self) -> int:
        """Sub-buffers this snapshot skipped (a writer was in them)."""
        return sum(s.skipped_subbufs for s in self.streams)

    @property
    def overwritten(self) -> int:
        """Events older than the rings hold (overwrite mode, by design)."""
        return sum(s.overwritten for s in self.streams)

    @property
    def lost(self) -> int:
        """Events lost other than by design: dropped plus skipped."""
        return self.dropped + self.skipped
