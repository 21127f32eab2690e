"""A stream: one thread's ring buffer of one channel, and how it is read.

Positions are free-running counters (Python ints never wrap). Everything else
is derived from a position, as in LTTng:

* slot in the ring: ``pos & (capacity - 1)``
* sub-buffer start: ``pos & ~(subbuf_size - 1)``
* lap: ``pos // capacity``
* packet sequence number: ``pos // subbuf_size``

A record is a tuple whose first item is its own position. The writer stores
the record *before* publishing the next position, so every slot below the
published position is committed; a reader that finds a slot holding another
position knows, without any lock, that the sub-buffer was overwritten (or, on
a free-threaded build, not yet committed) and skips the whole sub-buffer.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .channel import Channel

#: Record kinds: a point event, and the two ends of a span or traced call.
EVENT = "event"
ENTRY = "entry"
EXIT = "exit"

#: ``limit`` of an overwrite-mode stream: a position no writer reaches.
UNLIMITED = 1 << 62

# A record: (position, timestamp_ns, kind, name, fields[, dynamic context]).
Record = tuple[Any, ...]


class Stream:
    """One ring buffer: a thread's events on one channel.

    The writer (the owning thread) touches ``pos``, ``slots`` and the loss
    counters; readers only read them. ``limit`` is the first position the
    writer may not take: ``UNLIMITED`` in overwrite mode, ``consumed +
    capacity`` in discard mode (raised by the consumer).
    """

    __slots__ = (
        "__weakref__",
        "alive",
        "channel",
        "consumed",
        "dropped",
        "limit",
        "mask",
        "pos",
        "slots",
        "static",
        "thread",
        "thread_id",
        "thread_name",
    )

    def __init__(self, channel: Channel, thread: threading.Thread, static: Mapping[str, object]):
        self.channel = channel
        self.slots: list[Record | None] = [None] * channel.capacity
        self.mask = channel.capacity - 1
        self.pos = 0
        self.consumed = 0
        self.limit = UNLIMITED if channel.mode == "overwrite" else channel.capacity
        self.dropped = 0
        self.thread: weakref.ref[threading.Thread] = weakref.ref(thread)
        self.thread_id: int = thread.ident or 0
        self.thread_name = thread.name
        self.static = dict(static)
        self.alive = True

    def overflow(self, record: Record) -> None:
        """The writer's slow path, taken at the discard-mode limit.

        ``record`` is built with a placeholder position. The consumer may
        have freed room since the writer looked; otherwise the event is
        dropped and counted.
        """
        pos = self.pos
        if pos < self.limit:
            self.slots[pos & self.mask] = (pos, *record[1:])
            self.pos = pos + 1
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
    """What one pass over a stream found: records in position order and gaps."""

    records: list[Record] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    begin: int = 0
    produced: int = 0


def copy_range(stream: Stream, start: int, end: int) -> list[Record | None]:
    """The slots holding positions ``[start, end)``, with one slice if they
    do not wrap around the end of the ring, else two."""
    lo = start & stream.mask
    n = end - start
    slots = stream.slots
    if lo + n <= len(slots):
        return slots[lo : lo + n]
    return slots[lo:] + slots[: lo + n - len(slots)]


def read_stream(stream: Stream, since: int | None = None) -> StreamRead:
    """Copy every readable sub-buffer of ``stream`` without stopping its writer.

    Reads from the oldest position still held up to the position published
    when the read began. With ``since`` (a monotonic timestamp), sub-buffers
    whose last record is older are passed over without copying them. Each sub-buffer is validated
    by the positions its first and last records carry: the writer fills a
    sub-buffer in order, so if both ends hold the expected lap, so does every
    slot between them. A sub-buffer that fails is skipped whole and returned
    as a gap, as LTTng's snapshot consumer does.
    """
    channel = stream.channel
    size = channel.subbuf_size
    produced = stream.pos
    if channel.mode == "discard":
        # The writer never passes ``consumed + capacity``: all of it is held,
        # even after a flushing consume left ``consumed`` inside a sub-buffer.
        oldest = stream.consumed
    else:
        # The sub-buffer the writer is in belongs to this lap as a whole: what
        # it held from the previous lap counts as overwritten, as in LTTng.
        filled_to = -(-produced // size) * size
        oldest = max(filled_to - channel.capacity, 0)
    result = StreamRead(begin=oldest, produced=produced)
    subbuf = oldest - (oldest % size)
    while subbuf < produced:
        first = max(subbuf, oldest)
        end = min(subbuf + size, produced)
        chunk = copy_range(stream, first, end)  # one slice: atomic under the GIL
        head = chunk[0] if chunk else None
        tail = chunk[-1] if chunk else None
        if head is not None and tail is not None and head[0] == first and tail[0] == end - 1:
            if since is None or tail[1] >= since:
                result.records.extend(chunk)  # type: ignore[arg-type]
        else:
            result.gaps.append((subbuf, subbuf + size))
        subbuf += size
    return result
