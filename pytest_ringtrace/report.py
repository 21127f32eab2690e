"""The terminal section of a snapshot: a header of counts, the files, the tail.

The section is titled ``ringtrace <phase>`` so that ``--show-capture=no``
hides it like any captured output. Only the last N events are formatted, so
the cost does not grow with the size of the rings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from instrument import Event, Snapshot
from instrument.view.render import _BOLD, _RED, _YELLOW, PLAIN, Style, describe_fields, printable

MAX_LINE = 220
_MARKS = {"entry": "->", "exit": "<-", "event": " *"}


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def section_title(phase: str) -> str:
    """``ringtrace call``: ``--show-capture`` filters sections by title."""
    return f"ringtrace {phase}"


def _thread_labels(events: Sequence[Event]) -> dict[tuple[int, str], str]:
    """A label per (thread id, name) shown; the id is added where names repeat."""
    threads = {(ev.thread_id, ev.thread_name) for ev in events}
    count: dict[str, int] = {}
    for _tid, name in threads:
        count[name] = count.get(name, 0) + 1
    return {
        (tid, name): printable(name if count[name] == 1 else f"{name}#{tid % 100_000}")
        for tid, name in threads
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
    failure_ns: int,
    paths: Mapping[str, str],
    tail: int,
    problems: Sequence[str] = (),
    style: Style = PLAIN,
) -> str:
    """The text under ``---- ringtrace <phase> ----``.

    ``counts`` is :func:`summary` of the snapshot; ``failure_ns``
    (monotonic) is time zero; ``paths`` the files written by format, as
    they are to be shown (each listed once); ``problems`` lines about what
    could not be done (e.g. a format that failed), shown rather than
    hidden. ``style`` colours the header, notes and problems (the plugin
    passes colour exactly when pytest colours its output).
    """
    events = snapshot.events
    threads = counts["threads"]
    lost = f"{counts['lost']:,} lost events"
    lines = [
        style.paint(f"{_count(len(events), 'event')} from {_count(threads, 'thread')}, ", _BOLD)
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
    if not events:
        lines.append(
            "no events recorded in this window: is the code under test traced "
            "(@instrument.trace, instrument.event, --ringtrace-instrument)?"
        )
        return "\n".join(lines) + "\n"
    shown = events[-tail:] if tail else []
    if not shown:
        return "\n".join(lines) + "\n"
    which = f"last {len(shown):,} of {len(events):,}" if len(shown) < len(events) else "all"
    lines.append(f"{which} events (time relative to the failure):")
    labels = _thread_labels(shown)
    times = [f"{(ev.timestamp - failure_ns) / 1e6:+.3f} ms" for ev in shown]
    time_width = max(map(len, times))
    thread_width = min(max(map(len, labels.values())), 24)
    for ev, when in zip(shown, times, strict=True):
        line = (
            f"{when:>{time_width}}  {labels[ev.thread_id, ev.thread_name][:24]:<{thread_width}}  "
            f"{_MARKS.get(ev.kind, ' ?')} {printable(ev.name)}"
        )
        detail = describe_fields(ev)
        if detail:
            line = f"{line}  {detail}"
        if len(line) > MAX_LINE:
            line = line[: MAX_LINE - 3] + "..."
        lines.append(line)
    return "\n".join(lines) + "\n"


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
