"""A stream: one thread's ring buffer of one channel, and how it is read.

Positions are free-running counters (Python ints never wrap). Everything
else is derived from a position, as in LTTng:

* sub-buffer start: ``pos - pos % subbuf_size``
* lap (how many times the ring was filled): ``pos // capacity``
* packet sequence number: ``pos // subbuf_size``

The ring is a ``collections.deque``. A writer first *reserves* a position,
then *commits* the record that carries it, as LTTng's writers do:

* overwrite mode: the position counter is an ``itertools.count()`` and
  reserving is its ``__next__``; committing is the ``append`` of a
  ``deque(maxlen=capacity)``, which drops the record ``capacity`` commits
  older (the one at the same place of the previous lap). Both are single C
  calls: no other writer (a signal handler on the same thread) can take the
  same position. The published write position, ``produced``, is the
  counter's next value, read without advancing it (from its ``repr``).
* discard mode: :meth:`Stream.append_discard` takes the next position from a
  plain int, or drops and counts the record when ``capacity`` positions past
  the consumer's are held; the consumer removes whole sub-buffers from the
  left of an unbounded deque (bounded by that check).

A record is a tuple whose first item is its own position:
``(position, timestamp_ns, name, fields)`` for a point event,
``(position, timestamp_ns, name, fields, kind)`` for an entry or exit, and
``(position, timestamp_ns, name, fields, kind, context)`` on a channel with
dynamic context. ``kind`` is ``entry``, ``exit``, or ``suspend``/``resume``
(a generator's or coroutine's suspension and resumption: the sysmon engine
records them at ``PY_YIELD``/``PY_RESUME``, the wrapt engine's wrappers
where they hand a value out and are sent, thrown or closed into).

Pairing: a span's identity is its name and its entry's timestamp. An exit,
suspension or resumption stores its entry's timestamp ``t0`` (an int) as
fields, or, when it has fields of its own (a return value, an exception),
``duration_ns`` measured to its own timestamp, so that ``timestamp -
duration_ns == t0`` exactly (the reader turns a stored ``t0`` into that
``duration_ns`` too). Views pair records by ``(name, timestamp -
duration_ns)`` (``instrument.model.span_start``), per coroutine, never per
thread: overlapping coroutines on one thread, or a generator resumed on
another thread, keep their own durations.

Reserved but not committed: a writer interrupted between the two steps (by
a signal handler that records, or on a free-threaded build, at any time)
leaves its position missing while later ones are there, and commits it
later, so records may reach the ring slightly out of position order. A
reader copies the ring in one C-level operation, puts the copy in position
order, and skips whole any sub-buffer that lacks one of its positions (a
writer is still in it, or it was overwritten while the reader copied),
returning it as a gap, as LTTng's snapshot consumer does. An exception
raised between reserve and commit (from a signal handler) abandons the
position for good: a missing position with a later one held, or on a
stream no writer can be in (an ended thread, the reader's own), is such a
one and costs only its record, a one-position gap (see :func:`abandoned`).
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import count, repeat
from operator import itemgetter
from typing import Any

from .channel import Channel

#: Record kinds: a point event, and the two ends of a span or traced call.
EVENT = "event"
ENTRY = "entry"
EXIT = "exit"
#: A generator's or coroutine's suspension and resumption (both engines).
SUSPEND = "suspend"
RESUME = "resume"

# A record: (position, timestamp_ns, name, fields[, kind[, dynamic context]]).
Record = tuple[Any, ...]

#: What the hot path calls for a write: ``append(record)`` and ``reserve()``.
Writer = tuple[Callable[[Record], None], Callable[[], int]]

#: The ``reserve`` of a route whose ``append`` takes positions itself (a
#: discard-mode stream, a route to several streams): a cheap C call whose
#: value (0) is replaced.
placeholder_reserve: Callable[[], int] = repeat(0).__next__

#: Times a reader tries to copy a ring that a writer changed during the copy
#: (only possible without the GIL) before it gives up on that stream.
COPY_ATTEMPTS = 8

_position = itemgetter(0)


class Stream:
    """One ring buffer: a thread's events on one channel.

    The writer (the owning thread) reserves positions and appends to
    ``ring``; readers copy ``ring`` and read :meth:`produced`. In discard
    mode the consumer raises ``consumed`` and removes what it took from the
    left of ``ring``.
    """

    __slots__ = (
        "__weakref__",
        "alive",
        "capacity",
        "channel",
        "consumed",
        "counter",
        "dropped",
        "overwrite",
        "pos",
        "ring",
        "static",
        "thread",
        "thread_id",
        "thread_name",
    )

    def __init__(self, channel: Channel, thread: threading.Thread, static: Mapping[str, object]):
        self.channel = channel
        self.capacity = channel.capacity
        self.overwrite = channel.mode == "overwrite"
        # Overwrite mode: the deque's maxlen does the overwriting. Discard
        # mode: append_discard bounds it.
        self.ring: deque[Record] = deque(maxlen=channel.capacity if self.overwrite else None)
        self.counter = count()  # overwrite mode: the next position to reserve
        self.pos = 0  # discard mode: the next position to take
        self.consumed = 0
        self.dropped = 0
        self.thread: weakref.ref[threading.Thread] = weakref.ref(thread)
        self.thread_id: int = thread.ident or 0
        self.thread_name = thread.name
        self.static = dict(static)
        self.alive = True

    def writer(self) -> Writer:
        """The ``(append, reserve)`` pair the hot path calls to write here.

        Neither holds a reference to the stream in overwrite mode, so a
        thread's cache of them keeps no stream alive in a cycle.
        """
        if self.overwrite:
            return self.ring.append, self.counter.__next__
        return self.append_discard, placeholder_reserve

    def produced(self) -> int:
        """The published write position: every position below it is reserved."""
        if self.overwrite:
            return int(repr(self.counter)[6:-1])  # "count(N)": N, not advanced
        return self.pos

    def write(self, record: Record) -> None:
        """Write ``record``, built with a placeholder position, at the next one.

        The slow path's write (routes to several streams, dynamic context).
        """
        if self.overwrite:
            self.ring.append((next(self.counter), *record[1:]))
        else:
            self.append_discard(record)

    def append_discard(self, record: Record) -> None:
        """Discard mode's write: keep ``record`` at the next position, or drop
        and count it when ``capacity`` positions past the consumer's are held.

        Between reading ``pos`` and storing the next value there is no call,
        so no signal handler of this thread can take the same position.
        """
        pos = self.pos
        if pos - self.consumed < self.capacity:
            self.pos = pos + 1
            self.ring.append((pos, *record[1:]))
        else:
            self.dropped += 1

    def current_thread_name(self) -> str:
        """The thread's name now if it still runs, else its last known name."""
        thread = self.thread()
        if thread is not None:
            self.thread_name = thread.name
        return self.thread_name


