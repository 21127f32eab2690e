"""Reading child processes' shared streams into a snapshot.

The parent of a recording session reads the session directory (see
:mod:`instrument.childstart`): every ``stream-*.ring`` file (one per child
thread and channel, :mod:`instrument.shared`) and every ``proc-*.json``
file (one per child process). :func:`merge_children` adds their events in
a window to a snapshot, each child stream with its process's identity in
its context (``pid``, ``ppid``, ``command``) and each child event with
``pid`` in its context, and lists the processes in
``snapshot.metadata["processes"]``. A child is never stopped nor waited for;
one that died contributes what its files hold.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
from typing import Any

from .model import Event, Snapshot, StreamInfo
from .shared import SharedFileError, read_shared
from .stream import EVENT
from .values import Redactor

#: A command line is shown up to this many characters.
MAX_COMMAND = 160


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def command_text(argv: list[str]) -> str:
    """A command line as one bounded line of text."""
    text = shlex.join(argv) if argv else "?"
    return text if len(text) <= MAX_COMMAND else text[: MAX_COMMAND - 1] + "…"


def read_processes(directory: str) -> dict[int, dict[str, Any]]:
    """The child processes that announced themselves in ``directory``."""
    found: dict[int, dict[str, Any]] = {}
    for path in glob.glob(os.path.join(directory, "proc-*.json")):
        try:
            with open(path) as f:
                info = json.load(f)
            found[int(info["pid"])] = info
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being replaced right now, or not ours
    return found


def _fields(raw: Any, ts: int, redactor: Redactor, limit: int) -> dict[str, Any]:
    if raw is None:
        return {}
    if type(raw) is int:
        return {"duration_ns": ts - raw}
    if isinstance(raw, dict):
        return redactor.plain_fields(raw, limit)
    return {"value": raw}


def merge_children(
    snapshot: Snapshot,
    directory: str,
    since: int | None,
    *,
    redactor: Redactor | None = None,
    limit: int = 512,
) -> int:
    """Add the events of ``directory``'s child streams at or after ``since``
    to ``snapshot``; returns how many were added.

    Sets ``snapshot.metadata["processes"]``: the children that ran in the
    window (started in it, or with events in it), each ``{pid, ppid,
    command, how, name, alive, events}``.
    """
    redactor = redactor or Redactor()
    procs = read_processes(directory)
    me = os.getpid()
    added: list[Event] = []
    counts: dict[int, int] = {}
    alive: dict[int, bool] = {}
    for path in sorted(glob.glob(os.path.join(directory, "stream-*.ring"))):
        try:
            read = read_shared(path, since)
        except (OSError, SharedFileError, ValueError):
            continue
        head = read.header
        pid = int(head.get("pid", 0))
        if pid == me:
            continue
        if pid not in alive:
            alive[pid] = process_alive(pid)
        proc = procs.get(pid, {})
        records = read.records
        if since is not None:
            records = [r for r in records if r[1][0] >= since]
        if not records and not read.gaps:
            continue
        tid, tname, channel = int(head["thread_id"]), str(head["thread_name"]), str(head["channel"])
        context = {"pid": pid}
        subbuf = int(head.get("subbuf_size") or 1)
        info = StreamInfo(
            channel=channel,
            thread_id=tid,
            thread_name=tname,
            alive=alive[pid],
            mode="overwrite",
            subbuf_size=subbuf,
            num_subbuf=max(int(head["slots"]) // subbuf, 1),
            produced=read.produced,
            first_position=records[0][0] if records else None,
            last_position=records[-1][0] if records else None,
            gaps=read.gaps,
            overwritten=read.begin,
            context={
                "pid": pid,
                "ppid": proc.get("ppid"),
                "command": command_text(proc.get("command") or []),
                "thread_id": tid,
                "thread_name": tname,
            },
        )
        snapshot.streams.append(info)
        for pos, rest in records:
            ts, name = rest[0], rest[1]
            kind = rest[3] if len(rest) > 3 else EVENT
            added.append(
                Event(
                    ts,
                    name,
                    kind,
                    tid,
                    tname,
                    _fields(rest[2], ts, redactor, limit),
                    context,
                    channel,
                    pos,
                )
            )
        counts[pid] = counts.get(pid, 0) + len(records)
    if added:
        snapshot.events.extend(added)
        snapshot.events.sort(key=lambda ev: ev.timestamp)
    listed = []
    for pid, proc in sorted(procs.items(), key=lambda item: item[1].get("start_ns", 0)):
        started = since is None or int(proc.get("start_ns", 0)) >= since
        if pid == me or not (started or counts.get(pid)):
            continue
        if not counts.get(pid) and _helper(proc.get("command") or []):
            continue
        listed.append(
            {
                "pid": pid,
                "ppid": proc.get("ppid"),
                "command": command_text(proc.get("command") or []),
                "how": proc.get("how"),
                "name": proc.get("name"),
                "alive": alive[pid] if pid in alive else process_alive(pid),
                "events": counts.get(pid, 0),
            }
        )
    snapshot.metadata["processes"] = listed
    return len(added)


#: multiprocessing's own helper processes: children of the session, but
#: never the code under test; listed only if they recorded something.
_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _helper(argv: list[str]) -> bool:
    return any(helper in arg for arg in argv for helper in _HELPERS)


def prune_ended(directory: str) -> int:
    """Remove the files of children that have ended. Called when a window
    opens: an ended child has no event in it. Returns files removed."""
    removed = 0
    for pid in read_processes(directory):
        if process_alive(pid):
            continue
        paths = glob.glob(os.path.join(directory, f"stream-{pid}-*.ring"))
        for path in [*paths, os.path.join(directory, f"proc-{pid}.json")]:
            try:
                os.unlink(path)
                removed += 1
            except OSError:
                pass
    return removed
