"""Reading the rings: snapshots (non-destructive) and the discard-mode consumer.

Neither ever blocks a writer. A snapshot reads each stream with
:func:`instrument.stream.read_stream`, turns records into plain
:class:`~instrument.snapshot.Event` objects, and merges them by timestamp.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from operator import attrgetter
from typing import Any

from .recorder import Recorder
from .snapshot import Event, Snapshot, StreamInfo
from .stream import EXIT, Record, Stream, copy_range, read_stream
from .values import Redactor, plain_value

_PLAIN = frozenset((bool, int, float, type(None)))
_by_time = attrgetter("timestamp")


class _FieldConverter:
    """Converts recorded fields to plain, redacted dicts, fast when it can.

    Most events carry scalars under the same few field names: those dicts
    are checked with one C-level pass and copied as they are.
    """

    def __init__(self, redactor: Redactor, limit: int):
        self.redactor = redactor
        self.limit = limit
        self._clean_keys: dict[tuple[str, ...], bool] = {}

    def __call__(self, fields: Any) -> dict[str, Any]:
        if fields is None:
            return {}
        keys = tuple(fields)
        clean = self._clean_keys.get(keys)
        if clean is None:
            clean = not any(self.redactor.hides(k) for k in keys)
            if len(self._clean_keys) < 4096:
                self._clean_keys[keys] = clean
        if clean and _PLAIN.issuperset(map(type, fields.values())):
            return dict(fields)
        return self.redactor.plain_fields(fields, self.limit)


def _events_of(
    stream: Stream, info: StreamInfo, records: list[Record], convert: _FieldConverter
) -> list[Event]:
    static = {k: v for k, v in stream.static.items() if k not in ("thread_id", "thread_name")}
    if "pid" not in stream.channel.contexts:
        static.pop("pid", None)
    dynamic = [n for n in stream.channel.contexts if n not in ("thread", "pid")]
    tid, tname, chan = info.thread_id, info.thread_name, info.channel
    limit = convert.limit
    hides = convert.redactor.hides
    events: list[Event] = []
    append = events.append
    for rec in records:
        pos, ts, kind, name, fields = rec[:5]
        if kind is EXIT and type(fields) is int:
            fields = {"duration_ns": ts - fields}
        else:
            fields = convert(fields)
        if len(rec) > 5 and dynamic:
            ctx = dict(static)
            for key, value in zip(dynamic, rec[5], strict=False):
                ctx[key] = "[redacted]" if hides(key) else plain_value(value, limit)
        else:
            ctx = static
        append(Event(ts, name, kind, tid, tname, fields, ctx, chan, pos))
    return events


def take_snapshot(recorder: Recorder, since: int | None = None) -> Snapshot:
    """Read every stream of ``recorder`` into a :class:`Snapshot`.

    ``since`` keeps events at or after that monotonic timestamp. Can be
    called from any thread, any number of times, while writers run.
    """
    offset = time.time_ns() - time.monotonic_ns()
    taken_at = time.monotonic_ns()
    convert = _FieldConverter(recorder.redactor, recorder.max_field_chars)
    infos: list[StreamInfo] = []
    events: list[Event] = []
    for stream in recorder.streams():
        chan = stream.channel
        read = read_stream(stream, since)
        records = read.records
        if since is not None and records and records[0][1] < since:
            records = [r for r in records if r[1] >= since]
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
        events.extend(_events_of(stream, info, records, convert))
    events.sort(key=_by_time)  # each stream is already in order: timsort merges runs
    return Snapshot(
        events=events,
        streams=infos,
        clock_offset_ns=offset,
        taken_at=taken_at,
        since=since,
        pid=recorder.pid,
    )


def consume(recorder: Recorder, *, flush: bool = False) -> Iterator[tuple[StreamInfo, list[Event]]]:
    """Take every complete sub-buffer of the discard-mode streams, in order.

    Each yielded batch is one sub-buffer of one stream; taking it frees its
    room for the writer. ``flush=True`` also takes the partly filled last
    sub-buffer: use it once writers are done (at exit). Overwrite-mode
    streams are left alone (snapshot them instead).
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
            produced = stream.pos
            if end > produced:
                if not flush or start == produced:
                    break
                end = produced
            records = copy_range(stream, start, end)
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
                dropped=stream.dropped,
                context=dict(stream.static),
            )
            batch = _events_of(stream, info, records, convert)  # type: ignore[arg-type]
            stream.consumed = end
            stream.limit = end + chan.capacity
            yield info, batch
