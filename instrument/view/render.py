"""A snapshot as text for a terminal: a summary header and the timeline.

One line per event: its time, its thread, a marker for its kind (entry,
exit, point event), its name and its fields. Spans are indented by their
nesting depth on their thread, and every gap (sub-buffers a snapshot had to
skip) is shown where it happened, so a reader always sees what was lost.

Used by ``ringtrace show``; nothing here depends on pytest. Colour is
optional ANSI escapes; markers fall back to ASCII for terminals that cannot
print them.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from instrument.model import Event, Snapshot, StreamInfo

# One way to describe an event's fields and a duration, shared with the
# failure section of the pytest plugin (report.py).

Clock = Literal["relative", "monotonic", "wall"]

#: Kind markers, in Unicode and in ASCII.
MARKERS = {"entry": "→", "exit": "←", "event": "·", "gap": "✂", "suspend": "⏸", "resume": "⏵"}
ASCII_MARKERS = {
    "entry": "->",
    "exit": "<-",
    "event": "*",
    "gap": "!!",
    "suspend": "||",
    "resume": "|>",
}

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_BLUE = "\x1b[34m"
_THREAD_COLOURS = ("\x1b[36m", "\x1b[35m", "\x1b[33m", "\x1b[32m", "\x1b[34m", "\x1b[96m")
_KIND_COLOURS = {"entry": _GREEN, "exit": _BLUE, "event": _YELLOW}
_MAX_THREAD_WIDTH = 24
_INDENT = "  "


@dataclass(frozen=True)
class Style:
    """How to draw: ``color`` adds ANSI escapes, ``unicode`` picks the markers."""

    color: bool = False
    unicode: bool = True

    def paint(self, text: str, *codes: str) -> str:
        """``text`` wrapped in ``codes`` when colour is on."""
        if not self.color or not codes:
            return text
        return "".join(codes) + text + _RESET

    def marker(self, kind: str) -> str:
        """The marker of an event kind (or ``"gap"``)."""
        table = MARKERS if self.unicode else ASCII_MARKERS
        return table.get(kind, "?")


PLAIN = Style(color=False, unicode=True)


@dataclass(frozen=True)
class Gap:
    """Sub-buffers skipped in one stream, placed in time for the timeline.

    ``timestamp`` is that of the first event read after the gap (or of the
    last one before it, when the gap ends the stream), so the marker sorts
    where the loss happened.
    """

    timestamp: int
    thread_id: int
    thread_name: str
    channel: str
    start: int
    end: int
    subbufs: int

    @property
    def records(self) -> int:
        """Records lost in the gap."""
        return self.end - self.start


# Characters a terminal may act on instead of printing: C0 controls (ESC
# starts CSI/OSC sequences such as clear-screen or an OSC 52 clipboard
# write; a bare CR rewrites the line), DEL, C1 controls (0x9b and 0x9d are
# one-byte CSI and OSC), bidirectional overrides and isolates (they reorder
# what follows on the line), line and paragraph separators, and lone
# surrogates (which cannot be encoded at all).
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` safe to write to a terminal: every character a terminal could
    act on (control characters, escape sequences, bidi overrides, lone
    surrogates) becomes a Python-style escape (``\\x1b``, ``\\r``, ``\\u202e``),
    as pytest escapes non-printable characters in test ids. Everything else,
    non-ASCII letters included, is kept. Apply it to every untrusted piece of
    text (names, values, messages) before it reaches a terminal."""
    if _UNPRINTABLE.search(text) is None:
        return text
    return _UNPRINTABLE.sub(_escape, text)


def format_value(value: Any) -> str:
    """One value: strings quoted (as ``repr``), everything else ``str``;
    terminal-safe (:func:`printable`)."""
    if isinstance(value, str):
        return printable(repr(value))
    return printable(str(value))


def format_fields(fields: dict[str, Any]) -> str:
    """``key=value`` pairs separated by spaces (terminal-safe)."""
    return " ".join(f"{printable(key)}={format_value(value)}" for key, value in fields.items())


def format_count(n: int) -> str:
    """An integer with thousands separators."""
    return f"{n:,}"


def wall_clock(snapshot: Snapshot, timestamp: int) -> _dt.datetime:
    """The UTC wall-clock time of a monotonic ``timestamp`` of ``snapshot``."""
    ns = timestamp + snapshot.clock_offset_ns
    return _dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=_dt.timezone.utc).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )


