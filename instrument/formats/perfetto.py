"""Chrome Trace Event Format JSON: a snapshot for Perfetto UI and chrome://tracing.

Format ``perfetto``, suffix ``.perfetto.json``. Open the file in
https://ui.perfetto.dev (or ``chrome://tracing``): each thread is a lane,
traced calls and spans are bars, point events are ticks. The file is for
viewers only; ``Snapshot.load`` reads our ``json`` format, not this one.

What is written (the "JSON Object Format" of the Trace Event Format)::

    {"displayTimeUnit": "ns", "otherData": {...}, "traceEvents": [...]}

Time
    ``ts`` and ``dur`` are microseconds (floats with three decimals, so
    nanoseconds are kept) of the monotonic clock the snapshot was recorded
    with, relative to the snapshot's **origin** (``otherData.origin_ns``:
    the failure when a test failed, else the moment of the snapshot), the
    time zero of every view: ``ts`` 0 is the failure. Absolute monotonic
    time is ``ts * 1000 + origin_ns``; wall clock (Unix ns) adds
    ``otherData.clock_offset_ns``.

Processes and threads
    One process, ``pid`` = the snapshot's pid (1 if it has none), named by a
    ``process_name`` metadata event (``ph: "M"``) and labelled with the
    snapshot's metadata (``process_labels``). Each thread (thread id and
    name) gets a small ``tid`` (1, 2, ... in stream order), because viewers
    take 32-bit thread ids and Python's are 64-bit addresses (reused, too,
    once a thread ends: a new thread with an old id and a new name gets its
    own lane). ``thread_name`` and ``thread_sort_index`` metadata events name
    and order the lanes; the real id is in the ``thread_name`` event's
    ``args.thread_id``. Child processes' streams (``instrument.children``:
    a stream whose context has another ``pid`` and a ``command``) belong to
    a process of their own, with their real pid, named ``child <pid>:
    <command>``.

Events
    * entry / exit: a duration event pair, ``ph: "B"`` at the entry with the
      entry fields as ``args``, ``ph: "E"`` at the exit with the exit fields
      (``duration_ns``, ``exception``...) as ``args`` (viewers merge the two).
      ``cat`` is the channel. Pairs are matched per thread by name, last in
      first out, so every ``B`` has its ``E`` on the same lane, in order.
    * spans that cross others on their thread (coroutines and generators
      interleaved on one thread: an exit pairs, by its identity, with an
      entry below the innermost open one whose exit comes later): async
      slices, ``ph: "b"``/``"e"`` with ``id`` (one per span, from its name
      and entry timestamp, see ``instrument.model.span_start``), so that
      three overlapping coroutines keep their own durations; their
      suspensions and resumptions are ``ph: "n"`` instants of that slice.
    * when a span that suspended (a generator, coroutine or async
      generator) really ran: an async slice per running stretch
      (:func:`instrument.model.activity`), ``ph: "b"``/``"e"``, ``args``
      ``span``, ``ran_ns``, ``wall_ns``, ``suspensions``. For a crossing
      span, named ``running`` with its ``id``, nested in its slice (a
      stretch from its entry or to its exit drawn 1 ns inside, so the pairs
      nest whatever order a viewer takes equal times in); for any other
      span, named ``running: <name>``, with an ``id`` of its own.
    * point events: instants, ``ph: "i"``, ``s: "t"`` (thread scope).
    * Dynamic context (e.g. the asyncio task) goes in ``args.context``.
    * The events of an asyncio task (context ``task``) are on a lane of
      their own, named ``<thread> · task <name>`` and sorted right under
      its thread's lane; entries and exits pair within the task.

The edges of the window (a snapshot is a window on the rings)
    * An exit whose entry is not in the snapshot (older than the rings, in a
      skipped sub-buffer, or before ``since``): a complete event
      (``ph: "X"``) ending at the exit and starting ``duration_ns`` before it;
      if that would overlap an earlier bar on the lane, it starts where that
      bar ends, the true start kept in ``args.entry_ts_us``.
      ``args.ringtrace`` says what happened.
    * An entry whose exit is not in the snapshot: ended (``E``) when the
      snapshot was taken if its thread still ran (``args.ringtrace: "still
      running when the snapshot was taken"``), else at the thread's last
      event.
    * An exit that matches an entry below the innermost open one (its
      inner exits were lost): the inner ones are ended first, marked.

Loss, made visible
    Thread-scoped instants with ``cat: "ringtrace"`` on the lane concerned:
    ``ringtrace: skipped N sub-buffers (M events lost)`` where the snapshot
    skipped sub-buffers (placed at the first event after the gap),
    ``ringtrace: dropped N events (channel C full)`` (discard mode; at the
    thread's last event: a full ring refuses what comes after its last
    record), ``ringtrace: N earlier events overwritten``
    (overwrite mode, by design; at the stream's first event). When any event
    was lost, one global instant ``ringtrace: N events lost`` also marks the
    start of the trace. ``otherData`` holds the totals.

The file is written as it is built, in blocks of events, never as one
string; memory beyond the snapshot is bounded by the block size and the
deepest call stack. One loop in Python builds the trace events: with
msgspec (the ``fast`` extra), a block of events whose fields and contexts
are plain (checked by msgspec's validation: fields once a block, a context
as it changes) gets msgspec structs, encoded unchecked; any other block gets dicts, and the stdlib's
encoder when msgspec would write them otherwise. Both ways write the same
file. Spans that cross others are found by a pass over entries and exits
only when an exit is not the innermost entry's (see :func:`write`).
"""

