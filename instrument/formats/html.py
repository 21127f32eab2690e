"""The HTML timeline: one self-contained file to look at a snapshot in a browser.

The page (``timeline.html`` beside this module: markup, style and plain
JavaScript drawing on a canvas, nothing fetched from the network) shows one
lane per stream (a thread, or a thread on one channel when there are
several), spans as bars, point events as ticks, skipped sub-buffers and
dropped events as marks, and the fields of whatever the pointer is on.

Two ``<script type="application/json">`` blocks carry the data, written in
pieces so a large snapshot never becomes one string. Every ``<`` in them is
written as ``\\u003c`` (and in the page data ``>`` and ``&`` too), so no
recorded value can end a block, open a comment in it, or open markup. The
page draws values with ``textContent`` and canvas text only, never as HTML.

* ``ringtrace-snapshot``: the snapshot as our JSON document
  (:mod:`~instrument.formats.json_format`, the very bytes of the ``json``
  file when both are written inside :func:`~instrument.formats.sharing`, as
  a failure's files are), so writing the page costs little more than
  escaping it. :func:`read_html` reads it back equal to the snapshot
  written (a value no JSON snapshot holds is written as its text).
* ``ringtrace-data`` (``"format": "ringtrace-timeline"``, ``"version": 2``):
  ``summary``, the counts the streams give; ``snapshot``: ``pid``, ``clock_offset_ns``,
  ``taken_at``, ``since``, ``base_ns`` (as decimal strings: they may exceed
  what a JavaScript number holds exactly), ``metadata``, and for the page
  ``taken_at_rel`` (ns after ``base_ns``) and ``wall_ms``/``wall_sub_ns``
  (wall-clock time of ``base_ns`` in milliseconds since the epoch and the
  nanoseconds beyond). ``base_ns`` is the snapshot's origin
  (:attr:`Snapshot.origin`: the failure when a test failed, else the moment
  of the snapshot): the page's time axis is relative to it, as every other
  view. ``origin_ns`` is the snapshot's own ``origin_ns`` (``null`` when
  unset) and ``sources`` its traced names' ``file:line``. ``marks``:
  ``[key, t]`` for metadata ``*_ns`` values that are times on the same
  clock (the pytest plugin's ``failure_ns``), drawn as lines.

The page's script builds the timeline from the two (:func:`model` builds the
same in Python, and the tests compare them in Chromium):

* ``lanes``: one per stream, every :class:`~instrument.model.StreamInfo`
  field plus ``events`` (count), ``skipped``, ``skipped_subbufs`` and
  ``synthetic`` (a lane made up for events whose stream the snapshot does
  not list, as in a hand-made snapshot). A lane per asyncio task (the
  events whose context names a ``task``) follows, synthetic, with ``task``
  (its name) and ``parent`` (its thread's lane): the page draws it under
  its thread, and entries and exits pair within the task.
* ``events``: ``[t, kind, name, lane, fields, context, position]`` per
  event in snapshot order; ``t`` is ns relative to ``base_ns`` (the
  script reads timestamps beyond 2**53 as their text, exactly); ``kind``,
  ``name`` and ``context`` index the ``kinds``, ``names`` and ``contexts``
  tables.
* ``spans``: ``[lane, start, end, entry, exit, depth, flags, name]``, sorted
  by lane, depth and start; ``entry``/``exit`` index ``events`` (-1 when
  missing); ``flags`` is a sum of :data:`ENTRY_LOST`, :data:`NO_EXIT`,
  :data:`ERROR` and :data:`START_UNKNOWN`. An exit pairs with its own
  entry (name and entry time, see :func:`~instrument.model.span_start`), so
  overlapping coroutines on one thread never swap.
* ``activity``: ``[span, suspensions, [start, end, state, ...]]`` for
  each span that suspended (a generator, coroutine or async generator):
  its index in ``spans``, how often it suspended, and its stretches
  (:func:`~instrument.model.activity`, times as ``spans``'), ``state`` 0
  running, 1 suspended, 2 unknown. The page draws suspended stretches
  faded and hatched inside the bar, and its card says how long the span
  ran of its duration.
* ``gaps``: ``[lane, start_position, end_position, t_before, t_after,
  records, subbufs]`` per skipped sub-buffer range; ``t_before``/``t_after``
  are the times of the events either side (``null`` when there is none).
* ``summary``: the counts shown in the page header, spans' among them.

Values a browser would read wrongly are shown as strings: ``NaN`` and
infinities, integers beyond 2**53 (their exact digits), non-string keys.
Pages of version 1 (which embedded this model, built in Python) are still
read by :func:`read_data` and :func:`read_html`.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from importlib import resources
from itertools import chain, repeat
from operator import itemgetter, sub
from pathlib import Path
from typing import Any, BinaryIO, cast

from ..model import (
    RUNNING,
    SUSPENDED,
    Event,
    Snapshot,
    SnapshotFileError,
    StreamInfo,
    activity,
    marks_by_span,
)
from ..values import safe_repr
from . import Format, json_format

FORMAT_ID = "ringtrace-timeline"
VERSION = 2

#: Span flags: the entry was not in the snapshot (overwritten or skipped).
ENTRY_LOST = 1
#: The snapshot holds no exit: the call was still running, or its exit was lost.
NO_EXIT = 2
#: The exit carries an exception.
ERROR = 4
#: Entry lost and the exit carries no duration: the span is empty, at the exit.
START_UNKNOWN = 8

TEMPLATE = "timeline.html"
_PLACEHOLDER = "@@RINGTRACE_DATA@@"
_SNAPSHOT_PLACEHOLDER = "@@RINGTRACE_SNAPSHOT@@"
_DATA_OPEN = '<script type="application/json" id="ringtrace-data">'
_SNAPSHOT_OPEN = '<script type="application/json" id="ringtrace-snapshot">'
_CHUNK = 2048  # events per step of the model (the page's script steps alike)
_MAX_SAFE_INT = 2**53 - 1
# Digits all made "0": a run of 16 may be an integer a browser cannot hold.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_SIXTEEN_DIGITS = b"0" * 16
_CTX_CACHE_MAX = 4096
_stamp, _name, _kind, _position = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(8)
_fields, _ctx, _row_fields = itemgetter(5), itemgetter(6), itemgetter(4)
_span_flags = itemgetter(6)  # of a laid-out span
_stream_key = itemgetter(3, 4, 7)  # (thread id, thread name, channel), as _Lanes keys them


class TimelineError(ValueError):
    """A file is not a ringtrace HTML timeline this version can read."""


@lru_cache(maxsize=1)
def _template() -> tuple[bytes, bytes, bytes]:
    text = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    head, sep, rest = text.partition(_PLACEHOLDER)
    middle, sep2, tail = rest.partition(_SNAPSHOT_PLACEHOLDER)
    if (
        not (sep and sep2)
        or _PLACEHOLDER in tail
        or _SNAPSHOT_PLACEHOLDER in tail
        or not head.endswith(_DATA_OPEN)
        or not middle.endswith(_SNAPSHOT_OPEN)
    ):
        raise RuntimeError(
            f"{TEMPLATE} must hold {_PLACEHOLDER} and then {_SNAPSHOT_PLACEHOLDER} once "
            "each, inside their data blocks"
        )
    return head.encode("utf-8"), middle.encode("utf-8"), tail.encode("utf-8")


def _plain(value: Any) -> Any:
    """``value`` as JSON a browser reads back exactly (see the module docstring)."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else str(value)
    if kind is float:
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k if type(k) is str else str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return safe_repr(value)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


