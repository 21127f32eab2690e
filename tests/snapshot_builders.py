"""Hand-built snapshot parts for format tests: edge cases a recording cannot
produce on demand (odd values, gaps at chosen places, drops)."""

from __future__ import annotations

from typing import Any

from instrument import Event, StreamInfo


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
