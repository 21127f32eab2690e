"""The HTML timeline: structure of the written file, the embedded data read
back, escaping of hostile values, and the page drawn by headless Chromium."""

from __future__ import annotations

import contextlib
import html
import itertools
import json
import os
import re
import shutil
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_activity import handmade_suspensions, three_jobs

import instrument
from instrument import Event, Recorder, Snapshot, StreamInfo
from instrument.formats import get_format, json_format, write_snapshot
from instrument.formats import html as timeline

DATA_BLOCK = re.compile(r'<script type="application/json" id="ringtrace-data">(.*?)</script>', re.S)
SNAPSHOT_BLOCK = re.compile(
    r'<script type="application/json" id="ringtrace-snapshot">(.*?)</script>', re.S
)
HOSTILE = [
    "</script><script>document.body.setAttribute('data-pwned','script')</script>",
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">",
    "<!-- <script>",
    "a & b > c < d",
    "line\u2028separator\u2029end",
]


# -- snapshots to write -------------------------------------------------------


def record_orders(start_recording: Callable[..., Recorder]) -> Snapshot:
    """A real recording: four threads handling orders, one of which fails."""
    start_recording()

    @instrument.trace(fields="*")
    def handle(order_id: int) -> int:
        instrument.event("cache.lookup", key=f"order:{order_id}", hit=order_id % 3 == 0)
        with instrument.span("db.query", table="orders"):
            time.sleep(0.0002)
        if order_id == 7:
            raise ValueError(f"order {order_id} out of stock")
        return order_id

    def worker() -> None:
        for order_id in range(12):
            with contextlib.suppress(ValueError):
                handle(order_id)

    threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    instrument.event("test.failed", reason="assert stock >= 0")
    snap = instrument.snapshot()
    instrument.stop()
    snap.metadata["test_id"] = "tests/test_orders.py::test_concurrent_orders"
    return snap


BASE = 5_000_000_000
OFFSET = 1_764_000_000_000_000_000


def stream(tid: int, name: str, *, first: int | None, last: int | None, **kw: Any) -> StreamInfo:
    defaults: dict[str, Any] = {
        "channel": "default",
        "alive": True,
        "mode": "overwrite",
        "subbuf_size": 4,
        "num_subbuf": 4,
        "produced": 0 if last is None else last + 1,
    }
    defaults.update(kw)
    return StreamInfo(
        thread_id=tid,
        thread_name=name,
        first_position=first,
        last_position=last,
        context={"pid": 42, "thread_id": tid, "thread_name": name},
        **defaults,
    )


def lossy_snapshot() -> Snapshot:
    """A hand-made snapshot with every kind of loss the page must show.

    Main thread: a skipped sub-buffer (positions 4-7) that held the entry of
    ``lost_call``; an exit without entry or duration; an entry never exited;
    an event with hostile field values. A discard-mode worker that dropped
    events and whose span raised. An idle thread, and one event of a stream
    the snapshot does not list.
    """
    main = stream(1, "MainThread", first=0, last=11, gaps=[(4, 8)], overwritten=3)
    worker = stream(2, "worker-1", first=0, last=2, mode="discard", dropped=7, alive=False)
    idle = stream(3, "idle", first=None, last=None)
    ctx = {"pid": 42}

    def ev(t: int, name: str, kind: str, info: StreamInfo, pos: int, **fields: Any) -> Event:
        return Event(
            BASE + t, name, kind, info.thread_id, info.thread_name, fields, ctx, "default", pos
        )

    events = [
        ev(0, "handle", "entry", main, 0, order_id=1),
        ev(1_000, "job", "entry", worker, 0),
        ev(2_000, "cache.lookup", "event", main, 1, key="order:1"),
        ev(3_000, "db.query", "entry", main, 2),
        ev(9_000, "db.query", "exit", main, 3, duration_ns=6_000),
        ev(
            20_000,
            "job",
            "exit",
            worker,
            1,
            duration_ns=19_000,
            exception="KeyError",
            message="'sku'",
        ),
        ev(25_000, "worker.idle", "event", worker, 2),
        ev(40_000, "lost_call", "exit", main, 8, duration_ns=15_000),
        ev(41_000, "handle", "exit", main, 9, duration_ns=41_000),
        ev(42_000, "nodur", "exit", main, 10),
        ev(43_000, "open_call", "entry", main, 11, value=2**60, ratio=float("nan")),
        Event(BASE + 44_000, "stray", "event", 99, "unlisted", {}, ctx, "default", 0),
        ev(50_000, "boom", "event", main, 12, **{f"f{i}": v for i, v in enumerate(HOSTILE)}),
    ]
    main.last_position = 12
    main.produced = 13
    return Snapshot(
        events=events,
        streams=[main, worker, idle],
        clock_offset_ns=OFFSET,
        taken_at=BASE + 60_000,
        pid=42,
        metadata={"test_id": "tests/test_x.py::test_lossy[</script>]", "worker": "gw1"},
    )


def embedded(path: Path) -> dict[str, Any]:
    """The timeline of the page at ``path`` as the page builds it from its
    data blocks (Python's model; the Chromium tests check that the page's
    script builds the same)."""
    return timeline.read_data(path)


# -- structure ----------------------------------------------------------------


def test_html_is_a_registered_format(tmp_path: Path) -> None:
    fmt = get_format("html")
    assert fmt.suffix == ".html"
    assert fmt.read is timeline.read_html
    path = write_snapshot(lossy_snapshot(), tmp_path / "snap", "html")
    assert path == tmp_path / "snap.html"
    assert path.read_bytes().startswith(b"<!DOCTYPE html>")


