"""CTF 1.8, the Common Trace Format LTTng writes, for babeltrace2 and Trace Compass.

A snapshot becomes a trace directory: a ``metadata`` file (TSDL text, the
type description) and one binary stream file per stream of the snapshot (one
thread on one channel). The layout follows LTTng so that the readers' own
loss reporting shows the snapshot's gaps (see ``design/ctf.md``):

* **Packets.** Each sub-buffer is one packet: the events of a stream are
  grouped by ``position // subbuf_size``, and that number is the packet's
  ``packet_seq_num``. A skipped sub-buffer (``StreamInfo.gaps``) is a jump in
  the sequence, which babeltrace2 reports as "discarded N packets". Readers
  ignore the sequence number of a stream's first packet (a snapshot starts
  mid-stream), so a gap *before* the first packet gets an empty opening packet
  in front of it, and a gap *after* the last packet an empty closing packet.
  A leading gap that reaches back to position 0 leaves no sequence number
  free below it: its records (those produced, as ``StreamInfo.skipped``
  counts them) are reported as discarded events instead, after an opening
  packet that counts none.
* **Lost records.** ``events_discarded`` is a running count per stream.
  Records dropped by a full discard-mode ring (``StreamInfo.dropped``)
  happened after the newest record the ring kept, so they are added in an
  empty closing packet spanning from the stream's last event to the time the
  snapshot was taken: babeltrace2 reports "discarded N events" there. A
  stream's first packet always counts 0: babeltrace2 reports a count in a
  first packet only as "may have discarded events", without the number.
  Records older than an overwrite-mode ring holds (``overwritten``) are the
  flight recorder working as designed and are not reported as discarded, as
  in an LTTng snapshot; their count, like every loss total, is in the trace
  environment (``events_overwritten``, ``events_dropped``, ...). A stream
  with losses but no event in the snapshot still gets its opening and
  closing packets, so its losses are reported too.
* **Event classes.** One per (channel, event name, kind, field names in
  order). The class name is the event name for a point event and
  ``name:entry`` / ``name:exit`` for the two ends of a traced call or span
  (a point event whose own name ends in ``:entry`` looks the same: the
  metadata's class list tells them apart).
  Field types come from the recorded values: ``int`` is a signed 64-bit
  integer (unsigned 64-bit if some value needs it), ``float`` a double,
  ``bool`` an 8-bit enumeration with the labels ``False``/``True``, and
  ``str``, ``None`` or anything else a UTF-8 string (``repr`` of non-strings;
  a NUL character, which would end a CTF string, becomes U+FFFD).
  A field has one type across every class of the same event name and kind;
  values of different types (``int`` and ``None``, ``int`` and ``float``) make
  it a string field. Context fields (``Event.context``) are unified the same
  way per channel and written as the stream's ``event.context``.
* **Names.** Field names become TSDL identifiers: characters other than ASCII
  letters, digits and ``_`` become ``_``; a name that starts with a digit or
  ``_``, or is a TSDL keyword, gets a leading ``_``, which babeltrace2 strips
  when it prints (as it does for LTTng), so ``_private`` prints as
  ``_private`` and ``event`` as ``event``. Names that collide after this get
  ``_2``, ``_3``... (unique also as printed; a name with nothing printable
  left becomes ``_field``). The original name of every renamed field is in a comment
  beside it in ``metadata``. Event names are TSDL strings: kept as they are.
* **Threads.** Each packet context carries ``thread_id``, ``thread_name`` and
  ``channel``, which babeltrace2 prints with every event. The trace
  environment holds ``vpid`` (the process id, printed as ``(pid)`` on every
  line), the snapshot's loss totals and ``Snapshot.metadata`` (test id,
  worker...), a key that collides with ours prefixed with ``metadata_``.
* **Clock.** ``monotonic``, 1 GHz, with ``offset_s``/``offset`` from
  ``Snapshot.clock_offset_ns`` and ``absolute = true`` (the origin is the Unix
  epoch), so readers print wall-clock time; ``babeltrace2 --clock-cycles``
  prints the raw monotonic nanoseconds of ``Event.timestamp``.

Every integer is declared with ``align = 8``, so the binary layout is byte
packed with no padding to get wrong; sizes in the packet context are in bits.
The binary files are written in batches, not event by event (a snapshot
can hold millions): one loop in Python groups the events by stream, name and
kind; everything else works on whole columns in C (``map``, ``itemgetter``,
``set(map(type, ...))``, ``min``/``max``), each run of fixed-size fields of
a group packed by one :class:`struct.Struct` over its columns, each distinct
string encoded once. The records of a stream are put back in order and
written a packet at a time; a stream's records are in memory while it is
written.

Pairing: an exit, suspension or resumption carries ``duration_ns``; its
span's entry is the event of the same name at ``timestamp - duration_ns``
(see ``instrument.stream``), which a CTF reader can pair on, whatever
interleaves on the stream.
"""

from __future__ import annotations

import os
import re
import struct
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from operator import itemgetter, le
from pathlib import Path
from typing import IO, Any, NoReturn

from ..model import Event, Snapshot, StreamInfo
from . import Format, collector_paused, create_private_file

#: CTF packet magic number.
MAGIC = 0xC1FC1FC1

_U64_LIMIT = 1 << 64
_S64_MIN = -(1 << 63)
_S64_LIMIT = 1 << 63

# Value kinds found in recorded values, from the narrowest. The integer kinds
# say what range was seen so that unification can pick s64 or u64.
_BOOL = "bool"
_INT = "int"  # 0 <= v < 2**63: fits both s64 and u64
_SINT = "sint"  # some v < 0 (all fit s64)
_UINT = "uint"  # some v >= 2**63 (all fit u64)
_FLOAT = "float"
_STR = "str"