def summary(snapshot: Snapshot, *, source: str | None = None, style: Style = PLAIN) -> list[str]:
    """Header lines: where the snapshot comes from, its metadata and loss counters."""
    lines = []
    taken = wall_clock(snapshot, snapshot.taken_at).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    head = f"snapshot {printable(source)}" if source else "snapshot"
    lines.append(style.paint(f"{head}  pid {snapshot.pid}  taken {taken}", _BOLD))
    if snapshot.metadata:
        lines.append(
            printable(" ".join(f"{k}={_metadata_value(v)}" for k, v in snapshot.metadata.items()))
        )
    lost = snapshot.lost
    gaps = sum(len(s.gaps) for s in snapshot.streams)
    loss = (
        f"lost {format_count(lost)} (dropped {format_count(snapshot.dropped)}, "
        f"skipped {format_count(snapshot.skipped)} in "
        f"{format_count(snapshot.skipped_subbufs)} sub-buffers), "
        f"{format_count(gaps)} gaps, {format_count(snapshot.overwritten)} overwritten"
    )
    counts = (
        f"{format_count(len(snapshot.events))} events, {len(snapshot.threads)} threads, "
        f"{len(snapshot.streams)} streams, "
    )
    lines.append(counts + (style.paint(loss, _RED, _BOLD) if lost else loss))
    from .processes import process_lines

    lines.extend(process_lines(snapshot))
    return lines