def _fast_dumps(rows: list[Any], fields: bool) -> bytes | None:
    """``rows`` encoded by msgspec, when installed and when that writes what
    the stdlib would: event rows (``fields``) whose fields hold finite scalars
    under string keys, or rows of integers only; ASCII text. Else ``None``."""
    encode = json_format.fast_encode
    if encode is None:
        return None
    if fields:
        if not json_format._plain_dicts(list(map(_row_fields, rows))):
            return None
    elif set(map(type, chain.from_iterable(rows))) - {int}:
        return None
    try:
        data: bytes = encode(rows)
    except (TypeError, ValueError):  # a lone surrogate
        return None
    return data if data.isascii() else None


def _json(value: Any, fields: bool = False, ints: bool = False) -> bytes:
    """Compact ASCII JSON of ``value``, escaped for an HTML script block.

    The fast path dumps as is (with msgspec where it can: event rows,
    ``fields=True``, or rows of integers, ``ints=True``); values JSON or a
    browser cannot carry (see :func:`_plain`) send the whole piece through
    :func:`_plain` instead.
    """
    fast = _fast_dumps(value, fields) if fields or ints else None
    try:
        data = fast if fast is not None else _dumps(value)
    except (TypeError, ValueError):
        data = _dumps(_plain(value))
    else:
        if _SIXTEEN_DIGITS in data.translate(_DIGITS_TO_ZERO):
            data = _dumps(_plain(value))
    return _escape(data)


