"""Figures about a snapshot: per-thread counts and loss, frequent events,
slowest spans.

Spans are paired by identity (:func:`pair_spans`): an exit whose
entry the ring had already overwritten still has its ``duration_ns`` (taken
when the span ended), and an entry without an exit is a span still open
when the snapshot was taken (what a hung program was doing), timed up to the
snapshot. A span that suspended (a generator or coroutine) also has the
time it ran, the sum of its running stretches
(:func:`instrument.model.activity`). Used by ``ringtrace stats``.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from instrument.model import Activity, Event, Snapshot, SpanKey, activity, marks_by_span, span_start

from .render import (
    PLAIN,
    Style,
    format_count,
    format_duration,
    format_fields,
    table,
    thread_labels,
)


@dataclass
class ThreadStats:
    """Counts for one thread, over all its streams (one per channel)."""

    thread_id: int
    thread_name: str
    channels: list[str] = field(default_factory=list)
    alive: bool = False
    entries: int = 0
    exits: int = 0
    points: int = 0
    #: Suspensions and resumptions of generators and coroutines.
    pauses: int = 0
    dropped: int = 0
    skipped: int = 0
    skipped_subbufs: int = 0
    overwritten: int = 0
    gaps: int = 0

    @property
    def events(self) -> int:
        """Events of every kind read from this thread."""
        return self.entries + self.exits + self.points + self.pauses


@dataclass(frozen=True)
class Span:
    """One span (traced call or ``span`` block) found in a snapshot.

    ``start`` is ``None`` when the entry was no longer in the ring;
    ``open`` spans had not ended when the snapshot was taken and
    ``duration_ns`` counts up to that moment. ``ran_ns`` is the time a span
    that suspended ran (``None`` for one that did not: it ran throughout),
    ``suspensions`` how often it suspended.
    """

    name: str
    thread_id: int
    thread_name: str
    start: int | None
    duration_ns: int
    open: bool = False
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    ran_ns: int | None = None
    suspensions: int = 0
    unknown_ns: int = 0


@dataclass
class NameStats:
    """How often one event name occurs: point events and spans.

    ``ran_ns`` is the spans' time running: their duration, less the time
    suspended for those that suspended (``suspended`` of them).
    """

    name: str
    count: int = 0
    spans: int = 0
    total_ns: int = 0
    max_ns: int = 0
    ran_ns: int = 0
    suspended: int = 0


@dataclass
class Stats:
    """Everything ``ringtrace stats`` prints."""

    threads: list[ThreadStats]
    names: list[NameStats]
    spans: list[Span]
    events: int
    lost: int
    dropped: int
    skipped: int
    skipped_subbufs: int
    overwritten: int
    gaps: int


#: A span as found: (duration_ns, exit event or None if open, entry event or None).
Pair = tuple[int, Event | None, Event | None]


def pair_spans(snapshot: Snapshot) -> list[Pair]:
    """Every span of ``snapshot``: ended ones in order of ending, then the
    open ones. An exit pairs with the entry of the same name that began at
    its ``timestamp - duration_ns`` (:func:`span_start`), on any thread, so
    interleaved coroutines pair correctly; an exit without a duration takes
    the most recent open entry of its name on its thread. Plain tuples: a
    snapshot may hold millions."""
    stacks: dict[int, list[Event]] = {}
    by_start: dict[tuple[str, int], list[Event]] = {}
    pairs: list[Pair] = []
    append = pairs.append
    for ev in snapshot.events:
        kind = ev.kind
        if kind == "entry":
            stack = stacks.get(ev.thread_id)
            if stack is None:
                stack = stacks[ev.thread_id] = []
            stack.append(ev)
            by_start.setdefault((ev.name, ev.timestamp), []).append(ev)
        elif kind == "exit":
            entry = None
            start = span_start(ev)
            if start is not None:
                waiting = by_start.get((ev.name, start))
                if waiting:
                    entry = waiting.pop(0)
                    if not waiting:
                        del by_start[(ev.name, start)]
                    own = stacks[entry.thread_id]
                    for i in range(len(own) - 1, -1, -1):
                        if own[i] is entry:
                            del own[i]
                            break
            else:
                stack = stacks.get(ev.thread_id) or []
                for i in range(len(stack) - 1, -1, -1):
                    if stack[i].name == ev.name:
                        entry = stack.pop(i)
                        key = (entry.name, entry.timestamp)
                        by_start[key].remove(entry)
                        if not by_start[key]:
                            del by_start[key]
                        break
            duration = ev.fields.get("duration_ns")
            if type(duration) is not int:
                duration = ev.timestamp - entry.timestamp if entry is not None else 0
            append((duration, ev, entry))
    for stack in stacks.values():
        for entry in stack:
            append((max(snapshot.taken_at - entry.timestamp, 0), None, entry))
    return pairs


def pair_activity(
    pair: Pair, marks: dict[SpanKey, list[tuple[int, str]]], taken_at: int
) -> Activity | None:
    """When the span of ``pair`` ran and waited (``None``: it never
    suspended, or its records do not tell; see
    :func:`instrument.model.activity`). ``marks`` is
    :func:`~instrument.model.marks_by_span` of the snapshot."""
    if not marks:
        return None
    duration, exit_, entry = pair
    if entry is not None:
        start = entry.timestamp
    else:
        assert exit_ is not None
        start = exit_.timestamp - duration
    found = marks.get((entry.name if entry is not None else exit_.name, start))  # type: ignore[union-attr]
    if not found:
        return None
    end = exit_.timestamp if exit_ is not None else max(taken_at, start)
    return activity(start, end, found, entry is not None)


def to_span(pair: Pair, act: Activity | None = None) -> Span:
    """The :class:`Span` of a pair found by :func:`pair_spans` (``act``:
    its :func:`pair_activity`)."""
    duration, exit_, entry = pair
    ran = None if act is None else act.ran_ns
    suspensions = 0 if act is None else act.suspensions
    unknown = 0 if act is None else act.unknown_ns
    if exit_ is None:
        assert entry is not None
        return Span(
            entry.name,
            entry.thread_id,
            entry.thread_name,
            entry.timestamp,
            duration,
            open=True,
            fields=dict(entry.fields),
            ran_ns=ran,
            suspensions=suspensions,
            unknown_ns=unknown,
        )
    fields = exit_.fields
    error = None
    if fields.get("exception") is not None:
        error = f"{fields['exception']}: {fields.get('message', '')}".rstrip(": ")
    return Span(
        exit_.name,
        exit_.thread_id,
        exit_.thread_name,
        entry.timestamp if entry is not None else exit_.timestamp - duration,
        duration,
        fields=dict(entry.fields) if entry is not None else {},
        error=error,
        ran_ns=ran,
        suspensions=suspensions,
        unknown_ns=unknown,
    )


def compute(snapshot: Snapshot, *, top: int = 10) -> Stats:
    """The figures of ``snapshot``; ``top`` bounds the name and span lists."""
    threads: dict[int, ThreadStats] = {}
    for info in snapshot.streams:
        ts = threads.setdefault(info.thread_id, ThreadStats(info.thread_id, info.thread_name))
        if info.channel not in ts.channels:
            ts.channels.append(info.channel)
        ts.alive = ts.alive or info.alive
        ts.dropped += info.dropped
        ts.skipped += info.skipped
        ts.skipped_subbufs += info.skipped_subbufs
        ts.overwritten += info.overwritten
        ts.gaps += len(info.gaps)
    names_of = {ev.thread_id: ev.thread_name for ev in snapshot.events}
    for (tid, kind), n in Counter((ev.thread_id, ev.kind) for ev in snapshot.events).items():
        ts = threads.setdefault(tid, ThreadStats(tid, names_of[tid]))
        if kind == "entry":
            ts.entries += n
        elif kind == "exit":
            ts.exits += n
        elif kind == "suspend" or kind == "resume":
            ts.pauses += n
        else:
            ts.points += n

    pairs = pair_spans(snapshot)
    marks = marks_by_span(snapshot.events)
    taken_at = snapshot.taken_at
    names: dict[str, NameStats] = {}
    points = Counter(ev.name for ev in snapshot.events if ev.kind == "event")
    for name, count in points.items():
        names[name] = NameStats(name, count=count)
    for pair in pairs:
        duration, exit_, entry = pair
        name = exit_.name if exit_ is not None else entry.name  # type: ignore[union-attr]
        ns = names.get(name)
        if ns is None:
            ns = names[name] = NameStats(name)
        ns.count += 1
        ns.spans += 1
        ns.total_ns += duration
        if duration > ns.max_ns:
            ns.max_ns = duration
        act = pair_activity(pair, marks, taken_at) if marks else None
        if act is None:
            ns.ran_ns += duration
        else:
            ns.ran_ns += act.ran_ns
            ns.suspended += 1
    frequent = sorted(names.values(), key=lambda n: (-n.count, n.name))[:top]
    slowest = [
        to_span(p, pair_activity(p, marks, taken_at))
        for p in heapq.nlargest(top, pairs, key=itemgetter(0))
    ]
    return Stats(
        threads=sorted(threads.values(), key=lambda t: -t.events),
        names=frequent,
        spans=slowest,
        events=len(snapshot.events),
        lost=snapshot.lost,
        dropped=snapshot.dropped,
        skipped=snapshot.skipped,
        skipped_subbufs=snapshot.skipped_subbufs,
        overwritten=snapshot.overwritten,
        gaps=sum(len(s.gaps) for s in snapshot.streams),
    )


def render(stats: Stats, snapshot: Snapshot, *, style: Style = PLAIN) -> list[str]:
    """``stats`` as text: a totals line and three tables."""
    labels = thread_labels(snapshot)
    c = format_count
    lines = [
        f"{c(stats.events)} events in {len(stats.threads)} threads; "
        f"lost {c(stats.lost)} (dropped {c(stats.dropped)}, skipped {c(stats.skipped)} "
        f"in {c(stats.skipped_subbufs)} sub-buffers), {c(stats.gaps)} gaps, "
        f"{c(stats.overwritten)} overwritten",
        "",
        style.paint("threads", "\x1b[1m"),
    ]
    pauses = any(t.pauses for t in stats.threads)  # suspensions and resumptions
    lines += table(
        (
            "thread",
            "id",
            "channels",
            "events",
            "entries",
            "exits",
            "points",
            *(("suspend/resume",) if pauses else ()),
            "dropped",
            "skipped",
            "overwritten",
            "gaps",
            "state",
        ),
        (
            (
                labels.get(t.thread_id, t.thread_name),
                t.thread_id,
                ",".join(t.channels),
                c(t.events),
                c(t.entries),
                c(t.exits),
                c(t.points),
                *((c(t.pauses),) if pauses else ()),
                c(t.dropped),
                f"{c(t.skipped)} ({t.skipped_subbufs} sb)",
                c(t.overwritten),
                t.gaps,
                "alive" if t.alive else "ended",
            )
            for t in stats.threads
        ),
        right=range(1, 12 if pauses else 11),
    )
    lines += ["", style.paint("most frequent events", "\x1b[1m")]
    # "ran": the spans' running time, for names whose spans suspended
    ran = any(n.suspended for n in stats.names)
    lines += table(
        ("name", "count", "spans", "total", "max") + (("ran",) if ran else ()),
        (
            (
                n.name,
                c(n.count),
                c(n.spans),
                format_duration(n.total_ns) if n.spans else "",
                format_duration(n.max_ns) if n.spans else "",
            )
            + ((format_duration(n.ran_ns) if n.suspended else "",) if ran else ())
            for n in stats.names
        ),
        right=range(1, 6 if ran else 5),
    )
    lines += ["", style.paint("slowest spans", "\x1b[1m")]
    if stats.spans:
        ran = any(s.ran_ns is not None for s in stats.spans)
        lines += table(
            ("duration",) + (("ran",) if ran else ()) + ("name", "thread", "state", "fields"),
            (
                (format_duration(s.duration_ns),)
                + ((_ran(s),) if ran else ())
                + (
                    s.name,
                    labels.get(s.thread_id, s.thread_name),
                    "open" if s.open else ("error" if s.error else "done"),
                    "  ".join(x for x in (format_fields(s.fields), s.error or "") if x),
                )
                for s in stats.spans
            ),
            right=(0, 1) if ran else (0,),
        )
    else:
        lines.append("(no spans)")
    return lines


def _ran(span: Span) -> str:
    """The "ran" cell of a span: its running time and suspensions, empty
    for a span that never suspended."""
    if span.ran_ns is None:
        return ""
    times = "once" if span.suspensions == 1 else f"{span.suspensions}x"
    at_least = "≥" if span.unknown_ns else ""
    return f"{at_least}{format_duration(span.ran_ns)} (suspended {times})"
