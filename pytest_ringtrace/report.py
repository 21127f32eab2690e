"""The terminal section of a snapshot: a header of counts, the files, the view.

The section is titled ``ringtrace <phase>`` so that ``--show-capture=no``
hides it like any captured output. The body is the failure view
(:mod:`instrument.view.tree`: the failing thread's calls as a tree leading
to the failure, the other threads that overlapped, other phases apart, in
about 40 lines), or with ``--ringtrace-view=flat`` the last N events, one
line each. Times are relative to the snapshot's origin (the failure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from instrument import Event, Snapshot
from instrument.view.processes import (
    process_lines,
    silent_children_hint,
    stream_pids,
    thread_label,
)
from instrument.view.render import _BOLD, _RED, _YELLOW, PLAIN, Style, describe_fields, printable
from instrument.view.tree import FAILURE, Filters, failure_text, failure_tree

__all__ = ["Filters", "section_text", "section_title", "summary"]

#: Lines the tree view aims to fit in.
TREE_LINES = 40

MAX_LINE = 220
_MARKS = {"entry": "->", "exit": "<-", "event": " *"}


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def section_title(phase: str) -> str:
    """``ringtrace call``: ``--show-capture`` filters sections by title."""
    return f"ringtrace {phase}"


def _thread_labels(snapshot: Snapshot, events: Sequence[Event]) -> dict[tuple[int, str], str]:
    """A label per (thread id, name) shown; the id is added where names repeat,
    and a child process's threads are labelled ``[pid] name``."""
    threads = {(ev.thread_id, ev.thread_name) for ev in events}
    pids = stream_pids(snapshot)
    labels = {(tid, name): thread_label(pids.get(tid), name) for tid, name in threads}
    count: dict[str, int] = {}
    for label in labels.values():
        count[label] = count.get(label, 0) + 1
    return {
        key: printable(label if count[label] == 1 else f"{label}#{key[0] % 100_000}")
        for key, label in labels.items()
    }


def truncated_threads(snapshot: Snapshot) -> list[str]:
    """Threads whose ring may not reach back to the start of the window.

    A ring that overwrote events and whose oldest held sub-buffer is still
    inside the window has lost events of the window (or is right at its edge).
    """
    if snapshot.since is None:
        return []
    return [
        info.thread_name
        for info in snapshot.streams
        if info.overwritten > 0 and info.first_position == info.overwritten
    ]