def _escape(data: bytes) -> bytes:
    """JSON ``data`` that no recorded value can end a ``<script>`` block in.

    Outside strings JSON has no <, > or &: inside them, escapes mean the same.
    """
    return data.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")


class _Table:
    """Interns strings (event names, kinds) as indexes into a list."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.items: list[str] = []

    def add(self, value: str) -> int:
        found = self.index.get(value)
        if found is None:
            found = self.index[value] = len(self.items)
            self.items.append(value)
        return found


class _Contexts:
    """Interns context dicts; most are one dict shared by a stream's events.

    ``by_id`` is only valid while the snapshot keeps every dict alive, that
    is, during one write.
    """

    def __init__(self) -> None:
        self.by_id: dict[int, int] = {}
        self.by_text: dict[str, int] = {}
        self.items: list[dict[str, Any]] = []
        #: The asyncio task of each context (``None`` for none), by index.
        self.tasks: list[str | None] = []

    def add(self, ctx: dict[str, Any]) -> int:
        text = json.dumps(_plain(ctx), sort_keys=True)
        found = self.by_text.get(text)
        if found is None:
            found = self.by_text[text] = len(self.items)
            self.items.append(ctx)
            task = ctx.get("task")
            self.tasks.append(task if isinstance(task, str) else None)
        if len(self.by_id) < _CTX_CACHE_MAX:
            self.by_id[id(ctx)] = found
        return found


class _Lanes:
    """Maps events to lanes: the snapshot's streams, plus made-up ones.

    ``plain`` maps (thread id, thread name, channel) to the lane when only
    one stream has them; :meth:`lookup` handles the rest.
    """

    def __init__(self, streams: Sequence[StreamInfo], pid: int = 0):
        self.streams = list(streams)
        self.pid = pid  # the snapshot's process; other pids are children
        self.synthetic: list[tuple[int, str, str]] = []
        self.by_key: dict[tuple[int, str, str], list[int]] = {}
        for i, info in enumerate(self.streams):
            self.by_key.setdefault((info.thread_id, info.thread_name, info.channel), []).append(i)
        self.plain = {key: found[0] for key, found in self.by_key.items() if len(found) == 1}
        self.counts = [0] * len(self.streams)
        #: Lanes of asyncio tasks: (the thread's lane, task name) -> lane.
        self.task_lanes: dict[tuple[int, str], int] = {}
        self.tasks: list[tuple[int, str]] = []  # in lane order, after the others

    def lookup(self, key: tuple[int, str, str], position: int) -> int:
        found = self.by_key.get(key)
        if found is None:  # an event of a stream the snapshot does not list
            lane = len(self.counts)
            self.by_key[key] = [lane]
            self.plain[key] = lane
            self.synthetic.append(key)
            self.counts.append(0)
            return lane
        for i in found:  # a thread id and name reused: tell by position
            info = self.streams[i]
            first, last = info.first_position, info.last_position
            if first is not None and last is not None and first <= position <= last:
                return i
        return found[0]

    def task_lane(self, lane: int, task: str) -> int:
        """The lane of asyncio task ``task`` on the thread of ``lane``."""
        key = (lane, task)
        found = self.task_lanes.get(key)
        if found is None:
            found = self.task_lanes[key] = len(self.counts)
            self.counts.append(0)
            self.tasks.append(key)
        return found

    def process(self, info: StreamInfo) -> str | None:
        """``pid N: command`` for a child process's stream (instrument.children)."""
        pid = info.context.get("pid")
        if not isinstance(pid, int) or pid == self.pid or "command" not in info.context:
            return None
        return f"pid {pid}: {info.context['command']}"

    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for i, info in enumerate(self.streams):
            rows.append(
                {
                    "channel": info.channel,
                    "thread_id": info.thread_id,
                    "thread_name": info.thread_name,
                    "alive": info.alive,
                    "mode": info.mode,
                    "subbuf_size": info.subbuf_size,
                    "num_subbuf": info.num_subbuf,
                    "produced": info.produced,
                    "first_position": info.first_position,
                    "last_position": info.last_position,
                    "gaps": [list(g) for g in info.gaps],
                    "overwritten": info.overwritten,
                    "dropped": info.dropped,
                    "skipped": info.skipped,
                    "skipped_subbufs": info.skipped_subbufs,
                    "context": info.context,
                    "process": self.process(info),
                    "events": self.counts[i],
                    "synthetic": False,
                }
            )
        # Synthetic and task lanes were numbered in the order they were met.
        extra: list[tuple[int, dict[str, Any]]] = []
        for (tid, tname, channel), (lane,) in ((key, self.by_key[key]) for key in self.synthetic):
            extra.append(
                (
                    lane,
                    {
                        "channel": channel,
                        "thread_id": tid,
                        "thread_name": tname,
                        "events": self.counts[lane],
                        "synthetic": True,
                    },
                )
            )
        for (parent, task), lane in self.task_lanes.items():
            base = (
                rows[parent]
                if parent < len(rows)
                else dict(next(r for i, r in extra if i == parent))
            )
            extra.append(
                (
                    lane,
                    {
                        "channel": base["channel"],
                        "thread_id": base["thread_id"],
                        "thread_name": base["thread_name"],
                        "events": self.counts[lane],
                        "synthetic": True,
                        "task": task,
                        "parent": parent,
                    },
                )
            )
        extra.sort(key=lambda item: item[0])
        return rows + [row for _, row in extra]