def _metadata_value(value: Any, limit: int = 120) -> str:
    """A metadata value in the header: an exception as ``Type: message``,
    anything else as its text, cut to ``limit`` characters."""
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        message = value.get("message")
        text = f"{value['type']}: {message}" if message else value["type"]
        text = repr(" ".join(text.split()))
    else:
        text = format_value(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def span_depths(events: Sequence[Event]) -> list[int]:
    """The nesting depth of each event on its thread (entries and exits of
    one span share a depth; a point event sits one level inside the open span).

    A snapshot usually starts inside spans whose entries were overwritten;
    each thread's depths are shifted so that its outermost exit is at 0.
    """
    running: dict[int, int] = {}
    lowest: dict[int, int] = {}
    raw: list[int] = []
    for ev in events:
        d = running.get(ev.thread_id, 0)
        if ev.kind == "exit":
            d -= 1
            running[ev.thread_id] = d
            shown = d
        else:
            shown = d
            if ev.kind == "entry":
                running[ev.thread_id] = d + 1
        raw.append(shown)
        if shown < lowest.get(ev.thread_id, 0):
            lowest[ev.thread_id] = shown
    return [max(d - lowest.get(ev.thread_id, 0), 0) for d, ev in zip(raw, events, strict=True)]


def find_gaps(snapshot: Snapshot) -> list[Gap]:
    """Every gap of every stream, placed at the event that follows it."""
    by_stream: dict[tuple[str, int], list[Event]] = {}
    for ev in snapshot.events:
        by_stream.setdefault((ev.channel, ev.thread_id), []).append(ev)
    found = []
    for info in snapshot.streams:
        if not info.gaps:
            continue
        events = by_stream.get((info.channel, info.thread_id), [])
        for start, end in info.gaps:
            after = next((ev for ev in events if ev.position >= end), None)
            if after is not None:
                ts = after.timestamp
            elif events:
                ts = events[-1].timestamp
            else:
                ts = snapshot.taken_at
            found.append(_gap(info, start, end, ts))
    found.sort(key=lambda g: g.timestamp)
    return found


def _gap(info: StreamInfo, start: int, end: int, timestamp: int) -> Gap:
    size = max(info.subbuf_size, 1)
    return Gap(
        timestamp, info.thread_id, info.thread_name, info.channel, start, end, (end - start) // size
    )


def thread_labels(snapshot: Snapshot) -> dict[int, str]:
    """A short label per thread id: its name, with the id when names collide;
    a child process's thread is ``[pid] name`` (terminal-safe: :func:`printable`)."""
    from .processes import stream_pids, thread_label

    names: dict[int, str] = {}
    for ev in snapshot.events:
        names.setdefault(ev.thread_id, ev.thread_name)
    for tid, name in snapshot.threads:
        names.setdefault(tid, name)
    pids = stream_pids(snapshot)
    names = {tid: thread_label(pids.get(tid), name) for tid, name in names.items()}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {
        tid: printable(name if counts[name] == 1 else f"{name}[{tid}]")
        for tid, name in names.items()
    }


class Timeline:
    """Renders events of one snapshot, one line each.

    ``end`` is time zero of relative times: the snapshot's origin (the
    failure, or the moment it was taken) by default. Depths and thread labels are computed over the
    whole snapshot, so a filtered view keeps the indentation of the full one.
    """

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        style: Style = PLAIN,
        clock: Clock = "relative",
        end: int | None = None,
    ):
        self.snapshot = snapshot
        self.style = style
        self.clock = clock
        events = snapshot.events
        self.end = end if end is not None else snapshot.origin
        self._depth = dict(zip(map(id, events), span_depths(events), strict=True))
        self.labels = thread_labels(snapshot)
        self._colour = {
            tid: _THREAD_COLOURS[i % len(_THREAD_COLOURS)] for i, tid in enumerate(self.labels)
        }
        widest = max((len(label) for label in self.labels.values()), default=6)
        self._width = min(max(widest, 6), _MAX_THREAD_WIDTH)

    def time(self, timestamp: int) -> str:
        """The time column for ``timestamp``."""
        if self.clock == "monotonic":
            return f"{timestamp:>20}"
        if self.clock == "wall":
            return wall_clock(self.snapshot, timestamp).strftime("%H:%M:%S.%f")
        return f"{(timestamp - self.end) / 1e9:+.6f}".rjust(12)

    def time_legend(self) -> str:
        """One line saying what the time column is."""
        if self.clock == "monotonic":
            return "time: monotonic ns"
        if self.clock == "wall":
            return "time: wall clock, UTC"
        return "time: seconds relative to the origin (" + self.origin_name() + ")"

    def origin_name(self) -> str:
        """What time zero is: the failure, or the moment of the snapshot."""
        if self.snapshot.origin_ns is not None and "failure_ns" in self.snapshot.metadata:
            return "the failure"
        return "the snapshot"

    def _thread(self, thread_id: int, name: str) -> str:
        label = self.labels.get(thread_id) or printable(name)
        if len(label) > self._width:
            label = label[: self._width - 1] + "…"
        return self.style.paint(label.ljust(self._width), self._colour.get(thread_id, ""))

    def event_line(self, ev: Event) -> str:
        """One event as a line."""
        st = self.style
        depth = self._depth.get(id(ev), 0)
        error = ev.kind == "exit" and ev.fields.get("exception") is not None
        detail = describe_fields(ev)
        colour = _RED if error else _KIND_COLOURS.get(ev.kind, "")
        marker = st.paint(st.marker(ev.kind), colour)
        name = printable(ev.name)
        if ev.kind != "exit":
            name = st.paint(name, _BOLD)
        body = f"{_INDENT * depth}{marker} {name}"
        if detail:
            body += "  " + (st.paint(detail, _RED) if error else detail)
        if ev.kind == "entry":
            where = self.snapshot.sources.get(ev.name)
            if where:
                body += "  " + st.paint(f"@ {printable(where)}", _DIM)
        stamp = st.paint(self.time(ev.timestamp), _DIM)
        return f"{stamp}  {self._thread(ev.thread_id, ev.thread_name)}  {body}"

    def gap_line(self, gap: Gap) -> str:
        """A gap as a line."""
        st = self.style
        text = (
            f"{st.marker('gap')} gap: {format_count(gap.records)} events lost "
            f"({gap.subbufs} sub-buffers skipped, positions {gap.start}..{gap.end - 1}"
            f", channel {printable(gap.channel)})"
        )
        return (
            f"{st.paint(self.time(gap.timestamp), _DIM)}  "
            f"{self._thread(gap.thread_id, gap.thread_name)}  {st.paint(text, _RED, _BOLD)}"
        )

    def lines(self, events: Iterable[Event], gaps: Iterable[Gap] = ()) -> Iterator[str]:
        """Lines for ``events`` (in time order) with ``gaps`` merged in before
        the events they precede."""
        pending = sorted(gaps, key=lambda g: g.timestamp)
        i = 0
        for ev in events:
            while i < len(pending) and pending[i].timestamp <= ev.timestamp:
                yield self.gap_line(pending[i])
                i += 1
            yield self.event_line(ev)
        for gap in pending[i:]:
            yield self.gap_line(gap)


