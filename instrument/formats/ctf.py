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
The binary files are written with :mod:`struct`, holding at most one packet
per stream in memory; the snapshot is walked twice (first to find the event classes and
their field types, then to write).

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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..model import Event, Snapshot, StreamInfo
from . import Format

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
    """One CTF event class: the events of one name, kind and field names."""

    id: int
    channel: str
    name: str
    kind: str
    keys: tuple[str, ...]
    kinds: list[str]
    idents: dict[str, str] = field(default_factory=dict)
    encode: Any = None  # Callable[[Event], bytes], built after the first pass


@dataclass
class _Channel:
    """A stream class: one per channel, with its event context fields."""

    id: int
    name: str
    info: StreamInfo
    context_kinds: dict[str, str] = field(default_factory=dict)
    context_idents: dict[str, str] = field(default_factory=dict)
    events: int = 0
    class_count: int = 0
    header: struct.Struct = field(default_factory=lambda: struct.Struct("<HQ"))


class _Survey:
    """The first pass: streams, channels, event classes and field types."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.channels: dict[str, _Channel] = {}
        for info in snapshot.streams:
            _check_stream(info)
            if info.channel not in self.channels:
                self.channels[info.channel] = _Channel(len(self.channels), info.channel, info)
        self.plans = [_StreamPlan(info, info.subbuf_size) for info in snapshot.streams]
        self.classes: dict[tuple[str, str, str, tuple[str, ...]], _EventClass] = {}
        self._walk(snapshot.events)
        for plan in self.plans:
            plan.plan()
        self._unify()

    def _walk(self, events: Iterable[Event]) -> None:
        router = _Router(self.snapshot.streams)
        plans = self.plans
        classes = self.classes
        channels = self.channels
        seen_contexts: dict[str, set[int]] = {name: set() for name in channels}
        context_counts: dict[str, dict[str, int]] = {name: {} for name in channels}
        fast = router.fast
        route = router.route
        for ev in events:
            ts, name, kind, tid, tname, fields, ctx, channel, pos = ev
            state = fast.get((channel, tid, tname))
            if state is not None and type(pos) is int and pos >= state[1]:
                state[1] = pos
                plan = plans[state[0]]
            else:
                plan = plans[route(ev)]
            if type(ts) is not int or not 0 <= ts < _U64_LIMIT:
                raise ValueError(f"event {name!r} has a bad timestamp {ts!r}")
            seq = pos // plan.size
            if plan.count:
                if ts < plan.last_ts:
                    info = plan.info
                    raise ValueError(
                        f"timestamps of stream {info.channel!r}/{info.thread_id} "
                        f"({info.thread_name!r}) go backwards at event {name!r} ({ts})"
                    )
            else:
                plan.first_ts = ts
                plan.first_seq = seq
            plan.last_ts = ts
            plan.last_seq = seq
            plan.count += 1
            key = (channel, name, kind, tuple(fields))
            cls = classes.get(key)
            if cls is None:
                cls = classes[key] = _EventClass(
                    id=-1,
                    channel=channel,
                    name=name,
                    kind=kind,
                    keys=key[3],
                    kinds=[value_kind(v) for v in fields.values()],
                )
            else:
                kinds = cls.kinds
                for i, v in enumerate(fields.values()):
                    k = value_kind(v)
                    if k != kinds[i]:
                        kinds[i] = unify(kinds[i], k)
            chan = channels[channel]
            chan.events += 1
            seen = seen_contexts[channel]
            if id(ctx) in seen:  # shared static context: already surveyed
                counts = context_counts[channel]
                for k in ctx:
                    counts[k] += 1
                continue
            if len(seen) < 4096:
                seen.add(id(ctx))
            counts = context_counts[channel]
            ckinds = chan.context_kinds
            for k, v in ctx.items():
                vk = value_kind(v)
                if k in ckinds:
                    counts[k] += 1
                    if vk != ckinds[k]:
                        ckinds[k] = unify(ckinds[k], vk)
                else:
                    counts[k] = 1
                    ckinds[k] = vk
        for name, chan in channels.items():
            for k, n in context_counts[name].items():
                if n < chan.events:  # absent from some events: written as None
                    chan.context_kinds[k] = unify(chan.context_kinds[k], _STR)

    def _unify(self) -> None:
        # One type per (event name, kind, field name), across field sets and channels.
        merged: dict[tuple[str, str, str], str] = {}
        for cls in self.classes.values():
            for k, kind in zip(cls.keys, cls.kinds, strict=True):
                prev = merged.get((cls.name, cls.kind, k))
                merged[(cls.name, cls.kind, k)] = kind if prev is None else unify(prev, kind)
        for cls in self.classes.values():
            cls.kinds = [merged[(cls.name, cls.kind, k)] for k in cls.keys]
            cls.idents = field_identifiers(cls.keys)
            chan = self.channels[cls.channel]
            cls.id = chan.class_count
            chan.class_count += 1
        for chan in self.channels.values():
            chan.context_idents = field_identifiers(chan.context_kinds)
            chan.header = struct.Struct("<HQ" if chan.class_count <= 0xFFFF else "<IQ")
            for cls in self.classes.values():
                if cls.channel == chan.name:
                    cls.encode = _encoder(chan, cls)


def _check_stream(info: StreamInfo) -> None:
    size = info.subbuf_size
    if type(size) is not int or size < 1:
        raise ValueError(f"stream {info.channel!r}/{info.thread_id}: bad subbuf_size {size!r}")
    if type(info.thread_id) is not int or not 0 <= info.thread_id < _U64_LIMIT:
        raise ValueError(f"stream {info.channel!r}: bad thread id {info.thread_id!r}")
    for start, end in info.gaps:
        if not 0 <= start < end:
            raise ValueError(f"stream {info.channel!r}/{info.thread_id}: bad gap {(start, end)!r}")


def _encoder(chan: _Channel, cls: _EventClass) -> Any:
    """A function turning an event of ``cls`` into its bytes: header, context, payload."""
    header = chan.header
    cid = cls.id
    # (from context?, key, kind) in write order
    specs = [(True, k, kind) for k, kind in chan.context_kinds.items()]
    specs += [(False, k, kind) for k, kind in zip(cls.keys, cls.kinds, strict=True)]
    if all(kind != _STR for _c, _k, kind in specs):
        packer = struct.Struct(header.format + "".join(_STRUCT_CODE[kd] for _c, _k, kd in specs))
        pack = packer.pack
        ctx_keys = [k for c, k, _kd in specs if c]
        if not ctx_keys:

            def encode_fixed(ev: Event) -> bytes:
                return pack(cid, ev.timestamp, *ev.fields.values())

            return encode_fixed

        def encode_fixed_ctx(ev: Event) -> bytes:
            ctx = ev.context
            return pack(cid, ev.timestamp, *[ctx[k] for k in ctx_keys], *ev.fields.values())

        return encode_fixed_ctx

    # General case: runs of fixed-size fields packed together, strings between.
    segments: list[tuple[struct.Struct | None, list[tuple[bool, str]]]] = []
    for from_ctx, k, kind in specs:
        if kind == _STR:
            segments.append((None, [(from_ctx, k)]))
        elif segments and segments[-1][0] is not None:
            prev, members = segments[-1]
            assert prev is not None
            segments[-1] = (
                struct.Struct(prev.format + _STRUCT_CODE[kind]),
                [*members, (from_ctx, k)],
            )
        else:
            segments.append((struct.Struct("<" + _STRUCT_CODE[kind]), [(from_ctx, k)]))
    plan = [(seg, members) for seg, members in segments]
    head = header.pack

    def encode(ev: Event) -> bytes:
        ctx = ev.context
        fields = ev.fields
        parts = [head(cid, ev.timestamp)]
        for seg, members in plan:
            if seg is None:
                from_ctx, k = members[0]
                parts.append(_cstring(ctx.get(k) if from_ctx else fields[k]))
            else:
                parts.append(seg.pack(*[ctx.get(k) if c else fields[k] for c, k in members]))
        return b"".join(parts)

    return encode


# -- writing -----------------------------------------------------------------


class _Files:
    """Append-only stream files, at most ``_MAX_OPEN_FILES`` open at a time."""

    def __init__(self) -> None:
        self.open: dict[Path, IO[bytes]] = {}

    def write(self, path: Path, data: bytes) -> None:
        out = self.open.pop(path, None)
        if out is None:
            if len(self.open) >= _MAX_OPEN_FILES:
                oldest = next(iter(self.open))
                self.open.pop(oldest).close()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            out = os.fdopen(fd, "ab")
        self.open[path] = out  # most recently used last
        out.write(data)

    def close(self) -> None:
        while self.open:
            self.open.popitem()[1].close()


class _StreamWriter:
    """Writes one stream file packet by packet."""

    def __init__(
        self, files: _Files, path: Path, chan: _Channel, plan: _StreamPlan, trace_uuid: bytes
    ):
        self.files = files
        self.path = path
        self.plan = plan
        info = plan.info
        self.header = _PACKET_HEADER.pack(MAGIC, trace_uuid, chan.id)
        self.tail = _cstring(_thread_name(info)) + _cstring(info.channel)
        self.thread_id = info.thread_id
        self.discarded = 0
        self.seq = -1
        self.events: list[bytes] = []
        self.size = 0
        self.begin = 0
        self.end = 0
        self.started = False

    def add(self, seq: int, timestamp: int, data: bytes) -> None:
        if seq != self.seq:
            if not self.started:
                self._open(timestamp)
            else:
                self.flush()
            self.seq = seq
            self.begin = timestamp
        self.events.append(data)
        self.size += len(data)
        self.end = timestamp

    def flush(self) -> None:
        if self.events:
            self._packet(self.seq, self.begin, self.end, self.events, self.size)
            self.events = []
            self.size = 0

    def finish(self, taken_at: int) -> None:
        """Write the last packet and, if the plan needs one, the closing packet."""
        plan = self.plan
        if not self.started:
            self.begin = self.end = taken_at
            self._open(taken_at)
        self.flush()
        if plan.closing_seq is not None:
            self.discarded += plan.info.dropped
            self._packet(plan.closing_seq, self.end, max(self.end, taken_at), [], 0)

    def _open(self, timestamp: int) -> None:
        # The opening packet counts nothing, so that the next one's count is
        # reported with its number (a stream's first count is only "may have").
        self.started = True
        if self.plan.opening_seq is not None:
            self._packet(self.plan.opening_seq, timestamp, timestamp, [], 0)
        self.discarded = self.plan.discarded_from_start

    def _packet(self, seq: int, begin: int, end: int, body: list[bytes], size: int) -> None:
        if self.plan.holes:
            self.discarded += self.plan.holes.pop(seq, 0)
        total = len(self.header) + _PACKET_CONTEXT.size + len(self.tail) + size
        bits = total * 8
        context = _PACKET_CONTEXT.pack(begin, end, bits, bits, seq, self.discarded, self.thread_id)
        self.files.write(self.path, b"".join([self.header, context, self.tail, *body]))


def write_ctf(snapshot: Snapshot, directory: str | os.PathLike[str]) -> None:
    """Write ``snapshot`` as a CTF 1.8 trace into the empty ``directory``."""
    out = Path(directory)
    survey = _Survey(snapshot)
    trace_uuid = _trace_uuid(snapshot)
    metadata = "".join(_metadata(snapshot, survey, trace_uuid))
    fd = os.open(out / "metadata", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as meta:
        meta.write(metadata)

    names = _stream_file_names(snapshot.streams)
    files = _Files()
    writers: list[_StreamWriter | None] = [None] * len(snapshot.streams)
    try:
        router = _Router(snapshot.streams)
        fast = router.fast
        route = router.route
        classes = survey.classes
        sizes = [info.subbuf_size for info in snapshot.streams]
        for ev in snapshot.events:
            ts, name, kind, tid, tname, fields, _ctx, channel, pos = ev
            state = fast.get((channel, tid, tname))
            if state is not None and type(pos) is int and pos >= state[1]:
                state[1] = pos
                index = state[0]
            else:
                index = route(ev)
            writer = writers[index]
            if writer is None:
                writer = writers[index] = _StreamWriter(
                    files,
                    out / names[index],
                    survey.channels[channel],
                    survey.plans[index],
                    trace_uuid.bytes,
                )
            data = classes[(channel, name, kind, tuple(fields))].encode(ev)
            writer.add(pos // sizes[index], ts, data)
        for index, plan in enumerate(survey.plans):
            writer = writers[index]
            if writer is None and (plan.opening_seq is not None or plan.closing_seq is not None):
                writer = writers[index] = _StreamWriter(
                    files,
                    out / names[index],
                    survey.channels[plan.info.channel],
                    plan,
                    trace_uuid.bytes,
                )
            if writer is not None:
                writer.finish(snapshot.taken_at)
    finally:
        files.close()


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