from __future__ import annotations

import io
import json
import math
import sys
from itertools import compress, repeat
from operator import eq, itemgetter, sub
from typing import Annotated, Any

from ..model import RUNNING, Event, Snapshot, StreamInfo, activity, marks_by_span, span_start
from ..values import plain_value, safe_repr, truncate
from . import Format, collector_paused, json_format
from .json_format import BinaryOut

#: Trace events encoded per write.
CHUNK_EVENTS = 512

CATEGORY = "ringtrace"
_STATIC_CONTEXT = frozenset(("pid", "thread_id", "thread_name"))

StreamKey = tuple[int, str, str]  # (thread id, thread name, channel)

_TIMESTAMP, _NAME, _KIND, _FIELDS = (itemgetter(i) for i in (0, 1, 2, 5))
_OPENS_OR_CLOSES = frozenset(("entry", "exit"))


def _fallback(value: object) -> str:
    """JSON for a value the encoder does not know: its bounded repr."""
    return safe_repr(value)


_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_fallback)


def _sanitize(value: Any) -> Any:
    """``value`` with non-finite floats as strings and keys as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k if isinstance(k, str) else safe_repr(k): _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    return value


def _args(item: Any) -> Any:
    """The ``args`` of a trace event (a dict, or a msgspec struct)."""
    return item.get("args", {}) if type(item) is dict else item.args


def _item_types() -> tuple[Any, Any]:
    """msgspec structs for the trace events built per event (``B``/``E`` and
    ``i``), which msgspec builds and encodes faster than dicts, with the same
    members in the same order; ``(None, None)`` without msgspec."""
    try:
        import msgspec
    except ImportError:
        return None, None

    class Slice(msgspec.Struct, gc=False):
        ph: str
        ts: float
        pid: int
        tid: int
        name: str
        cat: str
        args: dict[str, Any]

    class Instant(msgspec.Struct, gc=False):
        ph: str
        s: str
        ts: float
        pid: int
        tid: int
        name: str
        cat: str
        args: dict[str, Any]

    return Slice, Instant


_Slice, _Instant = _item_types()


def _encode_fast(items: list[Any], plain: bool = False) -> bytes:
    """``items`` as JSON array members, by msgspec (the ``fast`` extra) when
    that writes what the stdlib way below would: every ``args`` a dict of
    finite scalars under string keys (``plain``: known to be), ASCII text;
    else by the stdlib."""
    encode = json_format.fast_encode
    if encode is not None and (plain or json_format._plain_dicts(list(map(_args, items)))):
        try:
            data: bytes = encode(items)
        except (TypeError, ValueError):  # a lone surrogate
            pass
        else:
            if data.isascii():
                return data[1:-1]
    if _Slice is not None:  # the stdlib encodes dicts
        import msgspec

        items = [it if type(it) is dict else msgspec.structs.asdict(it) for it in items]
    return _encode(items).encode("ascii")


def _encode(items: list[dict[str, Any]]) -> str:
    try:
        text = _encoder.encode(items)
    except (ValueError, TypeError):  # NaN, or a key JSON cannot hold
        text = _encoder.encode(_sanitize(items))
    return text[1:-1]


def _plain_checker() -> Any:
    """A check that dicts are plain for msgspec: string keys, finite scalar
    values (see :func:`instrument.formats.json_format._plain_dicts`), done
    by msgspec's own validation, in one C call (a third faster than the
    type passes); ``None`` without msgspec. It also lets through subclasses
    of ``str`` and ``int`` (enums among them), which msgspec and the stdlib
    both write as the string or number they are."""
    if json_format.fast_encode is None:
        return None
    import msgspec

    finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
    schema = list[dict[str, str | int | finite | bool | None]]
    convert, invalid = msgspec.convert, msgspec.ValidationError

    def plain(dicts: list[dict[str, Any]]) -> bool:
        try:
            convert(dicts, schema)
        except invalid:
            return False
        return True

    return plain


_plain_dicts = _plain_checker() or json_format._plain_dicts


def _plain_events(events: list[Event]) -> bool:
    """Whether the fields of ``events`` are plain (see :func:`_plain_checker`):
    then so are the args of every item written for them, but for the
    context they carry (checked once per context, as it changes)."""
    return bool(_plain_dicts(list(map(_FIELDS, events))))


def _exit_keys(exits: list[Event]) -> set[tuple[str, int]]:
    """The pairing identities (name, entry timestamp) of ``exits`` whose
    entry time is known (see :func:`instrument.model.span_start`)."""
    durations = list(map(dict.get, map(_FIELDS, exits), repeat("duration_ns")))
    if set(map(type, durations)) <= {int}:
        return set(zip(map(_NAME, exits), map(sub, map(_TIMESTAMP, exits), durations), strict=True))
    return {(ev.name, start) for ev in exits if (start := span_start(ev)) is not None}


def _us(ns: int) -> float:
    return ns / 1000


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _Track:
    """One lane: a thread (id and name) and its open entries."""

    __slots__ = ("alive", "first_ts", "floor", "last_ts", "pid", "stack", "thread_id", "tid")

    def __init__(self, tid: int, thread_id: int, pid: int):
        self.pid = pid  # the process: the snapshot's, or a child's
        self.tid = tid
        self.thread_id = thread_id
        self.stack: list[tuple[str, int, str]] = []  # (name, entry ts, channel)
        self.floor: int | None = None  # ts of the last bar edge written on this lane
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.alive = False


class _Writer:
    def __init__(self, snapshot: Snapshot, out: BinaryOut):
        self.snapshot = snapshot
        self.origin = snapshot.origin
        self.out = out
        self.pid = snapshot.pid if 0 < snapshot.pid <= 0xFFFFFFFF else 1
        self.buf: list[dict[str, Any]] = []
        self.written = 0
        self.tracks: dict[tuple[Any, ...], _Track] = {}
        # Markers waiting for an event of their stream: gaps (by end position)
        # and the start of a stream that overwrote older events.
        self.gaps: dict[StreamKey, list[tuple[int, int, StreamInfo]]] = {}
        self.starts: dict[StreamKey, StreamInfo] = {}
        # Child processes' threads (instrument.children): each child is a
        # process of its own in the trace, named by its command line.
        self.process_of: dict[int, tuple[int, str]] = {
            info.thread_id: (int(info.context["pid"]), str(info.context.get("command", "")))
            for info in snapshot.streams
            if isinstance(info.context.get("pid"), int)
            and info.context["pid"] != snapshot.pid
            and "command" in info.context
        }
        self.named: set[int] = set()
        #: Whether every item in ``buf`` is known to hold plain values only.
        self.plain = False

    # ----------------------------------------------------------- output

    def us(self, ns: int) -> float:
        """A timestamp as ``ts``: microseconds after the origin."""
        return (ns - self.origin) / 1000

    def emit(self, item: dict[str, Any]) -> None:
        self.buf.append(item)
        if len(self.buf) >= CHUNK_EVENTS:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            sep = b",\n" if self.written else b"\n"
            self.out.write(sep + _encode_fast(self.buf, self.plain))
            self.written += len(self.buf)
            self.buf.clear()

    def instant(self, track: _Track | None, ts: int, name: str, args: dict[str, Any]) -> None:
        pid = self.pid if track is None else track.pid
        item: dict[str, Any] = {"ph": "i", "ts": self.us(ts), "pid": pid, "name": name}
        if track is None:
            item["s"] = "g"
        else:
            item["s"] = "t"
            item["tid"] = track.tid
        item["cat"] = CATEGORY
        item["args"] = args
        self.emit(item)

    # ----------------------------------------------------------- lanes

    def track(self, thread_id: int, thread_name: str) -> _Track:
        key = (thread_id, thread_name)
        track = self.tracks.get(key)
        if track is None:
            pid, command = self.process_of.get(thread_id, (self.pid, ""))
            track = self.tracks[key] = _Track(len(self.tracks) + 1, thread_id, pid)
            if pid != self.pid and pid not in self.named:
                self.named.add(pid)
                self.emit(
                    {
                        "ph": "M",
                        "name": "process_name",
                        "pid": pid,
                        "args": {"name": f"child {pid}: {command}"},
                    }
                )
            self.emit(
                {
                    "ph": "M",
                    "name": "thread_name",
                    "pid": pid,
                    "tid": track.tid,
                    "args": {"name": thread_name, "thread_id": thread_id},
                }
            )
            self.emit(
                {
                    "ph": "M",
                    "name": "thread_sort_index",
                    "pid": pid,
                    "tid": track.tid,
                    "args": {"sort_index": track.tid * 1000},
                }
            )
        return track

    def task_track(self, thread_id: int, thread_name: str, task: str) -> _Track:
        """The lane of an asyncio task, sorted right under its thread's."""
        key = (thread_id, thread_name, task)
        track = self.tracks.get(key)
        if track is None:
            thread = self.track(thread_id, thread_name)
            track = self.tracks[key] = _Track(len(self.tracks) + 1, thread_id, thread.pid)
            track.alive = thread.alive
            order = sum(1 for k in self.tracks if k[:2] == (thread_id, thread_name))
            self.emit(
                {
                    "ph": "M",
                    "name": "thread_name",
                    "pid": thread.pid,
                    "tid": track.tid,
                    "args": {
                        "name": f"{thread_name} \u00b7 task {task}",
                        "thread_id": thread_id,
                        "task": task,
                    },
                }
            )
            self.emit(
                {
                    "ph": "M",
                    "name": "thread_sort_index",
                    "pid": thread.pid,
                    "tid": track.tid,
                    "args": {"sort_index": thread.tid * 1000 + order},
                }
            )
        return track

    def header(self) -> None:
        snap = self.snapshot
        metadata = {str(k): plain_value(v) for k, v in snap.metadata.items()}
        other = {
            "ringtrace": "a ringtrace snapshot; ts in microseconds after origin_ns (monotonic)",
            "clock": "monotonic",
            "origin_ns": self.origin,
            "sources": snap.sources,
            "clock_offset_ns": snap.clock_offset_ns,
            "taken_at_ns": snap.taken_at,
            "since_ns": snap.since,
            "pid": snap.pid,
            "events": len(snap.events),
            "lost": snap.lost,
            "dropped": snap.dropped,
            "skipped": snap.skipped,
            "skipped_subbufs": snap.skipped_subbufs,
            "overwritten": snap.overwritten,
            "metadata": metadata,
        }
        self.out.write(
            (
                '{"displayTimeUnit":"ns",\n"otherData":' + _encode([other]) + ',\n"traceEvents":['
            ).encode("ascii")
        )
        name = f"python (pid {snap.pid})"
        self.emit({"ph": "M", "name": "process_name", "pid": self.pid, "args": {"name": name}})
        if metadata:
            labels = truncate(", ".join(f"{k}={v}" for k, v in metadata.items()), 1024)
            self.emit(
                {"ph": "M", "name": "process_labels", "pid": self.pid, "args": {"labels": labels}}
            )
        for info in snap.streams:
            track = self.track(info.thread_id, info.thread_name)
            track.alive = track.alive or info.alive
            key = (info.thread_id, info.thread_name, info.channel)
            if info.gaps:
                self.gaps.setdefault(key, []).extend(
                    sorted((start, end, info) for start, end in info.gaps)
                )
            if info.overwritten and info.first_position is not None:
                self.starts[key] = info
        if snap.lost and snap.events:
            self.instant(
                None,
                snap.events[0].timestamp,
                f"ringtrace: {_plural(snap.lost, 'event')} lost",
                {"dropped": snap.dropped, "skipped": snap.skipped},
            )

    # ----------------------------------------------------------- markers

    def gap_marker(self, track: _Track, ts: int, start: int, end: int, info: StreamInfo) -> None:
        subbufs = (end - start) // info.subbuf_size if info.subbuf_size else 0
        lost = max(min(end, info.produced) - start, 0)  # as StreamInfo.skipped counts
        self.instant(
            track,
            ts,
            f"ringtrace: skipped {_plural(subbufs, 'sub-buffer')} ({_plural(lost, 'event')} lost)",
            {
                "channel": info.channel,
                "start_position": start,
                "end_position": end,
                "events_lost": lost,
                "why": "a writer was in these sub-buffers while the snapshot read them",
            },
        )

    def start_marker(self, track: _Track, ts: int, info: StreamInfo) -> None:
        self.instant(
            track,
            ts,
            f"ringtrace: {_plural(info.overwritten, 'earlier event')} overwritten",
            {
                "channel": info.channel,
                "overwritten": info.overwritten,
                "why": "older than the ring holds (overwrite mode keeps the newest)",
            },
        )

    def markers_before(self, ev: Event, track: _Track) -> None:
        """Markers due before ``ev``: its stream's start, gaps it comes after."""
        key = (ev.thread_id, ev.thread_name, ev.channel)
        info = self.starts.pop(key, None)
        if info is not None:
            self.start_marker(track, ev.timestamp, info)
        pending = self.gaps.get(key)
        while pending and ev.position >= pending[0][1]:
            start, end, info = pending.pop(0)
            self.gap_marker(track, ev.timestamp, start, end, info)
        if pending is not None and not pending:
            del self.gaps[key]

    # ----------------------------------------------------------- events

    def crossing(self) -> dict[tuple[str, int], str]:
        """The spans that cross others on their lane (a thread, or an asyncio
        task's lane under it), and their async ids."""
        events = self.snapshot.events
        exits: set[tuple[str, int]] | None = None  # every exit's identity, when first needed
        stacks: dict[tuple[int, str, str | None], list[tuple[str, int]]] = {}
        found: dict[tuple[str, int], str] = {}
        last_ctx: dict[str, Any] | None = None
        lane: tuple[int, str, str | None] | None = None
        stack: list[tuple[str, int]] = []
        task: str | None = None
        # Point events, suspensions and resumptions never open or close a span.
        for ts, name, kind, thread_id, thread_name, fields, ctx, _c, _p in compress(
            events, map(_OPENS_OR_CLOSES.__contains__, map(_KIND, events))
        ):
            if ctx is not last_ctx:
                last_ctx = ctx
                found_task = ctx.get("task") if ctx else None
                task = found_task if isinstance(found_task, str) else None
            if lane is None or thread_id != lane[0] or thread_name != lane[1] or task != lane[2]:
                lane = (thread_id, thread_name, task)
                stack = stacks.setdefault(lane, [])
            if kind == "entry":
                stack.append((name, ts))
                continue
            duration = fields.get("duration_ns")
            if type(duration) is not int or not stack:
                continue
            key = (name, ts - duration)
            if stack[-1] == key:
                stack.pop()
            elif key in stack:
                i = stack.index(key)
                if exits is None:
                    exits = _exit_keys(
                        list(compress(events, map(eq, map(_KIND, events), repeat("exit"))))
                    )
                if all(above in exits for above in stack[i + 1 :]):
                    found[key] = f"0x{len(found) + 1:x}"  # interleaved: crossing
                    del stack[i]
                else:  # inner exits lost: they end with it (see exit())
                    del stack[i:]
        return found

    def settle(self, ts: int) -> dict[tuple[str, int], str]:
        """The crossing spans, found when the optimistic loop of :meth:`run`
        meets an exit that is not the innermost entry's by identity (before
        it, no span could cross). If one of them began by ``ts``, its entry
        was written as a bar already: the trace is written again."""
        found = self.crossing()
        if any(start <= ts for _name, start in found):
            raise _Restart(found)
        return found

    def run(self, crossing: dict[tuple[str, int], str] | None = None) -> None:
        """Write the trace. ``crossing``: the spans that cross others, if
        known; ``None``: assume none until an exit says otherwise (see
        :meth:`settle`: a caller that passes ``None`` must be able to
        start again on :class:`_Restart`)."""
        self.header()
        unsure = crossing is None
        if crossing is None:
            crossing = {}
        events = self.snapshot.events
        window_start = events[0].timestamp if events else 0
        origin = self.origin
        append = self.buf.append  # flush() empties this same list
        markers = bool(self.gaps or self.starts)
        track: _Track | None = None  # the lane of the last event
        lane: _Track  # the same, as set by the first event (its lane is new)
        stack: list[tuple[str, int, str]] = []
        pid = tid = 0
        last_tid: int | None = None
        last_tname: str | None = None
        last_task: str | None = None
        last_ctx: dict[str, Any] | None = None
        extra: dict[str, Any] | None = None
        extra_plain = True
        task: str | None = None
        ts = previous = 0
        suspends = False  # whether any span suspended (see running())
        # The loop runs once per event: no call but the dict it builds in the
        # common case (an exit closing the innermost entry), its state in
        # locals, the lane's first and last timestamps kept only when it
        # changes, and the output flushed once per block of events.
        self.flush()  # the header's items, checked as they come
        structs = _Slice is not None and json_format.fast_encode is not None
        Slice, Instant = _Slice, _Instant
        for block in range(0, len(events), CHUNK_EVENTS):
            chunk = events[block : block + CHUNK_EVENTS]
            # A block whose fields and contexts are plain gives plain items
            # only: they are built as msgspec structs and encoded unchecked.
            self.plain = plain = structs and extra_plain and _plain_events(chunk)
            for ev in chunk:
                ts, name, kind, thread_id, thread_name, fields, ctx, channel, _ = ev
                if ctx is not last_ctx:
                    last_ctx = ctx
                    extra = {k: v for k, v in ctx.items() if k not in _STATIC_CONTEXT} or None
                    # args carry it: a block meeting one that is not plain is not
                    extra_plain = extra is None or bool(_plain_dicts([extra]))
                    if plain and not extra_plain:
                        self.plain = plain = False
                    found = ctx.get("task")
                    task = found if isinstance(found, str) else None
                if thread_id != last_tid or thread_name != last_tname or task != last_task:
                    if track is not None:
                        track.last_ts = previous
                    # an asyncio task's events: a lane of their own, pairs within the task
                    if task is None:
                        track = lane = self.track(thread_id, thread_name)
                    else:
                        track = lane = self.task_track(thread_id, thread_name, task)
                    if lane.first_ts is None:
                        lane.first_ts = ts
                    last_tid, last_tname, last_task = thread_id, thread_name, task
                    pid, tid, stack = lane.pid, lane.tid, lane.stack
                previous = ts
                if markers:
                    self.markers_before(ev, lane)
                    markers = bool(self.gaps or self.starts)
                args = fields if extra is None else {**fields, "context": extra}
                if crossing and kind != "event":
                    span_id = crossing.get((name, ts if kind == "entry" else span_start(ev) or 0))
                    if span_id is not None:
                        phase = {"entry": "b", "exit": "e"}.get(kind, "n")
                        item = {"ph": phase, "ts": (ts - origin) / 1000, "pid": pid, "tid": tid}
                        item.update(name=name, cat=channel, id=span_id, args=args)
                        if phase == "n":
                            item["args"] = {**args, "ringtrace": kind}
                            suspends = True
                        append(item)
                        continue
                us = (ts - origin) / 1000
                if kind == "entry":
                    stack.append((name, ts, channel))
                    phase = "B"
                elif kind != "exit":
                    if kind != "event":  # a suspension or resumption
                        suspends = True
                    if plain:
                        append(Instant("i", "t", us, pid, tid, name, channel, args))
                    else:
                        append(
                            {"ph": "i", "s": "t", "ts": us, "pid": pid, "tid": tid, "name": name,
                             "cat": channel, "args": args}
                        )  # fmt: skip
                    continue
                elif stack and stack[-1][0] == name:  # the innermost entry's exit
                    if unsure:  # by identity too, or spans may cross: find them
                        duration = fields.get("duration_ns")
                        if type(duration) is not int or ts - duration != stack[-1][1]:
                            crossing, unsure = self.settle(ts), False
                    stack.pop()
                    phase = "E"
                else:
                    if unsure and stack and any(entry[0] == name for entry in stack):
                        crossing, unsure = self.settle(ts), False
                    self.exit(lane, ts, name, channel, args)
                    continue
                lane.floor = ts
                if plain:
                    append(Slice(phase, us, pid, tid, name, channel, args))
                else:
                    append(
                        {"ph": phase, "ts": us, "pid": pid, "tid": tid, "name": name,
                         "cat": channel, "args": args}
                    )  # fmt: skip
            self.flush()
        self.plain = False
        if track is not None:
            track.last_ts = ts
        self.finish(window_start)
        if suspends:
            self.running(crossing)
        self.flush()
        self.out.write(b"\n]}\n")

    def running(self, crossing: dict[tuple[str, int], str]) -> None:
        """The running stretches of the spans that suspended, as async
        slices (see :func:`instrument.model.activity`): ``running`` inside a
        crossing span's own async slice (its ``id``), else ``running:
        <name>`` on an async track of their own per span. Only a snapshot
        with suspensions pays for this pass."""
        events = self.snapshot.events
        marks = marks_by_span(events)
        ends: dict[tuple[str, int], list[Event | None]] = {}  # [entry, exit]
        for ev in events:
            kind = ev.kind
            if kind == "entry" or kind == "exit":
                key = (ev.name, ev.timestamp if kind == "entry" else span_start(ev) or 0)
                if key in marks:
                    ends.setdefault(key, [None, None])[kind == "exit"] = ev
        taken_at = self.snapshot.taken_at
        for key, (entry, exit_) in ends.items():
            start = key[1]
            end = exit_.timestamp if exit_ is not None else max(taken_at, start)
            act = activity(start, end, marks[key], entry is not None)
            if act is None:
                continue
            head = entry if entry is not None else exit_
            assert head is not None
            task = head.context.get("task") if head.context else None
            if isinstance(task, str):
                track = self.task_track(head.thread_id, head.thread_name, task)
            else:
                track = self.track(head.thread_id, head.thread_name)
            span_id = crossing.get(key)
            nested = span_id is not None
            name = "running" if nested else f"running: {key[0]}"
            if span_id is None:
                span_id = f"0x{len(crossing) + 1:x}"
                crossing[key] = span_id
            args = {
                "span": key[0],
                "ran_ns": act.ran_ns,
                "wall_ns": end - start,
                "suspensions": act.suspensions,
            }
            for a, b, state in act.stretches:
                if state != RUNNING:
                    continue
                if nested:  # strictly inside the span's b/e, whatever their order
                    a, b = max(a, start + 1), min(b, end - 1)
                    if b <= a:
                        continue
                for phase, ts in (("b", a), ("e", b)):
                    self.emit(
                        {
                            "ph": phase,
                            "ts": self.us(ts),
                            "pid": track.pid,
                            "tid": track.tid,
                            "name": name,
                            "cat": head.channel,
                            "id": span_id,
                            "args": args,
                        }
                    )

    def end(self, track: _Track, ts: int, name: str, channel: str, args: dict[str, Any]) -> None:
        track.floor = ts
        self.emit(
            {
                "ph": "E",
                "ts": self.us(ts),
                "pid": track.pid,
                "tid": track.tid,
                "name": name,
                "cat": channel,
                "args": args,
            }
        )

    def exit(self, track: _Track, ts: int, name: str, channel: str, args: dict[str, Any]) -> None:
        stack = track.stack
        if stack and stack[-1][0] == name:
            stack.pop()
            self.end(track, ts, name, channel, args)
            return
        if any(entry[0] == name for entry in stack):
            while stack[-1][0] != name:  # inner calls whose exits were lost
                inner, _, inner_channel = stack.pop()
                note = f"exit not in snapshot; ended with the exit of {name}"
                self.end(track, ts, inner, inner_channel, {"ringtrace": note})
            stack.pop()
            self.end(track, ts, name, channel, args)
            return
        # The entry is outside the snapshot: draw the call from its duration.
        duration = args.get("duration_ns")
        floor = track.floor
        extra: dict[str, Any] = {}
        if type(duration) is int and duration >= 0:
            start = ts - duration
            note = "entry not in snapshot; start from duration_ns"
            if floor is not None and start < floor:
                extra["entry_ts_us"] = self.us(start)
                start = floor
                note = "entry not in snapshot; drawn from the previous bar's edge"
        else:
            start = floor if floor is not None else min(track.first_ts or ts, ts)
            note = "entry not in snapshot; start unknown"
        start = min(start, ts)
        track.floor = ts
        self.emit(
            {
                "ph": "X",
                "ts": self.us(start),
                "dur": _us(ts - start),
                "pid": track.pid,
                "tid": track.tid,
                "name": name,
                "cat": channel,
                "args": {**args, **extra, "ringtrace": note},
            }
        )

    def finish(self, window_start: int) -> None:
        """Close what is still open, and place the markers that had no event after them."""
        snap = self.snapshot
        for track in self.tracks.values():
            last = track.last_ts if track.last_ts is not None else snap.taken_at
            if track.alive:
                when = max(snap.taken_at, last)
                note = "still running when the snapshot was taken"
            else:
                when = last
                note = "exit not in snapshot (the thread had ended)"
            while track.stack:
                name, _, channel = track.stack.pop()
                self.end(track, when, name, channel, {"ringtrace": note})
        for (thread_id, thread_name, _), info in self.starts.items():
            track = self.track(thread_id, thread_name)
            self.start_marker(track, track.first_ts or window_start, info)
        for (thread_id, thread_name, _), pending in self.gaps.items():
            track = self.track(thread_id, thread_name)
            for start, end, info in pending:
                when = track.last_ts if track.last_ts is not None else snap.taken_at
                self.gap_marker(track, when, start, end, info)
        for info in snap.streams:
            if info.dropped:
                track = self.track(info.thread_id, info.thread_name)
                when = track.last_ts if track.last_ts is not None else snap.taken_at
                self.instant(
                    track,
                    when,
                    f"ringtrace: dropped {_plural(info.dropped, 'event')} "
                    f"(channel {info.channel} full)",
                    {
                        "channel": info.channel,
                        "dropped": info.dropped,
                        "why": "the discard-mode ring was full; newer events were refused",
                    },
                )