# A span as collected: (lane, start, -end, entry index, exit index, flags), so
# that plain tuple order is by lane, then start, then longest first.
_Span = tuple[int, int, int, int, int, int]
# A span laid out: (lane, depth, start, end, entry index, exit index, flags).
_Laid = tuple[int, int, int, int, int, int, int]


class _Spans:
    """Pairs entries with exits per lane, as events go by, into spans.

    An exit closes the open entry of the same name on its lane that began
    ``duration_ns`` before it (coroutines interleave on one thread, so it
    need not be the innermost, nor the most recent of its name).
    An exit without an entry (overwritten, or in a skipped sub-buffer) starts
    ``duration_ns`` before it; an entry without an exit runs to the end.
    """

    def __init__(self) -> None:
        self.open: dict[int, list[tuple[str, int, int]]] = {}
        self.spans: list[Any] = []

    def exit(self, lane: int, name: str, index: int, t: int, fields: dict[str, Any]) -> None:
        flags = ERROR if "exception" in fields else 0
        stack = self.open.get(lane)
        duration = fields.get("duration_ns")
        if stack:
            # the entry of the same name that began duration_ns before (the
            # pairing identity, see instrument.model.span_start), else the
            # most recent of its name
            began = t - duration if type(duration) is int else None
            for j in range(len(stack) - 1, -1, -1):
                if stack[j][0] == name and (began is None or stack[j][2] == began):
                    _, entry, start = stack.pop(j)
                    self.spans.append((lane, start, -t, entry, index, flags))
                    return
        if type(duration) is int and duration >= 0:
            start, flags = t - duration, flags | ENTRY_LOST
        else:  # nothing tells when it started: an empty span at the exit
            start, flags = t, flags | ENTRY_LOST | START_UNKNOWN
        self.spans.append((lane, start, -t, -1, index, flags))

    def finish(self, end: int) -> None:
        for lane, stack in self.open.items():
            for _, entry, start in stack:
                self.spans.append((lane, start, -max(end, start), entry, -1, NO_EXIT))
        self.open.clear()

    def laid_out(self) -> list[_Laid]:
        """The spans with a depth each, sorted by lane, depth and start.

        Taken by start (longest first on ties), a span goes one deeper than
        the spans still open when it starts, so nested calls nest, spans that
        merely overlap (interleaved coroutines) stack up, and spans of one
        depth never overlap. The list is reused: spans are many.
        """
        spans = self.spans
        spans.sort()
        lane_now = None
        stack: list[int] = []  # ends of the spans open at this point
        for i, (lane, start, neg_end, entry, exit_, flags) in enumerate(spans):
            if lane != lane_now:
                lane_now, stack = lane, []
            while stack and stack[-1] <= start:
                stack.pop()
            spans[i] = (lane, len(stack), start, -neg_end, entry, exit_, flags)
            stack.append(-neg_end)
        spans.sort()
        self.spans = []
        return spans


