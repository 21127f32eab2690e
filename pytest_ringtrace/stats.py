"""Figures about a snapshot: per-thread counts and loss, frequent events,
slowest spans.

Spans are paired per thread, entry with exit, as a call stack: an exit whose
entry the ring had already overwritten still has its ``duration_ns`` (taken
when the span ended), and an entry without an exit is a span still open
when the snapshot was taken (what a hung program was doing), timed up to the
snapshot. Used by ``ringtrace stats``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from instrument.snapshot import Event, Snapshot

from .render import PLAIN, Style, format_count, format_fields, table, thread_labels
from .report import format_duration


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
    dropped: int = 0
    skipped: int = 0
    skipped_subbufs: int = 0
    overwritten: int = 0
    gaps: int = 0

    @property
    def events(self) -> int:
        """Events of every kind read from this thread."""
        return self.entries + self.exits + self.points


@dataclass(frozen=True)
class Span:
    """One span (traced call or ``span`` block) found in a snapshot.

    ``start`` is ``None`` when the entry was no longer in the ring;
    ``open`` spans had not ended when the snapshot was taken and
    ``duration_ns`` counts up to that moment.
    """

    name: str
    thread_id: int
    thread_name: str
    start: int | None
    duration_ns: int
    open: bool = False
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class NameStats:
    """How often one event name occurs: point events and spans."""

    name: str
    count: int = 0
    spans: int = 0
    total_ns: int = 0
    max_ns: int = 0


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


def pair_spans(snapshot: Snapshot) -> list[Span]:
    """Every span of ``snapshot``, paired per thread, in order of ending."""
    stacks: dict[int, list[Event]] = {}
    spans: list[Span] = []
    for ev in snapshot.events:
        if ev.kind == "entry":
            stacks.setdefault(ev.thread_id, []).append(ev)
        elif ev.kind == "exit":
            stack = stacks.get(ev.thread_id, [])
            entry = None
            for i in range(len(stack) - 1, -1, -1):
                if stack[i].name == ev.name:
                    entry = stack[i]
                    # entries above it lost their exits (a gap): drop them unpaired
                    del stack[i:]
                    break
            spans.append(_closed(ev, entry))
    for stack in stacks.values():
        for entry in stack:
            spans.append(
                Span(
                    entry.name,
                    entry.thread_id,
                    entry.thread_name,
                    entry.timestamp,
                    max(snapshot.taken_at - entry.timestamp, 0),
                    open=True,
                    fields=entry.fields,
                )
            )
    return spans


def _closed(exit_: Event, entry: Event | None) -> Span:
    fields = exit_.fields
    duration = fields.get("duration_ns")
    if not isinstance(duration, int):
        duration = exit_.timestamp - entry.timestamp if entry is not None else 0
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
    for ev in snapshot.events:
        ts = threads.setdefault(ev.thread_id, ThreadStats(ev.thread_id, ev.thread_name))
        if ev.kind == "entry":
            ts.entries += 1
        elif ev.kind == "exit":
            ts.exits += 1
        else:
            ts.points += 1

    spans = pair_spans(snapshot)
    names: dict[str, NameStats] = {}
    points = Counter(ev.name for ev in snapshot.events if ev.kind not in ("entry", "exit"))
    for name, count in points.items():
        names[name] = NameStats(name, count=count)
    for span in spans:
        ns = names.setdefault(span.name, NameStats(span.name))
        ns.count += 1
        ns.spans += 1
        ns.total_ns += span.duration_ns
        ns.max_ns = max(ns.max_ns, span.duration_ns)
    frequent = sorted(names.values(), key=lambda n: (-n.count, n.name))[:top]
    slowest = sorted(spans, key=lambda s: -s.duration_ns)[:top]
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
    lines += table(
        (
            "thread",
            "id",
            "channels",
            "events",
            "entries",
            "exits",
            "points",
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
                c(t.dropped),
                f"{c(t.skipped)} ({t.skipped_subbufs} sb)",
                c(t.overwritten),
                t.gaps,
                "alive" if t.alive else "ended",
            )
            for t in stats.threads
        ),
        right=range(1, 11),
    )
    lines += ["", style.paint("most frequent events", "\x1b[1m")]
    lines += table(
        ("name", "count", "spans", "total", "max"),
        (
            (
                n.name,
                c(n.count),
                c(n.spans),
                format_duration(n.total_ns) if n.spans else "",
                format_duration(n.max_ns) if n.spans else "",
            )
            for n in stats.names
        ),
        right=range(1, 5),
    )
    lines += ["", style.paint("slowest spans", "\x1b[1m")]
    if stats.spans:
        lines += table(
            ("duration", "name", "thread", "state", "fields"),
            (
                (
                    format_duration(s.duration_ns),
                    s.name,
                    labels.get(s.thread_id, s.thread_name),
                    "open" if s.open else ("error" if s.error else "done"),
                    "  ".join(x for x in (format_fields(s.fields), s.error or "") if x),
                )
                for s in stats.spans
            ),
            right=(0,),
        )
    else:
        lines.append("(no spans)")
    return lines