class _Restart(Exception):
    """Spans cross, and one of them was written as a bar: write again, knowing them."""

    def __init__(self, crossing: dict[tuple[str, int], str]):
        self.crossing = crossing


#: Outputs known to go back and cut what follows (a ``GzipFile`` says it is
#: seekable, but only forward when writing; a wrapper may not pass it on).
_REWINDABLE = (io.BufferedWriter, io.BufferedRandom, io.FileIO, io.BytesIO)


def _tell(out: BinaryOut) -> int | None:
    """Where ``out`` is now, if it can go back there (a file), else ``None``."""
    try:
        if type(out) in _REWINDABLE and out.seekable():  # type: ignore[attr-defined]
            return int(out.tell())  # type: ignore[attr-defined]
    except (OSError, ValueError):
        pass
    return None


def write(snapshot: Snapshot, out: BinaryOut) -> None:
    """Write ``snapshot`` to the binary file ``out`` as Chrome Trace Event JSON.

    Spans that cross others on their lane are rare (coroutines or
    generators interleaved on one thread without a task context): into a
    file that can go back, the trace is written assuming there are none
    until an exit shows otherwise, which spares a pass over the events;
    if a crossing span's entry was already written, the trace is written
    again from the start. Anything else (a pipe) is searched for them first.
    """
    with collector_paused():
        start = _tell(out)
        if start is None:
            writer = _Writer(snapshot, out)
            writer.run(writer.crossing())
            return
        try:
            _Writer(snapshot, out).run()
        except _Restart as again:
            out.seek(start)  # type: ignore[attr-defined]
            out.truncate()  # type: ignore[attr-defined]
            _Writer(snapshot, out).run(again.crossing)


FORMATS = [
    Format(
        name="perfetto",
        suffix=".perfetto.json",
        write=write,
        description="Chrome Trace Event JSON for Perfetto UI and chrome://tracing",
    )
]