@dataclass
class StreamRead:
    """What one pass over a stream found: records in position order, their
    positions, and gaps."""

    records: list[Record] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    begin: int = 0
    produced: int = 0


def copy_ring(ring: deque[Record]) -> list[Record] | None:
    """A copy of ``ring`` made in one C-level pass (atomic under the GIL), or
    ``None`` if a writer changed it during every attempt (free-threaded)."""
    for _ in range(COPY_ATTEMPTS):
        try:
            return list(ring)
        except RuntimeError:  # "deque mutated during iteration"
            continue
    return None


def in_position_order(records: list[Record]) -> tuple[list[Record], list[int]]:
    """``records`` sorted by position, and their positions.

    Records are committed in position order except where a signal handler
    wrote between another write's reserve and commit: checked first, in a
    C-level pass, and sorted only then.
    """
    positions = list(map(_position, records))
    if sorted(positions) != positions:
        records = sorted(records, key=_position)
        positions.sort()
    return records, positions


def read_stream(stream: Stream, since: int | None = None) -> StreamRead:
    """Copy every readable sub-buffer of ``stream`` without stopping its writer.

    Reads from the oldest position still held up to ``produced`` as
    published when the read began (read before the copy: a record committed
    later is not read, and causes no gap). With ``since`` (a monotonic
    timestamp), leading sub-buffers whose last record is older are passed
    over. A sub-buffer that lacks one of its positions up to ``produced``
    (reserved but not yet committed, or overwritten while the reader copied)
    is skipped whole and returned as a gap, as LTTng's snapshot consumer does.
    """
    channel = stream.channel
    size = channel.subbuf_size
    produced = stream.produced()
    copied = copy_ring(stream.ring)
    if stream.overwrite:
        # The sub-buffer the writer is in belongs to this lap as a whole: what
        # it held from the previous lap counts as overwritten, as in LTTng.
        filled_to = -(-produced // size) * size
        oldest = max(filled_to - channel.capacity, 0)
    else:
        # Read after the copy: the consumer raises ``consumed`` before it
        # removes records, so every record the copy lacks below ``produced``
        # is below ``consumed`` or really missing (and a consumer that ran
        # since ``produced`` was read may have taken records beyond it). The
        # writer never keeps more than ``capacity`` past it: all of it is
        # held, even after a flushing consume left ``consumed`` inside a
        # sub-buffer.
        oldest = min(stream.consumed, produced)
    result = StreamRead(begin=oldest, produced=produced)
    records, positions = in_position_order(copied or [])
    lo = bisect_left(positions, oldest)
    hi = bisect_left(positions, produced)
    if lo or hi < len(positions):
        records, positions = records[lo:hi], positions[lo:hi]
    subbuf = oldest - oldest % size
    if len(records) == produced - oldest:
        # Positions are distinct and in order: this is every one of
        # [oldest, produced), and every sub-buffer is whole.
        if since is not None:  # pass over sub-buffers whose last record is older
            while subbuf < produced:
                last = min(subbuf + size, produced) - 1  # at index last - oldest
                if records[last - oldest][1] >= since:
                    break
                subbuf += size
            if subbuf > oldest:
                records, positions = records[subbuf - oldest :], positions[subbuf - oldest :]
        result.records, result.positions = records, positions
        return result
    # Held positions bound what an abandoned reservation can be: one missing
    # while a later position is held (see abandoned()), or any, when no
    # writer can be in progress: the thread ended, or it is the reader's own
    # (it is not writing while it reads; read from a signal handler that
    # interrupted its write, that write's record is left out and counted).
    lowest = positions[0] if positions else produced
    if not stream.alive or stream.thread() is threading.current_thread():
        newest = produced
    else:
        newest = positions[-1] if positions else oldest
    i = 0
    while subbuf < produced:
        first = max(subbuf, oldest)
        end = min(subbuf + size, produced)
        i = bisect_left(positions, first, i)
        j = bisect_left(positions, end, i)
        holes = (
            None if j - i == end - first else abandoned(positions[i:j], first, end, lowest, newest)
        )
        if holes is None and j - i != end - first:
            result.gaps.append((subbuf, subbuf + size))
        elif since is None or records[j - 1][1] >= since or result.records:
            result.records.extend(records[i:j])
            result.positions.extend(positions[i:j])
            if holes:
                result.gaps.extend(holes)
        i = j
        subbuf += size
    return result


def abandoned(
    held: list[int], first: int, end: int, lowest: int, newest: int
) -> list[tuple[int, int]] | None:
    """The positions of ``[first, end)`` missing from ``held`` (sorted), as
    ``[start, end)`` runs, if every one was abandoned; else ``None``.

    A writer reserves then commits. An exception raised between the two (a
    signal handler's, e.g. pytest-timeout's) abandons the position for good,
    while the writer goes on with the next ones. A writer still in progress
    is always at the newest positions its thread reserved: what a signal
    handler on that thread writes meanwhile comes after it, and no other
    thread writes to the stream. So a missing position with a later one held
    (below ``newest``), and an earlier one held (above ``lowest``: below it,
    positions are missing because the ring overwrote them), is abandoned: it
    costs its own record, counted as lost, and the sub-buffer around it is
    kept. A sub-buffer missing a position past ``newest`` still has a writer
    in it and is skipped whole, as LTTng does.
    """
    runs: list[tuple[int, int]] = []
    expected = first
    for pos in (*held, end):
        if pos > expected:
            if expected <= lowest or pos > newest:
                return None
            runs.append((expected, pos))
        expected = pos + 1
    return runs