def timeline(
    snapshot: Snapshot,
    events: Iterable[Event] | None = None,
    *,
    style: Style = PLAIN,
    clock: Clock = "relative",
    gaps: bool = True,
) -> Iterator[str]:
    """Lines for ``events`` of ``snapshot`` (all by default), gaps included."""
    tl = Timeline(snapshot, style=style, clock=clock)
    shown = list(snapshot.events if events is None else events)
    found: list[Gap] = []
    if gaps and shown:
        threads = {ev.thread_id for ev in shown}
        lo, hi = shown[0].timestamp, shown[-1].timestamp
        found = [
            g for g in find_gaps(snapshot) if g.thread_id in threads and lo <= g.timestamp <= hi
        ]
    return tl.lines(shown, found)


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, right: Iterable[int] = ()
) -> list[str]:
    """Rows as aligned text columns under ``headers``; columns in ``right``
    are right-aligned (numbers). Cells are made terminal-safe."""
    text_rows = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    right_set = set(right)

    def line(cells: Sequence[str]) -> str:
        out = [
            cell.rjust(widths[i]) if i in right_set else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(out).rstrip()

    return [line(list(headers)), *(line(row) for row in text_rows)]


_HIDDEN_CONTEXT = frozenset({"pid", "thread_id", "thread_name"})


def format_duration(ns: int) -> str:
    """``850 ns``, ``12.3 us``, ``4.56 ms``, ``1.23 s``."""
    if ns < 1_000:
        return f"{ns} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f} us"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def format_ran(ran_ns: int, wall_ns: int, suspensions: int, unknown_ns: int = 0) -> str:
    """``ran 1.20 ms of 60.3 ms, suspended 3 times``: a span that suspended
    (see :func:`instrument.model.activity`); ``ran ≥`` when part of it is
    older than the snapshot's records."""
    times = "once" if suspensions == 1 else f"{suspensions} times"
    at_least = "≥" if unknown_ns else ""
    return (
        f"ran {at_least}{format_duration(ran_ns)} of {format_duration(wall_ns)}, suspended {times}"
    )


def _describe_record(event: Event) -> str | None:
    """A ``log`` or ``warning`` event (the logging bridge) as its line of
    text, as a log file would show it, a ``test.failure`` or
    ``exception.handled`` event as ``Type: message (at file:line)``;
    ``None`` for other events."""
    fields = event.fields
    if event.name == "log" and "message" in fields and "level" in fields:
        text = f"{fields['level']} {fields.get('logger', '')}: {fields['message']}"
        rest = {k: v for k, v in fields.items() if k not in ("level", "logger", "message")}
    elif event.name == "warning" and "message" in fields and "category" in fields:
        text = f"{fields['category']}: {fields['message']}"
        if "where" in fields:
            text += f" (at {fields['where']})"
        rest = {k: v for k, v in fields.items() if k not in ("category", "message", "where")}
    elif event.name == "test.failure" and "type" in fields:
        message = str(fields.get("message") or "").strip()
        first = message.splitlines()[0] if message else ""
        text = f"{fields['type']}: {first}{' …' if chr(10) in message else ''}"
        if "where" in fields:
            text += f" (at {fields['where']})"
        rest = {k: v for k, v in fields.items() if k not in ("type", "message", "where")}
    elif event.name == "exception.handled" and "type" in fields:
        text = f"swallowed {fields['type']}: {fields.get('message', '')}"
        if "where" in fields:
            text += f" (at {fields['where']}"
            text += f" in {fields['function']})" if "function" in fields else ")"
        rest = {
            k: v for k, v in fields.items() if k not in ("type", "message", "where", "function")
        }
    else:
        return None
    extra = " ".join(f"{key}={format_value(value)}" for key, value in rest.items())
    return f"{text}  {extra}" if extra else text


_RECORDS = frozenset({"log", "warning", "test.failure", "exception.handled"})


def describe_fields(event: Event) -> str:
    """The fields (and dynamic context) of ``event`` as ``key=value`` text
    (terminal-safe: :func:`printable`); a ``log`` or ``warning`` event as
    its log line."""
    if event.kind == "event" and event.name in _RECORDS:
        record = _describe_record(event)
        if record is not None:
            return printable(record)
    fields = dict(event.fields)
    parts: list[str] = []
    if event.kind == "exit":
        duration = fields.pop("duration_ns", None)
        exception = fields.pop("exception", None)
        message = fields.pop("message", None)
        if exception is not None:
            parts.append(f"raised {exception}: {message}" if message else f"raised {exception}")
        if isinstance(duration, int):
            parts.append(f"({format_duration(duration)})")
    elif event.kind in ("suspend", "resume"):
        since = fields.pop("duration_ns", None)  # since its entry
        if isinstance(since, int):
            parts.append(f"(+{format_duration(since)} since its entry)")
    parts.extend(f"{key}={format_value(value)}" for key, value in fields.items())
    parts.extend(
        f"[{key}={format_value(value)}]"
        for key, value in event.context.items()
        if key not in _HIDDEN_CONTEXT and value is not None
    )
    return printable("  ".join(parts) if event.kind == "exit" else " ".join(parts))
