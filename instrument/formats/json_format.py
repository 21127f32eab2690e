"""Our JSON: the snapshot format that reads back equal to what was written.

Formats ``json`` (suffix ``.json``) and ``json.gz`` (suffix ``.json.gz``, the
same document gzip-compressed). :func:`read` (and ``Snapshot.load``) reads
either, telling them apart by the gzip magic bytes, not the file name.

Schema ``ringtrace-snapshot``, version 1
========================================

One JSON object (RFC 8259, pure ASCII: other characters are ``\\u`` escapes).
Members, in the order they are written::

    {"schema": "ringtrace-snapshot", "version": 1, "generator": "...",
     "pid": 4242, "clock_offset_ns": ..., "taken_at": ..., "since": null,
     "origin_ns": ..., "sources": {...},
     "taken_at_utc": "2025-01-01T12:00:00.123456789Z",
     "event_count": 3, "totals": {...}, "metadata": {...},
     "streams": [{...}, ...],
     "event_fields": ["timestamp", "name", ..., "position"],
     "events": [[...], [...], [...]]}

Identity
    ``schema``
        Always ``"ringtrace-snapshot"``. A reader rejects any other file.
    ``version``
        Integer, ``1``. Adding a member that readers may ignore keeps the
        version; any change a reader must understand raises it. This reader
        rejects versions other than 1 with a clear error.
    ``generator``
        Informational: the package and version that wrote the file.

Snapshot (the fields of :class:`instrument.Snapshot`)
    ``pid``
        Integer: the recording process.
    ``clock_offset_ns``
        Integer: wall-clock time minus monotonic time when the snapshot was
        taken, in nanoseconds. Add it to any timestamp for Unix time in ns.
    ``taken_at``
        Integer: monotonic time (ns) when the snapshot was taken.
    ``since``
        Integer or ``null``: the lower bound (monotonic ns) the snapshot was
        taken with; events older than it were left out on purpose.
    ``origin_ns``
        Integer or ``null`` (optional: files written before it lack it):
        time zero of every view, in monotonic ns: the failure, for a
        snapshot the pytest plugin took; the moment it was taken otherwise.
        ``null`` reads as ``taken_at``.
    ``sources``
        Object (optional): traced name -> ``"path:line"`` where its code
        starts, for the names present in ``events``.
    ``taken_at_utc``
        Informational: ``taken_at + clock_offset_ns`` as ISO 8601 UTC.
    ``metadata``
        Object: free-form plain data (the pytest plugin stores the test id,
        phase and worker here). Values are encoded as described under
        *Values*.

Counts
    ``event_count``
        Integer: the length of ``events``. A reader that finds another
        number reports the file as truncated.
    ``totals``
        Informational, derived from ``streams``: ``events``, ``lost``
        (dropped + skipped), ``dropped``, ``skipped``, ``skipped_subbufs``,
        ``overwritten``.

``streams``: one object per stream (one thread on one channel), in the
snapshot's stream order, the fields of :class:`instrument.StreamInfo`:
    ``channel`` (string), ``thread_id`` (integer), ``thread_name`` (string),
    ``alive`` (boolean: the thread still ran at snapshot time), ``mode``
    (``"overwrite"`` or ``"discard"``), ``subbuf_size`` and ``num_subbuf``
    (integers: the ring geometry, in events), ``produced`` (integer: the
    writer's position, i.e. records ever written), ``first_position`` and
    ``last_position`` (integer or ``null``: the first and last record read),
    ``gaps`` (array of ``[start, end]`` position pairs, ``end`` excluded:
    sub-buffers the snapshot skipped because a writer was in them),
    ``overwritten`` (records older than the ring held; by design in
    overwrite mode), ``dropped`` (records a full discard-mode ring refused),
    ``context`` (object: the stream's static context, e.g. ``pid``,
    ``thread_id``, ``thread_name``). Informational, derived from ``gaps``:
    ``skipped`` (records lost in gaps) and ``skipped_subbufs``.

``event_fields``
    The names of the columns of each event row, always
    ``["timestamp", "name", "kind", "thread_id", "thread_name", "fields",
    "context", "channel", "position"]`` in version 1.

``events``: one array per event, oldest first (the snapshot's order), with
the columns of ``event_fields``:
    ``timestamp`` (integer: monotonic ns), ``name`` (string), ``kind``
    (``"event"`` for a point event, ``"entry"``/``"exit"`` for the two ends
    of a traced call or span), ``thread_id`` (integer), ``thread_name``
    (string), ``fields`` (object: the event's fields; an exit carries
    ``duration_ns``, and ``exception``/``message`` when the call raised),
    ``context`` (object: context recorded with the event, e.g. ``pid``,
    ``task``), ``channel`` (string), ``position`` (integer: the record's
    position in its stream, counting from 0). Rows are written in blocks of
    up to 512 per line; whitespace between them is insignificant to JSON.
    Our reader uses that layout (``,\n"events":[``, then one line per
    block, a comma ending each but the last, then ``]}``) to validate the
    file block by block and keep each block as text until its events are
    used (:class:`BlockEvents`); the same document laid out otherwise (say,
    re-indented) is read whole, as any JSON reader would. Writers with the
    optional ``msgspec`` encoder and without it write the same values, both
    in pure ASCII (version 1 is unchanged).

Values
    Field, context and metadata values are JSON ``null``, booleans, numbers,
    strings, arrays (Python lists) and objects (dicts with string keys). The
    few Python values JSON cannot hold are written as one-member tagged
    objects, so that they read back equal:

    * ``{"$tuple": [...]}``: a tuple;
    * ``{"$float": "nan" | "inf" | "-inf"}``: a float that is not finite;
    * ``{"$dict": [[key, value], ...]}``: a dict with a key that is not a
      string, or a string key starting with ``$``.

    Integers are exact at any size (readers in languages with 53-bit
    numbers should take care with timestamps and thread ids). Any other
    Python object is refused when writing (a ``TypeError`` naming where it
    is): snapshots made by the recorder only hold plain values.

Reading is validation: a missing, empty, truncated, corrupt (including bad
gzip), foreign or wrong-version file raises
:class:`instrument.model.SnapshotFileError` (a ``ValueError``) with a
one-line message. Nothing in the file is ever executed.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gzip
import json
import math
import operator
import os
import struct
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator, MutableSequence
from itertools import accumulate, chain
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Protocol, cast, overload

from ..model import Event, Snapshot, SnapshotFileError, StreamInfo
from ..values import safe_repr
from . import Format, open_for_reading, shared_memo

SCHEMA = "ringtrace-snapshot"
VERSION = 1
EVENT_FIELDS = list(Event._fields)

#: Events encoded per block: bounds the memory a write needs beyond the snapshot.
CHUNK_EVENTS = 512

#: gzip level: 6 (zlib's default) compresses snapshot JSON about 10 to 1 at a
#: fraction of level 9's cost.
GZIP_LEVEL = 6


class BinaryOut(Protocol):
    """What a writer writes to: a binary file, or anything with ``write(bytes)``."""

    def write(self, data: bytes | bytearray, /) -> object: ...


_KINDS = {
    "event": "event",
    "entry": "entry",
    "exit": "exit",
    "suspend": "suspend",
    "resume": "resume",
}
_MODES = ("overwrite", "discard")
_SCALARS = frozenset((str, int, float, bool, type(None)))
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

# Strict JSON: a non-finite float raises, and the block is written again
# through the tagging path.
_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False)
_encode = _encoder.encode

_columns = [itemgetter(i) for i in range(len(EVENT_FIELDS))]
_kind, _fields, _context = _columns[2], _columns[5], _columns[6]


# --------------------------------------------------------------------------- writing


def _plain(value: Any, where: str, lenient: bool = False) -> Any:
    """``value`` as JSON-ready data, tagging what JSON cannot hold (see *Values*).

    Any other object is a ``TypeError``; with ``lenient``, its bounded text
    instead (for a page that shows a snapshot, which must not fail on one).
    """
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float or isinstance(value, float):
        return float(value) if math.isfinite(value) else {"$float": repr(float(value))}
    if isinstance(value, str):  # a subclass (a str enum): written as its base value
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if t is list:
        return [_plain(v, where, lenient) for v in value]
    if t is tuple:
        return {"$tuple": [_plain(v, where, lenient) for v in value]}
    if t is dict:
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: _plain(v, f"{where}[{k!r}]", lenient) for k, v in value.items()}
        return {
            "$dict": [
                [_plain(k, where, lenient), _plain(v, where, lenient)] for k, v in value.items()
            ]
        }
    if lenient:
        return safe_repr(value)
    raise TypeError(
        f"{where} holds a {t.__name__}, which a ringtrace JSON snapshot cannot store "
        "(plain data only: str, int, float, bool, None, list, tuple, dict)"
    )


def _plain_mapping(value: Any, where: str, lenient: bool = False) -> dict[str, Any]:
    """A top-level mapping (fields, context, metadata): string keys, tagged
    values (``lenient``: a key that is not a str becomes its text, see :func:`_plain`)."""
    if type(value) is not dict:
        raise TypeError(f"{where} must be a dict, got {type(value).__name__}")
    if lenient:
        value = {k if type(k) is str else safe_repr(k): v for k, v in value.items()}
    for key in value:
        if type(key) is not str:
            raise TypeError(f"{where} has a key that is not a str: {key!r}")
    return {k: _plain(v, f"{where}[{k!r}]", lenient) for k, v in value.items()}


_EVENT_TYPES = (int, str, str, int, str, dict, dict, str, int)


def _plain_event(index: int, ev: Any, lenient: bool = False) -> list[Any]:
    """One event row, checked member by member (the slow, precise path)."""
    where = f"snapshot event {index}"
    if not isinstance(ev, tuple) or len(ev) != len(EVENT_FIELDS):
        raise TypeError(f"{where} is not an Event: {type(ev).__name__}")
    for name, value, wanted in zip(EVENT_FIELDS, ev, _EVENT_TYPES, strict=True):
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise TypeError(
                f"{where}: {name} must be {wanted.__name__}, got {type(value).__name__}"
            )
    if ev[2] not in _KINDS:
        raise ValueError(f"{where}: kind must be 'event', 'entry' or 'exit', got {ev[2]!r}")
    row = list(ev)
    for i in (0, 1, 3, 4, 7, 8):
        row[i] = _plain(ev[i], f"{where}: {EVENT_FIELDS[i]}")
    row[5] = _plain_mapping(ev[5], f"{where}: fields", lenient)
    row[6] = _plain_mapping(ev[6], f"{where}: context", lenient)
    return row


def _types(values: Iterable[Any]) -> set[type]:
    return set(map(type, values))


#: The type of every cell of a valid block, row after row (see _block_is_plain).
_ROW_TYPES = list(_EVENT_TYPES) * CHUNK_EVENTS
_is_finite = math.isfinite
_is_float = float.__instancecheck__


def _plain_dicts(dicts: list[dict[str, Any]]) -> bool:
    """Whether every dict of ``dicts`` has string keys and finite scalar values."""
    if not _types(chain.from_iterable(dicts)) <= {str}:
        return False
    kinds = _types(chain.from_iterable(map(dict.values, dicts)))
    if not _SCALARS.issuperset(kinds):
        return False
    if float in kinds:
        values = chain.from_iterable(map(dict.values, dicts))
        return all(map(_is_finite, filter(_is_float, values)))
    return True


def _block_is_plain(block: list[Event]) -> bool:
    """Whether ``block`` encodes as it is: every column of the expected type,
    every field and context value a finite JSON scalar under a string key.

    Runs at C speed, not event by event: the types of all the block's cells,
    row after row, compared with the expected list in one go; then the
    fields' keys and values; contexts once per distinct dict (a stream's
    events share one).
    """
    cells = list(map(type, chain.from_iterable(block)))
    if cells != _ROW_TYPES[: len(cells)] or len(cells) != len(block) * len(_EVENT_TYPES):
        return False
    if not set(map(_kind, block)) <= _KINDS.keys():
        return False
    if not _plain_dicts(list(map(_fields, block))):
        return False
    ids = list(map(id, map(_context, block)))
    if ids.count(ids[0]) == len(ids):  # one context (a stream's) for the whole block
        return _plain_dicts([block[0][6]])
    contexts = list(map(_context, block))
    return _plain_dicts(list(dict(zip(ids, contexts, strict=True)).values()))
    # A "$" key is only special in nested dicts, which this path never has.


def _fast_encoder() -> Any:
    """msgspec's JSON encoder, if installed (the ``fast`` extra), else None.

    On a block that :func:`_block_is_plain` accepted, and once its output is
    checked to be ASCII, it writes the JSON values the stdlib would (compact,
    integers of any size exact, floats that read back equal), about eight
    times as fast, encoding an Event as the array it is.
    """
    if os.environ.get("RINGTRACE_PURE_PYTHON"):
        return None
    try:
        import msgspec
    except ImportError:
        return None
    return msgspec.json.Encoder().encode


#: Encodes a plain block to JSON bytes (``None``: the stdlib encoder is used).
fast_encode: Any = _fast_encoder()


def _encode_block(block: list[Event], first_index: int, lenient: bool = False) -> bytes:
    """``block`` as event rows separated by commas (no enclosing brackets)."""
    if _block_is_plain(block):
        encode = fast_encode
        if encode is not None:
            try:
                data: bytes = encode(block)
            except (UnicodeEncodeError, TypeError, ValueError):  # lone surrogates
                pass
            else:
                if data.isascii():  # else the stdlib escapes what is not
                    return data[1:-1]
        try:
            return _encode(block)[1:-1].encode("ascii")
        except ValueError:  # unreachable for a plain block; kept as a guard
            pass
    rows = [_plain_event(first_index + i, ev, lenient) for i, ev in enumerate(block)]
    return _encode(rows)[1:-1].encode("ascii")


@functools.lru_cache(maxsize=1)
def _generator() -> str:
    """This package and its version (read once: reading the metadata costs
    milliseconds, more than encoding a thousand events)."""
    try:
        from importlib.metadata import version

        return f"pytest-ringtrace {version('pytest-ringtrace')}"
    except Exception:
        return "pytest-ringtrace"


def _utc(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{rest:09d}Z"


def _stream_obj(index: int, info: StreamInfo, lenient: bool = False) -> dict[str, Any]:
    where = f"snapshot stream {index}"
    if not isinstance(info, StreamInfo):
        raise TypeError(f"{where} is not a StreamInfo: {type(info).__name__}")
    return {
        "channel": _plain(info.channel, f"{where}: channel"),
        "thread_id": _plain(info.thread_id, f"{where}: thread_id"),
        "thread_name": _plain(info.thread_name, f"{where}: thread_name"),
        "alive": _plain(info.alive, f"{where}: alive"),
        "mode": _plain(info.mode, f"{where}: mode"),
        "subbuf_size": _plain(info.subbuf_size, f"{where}: subbuf_size"),
        "num_subbuf": _plain(info.num_subbuf, f"{where}: num_subbuf"),
        "produced": _plain(info.produced, f"{where}: produced"),
        "first_position": _plain(info.first_position, f"{where}: first_position"),
        "last_position": _plain(info.last_position, f"{where}: last_position"),
        "gaps": [[_plain(s, where), _plain(e, where)] for s, e in info.gaps],
        "overwritten": _plain(info.overwritten, f"{where}: overwritten"),
        "dropped": _plain(info.dropped, f"{where}: dropped"),
        "skipped": info.skipped,
        "skipped_subbufs": info.skipped_subbufs,
        "context": _plain_mapping(info.context, f"{where}: context", lenient),
    }


def _member(key: str, value: Any) -> str:
    return f"{_encode(key)}:{_encode(value)}"


#: Inside :func:`instrument.formats.sharing`, a snapshot of up to this many
#: events is encoded in one buffer, kept for the next writer; a larger one is
#: streamed a block at a time by each writer.
SHARE_MAX_EVENTS = 1 << 20


def document(snapshot: Snapshot, *, lenient: bool = False) -> Iterator[bytes | bytearray]:
    """``snapshot`` as our JSON (schema above), in pieces: the header, then
    the events in blocks of :data:`CHUNK_EVENTS`, each encoded when asked
    for, then the end.

    Raises ``TypeError`` naming the event or stream that holds something
    JSON cannot store; with ``lenient`` such a value is written as its
    bounded text instead (the HTML timeline embeds the document so: a page
    must show any snapshot). Inside :func:`instrument.formats.sharing`, a
    snapshot of up to :data:`SHARE_MAX_EVENTS` events is encoded once, in
    one piece, and reused by the next writer.
    """
    memo = shared_memo()
    if memo is None or len(snapshot.events) > SHARE_MAX_EVENTS:
        yield from _pieces(snapshot, lenient)
        return
    key = (id(snapshot), id(snapshot.events), len(snapshot.events))
    found = memo.get("json")
    if found is not None and found[0] is snapshot and found[1] == key:
        yield found[2]
        return
    if lenient:  # a document for a page: what cannot be stored is shown as text
        yield from _pieces(snapshot, lenient)
        return
    whole = _whole(snapshot)
    memo["json"] = (snapshot, key, whole)
    yield whole


def _whole(snapshot: Snapshot) -> bytes | bytearray:
    """The document of :func:`_pieces` in one buffer, msgspec encoding each
    plain block straight into it (no copy of a block, no concatenation)."""
    events = snapshot.events
    buf = bytearray(_head(snapshot, False))
    encoder = getattr(fast_encode, "__self__", None)
    encode_into = getattr(encoder, "encode_into", None)
    for start in range(0, len(events), CHUNK_EVENTS):
        block = events[start : start + CHUNK_EVENTS]
        at = len(buf)
        if encode_into is not None and _block_is_plain(block):
            try:
                encode_into(block, buf, -1)  # appended: "[row,row...]"
            except (UnicodeEncodeError, TypeError, ValueError):  # lone surrogates
                del buf[at:]
        if len(buf) == at:
            buf += b"[" + _encode_block(block, start) + b"]"
        buf[at] = 0x0A  # "[" -> "\n"
        if start:
            buf[at - 1] = 0x2C  # the block before: "]" -> ","
    if events:
        buf[-1] = 0x0A  # the last block's "]" -> "\n"
        buf += b"]}\n"
    else:
        buf += b"\n]}\n"
    if not buf.isascii():  # msgspec wrote UTF-8: block by block, escaped where needed
        return b"".join(_pieces(snapshot, False))
    return buf


def _head(snapshot: Snapshot, lenient: bool) -> bytes:
    """Every member of the document up to the opening of its events."""
    events = snapshot.events
    head = [
        _member("schema", SCHEMA),
        _member("version", VERSION),
        _member("generator", _generator()),
    ]
    info = [
        _member("pid", _plain(snapshot.pid, "snapshot pid")),
        _member("clock_offset_ns", _plain(snapshot.clock_offset_ns, "snapshot clock_offset_ns")),
        _member("taken_at", _plain(snapshot.taken_at, "snapshot taken_at")),
        _member("since", _plain(snapshot.since, "snapshot since")),
        _member("origin_ns", _plain(snapshot.origin_ns, "snapshot origin_ns")),
        _member("sources", _plain_mapping(snapshot.sources, "snapshot sources", lenient)),
    ]
    # informational; a hand-made snapshot may hold an impossible clock
    with contextlib.suppress(OverflowError, OSError, ValueError, TypeError):
        info.append(_member("taken_at_utc", _utc(snapshot.taken_at + snapshot.clock_offset_ns)))
    totals = {
        "events": len(events),
        "lost": snapshot.lost,
        "dropped": snapshot.dropped,
        "skipped": snapshot.skipped,
        "skipped_subbufs": snapshot.skipped_subbufs,
        "overwritten": snapshot.overwritten,
    }
    counts = [_member("event_count", len(events)), _member("totals", totals)]
    metadata = _member("metadata", _plain_mapping(snapshot.metadata, "snapshot metadata", lenient))
    streams = ",\n".join(
        _encode(_stream_obj(i, s, lenient)) for i, s in enumerate(snapshot.streams)
    )
    return (
        "{"
        + ",".join(head)
        + ",\n"
        + ",".join(info)
        + ",\n"
        + ",".join(counts)
        + ",\n"
        + metadata
        + ',\n"streams":[\n'
        + streams
        + ("\n" if streams else "")
        + "],\n"
        + _member("event_fields", EVENT_FIELDS)
        + ',\n"events":['
    ).encode("ascii")


def _pieces(snapshot: Snapshot, lenient: bool) -> Iterator[bytes]:
    """The document a piece at a time: the head, each block, the end."""
    events = snapshot.events
    yield _head(snapshot, lenient)
    for start in range(0, len(events), CHUNK_EVENTS):
        block = _encode_block(events[start : start + CHUNK_EVENTS], start, lenient)
        yield (b",\n" if start else b"\n") + block
    yield b"\n]}\n"


def write(snapshot: Snapshot, out: BinaryOut) -> None:
    """Write ``snapshot`` to the binary file ``out`` as our JSON (schema above).

    Streams: the header, then the events in blocks of :data:`CHUNK_EVENTS`,
    each encoded and written before the next is built (see :func:`document`).
    Raises ``TypeError`` naming the event or stream that holds something JSON
    cannot store.
    """
    for piece in document(snapshot):
        out.write(piece)


def write_gzip(snapshot: Snapshot, out: IO[bytes]) -> None:
    """:func:`write`, gzip-compressed as it goes (no name or time in the gzip header).

    The gzip member is written here with ``zlib`` (the bytes ``gzip.GzipFile``
    writes, without its file object): a write that fails (a full disk)
    leaves nothing open behind it, where a ``GzipFile`` keeps a buffer that
    later tries to flush into its closed stream.
    """
    # header: magic, deflate, no flags, mtime 0, extra flags for the level, OS unknown
    extra = 2 if GZIP_LEVEL == 9 else 4 if GZIP_LEVEL == 1 else 0
    out.write(struct.pack("<BBBBLBB", 0x1F, 0x8B, 8, 0, 0, extra, 255))
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
    crc = size = 0
    for piece in document(snapshot):
        out.write(compressor.compress(piece))
        crc = zlib.crc32(piece, crc)
        size += len(piece)
    out.write(compressor.flush())
    out.write(struct.pack("<LL", crc, size & 0xFFFFFFFF))


# --------------------------------------------------------------------------- reading


class _Invalid(Exception):
    """A structural problem found while validating (becomes a SnapshotFileError)."""


def _untag(value: Any, where: str) -> Any:
    """The Python value of an encoded value (inverse of :func:`_plain`)."""
    t = type(value)
    if t is list:
        return [_untag(v, where) for v in value]
    if t is not dict:
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == "$tuple":
            if type(inner) is not list:
                raise _Invalid(f"{where}: $tuple must hold an array")
            return tuple(_untag(v, where) for v in inner)
        if key == "$float":
            if inner not in _NONFINITE:
                raise _Invalid(f"{where}: $float must be 'nan', 'inf' or '-inf'")
            return _NONFINITE[inner]
        if key == "$dict":
            if type(inner) is not list or any(type(p) is not list or len(p) != 2 for p in inner):
                raise _Invalid(f"{where}: $dict must hold [key, value] pairs")
            try:
                return {_untag(k, where): _untag(v, where) for k, v in inner}
            except TypeError as exc:  # an unhashable key
                raise _Invalid(f"{where}: $dict key: {exc}") from None
    for key in value:
        if key.startswith("$"):
            raise _Invalid(f"{where}: unknown tag {key!r}")
    return {k: _untag(v, where) for k, v in value.items()}


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Invalid(f"{where} must be an object")
    if _SCALARS.issuperset(_types(value.values())):
        return value
    return {k: _untag(v, f"{where}[{k!r}]") for k, v in value.items()}


def _describe(value: Any) -> str:
    """A short description of a decoded JSON value, for error messages."""
    if type(value) is list:
        return "an array"
    if type(value) is dict:
        return "an object"
    return json.dumps(value)[:40]


def _need(obj: dict[str, Any], key: str, types: tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise _Invalid(f"{where}: missing {key!r}")
    value = obj[key]
    if type(value) not in types:
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise _Invalid(f"{where}: {key} must be {names}, got {_describe(value)}")
    return value


_INT = (int,)
_OPT_INT = (int, type(None))


def _read_sources(obj: Any) -> dict[str, str]:
    if type(obj) is not dict or not all(type(k) is str and type(v) is str for k, v in obj.items()):
        raise _Invalid("sources must be an object of strings")
    return dict(obj)


def _read_stream(i: int, obj: Any) -> StreamInfo:
    where = f"streams[{i}]"
    if type(obj) is not dict:
        raise _Invalid(f"{where} must be an object")
    mode = _need(obj, "mode", (str,), where)
    if mode not in _MODES:
        raise _Invalid(f"{where}: mode must be 'overwrite' or 'discard', got {mode!r}")
    gaps = _need(obj, "gaps", (list,), where)
    pairs: list[tuple[int, int]] = []
    for gap in gaps:
        if type(gap) is not list or len(gap) != 2 or {type(gap[0]), type(gap[1])} != {int}:
            raise _Invalid(f"{where}: each gap must be a [start, end] pair of integers")
        pairs.append((gap[0], gap[1]))
    return StreamInfo(
        channel=_need(obj, "channel", (str,), where),
        thread_id=_need(obj, "thread_id", _INT, where),
        thread_name=_need(obj, "thread_name", (str,), where),
        alive=_need(obj, "alive", (bool,), where),
        mode=mode,
        subbuf_size=_need(obj, "subbuf_size", _INT, where),
        num_subbuf=_need(obj, "num_subbuf", _INT, where),
        produced=_need(obj, "produced", _INT, where),
        first_position=_need(obj, "first_position", _OPT_INT, where),
        last_position=_need(obj, "last_position", _OPT_INT, where),
        gaps=pairs,
        overwritten=_need(obj, "overwritten", _INT, where),
        dropped=_need(obj, "dropped", _INT, where),
        context=_mapping(_need(obj, "context", (dict,), where), f"{where}: context"),
    )


def _bad_row(rows: list[Any]) -> str:
    """Where and why the first invalid event row is invalid."""
    for i, row in enumerate(rows):
        where = f"events[{i}]"
        if type(row) is not list or len(row) != len(EVENT_FIELDS):
            return f"{where} must be an array of {len(EVENT_FIELDS)} values"
        for name, value, wanted in zip(EVENT_FIELDS, row, _EVENT_TYPES, strict=True):
            if type(value) is not wanted:
                return f"{where}: {name} must be {wanted.__name__}, got {_describe(value)}"
        if row[2] not in _KINDS:
            return f"{where}: kind must be 'event', 'entry' or 'exit', got {row[2]!r}"
    return "events are invalid"


class _Shared:
    """What events of one snapshot share when read: equal strings and equal
    context objects (as in a snapshot taken from the recorder), which keeps a
    loaded snapshot about as small as the one that was written."""

    def __init__(self) -> None:
        self.strings: dict[str, str] = {}
        self.contexts: dict[Any, dict[str, Any]] = {}


def _check_rows(rows: list[Any]) -> list[list[Any]]:
    """Validate event rows column by column; return the columns."""
    if _types(rows) != {list} or set(map(len, rows)) != {len(EVENT_FIELDS)}:
        raise _Invalid(_bad_row(rows))
    cols = [list(map(get, rows)) for get in _columns]
    for col, wanted in zip(cols, _EVENT_TYPES, strict=True):
        if _types(col) != {wanted}:
            raise _Invalid(_bad_row(rows))
    if not set(cols[2]) <= _KINDS.keys():
        raise _Invalid(_bad_row(rows))
    for index, high in ((0, _I63), (3, _U64), (8, _I63)):  # 64-bit, as recorded
        _in(min(cols[index]), 0, high, f"events: {EVENT_FIELDS[index]}")
        _in(max(cols[index]), 0, high, f"events: {EVENT_FIELDS[index]}")
    return cols


def _read_events(rows: list[Any], shared: _Shared | None = None, first: int = 0) -> list[Event]:
    """Validate the event rows column by column and build the events
    (``first``: the index of the first row in the snapshot, for messages)."""
    if not rows:
        return []
    cols = _check_rows(rows)
    shared = shared or _Shared()
    share = shared.strings.setdefault
    for c in (1, 2, 4, 7):
        cols[c] = [share(s, s) for s in cols[c]]
    fields = cols[5]
    if not _SCALARS.issuperset(_types(chain.from_iterable(map(dict.values, fields)))):
        cols[5] = [_mapping(f, f"events[{first + i}]: fields") for i, f in enumerate(fields)]
    contexts = shared.contexts
    ctx_col = cols[6]
    for i, ctx in enumerate(ctx_col):
        try:
            key = tuple(ctx.items())
            found = contexts.get(key)
        except TypeError:  # a list or object value: not shareable
            ctx_col[i] = _mapping(ctx, f"events[{first + i}]: context")
            continue
        if found is None:
            found = contexts[key] = _mapping(ctx, f"events[{first + i}]: context")
        ctx_col[i] = found
    rows.clear()
    return list(map(Event, *cols))


class BlockEvents(MutableSequence[Event]):
    """The events of a snapshot read from a file, decoded a block at a time.

    :func:`read` validates every block when it loads the file, then keeps
    each block as the JSON text it was: the load needs about the file's size
    in memory, where a million Event objects take about three times that, and
    a block's events are built the first time one of them is used (by index,
    slice or iteration), then kept, so the same event is the same object
    each time, as in a list. Once every block is built, the text is let go.
    Equal strings and contexts are shared, as in a snapshot taken from the
    recorder. It reads like that snapshot's list (``len``, indexing, slices,
    iteration, ``==`` with a list); changing it makes it a list of its own
    first. It pickles as a list.
    """

    __slots__ = ("_blocks", "_built", "_left", "_list", "_shared", "_starts")

    def __init__(self, blocks: list[memoryview], counts: list[int], shared: _Shared):
        self._blocks = blocks
        self._starts = list(accumulate(counts, initial=0))
        self._shared = shared
        self._built: list[list[Event] | None] = [None] * len(blocks)
        self._left = len(blocks)
        self._list: list[Event] | None = None if blocks else []

    def _block(self, block: int) -> list[Event]:
        events = self._built[block]
        if events is None:
            rows = json.loads(b"[" + bytes(self._blocks[block]) + b"]")
            events = self._built[block] = _read_events(rows, self._shared, self._starts[block])
            self._left -= 1
            if self._left == 0:  # every block built: a plain list from now on
                self._list = list(chain.from_iterable(cast(list[list[Event]], self._built)))
                self._blocks, self._built = [], []
        return events

    def _events(self) -> list[Event]:
        """Every event, as the list it is once every block is built."""
        if self._list is None:
            for block in range(len(self._built)):
                if self._list is None:
                    self._block(block)
        assert self._list is not None
        return self._list

    def _iterate(self) -> Iterator[Event]:
        for block in range(len(self._built)):
            if self._list is not None:  # built meanwhile (by another use)
                yield from self._list[self._starts[block] :]
                return
            yield from self._block(block)

    def __len__(self) -> int:
        return self._starts[-1] if self._list is None else len(self._list)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._list) if self._list is not None else self._iterate()

    @overload
    def __getitem__(self, index: int) -> Event: ...
    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...
    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if self._list is not None:
            return self._list[index]
        n = self._starts[-1]
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1 or start >= stop:
                return [self[i] for i in range(start, stop, step)]
            first = bisect_right(self._starts, start) - 1
            last = bisect_right(self._starts, stop - 1)  # one past the block of stop - 1
            events = list(chain.from_iterable(map(self._block, range(first, last))))
            offset = self._starts[first]
            return events[start - offset : stop - offset]
        i = index.__index__()
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("snapshot event index out of range")
        block = bisect_right(self._starts, i) - 1
        return self._block(block)[i - self._starts[block]]

    def __setitem__(self, index: Any, value: Any) -> None:
        self._events()[index] = value

    def __delitem__(self, index: int | slice) -> None:
        del self._events()[index]

    def insert(self, index: int, value: Event) -> None:
        self._events().insert(index, value)

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        self._events().sort(key=key, reverse=reverse)

    def copy(self) -> list[Event]:
        return list(self)

    def __add__(self, other: Iterable[Event]) -> list[Event]:
        return [*self, *other]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (list, tuple, BlockEvents)):
            return NotImplemented
        return len(self) == len(other) and all(map(operator.eq, self, other))

    __hash__ = None  # type: ignore[assignment]  # mutable, as a list

    def __repr__(self) -> str:
        return repr(list(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed if gzip; an error if there are none."""
    try:
        f = open_for_reading(path)
    except FileNotFoundError:
        raise SnapshotFileError(path, "no such file") from None
    except IsADirectoryError:
        raise SnapshotFileError(path, "is a directory, not a snapshot file") from None
    except OSError as exc:
        raise SnapshotFileError(path, f"cannot read: {exc.strerror or exc}") from None
    raw = getattr(f, "fileobj", None)  # open_for_reading's GzipFile does not close it
    compressed = raw is not None
    try:
        data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise SnapshotFileError(path, f"corrupt or truncated gzip data ({exc})") from None
    except OSError as exc:
        raise SnapshotFileError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        f.close()
        if raw is not None:
            raw.close()
    if not data or data.isspace():  # (strip() would copy the whole file)
        what = "gzip data holding nothing" if compressed else "empty file"
        raise SnapshotFileError(path, f"{what}, not a ringtrace snapshot")
    return data