#: TSDL type of each value kind (type aliases declared in the metadata).
_TSDL_TYPE = {
    _BOOL: "rt_bool",
    _INT: "rt_s64",
    _SINT: "rt_s64",
    _UINT: "rt_u64",
    _FLOAT: "rt_double",
    _STR: "string",
}
#: struct code of each fixed-size kind (strings are NUL-terminated UTF-8).
_STRUCT_CODE = {_BOOL: "B", _INT: "q", _SINT: "q", _UINT: "Q", _FLOAT: "d"}

#: TSDL keywords (CTF 1.8 section 7.1; each one checked against babeltrace2
#: 2.0.4) and the type aliases our metadata declares: neither can name a field.
TSDL_RESERVED = frozenset(
    (
        *("align", "callsite", "const", "char", "clock", "double", "enum", "env", "event"),
        *("floating_point", "float", "integer", "int", "long", "short", "signed", "stream"),
        *("string", "struct", "trace", "typealias", "typedef", "unsigned", "variant", "void"),
        *("_Bool", "_Complex", "_Imaginary"),
        *("rt_u8", "rt_u16", "rt_u32", "rt_u64", "rt_s64", "rt_double", "rt_bool", "rt_clock"),
    )
)

_NOT_IDENT_CHAR = re.compile(r"[^A-Za-z0-9_]")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_FILE_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")

#: Most stream files kept open at once while writing (the rest are reopened).
_MAX_OPEN_FILES = 32

_PACKET_HEADER = struct.Struct("<I16sI")  # magic, trace uuid, stream class id
# timestamp_begin, timestamp_end, content_size, packet_size, packet_seq_num,
# events_discarded, thread_id; then thread_name and channel as strings.
_PACKET_CONTEXT = struct.Struct("<QQQQQQQ")


# -- field types -------------------------------------------------------------


def value_kind(value: object) -> str:
    """The kind of one recorded value: what CTF type could hold it."""
    t = type(value)
    if t is bool:
        return _BOOL
    if t is int:
        v: int = value  # type: ignore[assignment]
        if 0 <= v < _S64_LIMIT:
            return _INT
        if _S64_MIN <= v < 0:
            return _SINT
        if _S64_LIMIT <= v < _U64_LIMIT:
            return _UINT
        return _STR
    if t is float:
        return _FLOAT
    return _STR


def unify(a: str, b: str) -> str:
    """The narrowest kind holding values of kinds ``a`` and ``b``.

    Integers widen within 64 bits (signed, or unsigned when a value needs
    it); any other mix, or integers needing both signs and 64 bits, is a
    string.
    """
    if a == b:
        return a
    pair = {a, b}
    if pair <= {_INT, _SINT}:
        return _SINT
    if pair <= {_INT, _UINT}:
        return _UINT
    return _STR


def tsdl_type(kind: str) -> str:
    """The TSDL type name the metadata uses for a value kind."""
    return _TSDL_TYPE[kind]


def as_text(value: object) -> str:
    """How a value is written in a string field: a ``str`` as it is, anything
    else as its ``repr`` (``None`` as ``None``, ``True`` as ``True``)."""
    return value if isinstance(value, str) else repr(value)


def _cstring(value: object) -> bytes:
    # CTF strings end at the first NUL: a NUL in the text becomes U+FFFD.
    text = value if isinstance(value, str) else repr(value)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text.encode("utf-8", "backslashreplace") + b"\x00"


# -- names -------------------------------------------------------------------


def tsdl_identifier(name: str) -> str:
    """``name`` made a valid TSDL identifier that babeltrace2 prints as close
    to ``name`` as it can (see the module docstring)."""
    ident = _NOT_IDENT_CHAR.sub("_", name)
    if not ident.strip("_"):  # nothing left to print (babeltrace2 strips a "_")
        return "_field"
    if ident[0] == "_" or ident[0].isdigit() or ident in TSDL_RESERVED:
        return "_" + ident
    return ident


def printed_name(identifier: str) -> str:
    """How babeltrace2 prints a field declared as ``identifier`` (it strips
    one leading underscore)."""
    return identifier[1:] if identifier.startswith("_") else identifier


def field_identifiers(names: Iterable[str]) -> dict[str, str]:
    """Unique TSDL identifiers for the field names of one structure.

    Names that are already valid identifiers keep them; the others are
    sanitised with :func:`tsdl_identifier`, and a sanitised name that
    collides with another gets the first free suffix ``_2``, ``_3``...
    Identifiers are unique also as babeltrace2 prints them (one leading
    underscore stripped), or it would refuse the whole trace.
    """
    names = list(dict.fromkeys(names))
    result: dict[str, str] = {}
    used: set[str] = set()
    printed: set[str] = set()
    for name in names:
        if _IDENT.match(name) and name not in TSDL_RESERVED:
            result[name] = name
            used.add(name)
            printed.add(name)
    for name in names:
        if name in result:
            continue
        ident = base = tsdl_identifier(name)
        n = 2
        while ident in used or printed_name(ident) in printed:
            ident = f"{base}_{n}"
            n += 1
        result[name] = ident
        used.add(ident)
        printed.add(printed_name(ident))
    return {name: result[name] for name in names}


def tsdl_string(text: str) -> str:
    """``text`` as a TSDL string literal (C escapes; UTF-8 kept)."""
    out = ['"']
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:  # lone surrogate: not UTF-8
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _comment_text(text: str) -> str:
    return tsdl_string(text).replace("*/", "*\\/")


def event_class_name(name: str, kind: str) -> str:
    """The CTF event class name of events ``name`` of ``kind``."""
    return name if kind == "event" else f"{name}:{kind}"


# -- walking the snapshot ----------------------------------------------------


