"""Child processes in a snapshot: how every text view names and lists them.

A snapshot that holds child processes' events (``instrument.children``)
marks each child stream with its process's ``pid`` and ``command`` in its
context, each child event with ``pid`` in its context, and lists the
children in ``metadata["processes"]``. The views group by process: a child's
threads are labelled ``[pid] name``, and the processes are listed with their
command lines.
"""

from __future__ import annotations

from typing import Any

from ..model import Event, Snapshot, StreamInfo
from .render import printable


def child_pid(snapshot: Snapshot, context: dict[str, Any]) -> int | None:
    """The child process an event's or stream's ``context`` belongs to, or
    ``None`` for the snapshot's own process."""
    pid = context.get("pid")
    if isinstance(pid, int) and pid != snapshot.pid and "command" in context:
        return pid
    return None


def event_pid(snapshot: Snapshot, event: Event) -> int | None:
    """The child process ``event`` was recorded in, or ``None``."""
    pid = event.context.get("pid")
    return (
        pid if isinstance(pid, int) and pid != snapshot.pid and pid in _children(snapshot) else None
    )


def _children(snapshot: Snapshot) -> set[int]:
    found = {
        pid
        for pid in (child_pid(snapshot, info.context) for info in snapshot.streams)
        if pid is not None
    }
    found.update(int(p["pid"]) for p in processes(snapshot))
    return found


def processes(snapshot: Snapshot) -> list[dict[str, Any]]:
    """The child processes listed in the snapshot's metadata."""
    listed = snapshot.metadata.get("processes")
    if not isinstance(listed, list):
        return []
    return [p for p in listed if isinstance(p, dict) and isinstance(p.get("pid"), int)]


def thread_label(pid: int | None, name: str) -> str:
    """A thread's label: its name, after ``[pid]`` in a child process."""
    return name if pid is None else f"[{pid}] {name}"


def stream_pids(snapshot: Snapshot) -> dict[int, int]:
    """Child thread id -> child pid, from the streams."""
    out: dict[int, int] = {}
    for info in snapshot.streams:
        pid = child_pid(snapshot, info.context)
        if pid is not None:
            out[info.thread_id] = pid
    return out


def process_label(snapshot: Snapshot, info: StreamInfo) -> str | None:
    """``pid N: command`` for a child's stream, ``None`` for the snapshot's own."""
    pid = child_pid(snapshot, info.context)
    if pid is None:
        return None
    return f"pid {pid}: {info.context.get('command', '?')}"


def process_lines(snapshot: Snapshot) -> list[str]:
    """The children that ran in the window, one line each (terminal-safe)."""
    listed = processes(snapshot)
    if not listed:
        return []
    lines = ["child processes in this window:"]
    for proc in listed:
        how = {"fork": "forked", "exec": "started"}.get(str(proc.get("how")), str(proc.get("how")))
        name = f" {proc['name']}" if proc.get("name") else ""
        state = "running" if proc.get("alive") else "ended"
        count = proc.get("events", 0)
        lines.append(
            printable(
                f"  pid {proc['pid']}{name} ({how} by {proc.get('ppid')}, {state}, "
                f"{count} event{'s' if count != 1 else ''}): {proc.get('command', '?')}"
            )
        )
    return lines


def silent_children_hint(snapshot: Snapshot) -> str | None:
    """For an empty snapshot: the children that ran and recorded nothing."""
    silent = [p for p in processes(snapshot) if not p.get("events")]
    if not silent:
        return None
    pids = ", ".join(str(p["pid"]) for p in silent[:8]) + (", ..." if len(silent) > 8 else "")
    n = len(silent)
    return (
        f"{n} child process{'es' if n != 1 else ''} ran in this window (pid {pids}) and recorded "
        "nothing: is the code they run traced (--ringtrace-instrument, @instrument.trace)?"
    )