def _load_document(path: Path, data: bytes) -> Any:
    """The whole document parsed, or a one-line error saying what is wrong."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SnapshotFileError(path, "not a ringtrace snapshot (binary data, not JSON)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise SnapshotFileError(
                path, f"truncated JSON (the document ends early, at line {exc.lineno})"
            ) from None
        if not text.lstrip().startswith(("{", "[")):
            raise SnapshotFileError(path, "not a ringtrace snapshot (not JSON)") from None
        raise SnapshotFileError(
            path, f"corrupt JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise SnapshotFileError(path, "corrupt JSON (nested too deeply)") from None


#: Where :func:`write` starts the events: a newline is never inside compact
#: JSON, so in a file laid out by the writer this is the top-level member.
_EVENTS_OPEN = b',\n"events":['


def _split_blocks(data: bytes) -> tuple[Any, list[memoryview]] | None:
    """The header (every member but the events) and the event blocks of a file
    laid out as :func:`write` lays it out (one block of rows per line), or
    ``None`` for any other layout or any problem (the caller then parses the
    whole document, which finds the problem and says where it is)."""
    split = data.find(_EVENTS_OPEN)
    end = len(data)
    while end > split and data[end - 1] in b" \t\r\n":  # (rstrip() would copy the file)
        end -= 1
    if split < 0 or data[:1] != b"{" or data[end - 2 : end] != b"]}":
        return None
    try:
        header = json.loads(data[:split] + b"}")
    except (ValueError, RecursionError):
        return None
    if type(header) is not dict or "events" in header:
        return None
    view = memoryview(data)
    pos = split + len(_EVENTS_OPEN)
    stop = end - 2  # where "]}" starts
    lines: list[tuple[int, int]] = []
    while (newline := data.find(b"\n", pos, stop)) >= 0:
        lines.append((pos, newline))
        pos = newline + 1
    if data[pos:stop].strip() or not lines or data[lines[0][0] : lines[0][1]].strip():
        return None
    # "[", a newline, then one line per block: a comma after each but the last
    body = lines[1:]
    blocks: list[memoryview] = []
    for k, (start, line_end) in enumerate(body):
        while line_end > start and data[line_end - 1] in b" \t\r":
            line_end -= 1
        comma = line_end > start and data[line_end - 1] == ord(",")
        if line_end == start or comma != (k < len(body) - 1):
            return None
        blocks.append(view[start : line_end - comma])
    return header, blocks


def _lazy_events(header: Any, blocks: list[memoryview]) -> BlockEvents | None:
    """Validate every block (as :func:`_read_events` would) and keep them as
    text; ``None`` if one is not valid JSON rows (the caller parses the whole
    document and reports the problem)."""
    counts: list[int] = []
    shared = _Shared()
    first = 0
    for block in blocks:
        try:
            rows = json.loads(b"[" + bytes(block) + b"]")
        except (ValueError, RecursionError):
            return None
        if type(rows) is not list or not rows:
            return None
        try:
            cols = _check_rows(rows)
            if not _SCALARS.issuperset(_types(chain.from_iterable(map(dict.values, cols[5])))):
                for i, f in enumerate(cols[5]):
                    _mapping(f, f"events[{first + i}]: fields")
            for i, ctx in enumerate(dict(zip(map(id, cols[6]), cols[6], strict=True)).values()):
                _mapping(ctx, f"events[{first + i}]: context")
        except (_Invalid, RecursionError):
            return None
        counts.append(len(rows))
        first += len(rows)
    return BlockEvents(blocks, counts, shared)


#: Timestamps, positions and counters are 64-bit in every recorder (and in
#: CTF); larger or negative ones can only come from a damaged or forged file.
_I63 = 1 << 63
_U64 = 1 << 64


def _in(value: int | None, low: int, high: int, what: str) -> None:
    if value is not None and not low <= value < high:
        text = str(value) if abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit number"
        raise _Invalid(f"{what} out of range ({low} to {high - 1}), got {text}")


def _check_bounds(snapshot: Snapshot) -> None:
    """Refuse numbers no recorder writes: what reads a snapshot (a wall
    clock, CTF's 64-bit integers, sub-buffer arithmetic) can then trust them."""
    offset = snapshot.clock_offset_ns
    _in(offset, 0, _I63, "clock_offset_ns")
    _in(snapshot.taken_at, 0, _I63, "taken_at")
    _in(snapshot.taken_at + offset, 0, _I63, "taken_at + clock_offset_ns (the wall clock)")
    _in(snapshot.since, 0, _I63, "since")
    _in(snapshot.pid, 0, 1 << 32, "pid")
    for i, info in enumerate(snapshot.streams):
        where = f"streams[{i}]"
        _in(info.thread_id, 0, _U64, f"{where}: thread_id")
        _in(info.subbuf_size, 1, 1 << 32, f"{where}: subbuf_size")
        _in(info.num_subbuf, 1, 1 << 32, f"{where}: num_subbuf")
        for key in ("produced", "first_position", "last_position", "overwritten", "dropped"):
            _in(getattr(info, key), 0, _I63, f"{where}: {key}")
        for start, end in info.gaps:
            _in(start, 0, _I63, f"{where}: gap start")
            _in(end, start + 1, _I63 + 1, f"{where}: gap end")


def read(path: str | os.PathLike[str]) -> Snapshot:
    """Load a snapshot written by :func:`write` or :func:`write_gzip`.

    Returns a :class:`Snapshot` equal to the one written. Raises
    :class:`SnapshotFileError` (a ``ValueError``) with a one-line message for
    a file that is missing, empty, truncated, corrupt, not a ringtrace
    snapshot, or of an unsupported version.

    A file laid out as :func:`write` lays it out (one block of event rows per
    line) is validated block by block and its events kept as
    :class:`BlockEvents`, decoded when used: the load needs about the file's
    size in memory. Any other layout of the same document is read whole.
    """
    path = Path(os.fspath(path))
    return parse(_read_bytes(path), path)


def parse(data: bytes, path: str | os.PathLike[str]) -> Snapshot:
    """:func:`read` of a document already in memory (``data``, not empty),
    e.g. the one an HTML timeline embeds; ``path`` names it in errors."""
    path = Path(os.fspath(path))
    found = _split_blocks(data)
    lazy: BlockEvents | None = None
    if found is not None:
        doc, blocks = found
        if doc.get("schema") == SCHEMA and doc.get("version") == VERSION:
            lazy = _lazy_events(doc, blocks)
    if lazy is None:
        doc = _load_document(path, data)
    del data
    if type(doc) is not dict or doc.get("schema") != SCHEMA:
        hint = ""
        if type(doc) is dict and "traceEvents" in doc:
            hint = "; it looks like a Chrome trace (perfetto format), which is for viewers only"
        raise SnapshotFileError(path, f'not a ringtrace snapshot (no "schema": "{SCHEMA}"){hint}')
    version = doc.get("version")
    if version != VERSION or type(version) is not int:
        raise SnapshotFileError(
            path,
            f"ringtrace snapshot version {_describe(version)} is not supported "
            f"(this reader reads version {VERSION})",
        )
    try:
        if doc.get("event_fields") != EVENT_FIELDS:
            raise _Invalid(f"event_fields must be {EVENT_FIELDS}")
        count = _need(doc, "event_count", _INT, "snapshot")
        rows = [] if lazy is not None else _need(doc, "events", (list,), "snapshot")
        got = len(lazy) if lazy is not None else len(rows)
        if got != count:
            raise SnapshotFileError(path, f"truncated snapshot: {got} of {count} events")
        streams = [
            _read_stream(i, s) for i, s in enumerate(_need(doc, "streams", (list,), "snapshot"))
        ]
        snapshot = Snapshot(
            events=[],
            streams=streams,
            clock_offset_ns=_need(doc, "clock_offset_ns", _INT, "snapshot"),
            taken_at=_need(doc, "taken_at", _INT, "snapshot"),
            since=_need(doc, "since", _OPT_INT, "snapshot"),
            pid=_need(doc, "pid", _INT, "snapshot"),
            metadata=_mapping(_need(doc, "metadata", (dict,), "snapshot"), "metadata"),
            origin_ns=_need(doc, "origin_ns", _OPT_INT, "snapshot") if "origin_ns" in doc else None,
            sources=_read_sources(doc.get("sources", {})),
        )
        if lazy is not None:
            # A read-mostly sequence in the place of the list (see BlockEvents).
            snapshot.events = cast(list[Event], lazy)
        else:
            snapshot.events = _read_events(rows)
        _check_bounds(snapshot)
    except _Invalid as exc:
        raise SnapshotFileError(path, f"invalid ringtrace snapshot: {exc}") from None
    except RecursionError:
        raise SnapshotFileError(
            path, "invalid ringtrace snapshot: values nested too deeply"
        ) from None
    return snapshot


FORMATS = [
    Format(
        name="json",
        suffix=".json",
        write=write,
        description="our JSON: every event, stream, gap and loss counter; reads back equal",
        read=read,
    ),
    Format(
        name="json.gz",
        suffix=".json.gz",
        write=write_gzip,
        description="our JSON, gzip-compressed",
        read=read,
    ),
]