class _Router:
    """Finds the stream (index into ``Snapshot.streams``) an event came from.

    Events carry their channel, thread id and thread name, not their stream:
    a thread id can be reused by a later thread, and both streams may be in
    the snapshot. Events of a stream come in position order (the snapshot is
    sorted by time, and a stream's timestamps rise with its positions), so a
    position going backwards, or leaving the current stream's range, means
    the next stream of that key.
    """

    def __init__(self, streams: Sequence[StreamInfo]):
        self.streams = streams
        self.by_key: dict[tuple[str, int, str], list[int]] = {}
        self.by_thread: dict[tuple[str, int], list[int]] = {}
        for index, info in enumerate(streams):
            self.by_key.setdefault((info.channel, info.thread_id, info.thread_name), []).append(
                index
            )
            self.by_thread.setdefault((info.channel, info.thread_id), []).append(index)
        # key -> [stream index, last position routed, index into the candidates]
        self.state: dict[Any, list[int]] = {}
        #: The same lists, for keys with a single stream: callers may route an
        #: event themselves when its position does not go backwards.
        self.fast: dict[Any, list[int]] = {}

    def route(self, ev: Event) -> int:
        key = (ev.channel, ev.thread_id, ev.thread_name)
        candidates = self.by_key.get(key)
        if candidates is None:
            candidates = self.by_thread.get((ev.channel, ev.thread_id))
            if candidates is None:
                raise ValueError(
                    f"event {ev.name!r} at {ev.timestamp} is on channel {ev.channel!r}, thread "
                    f"{ev.thread_id} ({ev.thread_name!r}), but the snapshot has no stream of it"
                )
        pos = ev.position
        if type(pos) is not int or pos < 0:
            raise ValueError(f"event {ev.name!r} at {ev.timestamp} has a bad position {pos!r}")
        state = self.state.get(key)
        if state is None:
            i = self._find(candidates, 0, pos)
            state = self.state[key] = [candidates[i], pos, i]
            if len(candidates) == 1:
                self.fast[key] = state
        elif pos < state[1] or not self._holds(candidates, state[2], pos):
            i = self._find(candidates, state[2] + 1, pos)
            state[0] = candidates[i]
            state[2] = i
        state[1] = pos
        return state[0]

    def _holds(self, candidates: list[int], i: int, pos: int) -> bool:
        if len(candidates) == 1:  # nothing to choose from: any position is its own
            return True
        info = self.streams[candidates[i]]
        if info.first_position is None or info.last_position is None:
            return False
        return info.first_position <= pos <= info.last_position

    def _find(self, candidates: list[int], start: int, pos: int) -> int:
        for i in range(start, len(candidates)):
            if self._holds(candidates, i, pos):
                return i
        info = self.streams[candidates[0]]
        raise ValueError(
            f"events of stream {info.channel!r}/{info.thread_id} ({info.thread_name!r}) are "
            f"not in position order, or position {pos} is outside every such stream"
        )


