"""The Chrome Trace Event (Perfetto) format, checked against the Trace Event
Format: valid JSON, known phases with their required members, every ``B``
ended by an ``E`` of the same name on the same pid/tid in order, bars nested
per lane, metadata events naming process and threads, and visible markers for
skipped sub-buffers and dropped events."""

from __future__ import annotations

import contextlib
import enum
import io
import json
import math
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from snapshot_builders import ev, stream_info

import instrument
from instrument import Channel, Event, Recorder, Snapshot, StreamInfo
from instrument.formats import format_names, get_format, json_format, perfetto, write_snapshot

Start = Callable[..., Recorder]
SIZE = 4
PHASES = {"B", "E", "X", "i", "M"}
METADATA_NAMES = {"process_name", "process_labels", "thread_name", "thread_sort_index"}


# -- checking a trace ---------------------------------------------------------------


def load(path: Path | bytes) -> dict[str, Any]:
    """The trace as strict JSON (no NaN or Infinity, which browsers refuse)."""
    raw = path if isinstance(path, bytes) else path.read_bytes()

    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    doc = json.loads(raw, parse_constant=refuse)
    assert isinstance(doc, dict)
    return doc


def check_structure(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Assert the Trace Event Format rules a viewer relies on; return the events."""
    assert set(doc) <= {"traceEvents", "displayTimeUnit", "otherData"}
    assert doc.get("displayTimeUnit", "ms") in ("ms", "ns")
    events = doc["traceEvents"]
    assert isinstance(events, list)
    stacks: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    last_ts: dict[tuple[int, int], float] = {}
    bars: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    named_threads: set[tuple[int, int]] = set()
    used_threads: set[tuple[int, int]] = set()
    for e in events:
        ph = e["ph"]
        assert ph in PHASES, e
        assert type(e["pid"]) is int and 0 <= e["pid"] < 2**32, e
        if "tid" in e:
            assert type(e["tid"]) is int and 0 <= e["tid"] < 2**32, e
        assert isinstance(e["name"], str) and e["name"], e
        if "args" in e:
            assert isinstance(e["args"], dict), e
        if ph == "M":
            assert e["name"] in METADATA_NAMES, e
            if e["name"] == "thread_name":
                assert isinstance(e["args"]["name"], str)
                named_threads.add((e["pid"], e["tid"]))
            continue
        assert isinstance(e["ts"], float | int) and math.isfinite(e["ts"]), e
        assert isinstance(e.get("cat", ""), str)
        if ph == "i":
            assert e["s"] in ("t", "p", "g"), e
            if e["s"] == "t":
                assert "tid" in e
                used_threads.add((e["pid"], e["tid"]))
            continue
        lane = (e["pid"], e["tid"])
        used_threads.add(lane)
        if ph == "X":
            assert e["dur"] >= 0, e
            bars[lane].append((e["ts"], e["ts"] + e["dur"]))
            continue
        # B and E: in time order on their lane, each E ending the innermost B
        assert e["ts"] >= last_ts.get(lane, -math.inf), e
        last_ts[lane] = e["ts"]
        if ph == "B":
            stacks[lane].append(e)
        else:
            assert stacks[lane], f"E without B: {e}"
            begin = stacks[lane].pop()
            assert begin["name"] == e["name"], (begin, e)
            assert e["ts"] >= begin["ts"]
            bars[lane].append((begin["ts"], e["ts"]))
    assert all(not s for s in stacks.values()), f"B without E: {dict(stacks)}"
    assert used_threads <= named_threads, used_threads - named_threads
    assert any(e["ph"] == "M" and e["name"] == "process_name" for e in events)
    for lane, spans in bars.items():  # bars of a lane nest or are disjoint
        open_ends: list[float] = []
        for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
            while open_ends and open_ends[-1] <= start:
                open_ends.pop()
            assert not open_ends or end <= open_ends[-1] + 1e-6, (lane, start, end)
            open_ends.append(end)
    return absolute(doc)


def absolute(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The events with ``ts`` (and ``entry_ts_us``) made absolute monotonic
    microseconds again: the file counts them from ``otherData.origin_ns``."""
    origin_us = doc["otherData"]["origin_ns"] / 1000
    events = doc["traceEvents"]
    for e in events:
        if "ts" in e:
            e["ts"] = round(e["ts"] + origin_us, 3)
        args = e.get("args")
        if isinstance(args, dict) and "entry_ts_us" in args:
            args["entry_ts_us"] = round(args["entry_ts_us"] + origin_us, 3)
    return events


def of(events: list[dict[str, Any]], ph: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in events if e["ph"] == ph and all(e.get(k) == v for k, v in match.items())]


def lanes(events: list[dict[str, Any]]) -> dict[str, int]:
    """Thread name -> tid, from the metadata events."""
    return {e["args"]["name"]: e["tid"] for e in of(events, "M", name="thread_name")}


def markers(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["ph"] == "i" and e.get("cat") == "ringtrace"]


def write(snap: Snapshot) -> list[dict[str, Any]]:
    out = io.BytesIO()
    perfetto.write(snap, out)
    return check_structure(load(out.getvalue()))


# -- snapshots ----------------------------------------------------------------------


def record_threads(start_recording: Start, threads: int = 3) -> Snapshot:
    start_recording(
        Channel("main", subbuf_size=8, num_subbuf=8),
        Channel("db", subbuf_size=SIZE, num_subbuf=2, mode="discard", events=["db.*"]),
    )

    @instrument.trace(fields=["n"], retval=True)
    def handle(n: int) -> int:
        with instrument.span("step", n=n):
            instrument.event("db.query", n=n, ok=True)
            instrument.event("cache.miss", key=f"k{n}")
        if n % 4 == 3:
            raise KeyError(n)
        return n * 2

    def work() -> None:
        for n in range(10):
            with contextlib.suppress(KeyError):
                handle(n)

    workers = [threading.Thread(target=work, name=f"worker-{i}") for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    work()
    return instrument.snapshot()


def info(tid: int = 7, **kw: Any) -> StreamInfo:
    positions: dict[str, Any] = dict(produced=10, first_position=0, last_position=9)
    return stream_info(tid, SIZE, **{**positions, **kw})


def snapshot(events: list[Event], streams: list[StreamInfo] | None = None, **kw: Any) -> Snapshot:
    kw.setdefault("taken_at", 10_000)
    return Snapshot(events, streams if streams is not None else [info()], 0, pid=42, **kw)


# -- real recordings ----------------------------------------------------------------


def test_the_format_is_registered() -> None:
    assert "perfetto" in format_names()
    fmt = get_format("perfetto")
    assert fmt.suffix == ".perfetto.json" and not fmt.directory


def test_a_multi_thread_recording(start_recording: Start, tmp_path: Path) -> None:
    snap = record_threads(start_recording)
    path = write_snapshot(snap, tmp_path / "trace", "perfetto")
    assert path.name == "trace.perfetto.json"
    doc = load(path)
    events = check_structure(doc)
    # metadata: the process, and every thread by name, in stream order
    (proc,) = of(events, "M", name="process_name")
    assert str(snap.pid) in proc["args"]["name"] and proc["pid"] == snap.pid
    named = lanes(events)
    # (streams, not snap.threads: a new thread may reuse an ended one's id)
    assert set(named) == {s.thread_name for s in snap.streams}
    assert sorted(named.values()) == list(range(1, len(named) + 1))
    ids = {e["args"]["name"]: e["args"]["thread_id"] for e in of(events, "M", name="thread_name")}
    assert ids == {s.thread_name: s.thread_id for s in snap.streams}
    # every snapshot event is there once, on its thread's lane, at its time (us)
    points = [e for e in snap.events if e.kind == "event"]
    instants = [e for e in of(events, "i", s="t") if e["cat"] != "ringtrace"]
    assert len(instants) == len(points)
    assert sorted((e["tid"], e["ts"], e["name"]) for e in instants) == sorted(
        (named[p.thread_name], p.timestamp / 1000, p.name) for p in points
    )
    entries = [e for e in snap.events if e.kind == "entry"]
    begins = of(events, "B")
    assert [(b["name"], b["ts"], b["args"]) for b in begins] == [
        (e.name, e.timestamp / 1000, e.fields) for e in entries
    ]
    exits = [e for e in snap.events if e.kind == "exit"]
    ends = [e for e in of(events, "E") if "ringtrace" not in e["args"]]
    drawn = of(events, "X")
    assert len(ends) + len(drawn) == len(exits)
    ended_ns = [round(e["ts"] * 1000) for e in ends]
    ended_ns += [round((d["ts"] + d["dur"]) * 1000) for d in drawn]
    assert sorted(ended_ns) == sorted(x.timestamp for x in exits)
    # exit fields reach the viewer: return values and exceptions
    assert any(e["args"].get("exception") == "KeyError" for e in of(events, "E") + drawn)
    assert any("retval" in e["args"] for e in of(events, "E"))
    # the main thread still runs: nothing of it is left open (checked above), and
    # otherData carries the clock and the totals
    other = doc["otherData"]
    assert other["clock_offset_ns"] == snap.clock_offset_ns
    assert other["events"] == len(snap.events) and other["dropped"] == snap.dropped


def test_timestamps_are_monotonic_microseconds_with_nanoseconds_kept() -> None:
    snap = snapshot([ev(1_234_567_891, "a"), ev(1_234_567_999, "b")])
    a, b = of(write(snap), "i", s="t")
    assert a["ts"] == 1_234_567.891 and b["ts"] == 1_234_567.999


def test_a_skipped_sub_buffer_is_marked_on_its_thread(start_recording: Start) -> None:
    rec = start_recording(Channel("main", subbuf_size=SIZE, num_subbuf=4))
    helper = threading.Thread(target=lambda: instrument.event("other"), name="helper")
    helper.start()
    helper.join()
    for i in range(3 * SIZE):
        instrument.event("tick", i=i)
    (stream,) = [s for s in rec.streams() if s.thread_id == threading.get_ident()]
    assert stream.ring[SIZE][0] == SIZE
    for _ in range(SIZE):  # every position of sub-buffer 1 abandoned (never committed)
        del stream.ring[SIZE]
    snap = instrument.snapshot()
    assert snap.skipped_subbufs == 1 and snap.skipped == SIZE
    events = write(snap)
    main = lanes(events)[threading.current_thread().name]
    (gap,) = [m for m in markers(events) if "skipped" in m["name"]]
    assert gap["name"] == f"ringtrace: skipped 1 sub-buffer ({SIZE} events lost)"
    assert gap["s"] == "t" and gap["tid"] == main
    assert gap["args"]["start_position"] == SIZE and gap["args"]["end_position"] == 2 * SIZE
    # placed at the first event after the gap, and written just before it
    after = next(e for e in snap.events if e.name == "tick" and e.position == 2 * SIZE)
    assert gap["ts"] == after.timestamp / 1000
    ticks = [e for e in events if e.get("name") == "tick" or e is gap]
    assert ticks[SIZE] is gap and ticks[SIZE + 1]["args"] == {"i": 2 * SIZE}
    # and a global marker announces the loss at the start of the trace
    (lost,) = [m for m in markers(events) if m["s"] == "g"]
    assert lost["name"] == f"ringtrace: {SIZE} events lost"
    assert lost["ts"] == snap.events[0].timestamp / 1000


def test_dropped_events_are_marked_on_their_thread(start_recording: Start) -> None:
    start_recording(Channel("db", subbuf_size=SIZE, num_subbuf=2, mode="discard"))
    for i in range(5 * SIZE):
        instrument.event("db.q", i=i)
    snap = instrument.snapshot()
    assert snap.dropped == 3 * SIZE
    events = write(snap)
    (drop,) = [m for m in markers(events) if "dropped" in m["name"]]
    assert drop["name"] == f"ringtrace: dropped {3 * SIZE} events (channel db full)"
    assert drop["tid"] == lanes(events)[threading.current_thread().name]
    assert drop["ts"] == snap.events[-1].timestamp / 1000
    assert any(m["s"] == "g" and "lost" in m["name"] for m in markers(events))


def test_overwritten_events_are_marked_at_the_start_of_the_window(start_recording: Start) -> None:
    start_recording(Channel("main", subbuf_size=SIZE, num_subbuf=2))
    for i in range(5 * SIZE):
        instrument.event("tick", i=i)
    snap = instrument.snapshot()
    assert snap.overwritten == 3 * SIZE and snap.lost == 0
    events = write(snap)
    (mark,) = markers(events)
    assert mark["name"] == f"ringtrace: {3 * SIZE} earlier events overwritten"
    assert mark["ts"] == snap.events[0].timestamp / 1000
    assert not [m for m in markers(events) if m["s"] == "g"]  # by design, not a loss


# -- the edges of the window -----------------------------------------------------------


def test_an_exit_without_its_entry_is_drawn_from_its_duration() -> None:
    events = write(snapshot([ev(5_000, "f", "exit", duration_ns=3_000), ev(6_000, "g")]))
    (bar,) = of(events, "X")
    assert bar["name"] == "f" and bar["ts"] == 2.0 and bar["dur"] == 3.0
    assert (
        bar["args"]["duration_ns"] == 3_000 and "entry not in snapshot" in bar["args"]["ringtrace"]
    )
    assert not of(events, "B") and not of(events, "E")


def test_an_exit_without_entry_or_duration_starts_at_the_lane_start() -> None:
    events = write(snapshot([ev(1_000, "a"), ev(5_000, "f", "exit")]))
    (bar,) = of(events, "X")
    assert bar["ts"] == 1.0 and bar["dur"] == 4.0 and "start unknown" in bar["args"]["ringtrace"]


def test_an_exit_whose_start_would_overlap_an_earlier_bar_is_clipped() -> None:
    events = write(
        snapshot(
            [
                ev(1_000, "a", "entry"),
                ev(2_000, "a", "exit", duration_ns=1_000),
                ev(3_000, "b", "exit", duration_ns=2_500),  # started at 500, before a ended
            ]
        )
    )
    (bar,) = of(events, "X")
    assert bar["ts"] == 2.0 and bar["dur"] == 1.0 and bar["args"]["entry_ts_us"] == 0.5


def test_an_entry_still_open_ends_when_the_snapshot_was_taken() -> None:
    snap = snapshot([ev(1_000, "outer", "entry"), ev(2_000, "inner", "entry"), ev(3_000, "x")])
    events = write(snap)
    ends = of(events, "E")
    assert [e["name"] for e in ends] == ["inner", "outer"]
    assert all(e["ts"] == 10.0 for e in ends)  # taken_at
    assert all(e["args"]["ringtrace"] == "still running when the snapshot was taken" for e in ends)


def test_an_entry_of_an_ended_thread_ends_at_its_last_event() -> None:
    snap = snapshot([ev(1_000, "f", "entry"), ev(3_000, "x")], [info(alive=False)])
    (end,) = of(write(snap), "E")
    assert end["ts"] == 3.0 and "thread had ended" in end["args"]["ringtrace"]


def test_an_exit_matching_an_outer_entry_ends_the_inner_ones_first() -> None:
    snap = snapshot(
        [
            ev(1_000, "outer", "entry"),
            ev(2_000, "inner", "entry"),  # its exit was in a skipped sub-buffer
            ev(4_000, "outer", "exit", duration_ns=3_000),
        ]
    )
    ends = of(write(snap), "E")
    assert [(e["name"], e["ts"]) for e in ends] == [("inner", 4.0), ("outer", 4.0)]
    assert "exit not in snapshot" in ends[0]["args"]["ringtrace"]
    assert ends[1]["args"] == {"duration_ns": 3_000}


def test_a_reused_thread_id_gets_a_lane_per_thread_name() -> None:
    a = Event(1_000, "x", "event", 99, "first", {}, {}, "main", 0)
    b = Event(2_000, "x", "event", 99, "second", {}, {}, "main", 0)
    events = write(
        snapshot([a, b], [info(99, thread_name="first"), info(99, thread_name="second")])
    )
    named = lanes(events)
    assert set(named) == {"first", "second"} and named["first"] != named["second"]


def test_64_bit_thread_ids_become_small_tids_and_keep_their_id() -> None:
    big = 140_000_000_000_123
    snap = snapshot(
        [Event(1, "x", "event", big, "w", {}, {}, "main", 0)], [info(big, thread_name="w")]
    )
    events = write(snap)
    (meta,) = of(events, "M", name="thread_name")
    assert meta["tid"] == 1 and meta["args"]["thread_id"] == big


def test_threads_seen_only_in_events_are_named_too() -> None:
    events = write(snapshot([ev(1, "x", tid=5)], streams=[]))
    assert lanes(events) == {"t5": 1}


def test_values_json_cannot_hold_are_still_valid_json() -> None:
    snap = snapshot(
        [ev(1, "v", nan=math.nan, inf=math.inf, obj=object(), tup=(1, 2), d={1: "x"})],
        metadata={"test": "t::x", "when": object()},
    )
    out = io.BytesIO()
    perfetto.write(snap, out)
    doc = load(out.getvalue())
    events = check_structure(doc)
    (v,) = [e for e in of(events, "i") if e["name"] == "v"]
    assert v["args"]["nan"] == "nan" and v["args"]["inf"] == "inf"
    assert v["args"]["obj"].startswith("<object object at 0x")
    assert v["args"]["tup"] == [1, 2] and v["args"]["d"] == {"1": "x"}
    assert doc["otherData"]["metadata"]["test"] == "t::x"
    (labels,) = of(events, "M", name="process_labels")
    assert "test=t::x" in labels["args"]["labels"]


def test_dynamic_context_goes_into_args() -> None:
    e = Event(1, "x", "event", 7, "t7", {"a": 1}, {"pid": 42, "task": "Task-9"}, "main", 0)
    (i,) = of(write(snapshot([e])), "i", s="t")
    assert i["args"] == {"a": 1, "context": {"task": "Task-9"}}


def test_an_empty_snapshot_is_a_valid_trace() -> None:
    events = write(Snapshot([], [], 0, 0))
    assert {e["ph"] for e in events} == {"M"}


def test_a_big_snapshot_is_written_in_blocks() -> None:
    kinds = ("entry", "event", "exit")
    n = 9_000
    snap = snapshot(
        [
            Event(
                1_000 + i,
                "op" if i % 3 != 1 else "tick",
                kinds[i % 3],
                1 + i % 2,
                f"w{i % 2}",
                {"i": i},
                {"pid": 1},
                "main",
                i,
            )
            for i in range(n)
        ],
        streams=[],
    )

    sizes: list[int] = []

    class Sink(io.BytesIO):
        def write(self, data: Any) -> int:
            sizes.append(len(data))
            return super().write(data)

    sink = Sink()
    perfetto.write(snap, sink)
    events = check_structure(load(sink.getvalue()))
    assert len(sizes) >= n // perfetto.CHUNK_EVENTS
    assert max(sizes) < sum(sizes) / 10
    assert Counter(e["ph"] for e in events) == Counter(
        {"B": n // 3, "E": n // 3, "i": n // 3, "M": 5}
    )


@pytest.mark.parametrize("seed", range(3))
def test_random_windows_of_nested_calls_stay_well_formed(seed: int) -> None:
    """Any window cut out of a well-nested call sequence, with holes, gives a
    trace whose bars nest and whose B/E pairs match."""
    import random

    rnd = random.Random(seed)
    full: list[Event] = []
    stack: list[tuple[str, int]] = []
    ts = 0
    for pos in range(600):
        ts += rnd.randint(1, 50)
        tid = 1
        if stack and (rnd.random() < 0.45 or len(stack) > 6):
            name, start = stack.pop()
            full.append(
                Event(ts, name, "exit", tid, "t", {"duration_ns": ts - start}, {}, "main", pos)
            )
        elif rnd.random() < 0.2:
            full.append(Event(ts, "p", "event", tid, "t", {}, {}, "main", pos))
        else:
            name = rnd.choice("fghk")
            stack.append((name, ts))
            full.append(Event(ts, name, "entry", tid, "t", {}, {}, "main", pos))
    start = rnd.randint(0, 200)
    window = full[start : start + 300]
    holes = {rnd.randint(0, len(window) - 1) for _ in range(15)}
    window = [e for i, e in enumerate(window) if i not in holes]
    events = write(Snapshot(window, [info(1, thread_name="t")], 0, taken_at=ts + 1, pid=3))
    kept = Counter(e.kind for e in window)
    assert len(of(events, "B")) == kept["entry"]
    assert (
        len([e for e in of(events, "E") if "ringtrace" not in e["args"]]) + len(of(events, "X"))
        == kept["exit"]
    )


@pytest.mark.parametrize("odd", [False, True])
def test_the_fast_encoder_and_the_pure_python_path_write_the_same_trace(
    start_recording: Start, monkeypatch: pytest.MonkeyPatch, odd: bool
) -> None:
    """msgspec (the ``fast`` extra, part of the test extra) encodes blocks
    whose args are plain; anything else, and everything without it, goes the
    stdlib's way. Both write the same trace."""
    snap = record_threads(start_recording)
    if odd:  # a value only the stdlib's way writes (as a string): its block goes there
        snap.events[1].fields["nan"] = math.nan
    assert json_format.fast_encode is not None, "msgspec is part of the test extra"
    items = [{"ph": "i", "args": ev.fields} for ev in snap.events]
    assert (perfetto._encode_fast(items) == perfetto._encode(items).encode()) or odd
    fast = io.BytesIO()
    perfetto.write(snap, fast)
    monkeypatch.setattr(json_format, "fast_encode", None)
    pure = io.BytesIO()
    perfetto.write(snap, pure)
    assert load(fast.getvalue()) == load(pure.getvalue())
    fast.getvalue().decode("ascii")


@pytest.mark.parametrize("child", [False, True])
def test_crossing_spans_are_placed_like_every_other_event(child: bool) -> None:
    """A span that crosses another on its lane (an async slice, ``b``/``e``)
    is at its own time from the origin, on its lane's process (a child's)."""
    streams = [info(context={"pid": 4242, "command": "worker"})] if child else None
    snap = snapshot(
        [
            ev(1_000, "a", "entry"),
            ev(2_000, "b", "entry"),
            ev(3_000, "a", "exit", duration_ns=2_000),  # crosses b: b began inside a
            ev(4_000, "b", "exit", duration_ns=2_000),
        ],
        streams,
    )
    out = io.BytesIO()
    perfetto.write(snap, out)
    events = absolute(load(out.getvalue()))  # check_structure knows no async slices
    (begin,) = of(events, "b")
    (end,) = of(events, "e")
    (bar,) = of(events, "B")
    assert (begin["name"], begin["ts"], end["ts"]) == ("a", 1.0, 3.0)
    assert (bar["name"], bar["ts"]) == ("b", 2.0)
    pid = 4242 if child else 42
    assert begin["pid"] == end["pid"] == bar["pid"] == pid
    assert begin["tid"] == end["tid"] == bar["tid"]


class Colour(enum.IntEnum):
    RED = 1


class Mode(str, enum.Enum):
    FAST = "fast"


class Label(str):
    pass


class Opaque:
    def __repr__(self) -> str:
        return "Opaque()"  # the same in every process: a test id


@pytest.mark.parametrize(
    "extra",
    [
        *({"v": value} for value in ["caf\u00e9", "\ud800", math.inf, -math.inf, math.nan]),
        *({"v": value} for value in [{"nested": [1]}, (1,), b"raw", Opaque()]),
        # what both write alike, whichever way the block goes
        *({"v": value} for value in [1 << 70, -(1 << 64), 1e16, 5e-324, True, None]),
        *({"v": value} for value in [Colour.RED, Mode.FAST, Label("text")]),
        {3: "an int key"},
        {1e16: "a float key"},
        {None: "a None key"},
        {Label("k"): "a str subclass key"},
    ],
    ids=repr,
)
def test_a_block_msgspec_would_write_otherwise_goes_the_stdlib_way(
    monkeypatch: pytest.MonkeyPatch, extra: dict[Any, Any]
) -> None:
    """Events of a plain block become msgspec structs, encoded unchecked; a
    block with a value msgspec would write differently (non-ASCII text, a
    lone surrogate, a non-finite float, a container, bytes, an object, a key
    that is not a string) is written as the stdlib way writes it, whatever
    the events' kinds."""
    events = [
        ev(1_000 + i, "f", kind, duration_ns=1) if kind == "exit" else ev(1_000 + i, "f", kind)
        for i, kind in enumerate(["entry", "exit", "event"] * 3)
    ]
    events[4] = events[4]._replace(fields={"duration_ns": 1, **extra})
    snap = snapshot(events)
    assert json_format.fast_encode is not None, "msgspec is part of the test extra"
    fast = io.BytesIO()
    perfetto.write(snap, fast)
    monkeypatch.setattr(json_format, "fast_encode", None)
    pure = io.BytesIO()
    perfetto.write(snap, pure)
    if 1e16 in extra.values():  # msgspec writes 1e16, the stdlib 1e+16: the same number
        assert load(fast.getvalue()) == load(pure.getvalue())
    else:
        assert fast.getvalue() == pure.getvalue()


def interleaved(seed: int) -> Snapshot:
    """Up to 60 entries, exits and instants on up to three threads (some in
    asyncio tasks): exits mostly of the innermost entry, else of a lower one
    (spans that cross, or inner exits lost), some lost, some with a wrong
    or unusable duration."""
    rnd = random.Random(seed)
    threads = rnd.randint(1, 3)
    streams = [
        StreamInfo("main", 100 + t, f"t{t}", True, "overwrite", 8, 4, produced=100,
                   first_position=0, last_position=99)
        for t in range(threads)
    ]  # fmt: skip
    contexts = [{"pid": 1}, {"pid": 1, "task": "T1"}, {"pid": 1, "task": "T2"}]
    events: list[Event] = []
    stacks: list[list[tuple[str, int]]] = [[] for _ in range(threads)]
    positions = [0] * threads
    ts = 1_000
    for _ in range(rnd.randint(1, 60)):
        t = rnd.randrange(threads)
        ts += rnd.choice([0, 1, 5, 10])
        context = rnd.choice(contexts) if rnd.random() < 0.3 else contexts[0]
        stack = stacks[t]
        if rnd.random() < 0.4 or not stack:
            name, kind = rnd.choice("abca"), rnd.choice(["entry"] * 3 + ["event", "suspend"])
            if kind == "entry":
                stack.append((name, ts))
            fields: dict[str, Any] = {"duration_ns": 1} if kind == "suspend" else {}
        else:
            name, start = stack.pop(len(stack) - 1 if rnd.random() < 0.7 else 0)
            kind, fields = "exit", {"duration_ns": ts - start}
            if rnd.random() < 0.1:
                positions[t] += 1
                continue  # lost
            if rnd.random() < 0.1:
                fields["duration_ns"] = rnd.choice(["?", ts - start + 3])
        thread = (100 + t, f"t{t}")
        events.append(Event(ts, name, kind, *thread, fields, context, "main", positions[t]))
        positions[t] += 1
    return Snapshot(events, streams, clock_offset_ns=0, taken_at=ts + 10, pid=1)


def test_a_trace_written_assuming_no_crossing_spans_is_the_one_found_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Into a file that can go back, the writer assumes no span crosses
    another until an exit shows one may, then finds them, and writes again
    if one was written as a bar already; into a pipe it finds them first.
    Both write the same trace, whichever way it went."""
    outcomes: Counter[str] = Counter()
    settle = perfetto._Writer.settle

    def counted(self: Any, ts: int) -> dict[tuple[str, int], str]:
        try:
            found = settle(self, ts)
        except perfetto._Restart:
            outcomes["written again"] += 1
            raise
        outcomes["crossing later" if found else "none crossing"] += 1
        return found

    monkeypatch.setattr(perfetto._Writer, "settle", counted)

    class Pipe:
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, data: bytes | bytearray) -> int:
            self.data += data
            return len(data)

    for seed in range(200):
        snap = interleaved(seed)
        file, pipe = io.BytesIO(), Pipe()
        perfetto.write(snap, file)
        perfetto.write(snap, pipe)
        assert file.getvalue() == bytes(pipe.data), seed
        load(file.getvalue())
    assert min(outcomes["written again"], outcomes["crossing later"], outcomes["none crossing"]) > 5


@pytest.mark.parametrize("value", [math.inf, [1], b"raw", "caf\u00e9", 7])
def test_a_context_msgspec_would_write_otherwise_goes_the_stdlib_way(
    monkeypatch: pytest.MonkeyPatch, value: Any
) -> None:
    """A context value goes into the args of its events: blocks that meet a
    context msgspec would write otherwise (checked as the context changes,
    also when it carries on into the next block) are written the stdlib
    way, the same trace either way."""
    plain, odd = {"pid": 42}, {"pid": 42, "request": value}
    count = 2 * perfetto.CHUNK_EVENTS + 100
    contexts = [odd if 300 <= i < 900 else plain for i in range(count)]
    events = [
        Event(1_000 + i, "e", "event", 7, "t7", {"i": i}, context, "main", i)
        for i, context in enumerate(contexts)
    ]
    snap = snapshot(events)
    fast = io.BytesIO()
    perfetto.write(snap, fast)
    monkeypatch.setattr(json_format, "fast_encode", None)
    pure = io.BytesIO()
    perfetto.write(snap, pure)
    assert fast.getvalue() == pure.getvalue()
    assert fast.getvalue().count(b'"request"') == 600


def test_a_stream_that_only_goes_forward_is_searched_for_crossing_spans_first(
    tmp_path: Path,
) -> None:
    """A gzip stream says it is seekable but cannot go back while writing:
    the crossing spans are found first there, and the trace is whole."""
    import gzip

    snap = snapshot(
        [
            ev(1_000, "a", "entry"),
            ev(2_000, "b", "entry"),
            ev(3_000, "a", "exit", duration_ns=2_000),  # crosses b
            ev(4_000, "b", "exit", duration_ns=2_000),
        ]
    )
    with gzip.open(tmp_path / "trace.json.gz", "wb") as packed:
        perfetto.write(snap, packed)
    plain = io.BytesIO()
    perfetto.write(snap, plain)
    assert gzip.decompress((tmp_path / "trace.json.gz").read_bytes()) == plain.getvalue()
    assert b'"ph":"b"' in plain.getvalue()
