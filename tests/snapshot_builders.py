"""Hand-built snapshot parts for format tests: edge cases a recording cannot
produce on demand (odd values, gaps at chosen places, drops)."""

from __future__ import annotations

import math
from typing import Any

from instrument import Event, Snapshot, StreamInfo


def ev(ts: int, name: str, kind: str = "event", tid: int = 7, **fields: Any) -> Event:
    """An event at ``ts`` (also its position) on thread ``t<tid>``, channel main."""
    return Event(ts, name, kind, tid, f"t{tid}", fields, {"pid": 42}, "main", ts)


def stream_info(tid: int, subbuf_size: int, **kw: Any) -> StreamInfo:
    """A live overwrite-mode stream of channel main on thread ``t<tid>``; ``kw``
    sets the positions, gaps and loss counters."""
    base: dict[str, Any] = dict(
        channel="main",
        thread_id=tid,
        thread_name=f"t{tid}",
        alive=True,
        mode="overwrite",
        subbuf_size=subbuf_size,
        num_subbuf=4,
    )
    base.update(kw)
    return StreamInfo(**base)


def mixed_snapshot() -> Snapshot:
    """A snapshot exercising every path of a writer: two channels, six streams
    (a thread id reused by a later thread, a child process's stream, one with
    losses and no event), interleaved by time; gaps leading, inside, trailing
    and inside a sub-buffer; drops; fields of every kind (ints of both signs
    and 64-bit, too big for 64 bits, floats with infinity, bools, None,
    strings with NUL, a lone surrogate and non-ASCII, objects), a field whose
    values mix types, the same names in another order, no fields, dynamic
    context keys present on some events only. Deterministic: no recording."""
    main = {"pid": 42}
    task = {"pid": 42, "task": "Task-1"}
    Row = tuple[str, str, dict[str, Any], dict[str, Any], int]
    work: list[Row] = [("work", "entry", {"n": p, "x": p / 4, "flag": p % 2 == 0}, main, p)
                       for p in range(8)]  # fmt: skip
    for p in [12, 13, 14, 15, 16, 18, 19]:  # sub-buffer 2 skipped, position 17 abandoned
        fields = {"duration_ns": 100 + p, "result": None if p % 3 else "ok\x00nul",
                  "big": (1 << 63) + p}  # fmt: skip
        work.append(("work", "exit", fields, task if p % 2 else main, p))
    for p in [20, 21, 22, 23]:
        work.append(("gen", ["suspend", "resume"][p % 2], {"duration_ns": 5, "value": [p, "é日本"]},
                     main, p))  # fmt: skip
    for p in [24, 25]:
        fields = {"v": [1, 2.5][p - 24], "huge": 1 << 70, "neg": -(1 << 63), "s": "\ud800 lone",
                  "a-b": p, "a_b": -p, "event": math.inf, "obj": object}  # fmt: skip
        work.append(("mixed", "event", fields, main, p))
    work.append(("mixed", "event", {"a_b": 1, "a-b": True, "v": -5}, main, 26))
    work.append(("nofields", "event", {}, main, 27))
    old: list[Row] = [("old.op", "event", {"i": p, "name": f"o{p}"}, main, p) for p in range(6)]
    new: list[Row] = [("new.op", "event", {"i": -p, "name": f"n{p % 2}", "empty": ""}, main, p)
                      for p in range(4, 10)]  # fmt: skip
    db: list[Row] = [
        ("db.query", "entry", {"sql": "select 1"}, {"pid": 42, "conn": p}, p)
        if p % 2 == 0
        else ("db.query", "exit", {"duration_ns": 3, "rows": p}, {"pid": 42, "conn": p}, p)
        for p in range(6, 12)
    ]
    child: list[Row] = [("child.step", "event", {"k": p, "k2": {"nested": p}}, {"pid": 4321}, p)
                        for p in range(3)]  # fmt: skip
    streams = [
        stream_info(7, 4, thread_name="MainThread", channel="main", num_subbuf=8, produced=32,
                    first_position=0, last_position=27, gaps=[(8, 12), (17, 18), (28, 32)],
                    context={"pid": 42, "thread_id": 7, "thread_name": "MainThread"}),
        stream_info(9, 4, thread_name="old", channel="main", alive=False, mode="discard",
                    produced=20, first_position=0, last_position=5, dropped=3),
        stream_info(9, 4, thread_name="new", channel="main", produced=10, first_position=4,
                    last_position=9, gaps=[(0, 4)]),
        stream_info(7, 2, thread_name="MainThread", channel="db", num_subbuf=8, produced=12,
                    first_position=6, last_position=11, gaps=[(2, 6)]),
        stream_info(1234, 4, thread_name="MainThread", channel="main", alive=False, produced=3,
                    first_position=0, last_position=2,
                    context={"pid": 4321, "command": "python -c 'work()'"}),
        stream_info(11, 4, thread_name="quiet", channel="main", alive=False, mode="discard",
                    produced=16, gaps=[(8, 16)], dropped=5),
    ]  # fmt: skip
    # Old's events all come before new's (the thread id was reused); the
    # others interleave with them, round robin.
    lanes = [(work, streams[0]), (old + new, None), (db, streams[3]), (child, streams[4])]
    events: list[Event] = []
    ts = 1_700_000_000_000
    while any(rows for rows, _ in lanes):
        for rows, info in lanes:
            if rows:
                name, kind, fields, ctx, pos = rows.pop(0)
                if info is None:
                    info = streams[1] if name == "old.op" else streams[2]
                ts += 1000 + len(events) * 7
                events.append(Event(ts, name, kind, info.thread_id, info.thread_name, fields, ctx,
                                    info.channel, pos))  # fmt: skip
    return Snapshot(events, streams, clock_offset_ns=1_699_998_300_123_456_789,
                    taken_at=ts + 10_000, pid=42,
                    metadata={"test": "tests/test_x.py::t", "events": 3})  # fmt: skip