def section_text(
    snapshot: Snapshot,
    *,
    counts: Mapping[str, int],
    paths: Mapping[str, str],
    tail: int,
    problems: Sequence[str] = (),
    style: Style = PLAIN,
    failure_ns: int | None = None,
    view: str = "tree",
    phase: str | None = None,
    filters: Filters | None = None,
) -> str:
    """The text under ``---- ringtrace <phase> ----``.

    ``counts`` is :func:`summary` of the snapshot; ``paths`` the files
    written by format, as they are to be shown (each listed once);
    ``problems`` lines about what could not be done (e.g. a format that
    failed), shown rather than hidden. ``style`` colours the header, notes
    and problems (the plugin passes colour exactly when pytest colours its
    output). Time zero is the snapshot's origin (``failure_ns`` only for a
    snapshot without one). ``view`` is ``tree`` (the failure view; ``tail``
    0 leaves it out) or ``flat`` (the last ``tail`` events); ``phase`` the
    phase that failed (its events make the tree); ``filters`` the thread
    and name globs.
    """
    origin = snapshot.origin if snapshot.origin_ns is not None or failure_ns is None else failure_ns
    events = snapshot.events
    threads = counts["threads"]
    lost = f"{counts['lost']:,} lost events"
    lines = [
        style.paint(
            f"{_count(counts['events'], 'event')} from {_count(threads, 'thread')}, ", _BOLD
        )
        + (style.paint(lost, _RED, _BOLD) if counts["lost"] else style.paint(lost, _BOLD))
        + style.paint(
            f", {counts['skipped_subbufs']:,} skipped sub-buffers"
            f" (window: {'this test' if snapshot.since is not None else 'session'})",
            _BOLD,
        )
    ]
    for index, path in enumerate(dict.fromkeys(paths.values())):
        lines.append(f"{'snapshot:' if index == 0 else '':<9} {printable(path)}")

    def note(text: str) -> None:
        lines.append(style.paint(f"note: {text}", _YELLOW))

    if snapshot.dropped:
        note(f"full discard-mode rings dropped {snapshot.dropped:,} events")
    if snapshot.skipped:
        note(
            f"{snapshot.skipped:,} events lost in {snapshot.skipped_subbufs:,} sub-buffers "
            "overwritten while being read"
        )
    short = truncated_threads(snapshot)
    if short:
        names = printable(", ".join(short[:5]))
        note(
            f"the ring of {names}{' and more' if len(short) > 5 else ''} "
            "wrapped during this test: its oldest events are gone "
            "(raise --ringtrace-num-subbuf or --ringtrace-subbuf-size)"
        )
    lines.extend(style.paint(f"problem: {printable(p)}", _RED) for p in problems)
    lines.extend(process_lines(snapshot))
    if all(ev.name == FAILURE for ev in events):
        silent = silent_children_hint(snapshot)
        lines.append(
            f"no events recorded in this window: {silent}"
            if silent
            else "no events recorded in this window: is the code under test traced "
            "(@instrument.trace, instrument.event, --ringtrace-instrument)?"
        )
        return "\n".join(lines) + "\n"
    if view == "tree":
        if tail:
            phases = {
                key[: -len("_start_ns")]: value
                for key, value in snapshot.metadata.items()
                if isinstance(key, str) and key.endswith("_start_ns") and type(value) is int
            }
            failed = any(ev.name == FAILURE for ev in reversed(events))
            lines.append(
                "calls leading to the failure (time relative to the failure; "
                "--ringtrace-view=flat for the last events):"
                if failed
                else "calls of the test (time relative to the end of the phase; "
                "--ringtrace-view=flat for the last events):"
            )
            lines.extend(
                failure_tree(
                    snapshot, budget=TREE_LINES, phases=phases, phase=phase, filters=filters
                )
            )
        return "\n".join(lines) + "\n"
    if filters is not None:
        events = [
            ev
            for ev in events
            if filters.thread_ok(ev.thread_id, ev.thread_name) and filters.name_ok(ev.name)
        ]
    shown = events[-tail:] if tail else []
    if not shown:
        return "\n".join(lines) + "\n"
    which = f"last {len(shown):,} of {len(events):,}" if len(shown) < len(events) else "all"
    lines.append(f"{which} events (time relative to the failure):")
    labels = _thread_labels(snapshot, shown)
    times = [f"{(ev.timestamp - origin) / 1e6:+.3f} ms" for ev in shown]
    time_width = max(map(len, times))
    thread_width = min(max(map(len, labels.values())), 24)
    for ev, when in zip(shown, times, strict=True):
        line = (
            f"{when:>{time_width}}  {labels[ev.thread_id, ev.thread_name][:24]:<{thread_width}}  "
        )
        if ev.name == FAILURE:
            lines.append(_cut(line + failure_text(ev.fields)))
            continue
        line += f"{_MARKS.get(ev.kind, ' ?')} {printable(ev.name)}"
        detail = describe_fields(ev)
        if detail:
            line = f"{line}  {detail}"
        lines.append(_cut(line))
    return "\n".join(lines) + "\n"


def _cut(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."


def threads_with_events(snapshot: Snapshot) -> int:
    """Threads with at least one event in the snapshot.

    Counted from the streams, not the events (cheap for a full ring): a
    stream that yielded records has events in the window, since a reader
    keeps a sub-buffer only if its last record is inside it. Thread ids are
    reused after a thread ends, so (id, name) pairs are counted.
    """
    return len(
        {(s.thread_id, s.thread_name) for s in snapshot.streams if s.last_position is not None}
    )


def summary(snapshot: Snapshot) -> dict[str, int]:
    """The counts of the header as plain data (for report attributes)."""
    return {
        "events": len(snapshot.events),
        "threads": threads_with_events(snapshot),
        "lost": snapshot.lost,
        "dropped": snapshot.dropped,
        "skipped": snapshot.skipped,
        "skipped_subbufs": snapshot.skipped_subbufs,
        "overwritten": snapshot.overwritten,
    }