def _gap_rows(
    lanes: _Lanes, positions: dict[int, tuple[list[int], list[int]]], base: int
) -> list[list[Any]]:
    """One row per gap, with the times of the events either side of it."""
    rows: list[list[Any]] = []
    for lane, info in enumerate(lanes.streams):
        if not info.gaps:
            continue
        pos, times = positions.get(lane, ([], []))
        for start, end in info.gaps:
            i = bisect.bisect_left(pos, start)
            j = bisect.bisect_left(pos, end)
            before = times[i - 1] - base if i > 0 else None
            after = times[j] - base if j < len(pos) else None
            records = end - start
            rows.append([lane, start, end, before, after, records, records // info.subbuf_size])
    return rows


_MARK_RANGE_NS = 86_400 * 10**9


def _marks(metadata: dict[str, Any], base: int) -> list[list[Any]]:
    """``[key, t]`` for metadata ``*_ns`` values that are times on the
    snapshot's clock (within a day of its last event), such as the pytest
    plugin's ``failure_ns``: the page marks them on the time axis."""
    return [
        [key, value - base]
        for key, value in metadata.items()
        if type(key) is str
        and key.endswith("_ns")
        and type(value) is int
        and abs(value - base) <= _MARK_RANGE_NS
    ]


def _new_ids(table: _Table, values: Iterable[Any]) -> None:
    """Add to ``table`` the values it lacks, in order of first appearance."""
    index = table.index
    for value in dict.fromkeys(values):
        if value not in index:
            table.add(value)


def _header(snapshot: Snapshot, base: int) -> dict[str, Any]:
    """The page's ``snapshot`` member (see the module docstring)."""
    wall = base + snapshot.clock_offset_ns
    return {
        "pid": snapshot.pid,
        "clock_offset_ns": str(snapshot.clock_offset_ns),
        "taken_at": str(snapshot.taken_at),
        "since": None if snapshot.since is None else str(snapshot.since),
        "base_ns": str(base),
        "origin_ns": None if snapshot.origin_ns is None else str(snapshot.origin_ns),
        "sources": snapshot.sources,
        "taken_at_rel": snapshot.taken_at - base,
        "since_rel": None if snapshot.since is None else snapshot.since - base,
        "wall_ms": wall // 1_000_000,
        "wall_sub_ns": wall % 1_000_000,
        "metadata": snapshot.metadata,
        "marks": _marks(snapshot.metadata, base),
    }


def _counts(snapshot: Snapshot) -> dict[str, int]:
    """The page header's counts that the snapshot's streams give."""
    return {
        "events": len(snapshot.events),
        # a thread id reused by a later thread of another name counts again
        "threads": len({(info.thread_id, info.thread_name) for info in snapshot.streams}),
        "streams": len(snapshot.streams),
        "lost": snapshot.lost,
        "dropped": snapshot.dropped,
        "skipped": snapshot.skipped,
        "skipped_subbufs": snapshot.skipped_subbufs,
        "overwritten": snapshot.overwritten,
    }


def _page_data(snapshot: Snapshot) -> bytes:
    """The page data (version 2): what the page's script needs beside the
    snapshot document, which it reads as it is."""
    return (
        b'{"format":"ringtrace-timeline","version":2,"snapshot":'
        + _json(_header(snapshot, snapshot.origin))
        + b',"summary":'
        + _json(_counts(snapshot))
        + b"}"
    )


def _model_chunks(snapshot: Snapshot) -> Iterator[bytes]:
    """The timeline's model (see :func:`model`) as JSON, in pieces."""
    events = snapshot.events
    base = snapshot.origin
    lanes = _Lanes(snapshot.streams, snapshot.pid)
    names, kinds, contexts, spans = _Table(), _Table(), _Contexts(), _Spans()
    gap_lanes = {i for i, info in enumerate(lanes.streams) if info.gaps}
    positions: dict[int, tuple[list[int], list[int]]] = {i: ([], []) for i in gap_lanes}
    lane_of, counts, lookup = lanes.plain, lanes.counts, lanes.lookup
    name_ids, kind_ids, ctx_ids = names.index, kinds.index, contexts.by_id
    open_spans, span_exit, span_list = spans.open, spans.exit, spans.spans
    ctx_tasks = contexts.tasks
    name_of: list[int] = []  # each event's index in the names table

    yield b'{"format":"ringtrace-timeline","version":2,"events":['
    for begin in range(0, len(events), _CHUNK):
        chunk = events[begin : begin + _CHUNK]
        # Column by column, in C-level passes (a failure's snapshot is tens of
        # thousands of events); only span ends take a Python step each.
        stamps = list(map(_stamp, chunk))
        keys = list(map(_stream_key, chunk))
        known = list(map(lane_of.get, keys))
        if None in known:
            pos_col = list(map(_position, chunk))
            for i, lane in enumerate(known):
                if lane is None:
                    found = lane_of.get(keys[i])
                    known[i] = found if found is not None else lookup(keys[i], pos_col[i])
        where = cast(list[int], known)
        stream_lanes = where  # gaps are placed on the stream's lane
        name_col = list(map(_name, chunk))
        kind_col = list(map(_kind, chunk))
        _new_ids(names, name_col)
        _new_ids(kinds, kind_col)
        ctx_col = list(map(_ctx, chunk))
        ctx_id_col = list(map(ctx_ids.get, map(id, ctx_col)))
        if None in ctx_id_col:
            for i, ctx_id in enumerate(ctx_id_col):
                if ctx_id is None:
                    found = ctx_ids.get(id(ctx_col[i]))
                    ctx_id_col[i] = found if found is not None else contexts.add(ctx_col[i])
        task_col = list(map(ctx_tasks.__getitem__, cast(list[int], ctx_id_col)))
        if any(task_col):  # asyncio tasks: each a lane of its own, under its thread
            where = [
                lane if task is None else lanes.task_lane(lane, task)
                for lane, task in zip(stream_lanes, task_col, strict=True)
            ]
        for lane, n in Counter(where).items():
            counts[lane] += n
        if "entry" in kind_ids or "exit" in kind_ids:
            fields_col = list(map(_fields, chunk))
            index = begin
            for kind, lane, name, t, fields in zip(
                kind_col, where, name_col, stamps, fields_col, strict=True
            ):
                if kind == "entry":
                    stack = open_spans.get(lane)
                    if stack is None:
                        stack = open_spans[lane] = []
                    stack.append((name, index, t))
                elif kind == "exit":
                    stack = open_spans.get(lane)
                    duration = fields.get("duration_ns")
                    if (
                        stack
                        and stack[-1][0] == name
                        and "exception" not in fields
                        and (type(duration) is not int or stack[-1][2] == t - duration)
                    ):
                        # the usual case, inline: the innermost open call returns
                        # (the same span: see instrument.model.span_start)
                        _, entry, start = stack.pop()
                        span_list.append((lane, start, -t, entry, index, 0))
                    else:
                        span_exit(lane, name, index, t, fields)
                index += 1
        if gap_lanes:
            for i, lane in enumerate(stream_lanes):
                if lane in gap_lanes:
                    positions[lane][0].append(chunk[i].position)
                    positions[lane][1].append(stamps[i])
        name_id_col = list(map(name_ids.__getitem__, name_col))
        name_of.extend(name_id_col)
        rows = list(
            zip(
                map(sub, stamps, repeat(base)),
                map(kind_ids.__getitem__, kind_col),
                name_id_col,
                where,
                map(_fields, chunk),
                ctx_id_col,
                map(_position, chunk),
                strict=True,
            )
        )
        data = _json(rows, fields=True)[1:-1]
        yield data if begin == 0 else b"," + data

    spans.finish(max([snapshot.taken_at, *([events[-1].timestamp] if events else [])]))
    laid = spans.laid_out()
    yield b'],"spans":['
    for begin in range(0, len(laid), _CHUNK * 4):
        span_rows = [
            [
                lane,
                start - base,
                stop - base,
                entry,
                exit_,
                depth,
                flags,
                name_of[entry if entry >= 0 else exit_],
            ]
            for lane, depth, start, stop, entry, exit_, flags in laid[begin : begin + _CHUNK * 4]
        ]
        data = _json(span_rows, ints=True)[1:-1]
        yield data if begin == 0 else b"," + data

    yield b'],"activity":' + _json(_activity_rows(events, laid, base))

    flag_counts = Counter(map(_span_flags, laid))
    summary = {
        **_counts(snapshot),
        "spans": len(laid),
        "open_spans": sum(n for flag, n in flag_counts.items() if flag & NO_EXIT),
        "entry_lost": sum(n for flag, n in flag_counts.items() if flag & ENTRY_LOST),
        "errors": sum(n for flag, n in flag_counts.items() if flag & ERROR),
    }
    header = _header(snapshot, base)
    yield b',"gaps":' + _json(_gap_rows(lanes, positions, base))
    yield b',"names":' + _json(names.items)
    yield b',"kinds":' + _json(kinds.items)
    yield b',"contexts":' + _json(contexts.items)
    yield b',"lanes":' + _json(lanes.rows())
    yield b',"summary":' + _json(summary)
    yield b',"snapshot":' + _json(header) + b"}"


#: The codes of a stretch's state in ``activity`` rows (running, suspended,
#: unknown: see :func:`instrument.model.activity`).
STRETCH_CODES = {RUNNING: 0, SUSPENDED: 1}
_UNKNOWN_CODE = 2


def _activity_rows(events: Sequence[Event], laid: list[_Laid], base: int) -> list[list[Any]]:
    """``[span, suspensions, [start, end, state, ...]]`` for each laid-out
    span that suspended (see the module docstring)."""
    marks = marks_by_span(events)
    if not marks:
        return []
    rows: list[list[Any]] = []
    for i, (_lane, _depth, start, stop, entry, exit_, flags) in enumerate(laid):
        if flags & START_UNKNOWN:
            continue
        found = marks.get((events[entry if entry >= 0 else exit_].name, start))
        act = activity(start, stop, found, entry >= 0) if found else None
        if act is None:
            continue
        flat: list[int] = []
        for a, b, state in act.stretches:
            flat += (a - base, b - base, STRETCH_CODES.get(state, _UNKNOWN_CODE))
        rows.append([i, act.suspensions, flat])
    return rows


#: The page's height above the lanes (header, toolbar, legend, overview and
#: axis rows), in CSS pixels, as drawn at the usual width; and its bounds.
_PAGE_TOP = 230
_PAGE_MIN, _PAGE_MAX = 160, 900


def page_height(data: dict[str, Any]) -> int:
    """The height, in CSS pixels, the timeline of ``data`` (:func:`read_data`)
    needs to show every lane without scrolling, bounded to a screen.

    The page's script computes the same when it is drawn in a frame marked
    ``data-ringtrace-fit`` and sets the frame's height; this estimate is the
    frame's height before (or without) the script.
    """
    depth: dict[int, int] = {}
    for span in data["spans"]:
        depth[span[0]] = max(depth.get(span[0], -1), span[5])
    return _height([depth.get(i, -1) + 1 for i in range(len(data["lanes"]))])


def _height(rows: list[int]) -> int:
    """The page's height for lanes of ``rows`` span rows each."""
    lanes = sum(max(44, 5 + 16 + min(n, 10) * 18 + 5) for n in rows)
    return max(_PAGE_MIN, min(_PAGE_TOP + lanes, _PAGE_MAX))


def frame_height(path: Path) -> int:
    """:func:`page_height` of the timeline at ``path``, from its embedded
    snapshot without building the timeline: the calls of each lane (a
    stream, an asyncio task, an unlisted stream) paired by name and entry
    time only, and laid out as the page lays them out. A fraction of the
    cost of :func:`read_data` (pytest-html frames every failure's page); the
    page's script sets the exact height when it runs.
    """
    data, text = _page(path)
    if data["version"] == 1:
        return page_height(data)
    try:
        doc = json.loads(_block(path, text, _SNAPSHOT_OPEN))
        spans: dict[Any, list[tuple[int, int]]] = {}
        for info in doc["streams"]:
            spans.setdefault((info["thread_id"], info["thread_name"], info["channel"], None), [])
        extra = len(doc["streams"]) - len(spans)  # reused thread ids: lanes of their own
        opened: dict[Any, list[int]] = {}
        end = doc["taken_at"]
        for t, name, kind, tid, tname, fields, ctx, channel, _ in doc["events"]:
            task = ctx.get("task")
            key: tuple[Any, ...] = (tid, tname, channel, None)
            lane = spans.setdefault(key, [])  # (an unlisted stream's lane, even for its tasks)
            if type(task) is str:
                key = (tid, tname, channel, task)
                lane = spans.setdefault(key, [])
            end = max(end, t)
            if kind == "entry":
                opened.setdefault((key, name), []).append(t)
            elif kind == "exit":
                starts = opened.get((key, name))
                duration = fields.get("duration_ns")
                start = t - duration if type(duration) is int else None
                if starts and start is None:  # the most recent of its name
                    start = starts.pop()
                elif starts and start in starts:
                    starts.remove(start)
                lane.append((t if start is None else start, t))
        for (key, _), starts in opened.items():
            spans[key].extend((start, max(end, start)) for start in starts)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise TimelineError(f"{path}: the embedded snapshot is damaged: {exc!r}") from None
    rows = []
    for lane in spans.values():
        lane.sort(key=lambda span: (span[0], -span[1]))
        ends: list[int] = []
        deepest = 0
        for start, stop in lane:
            while ends and ends[-1] <= start:
                ends.pop()
            ends.append(stop)
            deepest = max(deepest, len(ends))
        rows.append(deepest)
    return _height(rows + [0] * extra)


def write_html(snapshot: Snapshot, out: BinaryIO) -> None:
    """Write ``snapshot`` as a self-contained HTML timeline to binary ``out``.

    The snapshot is embedded as our JSON document (inside
    :func:`~instrument.formats.sharing`, the very bytes the ``json`` writer
    encoded), escaped for its ``<script>`` block; the page's script builds
    the timeline from it.
    """
    head, middle, tail = _template()
    out.write(head)
    out.write(_page_data(snapshot))
    out.write(middle)
    for piece in json_format.document(snapshot, lenient=True):
        # Only "<" can end a script block or open a comment in it: the
        # document (large) escapes it alone, in one pass.
        out.write(piece.replace(b"<", b"\\u003c") if b"<" in piece else piece)
    out.write(tail)


def model(snapshot: Snapshot) -> dict[str, Any]:
    """The timeline the page draws for ``snapshot``, as plain data.

    What the page's script builds from the embedded snapshot (the tests run
    both on the same pages and compare): ``events``, ``spans``, ``gaps``,
    ``names``, ``kinds``, ``contexts``, ``lanes``, ``summary`` and
    ``snapshot``, laid out as the module docstring says.
    """
    data: dict[str, Any] = json.loads(b"".join(_model_chunks(snapshot)))
    return data


def _block(path: Path, text: str, opening: str) -> str:
    start = text.find(opening)
    end = text.find("</script>", start) if start >= 0 else -1
    if end < 0:
        raise TimelineError(f"{path}: not a ringtrace HTML timeline (no embedded data)")
    return text[start + len(opening) : end]


def _page(path: Path) -> tuple[dict[str, Any], str]:
    """The page data of the timeline at ``path`` (checked), and the page's text."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(_block(path, text, _DATA_OPEN))
    except ValueError as exc:
        if isinstance(exc, TimelineError):
            raise
        raise TimelineError(f"{path}: the embedded timeline data is damaged: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_ID:
        raise TimelineError(f"{path}: not a ringtrace HTML timeline")
    if data.get("version") not in (1, VERSION):
        raise TimelineError(
            f"{path}: timeline data version {data.get('version')!r}, this reader knows "
            f"1 and {VERSION}"
        )
    return data, text


def _embedded_snapshot(path: Path, text: str) -> Snapshot:
    block = _block(path, text, _SNAPSHOT_OPEN)
    try:
        return json_format.parse(block.encode("utf-8"), path)
    except SnapshotFileError as exc:
        raise TimelineError(f"{path}: the embedded snapshot is damaged: {exc.problem}") from None


def read_data(path: Path) -> dict[str, Any]:
    """The timeline at ``path`` as its page draws it (see :func:`model`); for
    a page of version 1, the data it embedded, which was that model."""
    data, text = _page(path)
    if data["version"] == 1:
        return data
    return model(_embedded_snapshot(Path(path), text))


def read_html(path: Path) -> Snapshot:
    """Read a timeline written by :func:`write_html` back into a Snapshot.

    It equals the snapshot written, but for values no JSON snapshot holds,
    written as their text (and, in a page of version 1, for the values that
    version wrote as strings).
    """
    data, text = _page(path)
    if data["version"] != 1:
        return _embedded_snapshot(Path(path), text)
    try:
        head = data["snapshot"]
        base = int(head["base_ns"])
        names, kinds, contexts = data["names"], data["kinds"], data["contexts"]
        lanes = data["lanes"]
        events = [
            Event(
                base + t,
                names[name],
                kinds[kind],
                lanes[lane]["thread_id"],
                lanes[lane]["thread_name"],
                fields,
                contexts[ctx],
                lanes[lane]["channel"],
                position,
            )
            for t, kind, name, lane, fields, ctx, position in data["events"]
        ]
        streams = [
            StreamInfo(
                channel=lane["channel"],
                thread_id=lane["thread_id"],
                thread_name=lane["thread_name"],
                alive=lane["alive"],
                mode=lane["mode"],
                subbuf_size=lane["subbuf_size"],
                num_subbuf=lane["num_subbuf"],
                produced=lane["produced"],
                first_position=lane["first_position"],
                last_position=lane["last_position"],
                gaps=[(start, end) for start, end in lane["gaps"]],
                overwritten=lane["overwritten"],
                dropped=lane["dropped"],
                context=lane["context"],
            )
            for lane in lanes
            if not lane["synthetic"]
        ]
        since = head["since"]
        return Snapshot(
            events=events,
            streams=streams,
            clock_offset_ns=int(head["clock_offset_ns"]),
            taken_at=int(head["taken_at"]),
            since=None if since is None else int(since),
            pid=head["pid"],
            metadata=head["metadata"],
            origin_ns=None if head.get("origin_ns") is None else int(head["origin_ns"]),
            sources=dict(head.get("sources") or {}),
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise TimelineError(f"{path}: the embedded timeline data is incomplete: {exc!r}") from None


FORMATS = [
    Format(
        name="html",
        suffix=".html",
        write=write_html,
        description="self-contained HTML timeline (threads as lanes, spans as bars)",
        read=read_html,
    )
]