def test_the_page_is_self_contained(tmp_path: Path) -> None:
    text = write_snapshot(lossy_snapshot(), tmp_path / "snap", "html").read_text("utf-8")
    # recorded values may hold any URL; the page may not
    page = SNAPSHOT_BLOCK.sub("", DATA_BLOCK.sub("", text))
    assert not re.search(r"""(?:src|href|action|poster)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert not re.search(r"https?://", page)
    assert not re.search(r"@import|url\(", page)
    assert not re.search(r"<(?:link|iframe|object|embed|img)\b", page, re.I)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert not re.search(r"\b(?:fetch|XMLHttpRequest|WebSocket|EventSource)\b", page)
    # two data blocks (the page's data, the snapshot document), one script of our own
    assert len(re.findall(r"<script\b", text)) == 3


def test_the_embedded_json_reads_back_as_the_recorded_events(
    start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    snap = record_orders(start_recording)
    path = write_snapshot(snap, tmp_path / "orders", "html")
    data = embedded(path)
    base = int(data["snapshot"]["base_ns"])
    assert base == snap.origin  # one time origin for every view
    lanes = data["lanes"]
    rebuilt = [
        Event(
            base + t,
            data["names"][name],
            data["kinds"][kind],
            lanes[lane]["thread_id"],
            lanes[lane]["thread_name"],
            fields,
            data["contexts"][ctx],
            lanes[lane]["channel"],
            pos,
        )
        for t, kind, name, lane, fields, ctx, pos in data["events"]
    ]
    assert rebuilt == snap.events
    assert [lane["thread_name"] for lane in lanes] == [s.thread_name for s in snap.streams]
    assert [lane["events"] for lane in lanes] == [
        sum(1 for e in snap.events if e.thread_name == s.thread_name) for s in snap.streams
    ]
    assert data["summary"]["events"] == len(snap.events)
    assert data["summary"]["threads"] == 5
    # and the reader gives back the whole snapshot
    assert timeline.read_html(path) == snap


def test_wall_clock_and_relative_times(tmp_path: Path) -> None:
    snap = lossy_snapshot()
    data = embedded(write_snapshot(snap, tmp_path / "s", "html"))
    head = data["snapshot"]
    last = snap.origin  # the moment the snapshot was taken: no origin_ns set
    assert head["base_ns"] == str(last) == str(snap.taken_at)
    assert data["events"][-1][0] == snap.events[-1].timestamp - last
    assert data["events"][0][0] == snap.events[0].timestamp - last
    wall = last + OFFSET
    assert head["wall_ms"] * 1_000_000 + head["wall_sub_ns"] == wall
    assert head["taken_at_rel"] == snap.taken_at - last
    assert head["clock_offset_ns"] == str(OFFSET)


def test_hostile_values_cannot_leave_the_data_block(tmp_path: Path) -> None:
    snap = lossy_snapshot()
    path = write_snapshot(snap, tmp_path / "hostile", "html")
    raw = path.read_bytes()
    start = raw.index(b'id="ringtrace-data">') + len(b'id="ringtrace-data">')
    end = raw.index(b"</script>", start)
    block = raw[start:end]
    # each block runs to the end of its data: nothing in it closed it early
    assert block.startswith(b'{"format":"ringtrace-timeline"')
    assert block.endswith(b"}")
    assert not set(block) & set(b"<>&")
    assert b"\\u003c/script\\u003e" in block  # the test id, in the metadata
    opening = b'<script type="application/json" id="ringtrace-snapshot">'
    assert raw[end:].startswith(b"</script>\n" + opening)
    start = end + len(b"</script>\n") + len(opening)
    end = raw.index(b"</script>", start)
    document = raw[start:end]
    assert document.startswith(b'{"schema":"ringtrace-snapshot"')
    assert document.endswith(b"]}\n")
    assert b"<" not in document  # what could end the block or open a comment in it
    assert b"\\u003c/script>\\u003cscript>" in document
    assert raw[end:].count(b"</script>") == 2  # the snapshot block's and the page script's
    data = json.loads(raw[raw.index(b'id="ringtrace-data">') + 20 : raw.index(b"</script>")])
    assert data["snapshot"]["metadata"]["test_id"] == "tests/test_x.py::test_lossy[</script>]"
    # the embedded snapshot is the json writer's document: it reads back equal
    back = json_format.parse(document, path)
    boom = next(e for e in back.events if e.name == "boom")
    assert list(boom.fields.values()) == HOSTILE
    model = embedded(path)
    boom_row = next(e for e in model["events"] if model["names"][e[2]] == "boom")
    assert list(boom_row[4].values()) == HOSTILE


def test_values_a_browser_cannot_hold_are_written_as_strings(tmp_path: Path) -> None:
    snap = lossy_snapshot()
    snap.metadata["weird"] = {1: (1, 2), "inf": float("-inf"), "obj": object()}
    path = write_snapshot(snap, tmp_path / "s", "html")
    block = DATA_BLOCK.search(path.read_text("utf-8"))
    assert block is not None
    page = json.loads(block.group(1), parse_constant=pytest.fail)  # strict: no NaN, no Infinity
    weird = page["snapshot"]["metadata"]["weird"]
    assert weird["1"] == [1, 2]
    assert weird["inf"] == "-Infinity"
    assert weird["obj"].startswith("<object object at 0x")
    data = embedded(path)  # what the page shows
    open_call = next(e for e in data["events"] if data["names"][e[2]] == "open_call")
    assert open_call[4] == {"value": str(2**60), "ratio": "NaN"}
    # the embedded snapshot is exact: only the object is its text
    back = timeline.read_html(path)
    assert repr(back.events[-3].fields) == repr(snap.events[-3].fields)
    assert back.events[:-3] == snap.events[:-3] and back.events[-2:] == snap.events[-2:]
    assert back.streams == snap.streams
    assert back.metadata["weird"][1] == (1, 2)
    assert back.metadata["weird"]["inf"] == float("-inf")
    assert back.metadata["weird"]["obj"] == weird["obj"]


def spans_by_name(data: dict[str, Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in data["spans"]:
        out.setdefault(data["names"][span[7]], []).append(span)
    return out


def test_entries_and_exits_become_spans_including_the_incomplete_ones(tmp_path: Path) -> None:
    snap = lossy_snapshot()
    data = embedded(write_snapshot(snap, tmp_path / "s", "html"))
    rel = snap.origin - BASE  # times in the data are relative to the origin
    spans = spans_by_name(data)
    index = {(e.name, e.kind): i for i, e in enumerate(snap.events)}
    # [lane, start, end, entry, exit, depth, flags, name]
    (handle,) = spans["handle"]
    assert handle[:7] == [
        0,
        -rel,
        41_000 - rel,
        index["handle", "entry"],
        index["handle", "exit"],
        0,
        0,
    ]
    (query,) = spans["db.query"]
    assert query[1:3] == [3_000 - rel, 9_000 - rel]
    assert query[5] == 1  # inside handle
    (lost,) = spans["lost_call"]  # its entry was in the skipped sub-buffer
    assert lost[1:5] == [25_000 - rel, 40_000 - rel, -1, index["lost_call", "exit"]]
    assert lost[6] == timeline.ENTRY_LOST
    assert lost[5] == 1  # within handle, which started earlier
    (nodur,) = spans["nodur"]  # no entry, no duration: an empty span at the exit
    assert nodur[1:3] == [42_000 - rel, 42_000 - rel]
    assert nodur[6] == timeline.ENTRY_LOST | timeline.START_UNKNOWN
    (still_open,) = spans["open_call"]  # no exit: runs to the snapshot's end
    assert still_open[1:5] == [43_000 - rel, 60_000 - rel, index["open_call", "entry"], -1]
    assert still_open[6] == timeline.NO_EXIT
    (job,) = spans["job"]
    assert job[0] == 1
    assert job[6] == timeline.ERROR
    summary = data["summary"]
    assert (summary["spans"], summary["open_spans"], summary["entry_lost"], summary["errors"]) == (
        6,
        1,
        2,
        1,
    )


def test_spans_of_one_depth_never_overlap(tmp_path: Path) -> None:
    """Interleaved same-name spans (coroutines on one thread) stack up."""
    info = stream(1, "MainThread", first=0, last=7)
    order = [
        (0, "task", "entry"),
        (10, "task", "entry"),
        (20, "step", "entry"),
        (30, "task", "exit"),  # closes the most recent "task", though "step" is open
        (40, "step", "exit"),
        (50, "task", "exit"),
        (60, "solo", "entry"),
        (70, "solo", "exit"),
    ]
    events = [
        Event(BASE + t, name, kind, 1, "MainThread", {}, {}, "default", pos)
        for pos, (t, name, kind) in enumerate(order)
    ]
    snap = Snapshot(events=events, streams=[info], clock_offset_ns=0, taken_at=BASE + 70)
    data = embedded(write_snapshot(snap, tmp_path / "s", "html"))
    got = sorted((data["names"][s[7]], s[1] + 70, s[2] + 70, s[5]) for s in data["spans"])
    assert got == [
        ("solo", 60, 70, 0),
        ("step", 20, 40, 2),
        ("task", 0, 50, 0),
        ("task", 10, 30, 1),
    ]
    by_depth: dict[int, list[tuple[int, int]]] = {}
    for s in data["spans"]:
        by_depth.setdefault(s[5], []).append((s[1], s[2]))
    for runs in by_depth.values():
        assert runs == sorted(runs)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(runs))


def test_gaps_drops_and_counts(tmp_path: Path) -> None:
    snap = lossy_snapshot()
    data = embedded(write_snapshot(snap, tmp_path / "s", "html"))
    rel = snap.origin - BASE
    # [lane, start_position, end_position, t_before, t_after, records, subbufs]
    assert data["gaps"] == [[0, 4, 8, 9_000 - rel, 40_000 - rel, 4, 1]]
    lanes = data["lanes"]
    assert [lane["thread_name"] for lane in lanes] == ["MainThread", "worker-1", "idle", "unlisted"]
    assert [lane["synthetic"] for lane in lanes] == [False, False, False, True]
    assert [lane["events"] for lane in lanes] == [9, 3, 0, 1]
    assert lanes[1]["dropped"] == 7
    assert lanes[0]["skipped_subbufs"] == 1
    summary = data["summary"]
    assert summary["lost"] == snap.lost == 11
    assert summary["dropped"] == 7
    assert summary["skipped"] == 4
    assert summary["skipped_subbufs"] == 1
    assert summary["overwritten"] == 3
    assert summary["threads"] == 3


def test_an_empty_snapshot_writes_a_page(tmp_path: Path) -> None:
    snap = Snapshot(events=[], streams=[], clock_offset_ns=OFFSET, taken_at=BASE)
    path = write_snapshot(snap, tmp_path / "empty", "html")
    data = embedded(path)
    assert data["events"] == [] and data["spans"] == [] and data["lanes"] == []
    assert timeline.read_html(path) == snap


def test_large_snapshots_are_written_in_pieces(tmp_path: Path) -> None:
    info = stream(1, "MainThread", first=0, last=29_999, subbuf_size=4096, num_subbuf=8)
    events = [
        Event(BASE + i * 100, "tick", "event", 1, "MainThread", {"i": i}, {}, "default", i)
        for i in range(30_000)
    ]
    snap = Snapshot(events=events, streams=[info], clock_offset_ns=0, taken_at=BASE + 3_000_000)

    class Recording:
        def __init__(self) -> None:
            self.sizes: list[int] = []

        def write(self, data: bytes) -> int:
            self.sizes.append(len(data))
            return len(data)

    out = Recording()
    timeline.write_html(snap, out)  # type: ignore[arg-type]
    assert sum(out.sizes) > 30_000 * 20
    assert len(out.sizes) >= 30_000 // timeline._CHUNK
    assert max(out.sizes) < 300_000  # no piece holds more than a chunk of events


def test_reading_something_else_is_a_clear_error(tmp_path: Path) -> None:
    other = tmp_path / "other.html"
    other.write_text("<html><body>hello</body></html>")
    with pytest.raises(timeline.TimelineError, match="not a ringtrace HTML timeline"):
        timeline.read_html(other)
    damaged = tmp_path / "damaged.html"
    text = write_snapshot(lossy_snapshot(), tmp_path / "ok", "html").read_text("utf-8")
    damaged.write_text(text.replace('"events":[', '"events":[[', 1))
    with pytest.raises(timeline.TimelineError, match="damaged"):
        timeline.read_html(damaged)
    future = tmp_path / "future.html"
    future.write_text(text.replace('"version":2', '"version":99', 1))
    with pytest.raises(timeline.TimelineError, match="version 99"):
        timeline.read_html(future)


# -- drawn by headless Chromium -----------------------------------------------


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary; missing is a failure in CI and a skip elsewhere."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.path.exists("/usr/bin/chromium"):
        found = "/usr/bin/chromium"
    if found is None:
        if in_ci():
            pytest.fail("chromium is required in CI: apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI runs this test")
    return found


def run_chromium(chromium: str, tmp: Path, page: Path, *args: str) -> str:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1400,800",
        # the page draws from its script: let it finish, however loaded the machine
        "--virtual-time-budget=20000",
        *args,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def body_attributes(dom: str) -> dict[str, str]:
    found = re.search(r"<body([^>]*)>", dom)
    assert found is not None, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', found.group(1)))


def decode_png(data: bytes, max_rows: int | None = None) -> tuple[int, int, list[bytes], int]:
    """Width, height, unfiltered rows (the first ``max_rows``) and bytes per
    pixel of an 8-bit RGB or RGBA PNG, decoded with zlib and struct only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = depth = colour = interlace = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    low7 = int.from_bytes(b"\x7f" * stride, "little")
    high = int.from_bytes(b"\x80" * stride, "little")
    rows: list[bytes] = []
    prev = bytes(stride)
    for y in range(height if max_rows is None else min(height, max_rows)):
        start = y * (stride + 1)
        kind, line = raw[start], raw[start + 1 : start + 1 + stride]
        if kind == 2:  # "up": bytewise sum with the row above, all bytes at once
            a, b = int.from_bytes(line, "little"), int.from_bytes(prev, "little")
            line = (((a & low7) + (b & low7)) ^ ((a ^ b) & high)).to_bytes(stride, "little")
        elif kind != 0:
            out = bytearray(line)
            for i in range(stride):
                left = out[i - bpp] if i >= bpp else 0
                up = prev[i]
                if kind == 1:
                    out[i] = (out[i] + left) & 0xFF
                elif kind == 3:
                    out[i] = (out[i] + ((left + up) >> 1)) & 0xFF
                else:  # 4: Paeth
                    upleft = prev[i - bpp] if i >= bpp else 0
                    p = left + up - upleft
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                    pred = left if pa <= pb and pa <= pc else (up if pb <= pc else upleft)
                    out[i] = (out[i] + pred) & 0xFF
            line = bytes(out)
        rows.append(line)
        prev = line
    return width, height, rows, bpp


def region_colours(
    png: bytes, x0: int, y0: int, x1: int, y1: int
) -> tuple[dict[tuple[int, int, int], int], int]:
    """Pixel count per colour in a region, and the region's size."""
    width, height, rows, bpp = decode_png(png, max_rows=y1)
    counts: dict[tuple[int, int, int], int] = {}
    for y in range(y0, min(y1, height)):
        row = rows[y]
        for x in range(x0, min(x1, width)):
            i = x * bpp
            rgb = (row[i], row[i + 1], row[i + 2])
            counts[rgb] = counts.get(rgb, 0) + 1
    return counts, (min(x1, width) - x0) * (min(y1, height) - y0)


def near(counts: dict[tuple[int, int, int], int], hex_colour: str, tolerance: int = 6) -> int:
    want = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return sum(
        n
        for rgb, n in counts.items()
        if all(abs(a - b) <= tolerance for a, b in zip(rgb, want, strict=True))
    )


def test_chromium_draws_lanes_bars_and_ticks(
    chromium: str, start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    snap = record_orders(start_recording)
    page = write_snapshot(snap, tmp_path / "orders", "html")
    background = {(255, 255, 255), (248, 250, 252), (226, 232, 240)}
    # Headless Chromium on a loaded machine now and then captures a frame
    # before the timeline is painted (its lanes only background): such a
    # frame is taken again, up to three times. A page that draws nothing
    # stays blank and fails below.
    for attempt in range(3):
        shot = tmp_path / f"orders-{attempt}.png"
        run_chromium(chromium, tmp_path, page, f"--screenshot={shot}")
        png = shot.read_bytes()
        width, height, _, _ = decode_png(png)
        assert (width, height) == (1400, 800)
        # the lanes: right of the 230 px label column, below header, toolbar and axis
        counts, area = region_colours(png, 240, 230, 1390, 520)
        painted = sum(n for rgb, n in counts.items() if rgb not in background)
        if painted:
            break
    assert painted > area * 0.05, (painted, area)
    assert len(counts) > 12
    # the first names recorded get the first palette colours; errors are red
    assert near(counts, "#93c5fd") > 200  # bars of the first span name
    assert near(counts, "#f87171") > 10  # the span that raised

    dom = run_chromium(chromium, tmp_path, page, "--dump-dom")
    attrs = body_attributes(dom)
    assert attrs["data-rendered"] == "1"
    assert int(attrs["data-lanes"]) == len(snap.streams) == 5
    assert int(attrs["data-lanes-drawn"]) == 5
    assert int(attrs["data-bars-drawn"]) > 20
    assert int(attrs["data-ticks-drawn"]) > 20
    labels = re.findall(
        r'<div class="lane-label" data-lane="\d+"[^>]*><div class="tn"[^>]*>([^<]*)<', dom
    )
    assert sorted(labels) == ["MainThread", "worker-0", "worker-1", "worker-2", "worker-3"]
    assert "tests/test_orders.py::test_concurrent_orders" in dom


def with_script(page: Path, script: str, *, first: str = "") -> Path:
    """A copy of ``page`` that runs ``first`` before the page's own script and
    ``script`` once the timeline is drawn, then empties the data block (the
    DOM dump is then quick to write)."""
    out = page.with_name("probe-" + page.name)
    text = page.read_text("utf-8")
    script += (
        ';document.getElementById("ringtrace-data").textContent = "";'
        'document.getElementById("ringtrace-snapshot").textContent = "";'
    )
    text = text.replace("</body>", f"<script>{script}</script></body>")
    if first:
        data = '<script type="application/json"'
        text = text.replace(data, f"<script>{first}</script>{data}", 1)
    out.write_text(text, "utf-8")
    return out


def test_chromium_shows_gaps_drops_and_hostile_values_as_text(
    chromium: str, tmp_path: Path
) -> None:
    snap = lossy_snapshot()
    page = write_snapshot(snap, tmp_path / "lossy", "html")
    data = embedded(page)
    boom = next(i for i, e in enumerate(data["events"]) if data["names"][e[2]] == "boom")
    probe = with_script(
        page,
        f"""
        var p = window.ringtraceTimeline.eventPoint({boom});
        document.getElementById("main").dispatchEvent(
          new MouseEvent("mousemove", {{clientX: p.x, clientY: p.y, bubbles: true}}));
        """,
    )
    dom = run_chromium(chromium, tmp_path, probe, "--dump-dom")
    attrs = body_attributes(dom)
    assert attrs["data-rendered"] == "1"
    assert "data-pwned" not in attrs
    assert attrs["data-lanes"] == "4"
    assert int(attrs["data-gaps-drawn"]) == 1
    assert int(attrs["data-drops-drawn"]) == 1
    assert int(attrs["data-bars-drawn"]) == 6
    tip = re.search(r'<div id="tip"([^>]*)>(.*?)</div>\s*<noscript>', dom, re.S)
    assert tip is not None
    assert "hidden" not in tip.group(1), "the tooltip is shown"
    shown = tip.group(2)
    assert "boom" in shown and "MainThread" in shown
    # hostile values appear as text, escaped by the DOM serializer, never as markup
    assert "&lt;img src=x onerror=" in shown
    assert "&lt;/script&gt;&lt;script&gt;" in shown
    assert "<img" not in shown
    # header counts
    assert re.search(r"<b>11</b><span>lost</span>", dom)
    assert re.search(r"<b>1</b><span>skipped sub-buffers</span>", dom)
    assert re.search(r"<b>7</b><span>dropped</span>", dom)
    assert "tests/test_x.py::test_lossy[&lt;/script&gt;]" in dom


def test_chromium_aggregates_tens_of_thousands_of_spans(chromium: str, tmp_path: Path) -> None:
    n = 20_000
    infos = [stream(t, f"w{t}", first=0, last=2 * n - 1, subbuf_size=4096) for t in (1, 2)]
    events = []
    for i in range(n):
        for tid in (1, 2):
            t = i * 1_000 + tid * 10
            events.append(
                Event(BASE + t, "call", "entry", tid, f"w{tid}", {}, {}, "default", 2 * i)
            )
            events.append(
                Event(
                    BASE + t + 400,
                    "call",
                    "exit",
                    tid,
                    f"w{tid}",
                    {"duration_ns": 400},
                    {},
                    "default",
                    2 * i + 1,
                )
            )
    snap = Snapshot(events=events, streams=infos, clock_offset_ns=OFFSET, taken_at=BASE + n * 1_000)
    page = write_snapshot(snap, tmp_path / "big", "html")
    probe = with_script(
        page,
        """
        var body = document.body;
        body.setAttribute("data-whole-bars", body.getAttribute("data-bars-drawn"));
        window.ringtraceTimeline.zoomTo(-20000, 0);
        """,
    )
    attrs = body_attributes(run_chromium(chromium, tmp_path, probe, "--dump-dom"))
    assert attrs["data-rendered"] == "1"
    # 40,000 spans in view: drawn as at most about one block per two pixels a lane
    assert 0 < int(attrs["data-whole-bars"]) < 2 * 1400
    # zoomed to the last 20 microseconds: each span a bar (400 ns every 1000 ns)
    assert 2 * 19 <= int(attrs["data-bars-drawn"]) <= 2 * 21


def test_chromium_draws_edge_cases_without_script_errors(chromium: str, tmp_path: Path) -> None:
    """An empty snapshot, and calls nested deeper than the lane has rows."""
    probe = (
        "window.addEventListener('error', function (e) {"
        " document.body.setAttribute('data-script-error', e.message); });"
    )
    empty = Snapshot(events=[], streams=[], clock_offset_ns=OFFSET, taken_at=BASE)
    page = with_script(write_snapshot(empty, tmp_path / "empty", "html"), "", first=probe)
    attrs = body_attributes(run_chromium(chromium, tmp_path, page, "--dump-dom"))
    assert attrs["data-rendered"] == "1"
    assert "data-script-error" not in attrs
    assert (attrs["data-lanes"], attrs["data-bars-drawn"]) == ("0", "0")

    depth = 15
    info = stream(1, "<b>deep</b>", first=0, last=2 * depth - 1)
    kinds = ["entry"] * depth + ["exit"] * depth
    names = [f"level{i}" for i in range(depth)]
    names += names[::-1]
    events = [
        Event(BASE + 1_000 * i, name, kind, 1, "<b>deep</b>", {}, {}, "default", i)
        for i, (name, kind) in enumerate(zip(names, kinds, strict=True))
    ]
    idle = stream(2, "idle", first=None, last=None)
    snap = Snapshot(events=events, streams=[info, idle], clock_offset_ns=OFFSET, taken_at=BASE)
    page = write_snapshot(snap, tmp_path / "deep", "html")
    assert sorted(s[5] for s in embedded(page)["spans"]) == list(range(depth))
    dom = run_chromium(chromium, tmp_path, with_script(page, "", first=probe), "--dump-dom")
    attrs = body_attributes(dom)
    assert attrs["data-rendered"] == "1"
    assert "data-script-error" not in attrs
    assert attrs["data-bars-drawn"] == str(depth)
    assert "&lt;b&gt;deep&lt;/b&gt;" in dom  # a thread name is text too
    assert "depth 15, deepest rows merged" in dom


@pytest.mark.parametrize("make", ["recording", "lossy"])
def test_the_fast_encoder_and_the_pure_python_path_embed_the_same_data(
    make: str,
    start_recording: Callable[..., Recorder],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """msgspec (the ``fast`` extra, part of the test extra) encodes the event
    rows where it writes what the stdlib would; the rest, and everything
    without it, goes the stdlib's way. Both embed the same timeline."""
    if make == "recording":  # plain values: msgspec writes the event rows
        snap = record_orders(start_recording)
        rows = [(1, 0, 0, 0, ev.fields, 0, 0) for ev in snap.events]
        assert timeline._fast_dumps(rows, fields=True) is not None
    else:  # values only the stdlib's way writes as a browser reads them
        snap = lossy_snapshot()
        snap.events[-1].fields.update(odd=float("nan"), text="caf\u00e9", big=2**60)
    assert json_format.fast_encode is not None, "msgspec is part of the test extra"
    fast = timeline.read_data(write_snapshot(snap, tmp_path / "fast", "html"))
    monkeypatch.setattr(json_format, "fast_encode", None)
    pure = timeline.read_data(write_snapshot(snap, tmp_path / "pure", "html"))
    assert fast == pure
    assert len(fast["events"]) == len(snap.events)
    if make == "lossy":
        odd = {**snap.events[-1].fields, "odd": "NaN", "big": str(2**60)}
        assert fast["events"][-1][4] == odd


def tasks_snapshot() -> Snapshot:
    """Two asyncio tasks on the main thread, each with a span; a tiny span
    (too narrow for its name) beside a long one; a traced name with a source."""
    info = stream(1, "MainThread", first=0, last=9, subbuf_size=4096, num_subbuf=8)

    def at(us: int, name: str, kind: str, task: str | None, pos: int, **fields: Any) -> Event:
        ctx = {"task": task} if task else {}
        return Event(BASE + us * 1000, name, kind, 1, "MainThread", fields, ctx, "default", pos)

    events = [
        at(0, "handle", "entry", None, 0),
        at(10, "db.fetch", "entry", "Task-a", 1, n=1),
        at(20, "db.fetch", "entry", "Task-b", 2, n=2),
        at(400, "db.fetch", "exit", "Task-a", 3, duration_ns=390_000),
        at(900, "db.fetch", "exit", "Task-b", 4, duration_ns=880_000),
        at(901, "tiny.helper_with_a_long_name", "entry", None, 5),
        at(902, "tiny.helper_with_a_long_name", "exit", None, 6, duration_ns=1_000),
        at(1000, "handle", "exit", None, 7, duration_ns=1_000_000),
    ]
    return Snapshot(
        events=events,
        streams=[info],
        clock_offset_ns=OFFSET,
        taken_at=BASE + 1_100_000,
        origin_ns=BASE + 1_000_000,
        sources={"db.fetch": "/src/app/db.py:12"},
        metadata={"failure_ns": BASE + 1_000_000},
    )


def test_chromium_draws_the_legend_task_lanes_small_span_labels_and_sources(
    chromium: str, tmp_path: Path
) -> None:
    snap = tasks_snapshot()
    page = write_snapshot(snap, tmp_path / "tasks", "html")
    data = embedded(page)
    names = data["names"]
    tiny = next(i for i, sp in enumerate(data["spans"]) if names[sp[7]].startswith("tiny."))
    fetch = next(i for i, sp in enumerate(data["spans"]) if names[sp[7]] == "db.fetch")
    probe = with_script(
        page,
        f"""
        var T = window.ringtraceTimeline, main = document.getElementById("main");
        function at(p) {{ return {{clientX: p.x, clientY: p.y, bubbles: true}}; }}
        main.dispatchEvent(new MouseEvent("mousemove", at(T.spanPoint({tiny}))));
        var v = T.view(); T.zoomTo(v.t0, v.t1);  // draw now, with the hovered span
        var q = at(T.spanPoint({fetch}));
        main.dispatchEvent(new MouseEvent("mousedown", q));
        main.dispatchEvent(new MouseEvent("mouseup", q));
        """,
    )
    dom = run_chromium(chromium, tmp_path, probe, "--dump-dom")
    attrs = body_attributes(dom)
    assert attrs["data-rendered"] == "1"
    assert attrs["data-lanes"] == "3"  # the thread and its two tasks
    # the tiny span's name is drawn beside it while the pointer is on it
    assert attrs["data-hover-label"] == "tiny.helper_with_a_long_name"
    # task lanes are labelled as tasks of their thread, after the thread's lane
    labels = re.findall(r'<div class="lane-label( task)?"[^>]*?style="top: (\d+)px', dom)
    assert (bool(labels[0][0]), int(labels[0][1])) == (False, 0)
    assert sorted(bool(task) for task, _ in labels) == [False, True, True]
    assert ">task Task-a<" in dom and ">task Task-b<" in dom
    # the legend names the colours and markers
    legend = re.search(r'<div id="legend"[^>]*>(.*?)</div>', dom, re.S)
    assert legend is not None
    for words in ("raised an exception", "point event", "origin: the failure", "events lost"):
        assert words in legend.group(1)
    # the pinned span's card gives its source and its task
    details = re.search(r'<div id="details"[^>]*>(.*?)</div>\s*<div id="tip"', dom, re.S)
    assert details is not None
    assert "source /src/app/db.py:12" in details.group(1)
    assert "asyncio task Task-a" in details.group(1)
    assert "time from the failure" in dom


def test_chromium_sizes_the_embedded_timeline_to_its_content(chromium: str, tmp_path: Path) -> None:
    from pytest_ringtrace.attach import timeline_frame

    page = write_snapshot(tasks_snapshot(), tmp_path / "embedded", "html")
    estimate = timeline.frame_height(page)
    assert estimate == timeline.page_height(timeline.read_data(page))
    frame = timeline_frame("ringtrace call", page.read_text("utf-8"), page)
    assert frame.startswith(
        f'<iframe title="ringtrace call timeline" data-ringtrace-fit '
        f'style="width:100%;height:{estimate}px;'
    )
    outer = tmp_path / "report.html"
    outer.write_text(f"<!DOCTYPE html><html><body><h1>report</h1>{frame}</body></html>", "utf-8")
    dom = run_chromium(chromium, tmp_path, outer, "--dump-dom")
    height = re.search(r'<iframe [^>]*style="[^"]*height: ?(\d+)px', dom)
    assert height is not None, dom[:800]
    drawn = int(height.group(1))
    # three lanes: far less than the old fixed 520 px, and close to the estimate
    assert 200 <= drawn < 520
    assert abs(drawn - estimate) < 80


@pytest.mark.parametrize(
    "picture", ["timeline.png", "invoice_timeline.png", "settings_timeline.png"]
)
def test_the_readme_screenshots_are_drawn_timelines(picture: str) -> None:
    """The committed screenshots (docs/make_timeline_figure.py) show lanes
    with bars and a card, not a blank or error page."""
    png = (Path(__file__).resolve().parent.parent / "docs" / picture).read_bytes()
    width, height, _, _ = decode_png(png)
    assert (width, height) == (1400, 680)
    # the lanes, right of the label column, below the header, toolbar, legend and axis
    counts, area = region_colours(png, 240, 262, 1390, 450)
    background = {(255, 255, 255), (248, 250, 252), (226, 232, 240)}
    painted = sum(n for rgb, n in counts.items() if rgb not in background)
    assert painted > area * 0.005, (painted, area)
    assert len(counts) > 12
    # the header band is dark, the clicked item's card light below the lanes
    header, _ = region_colours(png, 0, 0, 1400, 20)
    assert max(header.values()) > 1400 * 20 * 0.5
    assert near(header, "#0f172a") > 1400 * 20 * 0.5


def identity_snapshot() -> Snapshot:
    """What only pairing by identity (name and entry time) gets right, and
    lanes only the page's own rules place.

    Three coroutines named ``job`` overlap on one thread and end in another
    order than they began; one of them raises. A thread id and name reused
    by a later stream (told apart by position); a thread id beyond what a
    JavaScript number holds; values JSON cannot hold as they are (a tuple,
    a dict with an integer key, infinity); an asyncio task on a stream the
    snapshot does not list.
    """
    first = stream(7, "worker", first=0, last=7)
    again = stream(7, "worker", first=100, last=101)
    huge = stream(2**62 + 1, "far", first=0, last=1)

    def ev(t: int, name: str, kind: str, info: StreamInfo, pos: int, **fields: Any) -> Event:
        return Event(
            BASE + t,
            name,
            kind,
            info.thread_id,
            "worker" if info is not huge else "far",
            fields,
            {"pid": 42},
            "default",
            pos,
        )

    events = [
        ev(0, "job", "entry", first, 0, n=(1, 2)),
        ev(10, "job", "entry", first, 1, n={3: "three"}),
        ev(20, "job", "entry", first, 2, n=float("inf")),
        ev(30, "job", "exit", first, 3, duration_ns=20),  # the second job's
        ev(35, "helper", "entry", first, 4),
        ev(60, "job", "exit", first, 5, duration_ns=60, exception="KeyError"),  # the first's
        ev(61, "helper", "exit", first, 6, duration_ns=26),
        ev(62, "job", "exit", first, 7, duration_ns=42),  # the third's
        ev(70, "again", "entry", again, 100),
        ev(80, "again", "exit", again, 101, duration_ns=10),
        ev(90, "far.call", "entry", huge, 0, id=2**63 - 5),
        ev(95, "far.call", "exit", huge, 1, duration_ns=5),
        Event(BASE + 96, "orphan", "entry", 5, "gone", {}, {"task": "Task-9"}, "default", 0),
        Event(
            BASE + 97,
            "orphan",
            "exit",
            5,
            "gone",
            {"duration_ns": 1},
            {"task": "Task-9"},
            "default",
            1,
        ),
    ]
    return Snapshot(
        events=events,
        streams=[first, again, huge],
        clock_offset_ns=OFFSET,
        taken_at=BASE + 100,
        pid=42,
    )


def test_identity_pairing_in_the_model(tmp_path: Path) -> None:
    data = embedded(write_snapshot(identity_snapshot(), tmp_path / "id", "html"))
    names = data["names"]
    jobs = sorted((s[1] + 100, s[2] + 100, s[6]) for s in data["spans"] if names[s[7]] == "job")
    assert jobs == [(0, 60, timeline.ERROR), (10, 30, 0), (20, 62, 0)]
    lanes = data["lanes"]
    by_name = {names[s[7]]: s[0] for s in data["spans"]}
    assert by_name["again"] == 1 and by_name["job"] == 0  # the reused thread id, by position
    assert lanes[2]["thread_id"] == str(2**62 + 1)  # beyond 2**53: its exact text
    assert [(lane.get("task"), lane.get("parent")) for lane in lanes[3:]] == [
        (None, None),
        ("Task-9", 3),
    ]
    far = next(e for e in data["events"] if names[e[2]] == "far.call")
    assert far[4] == {"id": str(2**63 - 5)}


def long_uptime(snap: Snapshot, shift: int = 2**55) -> Snapshot:
    """``snap`` as if taken on a machine up for years: every time beyond 2**53
    ns, more than a JavaScript number holds exactly (the origin 3 ns later, so
    that rounding would not cancel out)."""
    assert snap.origin_ns is not None
    return Snapshot(
        events=[ev._replace(timestamp=ev.timestamp + shift) for ev in snap.events],
        streams=snap.streams,
        clock_offset_ns=snap.clock_offset_ns - shift,
        taken_at=snap.taken_at + shift,
        origin_ns=snap.origin_ns + shift + 3,
        sources=snap.sources,
        metadata={k: v + shift if k.endswith("_ns") else v for k, v in snap.metadata.items()},
    )


@pytest.mark.parametrize(
    "make", ["lossy", "tasks", "identity", "interleaved", "orders", "empty", "long_uptime"]
)
def test_chromium_builds_the_same_timeline_as_the_python_model(
    make: str,
    chromium: str,
    start_recording: Callable[..., Recorder],
    tmp_path: Path,
) -> None:
    """The page pairs spans, places lanes and gaps itself from the embedded
    snapshot: every event, span, gap, lane, name, context and count it builds
    equals the Python model's."""
    if make == "lossy":
        snap = lossy_snapshot()
    elif make == "tasks":
        snap = tasks_snapshot()
    elif make == "identity":
        snap = identity_snapshot()
    elif make == "interleaved":  # exits that are not the innermost open entry
        info = stream(1, "MainThread", first=0, last=7)
        order = ["task", "task", "step", "task", "step", "task", "solo", "solo"]
        kinds = ["entry", "entry", "entry", "exit", "exit", "exit", "entry", "exit"]
        events = [
            Event(BASE + 10 * i, name, kind, 1, "MainThread", {}, {}, "default", i)
            for i, (name, kind) in enumerate(zip(order, kinds, strict=True))
        ]
        snap = Snapshot(events=events, streams=[info], clock_offset_ns=0, taken_at=BASE + 70)
    elif make == "orders":
        snap = record_orders(start_recording)
    elif make == "long_uptime":
        snap = long_uptime(tasks_snapshot())
        assert snap.events[1].timestamp - snap.events[0].timestamp == 10_000
    else:
        snap = Snapshot(events=[], streams=[], clock_offset_ns=OFFSET, taken_at=BASE)
    page = write_snapshot(snap, tmp_path / make, "html")
    probe = with_script(
        page,
        'document.body.setAttribute("data-model", '
        "JSON.stringify(window.ringtraceTimeline.model()));",
    )
    attrs = body_attributes(run_chromium(chromium, tmp_path, probe, "--dump-dom"))
    assert attrs["data-rendered"] == "1"
    built = json.loads(html.unescape(attrs["data-model"]))
    expected = timeline.read_data(page)
    for key in ("names", "kinds", "contexts", "lanes", "events", "spans", "gaps", "summary"):
        assert built[key] == expected[key], key
    assert built["snapshot"] == expected["snapshot"]
    assert len(built["events"]) == len(snap.events)


def test_pages_of_version_1_are_still_read(tmp_path: Path) -> None:
    """Version 1 embedded the model itself (built in Python when writing)."""
    snap = tasks_snapshot()
    data = timeline.model(snap)
    data["version"] = 1
    old = tmp_path / "old.html"
    old.write_text(
        '<!DOCTYPE html><script type="application/json" id="ringtrace-data">'
        + json.dumps(data).replace("<", "\\u003c")
        + "</script>",
        "utf-8",
    )
    assert timeline.read_data(old) == data
    assert timeline.read_html(old) == snap


def test_the_frame_height_estimate_is_the_model_height(
    start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    """pytest-html's frame gets its height from the embedded snapshot without
    building the timeline (frame_height): the same as the model's, here."""
    depth = 15
    names = [f"level{i}" for i in range(depth)]
    deep = Snapshot(
        events=[
            Event(BASE + 1_000 * i, name, kind, 1, "deep", {}, {}, "default", i)
            for i, (name, kind) in enumerate(
                zip(names + names[::-1], ["entry"] * depth + ["exit"] * depth, strict=True)
            )
        ],
        streams=[
            stream(1, "deep", first=0, last=2 * depth - 1),
            stream(2, "idle", first=None, last=None),
        ],
        clock_offset_ns=OFFSET,
        taken_at=BASE,
    )
    snaps = {
        "lossy": lossy_snapshot(),
        "tasks": tasks_snapshot(),
        "identity": identity_snapshot(),
        "orders": record_orders(start_recording),
        "deep": deep,
        "empty": Snapshot(events=[], streams=[], clock_offset_ns=OFFSET, taken_at=BASE),
    }
    heights = {}
    for name, snap in snaps.items():
        page = write_snapshot(snap, tmp_path / name, "html")
        heights[name] = (
            timeline.frame_height(page),
            timeline.page_height(timeline.read_data(page)),
        )
    assert all(a == b for a, b in heights.values()), repr(heights)
    assert len({a for a, _ in heights.values()}) > 3  # they differ by snapshot


# -- when coroutines ran: suspended stretches inside their bars ---------------------


def model_in_chromium(chromium: str, tmp_path: Path, page: Path) -> dict[str, Any]:
    probe = with_script(
        page,
        'document.body.setAttribute("data-model", '
        "JSON.stringify(window.ringtraceTimeline.model()));",
    )
    attrs = body_attributes(run_chromium(chromium, tmp_path, probe, "--dump-dom"))
    assert attrs["data-rendered"] == "1"
    built: dict[str, Any] = json.loads(html.unescape(attrs["data-model"]))
    return built


@pytest.mark.parametrize("make", ["edges", "jobs"])
def test_chromium_finds_the_same_stretches_as_the_python_model(
    make: str, chromium: str, tmp_path: Path
) -> None:
    snap = handmade_suspensions() if make == "edges" else three_jobs()
    page = write_snapshot(snap, tmp_path / make, "html")
    built = model_in_chromium(chromium, tmp_path, page)
    expected = timeline.read_data(page)
    assert expected["activity"]
    assert built["spans"] == expected["spans"]
    assert built["activity"] == expected["activity"]


# The probe: the colours of a row of pixels across the middle of two
# stretches of the span "whole", zoomed to it, then the card of the span.
PIXELS = """
var tl = window.ringtraceTimeline, m = tl.model(), out = {};
var i = m.spans.findIndex(function (s) { return m.names[s[7]] === "whole"; });
tl.zoomTo(m.spans[i][1] - 5000, m.spans[i][2] + 5000);
var c = document.getElementById("main"), r = c.getBoundingClientRect();
var x = c.getContext("2d"), dpr = window.devicePixelRatio || 1;
function row(n) {
  var p = tl.stretchPoint(i, n), seen = {};
  for (var dx = -20; dx <= 20; dx++) {
    var px = Math.round((p.x + dx - r.left) * dpr), py = Math.round((p.y - r.top) * dpr);
    var d = x.getImageData(px, py, 1, 1).data;
    seen[d[0] + "," + d[1] + "," + d[2]] = 1;
  }
  return Object.keys(seen);
}
out.running = row(2);
out.suspended = row(1);
out.drawn = Number(document.body.getAttribute("data-suspended-drawn"));
var p = tl.spanPoint(i);
document.getElementById("main").dispatchEvent(
  new MouseEvent("mousemove", {clientX: p.x, clientY: p.y, bubbles: true}));
out.card = document.getElementById("tip").textContent;
document.body.setAttribute("data-probe", JSON.stringify(out));
"""


def test_chromium_draws_suspended_stretches_inside_the_bar(chromium: str, tmp_path: Path) -> None:
    page = write_snapshot(handmade_suspensions(), tmp_path / "edges", "html")
    attrs = body_attributes(
        run_chromium(chromium, tmp_path, with_script(page, PIXELS), "--dump-dom")
    )
    probe = json.loads(html.unescape(attrs["data-probe"]))
    # running: the bar's own colour, one colour across; suspended: faded and
    # hatched, several colours, none of them the running one
    assert len(probe["running"]) == 1, probe
    assert len(probe["suspended"]) >= 2, probe
    assert probe["running"][0] not in probe["suspended"]
    solid = [int(v) for v in probe["running"][0].split(",")]
    faded = [[int(v) for v in c.split(",")] for c in probe["suspended"]]
    assert max(sum(c) for c in faded) > sum(solid)  # lighter: faded towards white
    assert probe["drawn"] >= 2  # both suspended stretches of "whole"
    assert "ran 45.0 \u00b5s of 170.0 \u00b5s, suspended 2 times" in probe["card"]


def test_chromium_shows_real_coroutines_ran_little_of_their_bars(
    chromium: str, tmp_path: Path
) -> None:
    snap = three_jobs()
    page = write_snapshot(snap, tmp_path / "jobs", "html")
    data = timeline.read_data(page)
    index = data["activity"][0][0]
    script = f"""
    var tl = window.ringtraceTimeline, out = {{}};
    out.drawn = Number(document.body.getAttribute("data-suspended-drawn"));
    var p = tl.spanPoint({index});
    document.getElementById("main").dispatchEvent(
      new MouseEvent("mousemove", {{clientX: p.x, clientY: p.y, bubbles: true}}));
    out.card = document.getElementById("tip").textContent;
    document.body.setAttribute("data-probe", JSON.stringify(out));
    """
    attrs = body_attributes(
        run_chromium(chromium, tmp_path, with_script(page, script), "--dump-dom")
    )
    probe = json.loads(html.unescape(attrs["data-probe"]))
    assert probe["drawn"] >= 3  # each job's wait, drawn in its bar
    assert re.search(r"ran [\d.]+ .s of [\d.]+ ms, suspended (once|\d+ times)", probe["card"]), (
        probe
    )
