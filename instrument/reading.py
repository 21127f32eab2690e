"""Reading the rings: snapshots (non-destructive) and the discard-mode consumer.

Neither ever blocks a writer. A snapshot reads each stream with
:func:`instrument.stream.read_stream`, turns records into plain
:class:`~instrument.model.Event` objects, and merges them by timestamp.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Iterator
from functools import partial
from itertools import accumulate, islice, repeat, starmap
from operator import add, itemgetter
from typing import Any

from .model import Event, Snapshot, StreamInfo
from .recorder import Recorder
from .sources import sources_of
from .stream import (
    COPY_ATTEMPTS,
    EVENT,
    Record,
    Stream,
    abandoned,
    copy_ring,
    in_position_order,
    read_stream,
)
from .values import Redactor

_by_time = itemgetter(0)  # Event.timestamp
_event_name = itemgetter(1)  # Event.name
_new_event = partial(tuple.__new__, Event)  # Event(*items), without a Python call
# Columns of a record: (position, timestamp, name, fields[, kind[, context]]).
_position, _stamp, _name, _fields, _kind, _context = map(itemgetter, range(6))
_EVENT_KIND = (EVENT,)  # appended to a point event's record, it is item 4
_CHUNK = 8192  # records converted together (see _events_of)


class _FieldConverter:
    """Reads recorded fields as an event's dict.

    Values were captured when recorded (plain, bounded, redacted: see
    :mod:`instrument.values`), so a record's fields dict is used as it is,
    shared with the ring (a snapshot's fields are read-only, see
    :class:`~instrument.model.Event`; the ring never changes them). Only an
    exit's entry timestamp and an absent ``None`` are turned into dicts.
    """

    def __init__(self, redactor: Redactor, limit: int):
        self.redactor = redactor
        self.limit = limit

    def __call__(self, fields: Any) -> dict[str, Any]:
        return {} if fields is None else fields

    def column(self, raw: list[Any], stamps: Iterable[int]) -> list[dict[str, Any]]:
        """The fields of records whose stored fields are ``raw`` and whose
        timestamps are ``stamps``: an exit stores its entry's timestamp (an
        int), read as ``duration_ns``; no fields (``None``) reads as ``{}``."""
        if set(map(type, raw)) == {dict}:
            return raw
        return [
            f if type(f) is dict else {} if f is None else {"duration_ns": ts - f}
            for f, ts in zip(raw, stamps, strict=False)
        ]


def _events_of(
    stream: Stream,
    info: StreamInfo,
    records: list[Record],
    convert: _FieldConverter,
    positions: list[int] | None = None,
) -> list[Event]:
    """The events of ``records`` (one stream's, in position order), with
    ``positions`` their positions if already known."""
    static = {k: v for k, v in stream.static.items() if k not in ("thread_id", "thread_name")}
    if "pid" not in stream.channel.contexts:
        static.pop("pid", None)
    dynamic = [n for n in stream.channel.contexts if n not in ("thread", "pid")]
    if "task" not in dynamic:
        dynamic.append("task")  # recorded unlisted by threads running an asyncio loop
    events: list[Event] = []
    latest = 0  # the latest timestamp so far
    # Column by column, in C-level passes: a snapshot converts a million
    # records, and a Python-level step per record is most of its cost. A
    # chunk at a time, so that the records a pass touches are still in the
    # CPU's cache for the next pass.
    for start in range(0, len(records), _CHUNK):
        chunk = records[start : start + _CHUNK] if len(records) > _CHUNK else records
        stamps = list(map(_stamp, chunk))
        if stamps[0] < latest or sorted(stamps) != stamps:  # almost always in order
            # A signal handler (or context provider) that recorded in the
            # middle of another write left the stream's timestamps out of
            # position order: each is raised to the latest before it, so
            # that a stream's timestamps follow its positions (the formats
            # rely on it).
            stamps = list(accumulate(stamps, max, initial=latest))[1:]
        latest = stamps[-1]
        fields = convert.column(list(map(_fields, chunk)), stamps)
        contexts: Iterable[dict[str, Any]]
        lengths = set(map(len, chunk))
        if 6 in lengths:  # records with dynamic context (a record has it or not)
            # captured and redacted when recorded, as fields are
            contexts = []
            for record in chunk:
                if len(record) != 6:
                    contexts.append(static)
                    continue
                ctx = dict(static)
                ctx.update(zip(dynamic, record[5], strict=False))
                contexts.append(ctx)
        else:
            contexts = repeat(static)
        kinds: Iterable[str]
        if lengths == {4}:  # point events only
            kinds = repeat(EVENT)
        elif 4 in lengths:  # mixed: give point events their kind, in C
            kinds = map(_kind, map(add, chunk, repeat(_EVENT_KIND)))
        else:
            kinds = map(_kind, chunk)
        rows = zip(
            stamps,
            map(_name, chunk),
            kinds,
            repeat(info.thread_id),
            repeat(info.thread_name),
            fields,
            contexts,
            repeat(info.channel),
            map(_position, chunk) if positions is None else positions[start : start + _CHUNK],
            strict=False,
        )
        events.extend(map(_new_event, rows))
    return events


def take_snapshot(recorder: Recorder, since: int | None = None) -> Snapshot:
    """Read every stream of ``recorder`` into a :class:`Snapshot`.

    ``since`` keeps events at or after that monotonic timestamp. Can be
    called from any thread, any number of times, while writers run.
    """
    offset = time.time_ns() - time.monotonic_ns()
    taken_at = time.monotonic_ns()
    # A snapshot allocates an object or two per event and frees none: the
    # cyclic collector would run over and over for nothing (most of the time
    # a large snapshot took). Pause it, as the process's other threads lose
    # nothing by a short delay of cycle collection.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _take_snapshot(recorder, since, offset, taken_at)
    finally:
        if collecting:
            gc.enable()


def _take_snapshot(recorder: Recorder, since: int | None, offset: int, taken_at: int) -> Snapshot:
    convert = _FieldConverter(recorder.redactor, recorder.max_field_chars)
    infos: list[StreamInfo] = []
    events: list[Event] = []
    for stream in recorder.streams():
        chan = stream.channel
        read = read_stream(stream, since)
        records: list[Record] = read.records
        positions: list[int] | None = read.positions
        if since is not None and records and records[0][1] < since:
            records, positions = [r for r in records if r[1] >= since], None
        info = StreamInfo(
            channel=chan.name,
            thread_id=stream.thread_id,
            thread_name=stream.current_thread_name(),
            alive=stream.alive,
            mode=chan.mode,
            subbuf_size=chan.subbuf_size,
            num_subbuf=chan.num_subbuf,
            produced=read.produced,
            first_position=read.records[0][0] if read.records else None,
            last_position=read.records[-1][0] if read.records else None,
            gaps=read.gaps,
            overwritten=max(read.begin - stream.consumed, 0) if chan.mode == "overwrite" else 0,
            dropped=stream.dropped,
            context=dict(stream.static),
        )
        infos.append(info)
        events.extend(_events_of(stream, info, records, convert, positions))
    events.sort(key=_by_time)  # each stream is already in order: timsort merges runs
    return Snapshot(
        events=events,
        streams=infos,
        clock_offset_ns=offset,
        taken_at=taken_at,
        since=since,
        pid=recorder.pid,
        origin_ns=taken_at,
        sources=sources_of(set(map(_event_name, events))) if events else {},
    )


def consume(recorder: Recorder, *, flush: bool = False) -> Iterator[tuple[StreamInfo, list[Event]]]:
    """Take every complete sub-buffer of the discard-mode streams, in order.

    Each yielded batch is one sub-buffer of one stream; taking it frees its
    room for the writer. ``flush=True`` also takes the partly filled last
    sub-buffer: use it once writers are done (at exit). A sub-buffer in which
    a writer has reserved a position but not committed it yet is left for a
    later call. Overwrite-mode streams are left alone (snapshot them
    instead). One consumer at a time.
    """
    convert = _FieldConverter(recorder.redactor, recorder.max_field_chars)
    for stream in recorder.streams():
        chan = stream.channel
        if chan.mode != "discard":
            continue
        size = chan.subbuf_size
        while True:
            start = stream.consumed
            end = start - start % size + size
            produced = stream.produced()
            if end > produced:
                if not flush or start == produced:
                    break
                end = produced
            taken = _take(stream, start, end)
            if taken is None:
                break
            records, holes = taken
            info = StreamInfo(
                channel=chan.name,
                thread_id=stream.thread_id,
                thread_name=stream.current_thread_name(),
                alive=stream.alive,
                mode=chan.mode,
                subbuf_size=size,
                num_subbuf=chan.num_subbuf,
                produced=produced,
                first_position=start,
                last_position=end - 1,
                gaps=holes,
                dropped=stream.dropped,
                context=dict(stream.static),
            )
            yield info, _events_of(stream, info, records, convert)


def _take(
    stream: Stream, start: int, end: int
) -> tuple[list[Record], list[tuple[int, int]]] | None:
    """Remove the records of positions ``[start, end)`` from the left of a
    discard-mode ring and return them in order, with the ``[start, end)``
    runs of positions abandoned by their writers (see
    :func:`~instrument.stream.abandoned`: counted lost, never waited for);
    ``None`` (and nothing removed) if a writer is still in the sub-buffer.

    ``consumed`` is raised first, then the records are removed: a reader
    that copies the ring in between reads ``consumed`` after its copy, so it
    never takes a record being removed for a missing one.
    """
    ring = stream.ring
    n = end - start
    if len(ring) < n:
        return None
    head = _copy_head(ring, n)
    if head is not None and list(map(_position, head)) == list(range(start, end)):
        stream.consumed = end
        deque(starmap(ring.popleft, repeat((), n)), maxlen=0)  # n pops, in C
        return head, []
    # A signal handler's write committed before the write it interrupted:
    # the sub-buffer's records are among the first ones, not all first. Or a
    # position was abandoned (and may still be committed, late: below
    # ``start``, where it is removed as already counted).
    everything = copy_ring(ring)
    if everything is None:
        return None
    where = [i for i, record in enumerate(everything) if record[0] < end]
    taken, held = in_position_order([everything[i] for i in where])
    late = bisect_left(held, start)
    holes: list[tuple[int, int]] = []
    if len(held) - late != n:
        newest = max(map(_position, everything))
        found = abandoned(held[late:], start, end, start - 1, newest)
        if found is None:
            return None
        holes = found
    stream.consumed = end
    for i in reversed(where):  # only this consumer removes from the left
        del ring[i]
    return taken[late:], holes


def _copy_head(ring: deque[Record], n: int) -> list[Record] | None:
    """The first ``n`` records of ``ring`` (see :func:`copy_ring`)."""
    for _ in range(COPY_ATTEMPTS):
        try:
            return list(islice(ring, n))
        except RuntimeError:
            continue
    return None