@dataclass
class _StreamPlan:
    """What the first pass learned about one stream, and the packets it needs."""

    info: StreamInfo
    size: int = 1
    count: int = 0
    first_ts: int = 0
    last_ts: int = 0
    first_seq: int = -1
    last_seq: int = -1
    last_position: int = -1
    opening_seq: int | None = None
    closing_seq: int | None = None
    discarded_from_start: int = 0
    #: Records lost inside a packet (positions abandoned by an interrupted
    #: write, see instrument.stream.abandoned), by packet sequence number.
    holes: dict[int, int] = field(default_factory=dict)

    def plan(self) -> None:
        """Decide the opening and closing packets (see the module docstring)."""
        info = self.info
        size = info.subbuf_size
        gaps = sorted(info.gaps)
        for start, end in gaps:
            if start % size or end % size:  # not whole sub-buffers
                self.holes[start // size] = self.holes.get(start // size, 0) + end - start
        if self.count:
            first, last = self.first_seq, self.last_seq
        else:  # only losses to show: place them where the stream would go on
            end = max([info.produced, *(e for _s, e in gaps)])
            first = last = max(1, -(-end // size))
        leading = [(s, e) for s, e in gaps if s < first * size]
        trailing = [(s, e) for s, e in gaps if s >= (last + 1) * size]
        if leading:
            n = sum(-(-(e - s) // size) for s, e in leading)
            if first - n - 1 >= 0:
                self.opening_seq = first - n - 1
            else:  # the gaps reach back to position 0: no sequence number is free
                self.opening_seq = first - 1
                # as StreamInfo.skipped: only records produced in a partly filled one
                produced = info.produced
                self.discarded_from_start = sum(
                    (min(e, produced) if produced > s else e) - s for s, e in leading
                )
        if self.count:
            if trailing or info.dropped:
                self.closing_seq = last + 1 + sum(-(-(e - s) // size) for s, e in trailing)
        elif gaps or info.dropped:
            self.closing_seq = first
            if self.opening_seq is None:  # a first packet's count is not reported
                self.opening_seq = first - 1


@dataclass
class _EventClass:
    """One CTF event class: the events of one channel, name, kind and field names."""

    id: int
    channel: str
    name: str
    kind: str
    keys: tuple[str, ...]
    kinds: list[str]
    #: Index of its first event in the snapshot: classes are numbered in that order.
    first: int
    idents: dict[str, str] = field(default_factory=dict)


@dataclass
class _Channel:
    """A stream class: one per channel, with its event context fields."""

    id: int
    name: str
    info: StreamInfo
    context_kinds: dict[str, str] = field(default_factory=dict)
    context_idents: dict[str, str] = field(default_factory=dict)
    class_count: int = 0
    header: struct.Struct = field(default_factory=lambda: struct.Struct("<HQ"))
    #: Where each context key was first seen: (event index, place in its mapping).
    context_first: dict[str, tuple[int, int]] = field(default_factory=dict)


_TIMESTAMP = itemgetter(0)
_FIELDS = itemgetter(5)
_CONTEXT = itemgetter(6)
_CHANNEL = itemgetter(7)
_POSITION = itemgetter(8)


class _Part:
    """The events of a group with one tuple of field names: what one event
    class has on one stream."""

    __slots__ = ("cls", "columns", "kinds", "select", "texts")

    def __init__(self, cls: _EventClass, fields: list[dict[str, Any]], select: list[int] | None):
        self.cls = cls
        self.select = select  # indices into the group's events; None: all of them
        self.columns = [list(map(itemgetter(k), fields)) for k in cls.keys]
        types = [set(map(type, c)) for c in self.columns]
        self.kinds = list(map(_column_kind, self.columns, types))
        self.texts = [t == {str} for t in types]  # columns of str alone


class _Group:
    """The events of one stream with one name and kind, in stream order."""

    __slots__ = (
        *("context_columns", "contexts", "events", "first", "parts", "shape", "stream"),
        "timestamps",
    )

    def __init__(self, stream: int, events: list[Event], first: int):
        self.stream = stream
        self.events = events
        self.first = first  # index of its first event in the snapshot
        self.parts: list[_Part] = []
        self.shape: list[int] | None = None  # the part of each event, when there are several
        self.timestamps: list[int] = []
        contexts: list[dict[str, Any]] = list(map(_CONTEXT, events))
        # Most events share their stream's context mapping: one is enough.
        self.contexts = contexts[:1] if contexts.count(contexts[0]) == len(contexts) else contexts
        self.context_columns: dict[str, list[Any]] = {}

    def select(self, values: list[Any], part: _Part) -> list[Any]:
        return values if part.select is None else [values[j] for j in part.select]

    def where(self, j: int, snapshot: Sequence[Event]) -> int:
        """Index in the snapshot of this group's ``j``-th event (rarely needed: a search)."""
        return self.first if j == 0 else snapshot.index(self.events[j], self.first)


def _group_by_thread(
    events: Sequence[Event], streams: Sequence[StreamInfo]
) -> tuple[list[_Group], dict[int, list[int]]] | None:
    """The events grouped by stream, name and kind, when every stream can be
    told by its thread alone (else None: see :func:`_group_by_route`).

    Returns the groups and, for each stream with events, the group of each
    of its events in order.
    """
    by_thread: dict[tuple[str, int], list[int]] = {}
    by_key: dict[tuple[str, int, str], int] = {}
    for index, info in enumerate(streams):
        by_thread.setdefault((info.channel, info.thread_id), []).append(index)
        by_key[(info.channel, info.thread_id, info.thread_name)] = index
    if any(len(c) > 1 for c in by_thread.values()):
        return None  # a thread id reused on a channel: positions tell the streams apart
    # The one loop over every event in Python: a dict lookup and two appends.
    # Its key, (name, kind, thread id, thread name), is a slice built in C.
    found: dict[tuple[Any, ...], tuple[Any, Any, int]] = {}
    threads: dict[tuple[int, str], list[int]] = {}
    firsts: list[int] = []
    get = found.get
    for i, ev in enumerate(events):
        group = get(ev[1:5])
        if group is None:
            key = ev[1:5]
            thread = threads.get(key[2:])
            if thread is None:
                thread = threads[key[2:]] = []
            events_of: list[Event] = []
            group = found[key] = (events_of.append, thread.append, len(found))
            firsts.append(i)
        group[0](ev)
        group[1](group[2])
    groups: list[_Group] = []
    stream_of: dict[tuple[int, str], int] = {}
    every = set(map(_CHANNEL, events))  # read in the snapshot's order: the fastest
    for (_name, _kind, tid, tname), (append, _, gid) in found.items():
        evs: list[Event] = append.__self__
        channels = every if len(every) == 1 else set(map(_CHANNEL, evs))
        if len(channels) != 1:
            return None  # a thread's events of one name on several channels
        (channel,) = channels
        stream = by_key.get((channel, tid, tname))
        if stream is None:
            candidates = by_thread.get((channel, tid))
            if candidates is None:
                return None  # no stream for them: routing says so, precisely
            stream = candidates[0]
        if stream_of.setdefault((tid, tname), stream) != stream:
            return None  # a thread's events on several streams
        groups.append(_Group(stream, evs, firsts[gid]))
    lanes: dict[int, list[int]] = {}
    for lane_key, order in threads.items():
        if stream_of[lane_key] in lanes:
            return None  # two thread names on one stream: their order is lost
        lanes[stream_of[lane_key]] = order
    return groups, lanes


def _group_by_route(
    events: Sequence[Event], streams: Sequence[StreamInfo]
) -> tuple[list[_Group], dict[int, list[int]]]:
    """The events grouped by stream, name and kind, each routed by
    :class:`_Router` (a thread id reused, a thread on several channels)."""
    try:
        return _group_routed(events, _Router(streams).route)
    except ValueError:  # the first problem is maybe a timestamp: say which
        _diagnose_events(events, streams)


def _group_routed(
    events: Sequence[Event], route: Callable[[Event], int]
) -> tuple[list[_Group], dict[int, list[int]]]:
    found: dict[tuple[Any, ...], tuple[Any, Any, int]] = {}
    lanes: dict[int, list[int]] = {}
    firsts: list[int] = []
    for i, ev in enumerate(events):
        stream = route(ev)
        key = (stream, ev[1], ev[2])
        group = found.get(key)
        if group is None:
            lane = lanes.setdefault(stream, [])
            events_of: list[Event] = []
            group = found[key] = (events_of.append, lane.append, len(found))
            firsts.append(i)
        group[0](ev)
        group[1](group[2])
    groups = [
        _Group(stream, append.__self__, firsts[gid])
        for (stream, _name, _kind), (append, _, gid) in found.items()
    ]
    return groups, lanes


def _in_order(lane: list[int], columns: Sequence[list[Any] | None]) -> list[Any]:
    """One stream's values in the order of its events: ``columns`` holds
    each group's values (by group number), ``lane`` the group of each event."""
    groups = set(lane)
    if len(groups) == 1:
        only = columns[lane[0]]
        assert only is not None
        return only
    iters: list[Any] = [None] * len(columns)
    for g in groups:
        iters[g] = iter(columns[g])  # type: ignore[arg-type]
    return list(map(next, map(iters.__getitem__, lane)))


def _column_kind(values: list[Any], types: set[type] | None = None) -> str:
    """The narrowest kind holding every value of a column (of ``types``):
    what :func:`value_kind` and :func:`unify` give, found in C."""
    if types is None:
        types = set(map(type, values))
    if len(types) != 1:
        return _STR  # mixed types never share a fixed-size type
    (t,) = types
    if t is int:
        low, high = min(values), max(values)
        if low >= 0:
            return _INT if high < _S64_LIMIT else _UINT if high < _U64_LIMIT else _STR
        return _SINT if low >= _S64_MIN and high < _S64_LIMIT else _STR
    return _BOOL if t is bool else _FLOAT if t is float else _STR


def _diagnose(snapshot: Snapshot) -> NoReturn:
    """Raise what is wrong with the events' streams, positions or timestamps,
    naming the first event at fault (the batched checks only see that
    something is)."""
    _diagnose_events(snapshot.events, snapshot.streams)


def _diagnose_events(events: Sequence[Event], streams: Sequence[StreamInfo]) -> NoReturn:
    route = _Router(streams).route
    last: dict[int, int] = {}
    for ev in events:
        index = route(ev)
        ts = ev.timestamp
        if type(ts) is not int or not 0 <= ts < _U64_LIMIT:
            raise ValueError(f"event {ev.name!r} has a bad timestamp {ts!r}")
        if ts < last.get(index, 0):
            info = streams[index]
            raise ValueError(
                f"timestamps of stream {info.channel!r}/{info.thread_id} "
                f"({info.thread_name!r}) go backwards at event {ev.name!r} ({ts})"
            )
        last[index] = ts
    raise ValueError("event positions out of the range CTF can hold")


class _Survey:
    """The events grouped, checked and typed: streams, channels, event classes.

    Nothing here walks the events one by one in Python but the grouping
    loop: columns are taken with ``map`` and ``itemgetter``, types with
    ``set(map(type, ...))``, ranges with ``min``/``max``.
    """

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.channels: dict[str, _Channel] = {}
        for info in snapshot.streams:
            _check_stream(info)
            if info.channel not in self.channels:
                self.channels[info.channel] = _Channel(len(self.channels), info.channel, info)
        self.plans = [_StreamPlan(info, info.subbuf_size) for info in snapshot.streams]
        events = snapshot.events if type(snapshot.events) is list else list(snapshot.events)
        self.events = events
        grouped = _group_by_thread(events, snapshot.streams)
        if grouped is None:
            grouped = _group_by_route(events, snapshot.streams)
        self.groups, self.lanes = grouped
        #: Per stream with events: the positions of its events in order.
        self.positions: dict[int, list[int]] = {}
        self._check()
        self.classes: dict[tuple[str, str, str, tuple[str, ...]], _EventClass] = {}
        for group in self.groups:
            self._split(group)
        self._context()
        for plan in self.plans:
            plan.plan()
        self._unify()

    def _check(self) -> None:
        """Each stream's positions and timestamps in order and in range."""
        groups = self.groups
        positions = [list(map(_POSITION, g.events)) for g in groups]
        for group in groups:
            group.timestamps = list(map(_TIMESTAMP, group.events))
        stamps = [g.timestamps for g in groups]
        # A snapshot is merged by time: then every stream's timestamps are in
        # order, and only the positions need each stream's events in order.
        # (Values of a type or range CTF cannot hold fail to pack: see write_ctf.)
        every = list(map(_TIMESTAMP, self.events))
        if set(map(type, every)) - {int}:  # a bool or a float: not a timestamp
            _diagnose(self.snapshot)
        try:
            merged = all(map(le, every, islice(every, 1, None)))
        except TypeError:
            merged = False
        for stream, lane in self.lanes.items():
            pos = _in_order(lane, positions)
            try:
                ordered = not set(map(type, pos)) - {int} and pos[0] >= 0
                ordered = ordered and all(map(le, pos, islice(pos, 1, None)))
                if not merged:
                    ts = _in_order(lane, stamps)
                    ordered = ordered and ts[0] >= 0 and all(map(le, ts, islice(ts, 1, None)))
            except TypeError:
                ordered = False
            if not ordered:
                _diagnose(self.snapshot)
            self.positions[stream] = pos
            plan = self.plans[stream]
            plan.count = len(pos)
            plan.first_ts, plan.last_ts = stamps[lane[0]][0], stamps[lane[-1]][-1]
            plan.first_seq, plan.last_seq = pos[0] // plan.size, pos[-1] // plan.size
            plan.last_position = pos[-1]

    def _split(self, group: _Group) -> None:
        """Split ``group`` by field names (one part per event class); type the fields."""
        fields: list[dict[str, Any]] = list(map(_FIELDS, group.events))
        first = fields[0]
        n = len(first)
        if n >= 2:
            uniform = len(set(map(tuple, fields))) == 1
        else:  # one name or none: the lengths and that name say it
            uniform = set(map(len, fields)) == {n} and (
                n == 0 or all(map(dict.__contains__, fields, repeat(next(iter(first)))))
            )
        shapes: list[tuple[tuple[str, ...], list[int] | None]]
        if uniform:
            shapes = [(tuple(first), None)]
        else:
            by_shape: dict[tuple[str, ...], int] = {}
            group.shape = [by_shape.setdefault(tuple(f), len(by_shape)) for f in fields]
            selects: list[list[int]] = [[] for _ in by_shape]
            for j, s in enumerate(group.shape):
                selects[s].append(j)
            shapes = list(zip(by_shape, selects, strict=True))
        _ts, name, kind, _tid, _tname, _f, _c, channel, _pos = group.events[0]
        for keys, select in shapes:
            first_index = group.where(0 if select is None else select[0], self.events)
            key = (channel, name, kind, keys)
            cls = self.classes.get(key)
            if cls is None:
                cls = self.classes[key] = _EventClass(
                    -1, channel, name, kind, keys, [], first_index
                )
            cls.first = min(cls.first, first_index)
            part = _Part(cls, fields if select is None else [fields[j] for j in select], select)
            cls.kinds = list(map(unify, cls.kinds, part.kinds)) if cls.kinds else part.kinds
            group.parts.append(part)

    def _context(self) -> None:
        """Each channel's context fields: keys in the order first seen, one kind each."""
        for group in self.groups:
            chan = self.channels[group.parts[0].cls.channel]
            seen = chan.context_first
            contexts = group.contexts
            if len(contexts) == 1:
                firsts = {k: (group.first, p) for p, k in enumerate(contexts[0])}
            else:
                firsts = {}
                for k in dict.fromkeys(chain.from_iterable(contexts)):
                    j = next(j for j, c in enumerate(contexts) if k in c)
                    firsts[k] = (group.where(j, self.events), list(contexts[j]).index(k))
            for k, where in firsts.items():
                if k not in seen or where < seen[k]:
                    seen[k] = where
        found: dict[str, dict[str, str | None]] = {}
        for chan in self.channels.values():
            first = chan.context_first
            found[chan.name] = dict.fromkeys(sorted(first, key=first.__getitem__))
        for group in self.groups:
            kinds = found[group.parts[0].cls.channel]
            contexts = group.contexts
            for k, known in kinds.items():
                column = list(map(dict.get, contexts, repeat(k)))
                if len(contexts) > 1:
                    group.context_columns[k] = column
                kind = _column_kind(column)
                kinds[k] = kind if known is None else unify(known, kind)
        for name, kinds in found.items():
            self.channels[name].context_kinds = {k: kind or _STR for k, kind in kinds.items()}

    def _unify(self) -> None:
        # One type per (event name, kind, field name), across field sets and channels.
        merged: dict[tuple[str, str, str], str] = {}
        for cls in self.classes.values():
            for k, kind in zip(cls.keys, cls.kinds, strict=True):
                prev = merged.get((cls.name, cls.kind, k))
                merged[(cls.name, cls.kind, k)] = kind if prev is None else unify(prev, kind)
        # Numbered in the order of their first events, as read one by one.
        self.classes = dict(sorted(self.classes.items(), key=lambda item: item[1].first))
        for cls in self.classes.values():
            cls.kinds = [merged[(cls.name, cls.kind, k)] for k in cls.keys]
            cls.idents = field_identifiers(cls.keys)
            chan = self.channels[cls.channel]
            cls.id = chan.class_count
            chan.class_count += 1
        for chan in self.channels.values():
            chan.context_idents = field_identifiers(chan.context_kinds)
            chan.header = struct.Struct("<HQ" if chan.class_count <= 0xFFFF else "<IQ")


def _check_stream(info: StreamInfo) -> None:
    size = info.subbuf_size
    if type(size) is not int or size < 1:
        raise ValueError(f"stream {info.channel!r}/{info.thread_id}: bad subbuf_size {size!r}")
    if type(info.thread_id) is not int or not 0 <= info.thread_id < _U64_LIMIT:
        raise ValueError(f"stream {info.channel!r}: bad thread id {info.thread_id!r}")
    for start, end in info.gaps:
        if not 0 <= start < end:
            raise ValueError(f"stream {info.channel!r}/{info.thread_id}: bad gap {(start, end)!r}")


# -- encoding ----------------------------------------------------------------

# An item of a record: a struct code and its values (a column, or one value
# repeated), or None and the encoded bytes of each event (strings).
_Item = tuple[str | None, Iterable[Any]]


def _records(items: list[_Item]) -> list[bytes]:
    """One record per event, the items in order: runs of fixed-size items
    packed by one struct format each (over whole columns), strings between."""
    lists: list[list[bytes]] = []
    fmt = "<"
    args: list[Iterable[Any]] = []
    for code, values in items:
        if code is None:
            if args:
                lists.append(list(map(struct.Struct(fmt).pack, *args)))
                fmt, args = "<", []
            lists.append(values)  # type: ignore[arg-type]
        else:
            fmt += code
            args.append(values)
    if args:
        lists.append(list(map(struct.Struct(fmt).pack, *args)))
    if len(lists) == 1:
        return lists[0]
    return list(map(b"".join, zip(*lists, strict=True)))


class _Encoder:
    """Turns the survey's groups into records, each distinct string encoded once."""

    def __init__(self, survey: _Survey):
        self.survey = survey
        self.strings: dict[str, bytes] = {}

    def cstrings(self, values: list[Any], texts: bool | None = None) -> list[bytes]:
        """``values`` (``texts``: all of type str) as CTF strings (see :func:`_cstring`)."""
        if texts is None:
            texts = set(map(type, values)) == {str}
        if not texts:
            return list(map(_cstring, values))
        cache = self.strings
        encoded = list(map(cache.get, values))
        if None not in encoded:  # every string seen before: the common case
            return encoded  # type: ignore[return-value]
        new = list(set(values).difference(cache))
        if "\x00" in "".join(new):
            cache.update(zip(new, map(_cstring, new), strict=True))
        else:
            utf8 = map(str.encode, new, repeat("utf-8"), repeat("backslashreplace"))
            cache.update(zip(new, map(bytes.__add__, utf8, repeat(b"\x00")), strict=True))
        return list(map(cache.__getitem__, values))

    def column(self, values: list[Any], kind: str, texts: bool | None = None) -> _Item:
        if kind == _STR:
            return None, self.cstrings(values, texts)
        return _STRUCT_CODE[kind], values

    @staticmethod
    def constant(value: Any, kind: str) -> _Item:
        if kind == _STR:
            data = _cstring(value)
            return f"{len(data)}s", repeat(data)
        return _STRUCT_CODE[kind], repeat(value)

    def group(self, group: _Group) -> list[bytes]:
        """The records of ``group``'s events, in order."""
        parts = [self.part(group, part) for part in group.parts]
        if group.shape is None:
            return parts[0]
        iters = list(map(iter, parts))
        return list(map(next, map(iters.__getitem__, group.shape)))

    def part(self, group: _Group, part: _Part) -> list[bytes]:
        cls = part.cls
        chan = self.survey.channels[cls.channel]
        items: list[_Item] = [
            (chan.header.format[1], repeat(cls.id)),
            ("Q", group.select(group.timestamps, part)),
        ]
        if len(group.contexts) == 1:
            context = group.contexts[0]
            items += [self.constant(context.get(k), kd) for k, kd in chan.context_kinds.items()]
        else:
            for k, kind in chan.context_kinds.items():
                items.append(self.column(group.select(group.context_columns[k], part), kind))
        items += map(self.column, part.columns, cls.kinds, part.texts)
        return _records(items)


# -- writing -----------------------------------------------------------------


class _StreamWriter:
    """Writes one stream file packet by packet."""

    def __init__(self, out: IO[bytes], chan: _Channel, plan: _StreamPlan, trace_uuid: bytes):
        self.out = out
        self.plan = plan
        info = plan.info
        self.header = _PACKET_HEADER.pack(MAGIC, trace_uuid, chan.id)
        self.tail = _cstring(_thread_name(info)) + _cstring(info.channel)
        self.thread_id = info.thread_id
        self.stamp_offset = chan.header.size - 8
        self.discarded = 0
        self.end = 0
        self.started = False

    def events(self, seq: int, begin: int, end: int, body: bytes) -> None:
        """One packet of events, the first at ``begin``, the last at ``end``."""
        if not self.started:
            self._open(begin)
        self._packet(seq, begin, end, body)
        self.end = end

    def finish(self, taken_at: int) -> None:
        """Write the closing packet if the plan needs one (and the opening one
        of a stream without events)."""
        plan = self.plan
        if not self.started:
            self.end = taken_at
            self._open(taken_at)
        if plan.closing_seq is not None:
            self.discarded += plan.info.dropped
            self._packet(plan.closing_seq, self.end, max(self.end, taken_at), b"")

    def _open(self, timestamp: int) -> None:
        # The opening packet counts nothing, so that the next one's count is
        # reported with its number (a stream's first count is only "may have").
        self.started = True
        if self.plan.opening_seq is not None:
            self._packet(self.plan.opening_seq, timestamp, timestamp, b"")
        self.discarded = self.plan.discarded_from_start

    def _packet(self, seq: int, begin: int, end: int, body: bytes) -> None:
        if self.plan.holes:
            self.discarded += self.plan.holes.pop(seq, 0)
        total = len(self.header) + _PACKET_CONTEXT.size + len(self.tail) + len(body)
        bits = total * 8
        context = _PACKET_CONTEXT.pack(begin, end, bits, bits, seq, self.discarded, self.thread_id)
        self.out.write(b"".join((self.header, context, self.tail, body)))


def write_ctf(snapshot: Snapshot, directory: str | os.PathLike[str]) -> None:
    """Write ``snapshot`` as a CTF 1.8 trace into the empty ``directory``."""
    with collector_paused():
        _write_ctf(snapshot, Path(directory))


def _write_ctf(snapshot: Snapshot, out: Path) -> None:
    survey = _Survey(snapshot)
    trace_uuid = _trace_uuid(snapshot)
    metadata = "".join(_metadata(snapshot, survey, trace_uuid))
    with create_private_file(out / "metadata") as meta:
        meta.write(metadata.encode("utf-8"))

    try:
        _write_streams(snapshot, survey, out, trace_uuid.bytes)
    except struct.error:  # a value of a type or range CTF cannot hold: say which
        _diagnose(snapshot)


def _write_streams(snapshot: Snapshot, survey: _Survey, out: Path, trace_uuid: bytes) -> None:
    names = _stream_file_names(snapshot.streams)
    encoder = _Encoder(survey)
    groups = survey.groups
    for index, plan in enumerate(survey.plans):
        lane = survey.lanes.get(index)
        if lane is None and plan.opening_seq is None and plan.closing_seq is None:
            continue
        with create_private_file(out / names[index]) as stream:
            writer = _StreamWriter(stream, survey.channels[plan.info.channel], plan, trace_uuid)
            if lane is not None:
                records: list[list[bytes] | None] = [None] * len(groups)
                for g in set(lane):
                    records[g] = encoder.group(groups[g])
                _write_packets(writer, _in_order(lane, records), survey.positions[index])
            writer.finish(snapshot.taken_at)


def _write_packets(writer: _StreamWriter, records: list[bytes], positions: list[int]) -> None:
    """A stream's events, one packet per sub-buffer (their positions say which)."""
    size = writer.plan.size
    stamp = struct.Struct("<Q").unpack_from
    at = writer.stamp_offset  # each record starts with its event header: id, timestamp
    i, n = 0, len(records)
    while i < n:
        seq = positions[i] // size
        j = bisect_left(positions, (seq + 1) * size, i)
        begin, end = stamp(records[i], at)[0], stamp(records[j - 1], at)[0]
        writer.events(seq, begin, end, b"".join(records[i:j]))
        i = j


def _trace_uuid(snapshot: Snapshot) -> uuid.UUID:
    # Derived from the snapshot, so writing it twice gives the same trace.
    key = f"{snapshot.pid}:{snapshot.taken_at}:{snapshot.clock_offset_ns}:{len(snapshot.events)}"
    return uuid.uuid5(uuid.NAMESPACE_URL, "ringtrace:" + key)


def _thread_name(info: StreamInfo) -> str:
    """The stream's thread name as written; a child process's stream
    (``instrument.children``: its context has ``command``) names its process,
    since a trace holds one ``vpid``: ``name [pid N: command]``."""
    if "command" in info.context and isinstance(info.context.get("pid"), int):
        return f"{info.thread_name} [pid {info.context['pid']}: {info.context['command']}]"
    return info.thread_name


def _stream_file_names(streams: Sequence[StreamInfo]) -> list[str]:
    names = []
    for index, info in enumerate(streams):
        thread = _FILE_UNSAFE.sub("_", info.thread_name)[:40].strip("._") or "thread"
        if "command" in info.context and isinstance(info.context.get("pid"), int):
            thread = f"pid{info.context['pid']}_{thread}"
        channel = _FILE_UNSAFE.sub("_", info.channel).lstrip(".") or "channel"
        names.append(f"{channel}_{index}_{thread}")
    return names


# -- metadata ----------------------------------------------------------------

_PREAMBLE = """\
/* CTF 1.8 */
/*
 * A pytest-ringtrace snapshot: one stream file per thread per channel, one
 * packet per sub-buffer (packet_seq_num = position // sub-buffer size).
 * Event classes are named after the event, with ":entry" / ":exit" for the
 * two ends of a traced call or span. Fields renamed to be TSDL identifiers
 * carry their recorded name in a comment.
 */

typealias integer { size = 8; align = 8; signed = false; } := rt_u8;
typealias integer { size = 16; align = 8; signed = false; } := rt_u16;
typealias integer { size = 32; align = 8; signed = false; } := rt_u32;
typealias integer { size = 64; align = 8; signed = false; } := rt_u64;
typealias integer { size = 64; align = 8; signed = true; } := rt_s64;
typealias floating_point { exp_dig = 11; mant_dig = 53; byte_order = le; align = 8; } := rt_double;
typealias enum : rt_u8 { "False" = 0, "True" = 1 } := rt_bool;

"""


def _env_value(value: object) -> str:
    if type(value) is int and _S64_MIN <= value < _S64_LIMIT:
        return str(value)
    return tsdl_string(as_text(value))


def _environment(snapshot: Snapshot) -> dict[str, object]:
    env: dict[str, object] = {
        "domain": "python",
        "tracer_name": "pytest-ringtrace",
        "vpid": snapshot.pid,
        "taken_at": snapshot.taken_at,
        "clock_offset_ns": snapshot.clock_offset_ns,
    }
    if snapshot.since is not None:
        env["since"] = snapshot.since
    env.update(
        events=len(snapshot.events),
        streams=len(snapshot.streams),
        events_dropped=snapshot.dropped,
        events_skipped=snapshot.skipped,
        subbufs_skipped=snapshot.skipped_subbufs,
        events_overwritten=snapshot.overwritten,
    )
    for key, value in snapshot.metadata.items():
        ident = _NOT_IDENT_CHAR.sub("_", str(key))
        if ident in env or not _IDENT.match(ident) or ident in TSDL_RESERVED:
            ident = "metadata_" + ident
        env.setdefault(ident, value)
    return env


def _struct_members(
    kinds: Sequence[tuple[str, str]], idents: dict[str, str], indent: str
) -> Iterator[str]:
    for name, kind in kinds:
        ident = idents[name]
        note = "" if ident == name else f" /* field {_comment_text(name)} */"
        yield f"{indent}{tsdl_type(kind)} {ident};{note}\n"


def _metadata(snapshot: Snapshot, survey: _Survey, trace_uuid: uuid.UUID) -> Iterator[str]:
    yield _PREAMBLE
    yield (
        "trace {\n"
        "    major = 1;\n"
        "    minor = 8;\n"
        f'    uuid = "{trace_uuid}";\n'
        "    byte_order = le;\n"
        "    packet.header := struct {\n"
        "        rt_u32 magic;\n"
        "        rt_u8 uuid[16];\n"
        "        rt_u32 stream_id;\n"
        "    };\n"
        "};\n\n"
    )
    yield "env {\n"
    for key, value in _environment(snapshot).items():
        yield f"    {key} = {_env_value(value)};\n"
    yield "};\n\n"
    offset_s, offset = divmod(snapshot.clock_offset_ns, 1_000_000_000)
    yield (
        "clock {\n"
        "    name = monotonic;\n"
        '    description = "time.monotonic_ns(); offset: wall-clock time at the snapshot";\n'
        "    freq = 1000000000;\n"
        "    precision = 0;\n"
        f"    offset_s = {offset_s};\n"
        f"    offset = {offset};\n"
        "    absolute = true;\n"
        "};\n\n"
        "typealias integer { size = 64; align = 8; signed = false; "
        "map = clock.monotonic.value; } := rt_clock;\n\n"
    )
    for chan in survey.channels.values():
        info = chan.info
        id_type = "rt_u16" if chan.header.format == "<HQ" else "rt_u32"
        yield (
            f"/* channel {_comment_text(chan.name)}: {info.mode} mode, "
            f"{info.num_subbuf} sub-buffers of {info.subbuf_size} events */\n"
            "stream {\n"
            f"    id = {chan.id};\n"
            "    packet.context := struct {\n"
            "        rt_clock timestamp_begin;\n"
            "        rt_clock timestamp_end;\n"
            "        rt_u64 content_size;\n"
            "        rt_u64 packet_size;\n"
            "        rt_u64 packet_seq_num;\n"
            "        rt_u64 events_discarded;\n"
            "        rt_u64 thread_id;\n"
            "        string thread_name;\n"
            "        string channel;\n"
            "    };\n"
            "    event.header := struct {\n"
            f"        {id_type} id;\n"
            "        rt_clock timestamp;\n"
            "    };\n"
        )
        if chan.context_kinds:
            yield "    event.context := struct {\n"
            yield from _struct_members(
                list(chan.context_kinds.items()), chan.context_idents, " " * 8
            )
            yield "    };\n"
        yield "};\n\n"
    for cls in survey.classes.values():
        yield (
            "event {\n"
            f"    name = {tsdl_string(event_class_name(cls.name, cls.kind))};\n"
            f"    id = {cls.id};\n"
            f"    stream_id = {survey.channels[cls.channel].id};\n"
            "    fields := struct {\n"
        )
        yield from _struct_members(list(zip(cls.keys, cls.kinds, strict=True)), cls.idents, " " * 8)
        yield "    };\n};\n\n"


FORMATS = [
    Format(
        name="ctf",
        suffix=".ctf",
        write=write_ctf,
        description="CTF 1.8 trace directory (babeltrace2, Trace Compass)",
        directory=True,
    )
]
