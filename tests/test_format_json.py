"""Our JSON format: round trips equal (plain and gzip), streamed writing, and
a clear one-line ``SnapshotFileError`` for every kind of bad file."""

from __future__ import annotations

import contextlib
import datetime
import enum
import gzip
import io
import json
import math
import operator
import pickle
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from snapshot_builders import ev, stream_info

import instrument
from instrument import Channel, Event, Recorder, Snapshot, StreamInfo
from instrument.formats import (
    FormatError,
    format_names,
    get_format,
    json_format,
    sharing,
    write_snapshot,
)
from instrument.model import SnapshotFileError

Start = Callable[..., Recorder]

SIZE = 4  # events per sub-buffer in the small channels used here
FORMATS = ["json", "json.gz"]


# -- snapshots to write ------------------------------------------------------------


def record_threads(start_recording: Start, threads: int = 3, calls: int = 12) -> Snapshot:
    """A real recording: several threads, traced calls, spans, point events,
    two channels (one wraps, one discards), then a snapshot."""
    start_recording(
        Channel("main", subbuf_size=SIZE, num_subbuf=4),
        Channel("db", subbuf_size=SIZE, num_subbuf=2, mode="discard", events=["db.*"]),
    )

    @instrument.trace(fields=["n"])
    def handle(n: int) -> int:
        with instrument.span("step", n=n, label=f"ä-{n}"):
            instrument.event("db.query", sql="select 1", n=n, ratio=n / 3)
        if n % 5 == 4:
            raise KeyError(n)
        return n

    def work() -> None:
        for n in range(calls):
            with contextlib.suppress(KeyError):
                handle(n)

    workers = [threading.Thread(target=work, name=f"worker-{i}") for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    work()  # the main thread too, still alive at snapshot time
    snap = instrument.snapshot()
    snap.metadata = {"test": "tests/test_x.py::test_y[1]", "phase": "call", "worker": "gw1"}
    return snap


def tear_sub_buffer(rec: Recorder, thread_id: int, channel: str = "main") -> None:
    """Make one full sub-buffer of a thread's stream lack its records, as when
    writers abandoned every position of it (reserved, never committed)."""
    (stream,) = [s for s in rec.streams() if s.thread_id == thread_id and s.channel.name == channel]
    produced = stream.produced()
    oldest = max(produced - stream.channel.capacity, 0)
    start = -(-oldest // SIZE) * SIZE + SIZE  # a whole sub-buffer, not the first
    assert start + SIZE <= produced
    positions = [record[0] for record in stream.ring]
    first = positions.index(start)
    for _ in range(SIZE):
        del stream.ring[first]


def stream(tid: int = 7, **kw: Any) -> StreamInfo:
    positions: dict[str, Any] = dict(produced=100, first_position=10, last_position=99)
    return stream_info(tid, SIZE, **{**positions, **kw})


def hand_built() -> Snapshot:
    """Every kind of value the data model allows, and a few JSON cannot hold."""
    shared_ctx = {"pid": 42, "task": "Task-3"}
    events = [
        ev(1_000, "plain", n=1, f=2.5, s="x", b=True, none=None),
        ev(1_001, "unicode", text="héllo ✓ 漢字 \U0001f600", lone="\udcff", nl='a\nb\t"q"\\'),
        ev(1_002, "call", "entry", arg=-(2**80)),
        Event(1_003, "call", "exit", 7, "t7", {"duration_ns": 1}, shared_ctx, "main", 13),
        Event(1_004, "ctx", "event", 8, "t8", {}, shared_ctx, "other", 0),
        ev(1_005, "floats", inf=math.inf, ninf=-math.inf, tiny=5e-324, big=1.7976931348623157e308),
        ev(1_006, "nested", tup=(1, (2, "3")), lst=[1, [2, {"k": (3,)}]], d={1: "one", "$x": 2}),
        ev(1_007, "dollar", **{"$tuple": "not a tag at the top level"}),
        ev(1_008, "empty"),
    ]
    return Snapshot(
        events=events,
        streams=[
            stream(gaps=[(20, 24), (40, 48)], overwritten=10, context={"pid": 42, "x": (1,)}),
            stream(
                8, alive=False, mode="discard", dropped=5, first_position=None, last_position=None
            ),
        ],
        clock_offset_ns=1_700_000_000_000_000_000,
        taken_at=2_000,
        since=900,
        pid=42,
        metadata={"test": "t::x", "params": {"a": (1, 2), 3: None}, "nan": math.nan, "list": []},
    )


def same(a: Snapshot, b: Snapshot) -> None:
    """``a == b``, and in a way that also shows NaN-holding values are equal."""
    assert repr(a) == repr(b)
    assert a.metadata.keys() == b.metadata.keys()
    nan_free_a = {k: v for k, v in a.metadata.items() if k != "nan"}
    nan_free_b = {k: v for k, v in b.metadata.items() if k != "nan"}
    assert nan_free_a == nan_free_b
    assert a.events == b.events
    assert a.streams == b.streams
    for x in (a, b):
        assert all(type(e) is Event for e in x.events)
        assert all(type(g) is tuple for s in x.streams for g in s.gaps)


# -- round trips -------------------------------------------------------------------


@pytest.fixture(params=["msgspec", "stdlib"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both writing paths: msgspec (the ``fast`` extra, installed with ``test``)
    and the pure-Python fallback (the stdlib's encoder)."""
    if request.param == "stdlib":
        monkeypatch.setattr(json_format, "fast_encode", None)
    else:
        assert json_format.fast_encode is not None, "msgspec is part of the test extra"
    return str(request.param)


def test_both_formats_are_registered_with_a_reader() -> None:
    names = format_names()
    assert "json" in names and "json.gz" in names
    assert get_format("json").suffix == ".json"
    assert get_format("json.gz").suffix == ".json.gz"
    assert get_format("json").read is json_format.read
    assert get_format("json.gz").read is json_format.read


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_multi_thread_recording_reads_back_equal(
    start_recording: Start, tmp_path: Path, encoder: str, fmt: str
) -> None:
    snap = record_threads(start_recording)
    assert len({e.thread_name for e in snap.events}) == 4
    assert snap.overwritten > 0 and snap.dropped > 0  # both rings were too small
    path = write_snapshot(snap, tmp_path / "snap", fmt)
    assert path.name == "snap" + get_format(fmt).suffix
    loaded = Snapshot.load(path)
    assert loaded == snap
    same(loaded, snap)
    assert loaded.lost == snap.lost and loaded.threads == snap.threads
    assert [e.kind for e in loaded.events].count("exit") > 0
    assert any("exception" in e.fields for e in loaded.events)


@pytest.mark.parametrize("fmt", FORMATS)
def test_gaps_and_loss_counters_read_back(
    start_recording: Start, tmp_path: Path, encoder: str, fmt: str
) -> None:
    rec = start_recording(
        Channel("main", subbuf_size=SIZE, num_subbuf=4),
        Channel("db", subbuf_size=SIZE, num_subbuf=2, mode="discard", events=["db.*"]),
    )
    for i in range(3 * SIZE):
        instrument.event("tick", i=i)
        instrument.event("db.q", i=i)
    tear_sub_buffer(rec, threading.get_ident())
    snap = instrument.snapshot()
    assert snap.skipped_subbufs == 1 and snap.skipped == SIZE
    assert snap.dropped == 3 * SIZE - 2 * SIZE
    loaded = Snapshot.load(write_snapshot(snap, tmp_path / "gaps", fmt))
    assert loaded == snap
    (main,) = [s for s in loaded.streams if s.channel == "main"]
    (orig,) = [s for s in snap.streams if s.channel == "main"]
    assert len(main.gaps) == 1 and main.gaps == orig.gaps
    assert loaded.skipped_subbufs == 1 and loaded.dropped == SIZE and loaded.lost == 2 * SIZE


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_allowed_value_reads_back_equal(tmp_path: Path, encoder: str, fmt: str) -> None:
    snap = hand_built()
    loaded = Snapshot.load(write_snapshot(snap, tmp_path / "values", fmt))
    same(loaded, snap)
    assert math.isnan(loaded.metadata["nan"])
    by_name = {e.name: e for e in loaded.events}
    assert by_name["nested"].fields["tup"] == (1, (2, "3"))
    assert type(by_name["nested"].fields["lst"][1][1]["k"]) is tuple
    assert by_name["nested"].fields["d"] == {1: "one", "$x": 2}
    assert by_name["unicode"].fields["lone"] == "\udcff"
    (entry,) = [e for e in loaded.events if e.kind == "entry"]
    assert entry.fields == {"arg": -(2**80)}
    assert loaded.since == 900 and loaded.pid == 42
    assert loaded.streams[0].context == {"pid": 42, "x": (1,)}
    # equal contexts come back shared, as the recorder makes them
    assert by_name["call"].context is by_name["ctx"].context


def test_an_empty_snapshot_reads_back_equal(tmp_path: Path) -> None:
    snap = Snapshot(events=[], streams=[], clock_offset_ns=0, taken_at=0)
    assert Snapshot.load(write_snapshot(snap, tmp_path / "empty")) == snap


def test_the_file_is_strict_ascii_json_with_the_documented_members(tmp_path: Path) -> None:
    snap = hand_built()
    path = write_snapshot(snap, tmp_path / "doc")
    raw = path.read_bytes()
    raw.decode("ascii")  # pure ASCII

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    doc = json.loads(raw, parse_constant=no_constants)
    assert list(doc)[:2] == ["schema", "version"]
    assert doc["schema"] == "ringtrace-snapshot" and doc["version"] == 1
    assert doc["event_fields"] == list(Event._fields)
    assert doc["event_count"] == len(doc["events"]) == len(snap.events)
    assert doc["totals"] == {
        "events": len(snap.events),
        "lost": snap.lost,
        "dropped": 5,
        "skipped": 12,
        "skipped_subbufs": 3,
        "overwritten": 10,
    }
    assert doc["streams"][0]["gaps"] == [[20, 24], [40, 48]]
    assert doc["events"][0] == [
        1000,
        "plain",
        "event",
        7,
        "t7",
        snap.events[0].fields,
        {"pid": 42},
        "main",
        1000,
    ]
    assert doc["metadata"]["params"] == {"$dict": [["a", {"$tuple": [1, 2]}], [3, None]]}
    assert doc["events"][5][5]["inf"] == {"$float": "inf"}
    assert doc["taken_at_utc"].endswith("Z")


def test_gzip_output_is_the_same_document_compressed(tmp_path: Path) -> None:
    snap = hand_built()
    plain = write_snapshot(snap, tmp_path / "a", "json").read_bytes()
    packed = write_snapshot(snap, tmp_path / "a", "json.gz").read_bytes()
    assert packed[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed) == plain
    assert b".tmp" not in packed[:64]  # no temporary file name in the gzip header
    # the bytes gzip.GzipFile writes: no name, no time, the level's flag
    expected = io.BytesIO()
    level = json_format.GZIP_LEVEL
    with gzip.GzipFile("", "wb", level, expected, mtime=0) as gz:
        gz.write(plain)
    assert packed == expected.getvalue()


def test_read_tells_gzip_by_content_not_by_name(tmp_path: Path) -> None:
    snap = hand_built()
    packed = write_snapshot(snap, tmp_path / "a", "json.gz")
    renamed = packed.rename(tmp_path / "looks-plain.json")
    same(Snapshot.load(renamed), snap)
    same(json_format.read(str(renamed)), snap)


# -- streaming ---------------------------------------------------------------------


class CountingSink(io.RawIOBase):
    """A binary file that keeps only the size of each write."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        self.sizes.append(n)
        return n


def big_snapshot(n: int) -> Snapshot:
    ctx = {"pid": 1}
    kinds = ("entry", "event", "exit")
    events = [
        Event(
            10_000 + i,
            f"app.op{i % 7}",
            kinds[i % 3],
            1 + i % 4,
            f"w{i % 4}",
            {"i": i, "path": f"/item/{i}", "ok": i % 2 == 0},
            ctx,
            "main",
            i // 4,
        )
        for i in range(n)
    ]
    return Snapshot(events, [stream(t) for t in range(1, 5)], 0, 10_000 + n, pid=1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_big_snapshot_is_written_in_bounded_blocks(fmt: str) -> None:
    n = 16_000
    snap = big_snapshot(n)
    document = CountingSink()
    json_format.write(snap, document)
    size = sum(document.sizes)  # the uncompressed document: about 100 bytes an event
    assert size > 1_500_000
    assert len(document.sizes) >= n // json_format.CHUNK_EVENTS
    assert max(document.sizes) < 100 * json_format.CHUNK_EVENTS * 2  # one block at a time

    get_format(fmt).write(big_snapshot(10), CountingSink())  # imports and caches warmed up
    sink = CountingSink()
    tracemalloc.start()
    try:
        get_format(fmt).write(snap, sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # memory beyond the snapshot: a block or two, never the document
    assert peak < 0.75 * size, (peak, size)


def test_a_big_snapshot_reads_back_equal(tmp_path: Path, encoder: str) -> None:
    snap = big_snapshot(20_000)
    loaded = Snapshot.load(write_snapshot(snap, tmp_path / "big", "json.gz"))
    assert loaded == snap


class _Weekday(enum.Enum):
    MONDAY = 1


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        (math.nan, False),
        (-math.inf, False),
        ((1, 2), False),
        ([1, 2], False),
        ({"$tuple": [1]}, False),
        ("caf\u00e9 \u2713", True),
        ("lone \udcff", True),
        (2**70, True),
        (0.1, True),
    ],
    ids=repr,
)
def test_one_unusual_value_in_a_block_of_plain_ones_reads_back_equal(
    tmp_path: Path, encoder: str, value: Any, plain: bool
) -> None:
    """The fast path takes a block only when it would write it as the stdlib
    does: one value it cannot carry sends its block the careful way."""
    snap = big_snapshot(3 * json_format.CHUNK_EVENTS)
    second = slice(json_format.CHUNK_EVENTS, 2 * json_format.CHUNK_EVENTS)
    assert json_format._block_is_plain(snap.events[second])
    snap.events[700].fields["odd"] = value
    assert json_format._block_is_plain(snap.events[second]) is plain
    path = write_snapshot(snap, tmp_path / "odd")
    path.read_bytes().decode("ascii")  # non-ASCII text is escaped whatever the path
    loaded = Snapshot.load(path)
    same(loaded, snap)
    assert repr(loaded.events[700].fields["odd"]) == repr(value)


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e._replace(timestamp=True),
        lambda e: e._replace(position=1.0),
        lambda e: e._replace(thread_name=None),
        lambda e: e._replace(kind="begin"),
        lambda e: e._replace(fields={1: "int key"}),
        lambda e: e._replace(fields={"when": datetime.date(2025, 1, 1)}),
        lambda e: e._replace(fields={"day": _Weekday.MONDAY}),
        lambda e: e._replace(context={"x": b"bytes"}),
        lambda e: (*e, 1),
    ],
)
def test_the_fast_path_refuses_what_it_would_write_differently(
    change: Callable[[Event], Any],
) -> None:
    # msgspec would write each of these as some JSON, silently: a bool, a
    # string key, a date string, an enum's value, base64, a longer row.
    block = big_snapshot(json_format.CHUNK_EVENTS).events
    assert json_format._block_is_plain(block)
    block[100] = change(block[100])
    assert not json_format._block_is_plain(block)


# -- reading block by block --------------------------------------------------------------


@pytest.fixture
def blocks(tmp_path: Path) -> tuple[Snapshot, Snapshot]:
    """A snapshot of ten blocks and a half, and what Snapshot.load makes of it."""
    snap = big_snapshot(10 * json_format.CHUNK_EVENTS + 200)
    return snap, Snapshot.load(write_snapshot(snap, tmp_path / "blocks"))


def test_a_loaded_snapshot_reads_like_the_list_it_was(blocks: tuple[Snapshot, Snapshot]) -> None:
    snap, loaded = blocks
    events, expected = loaded.events, snap.events
    assert isinstance(events, json_format.BlockEvents)
    # an event is the same object each time it is used, as in a list
    assert events[600] is events[600] and events[-1] is events[len(expected) - 1]
    once, again = list(events), list(events)
    assert all(map(operator.is_, once, again)) and once[600] is events[600]
    n = len(expected)
    assert len(events) == n and events == expected and expected == events
    assert list(events) == expected and list(reversed(events)) == expected[::-1]
    for i in (0, 1, 511, 512, 513, 1023, 1024, n - 1, -1, -n, -513):
        assert events[i] == expected[i], i
    for bad in (n, -n - 1):
        with pytest.raises(IndexError):
            events[bad]
    for cut in (
        slice(None),
        slice(0, 512),
        slice(500, 1600),
        slice(511, 513),
        slice(-700, None),
        slice(3, 3000, 7),
        slice(None, None, -1),
        slice(2000, 100),
        slice(n - 5, n + 5),
    ):
        assert events[cut] == expected[cut], cut
    assert expected[777] in events and events.index(expected[4000]) == 4000
    assert events != expected[:-1] and events != [*expected[:-1], expected[0]]
    assert (events == "not a list") is False
    assert repr(events) == repr(expected)
    assert all(type(ev) is Event for ev in events)
    # equal strings and contexts are shared across blocks, as the recorder shares them
    assert events[0].context is events[-1].context
    assert events[0].thread_name is events[4 * json_format.CHUNK_EVENTS].thread_name


def test_changing_the_loaded_events_makes_them_a_list_of_their_own(
    blocks: tuple[Snapshot, Snapshot],
) -> None:
    snap, loaded = blocks
    expected = list(snap.events)
    events = loaded.events
    events.append(expected[0])
    expected.append(expected[0])
    del events[10:20]
    del expected[10:20]
    events[3] = expected[3] = expected[-1]
    events.sort(key=lambda e: (e.name, e.position), reverse=True)
    expected.sort(key=lambda e: (e.name, e.position), reverse=True)
    events.insert(0, expected[5])
    expected.insert(0, expected[5])
    assert events == expected and len(events) == len(expected)
    assert events[:50] == expected[:50] and events.copy() == expected
    assert events + [expected[1]] == [*expected, expected[1]]  # noqa: RUF005 (tests +)


def test_loaded_events_pickle_as_a_list(blocks: tuple[Snapshot, Snapshot]) -> None:
    snap, loaded = blocks
    again = pickle.loads(pickle.dumps(loaded))
    assert type(again.events) is list
    assert again == snap


def test_loading_needs_about_the_file_size_in_memory(tmp_path: Path) -> None:
    snap = big_snapshot(80_000)  # 8 MB: a block's transient is small beside it
    path = write_snapshot(snap, tmp_path / "mem")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        loaded = Snapshot.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the text of the blocks, and one block parsed at a time (json.load: 5x)
    assert peak < 1.5 * size, (peak, size)
    assert loaded == snap


@pytest.mark.parametrize("layout", ["indented", "one line", "blocks moved"])
def test_the_same_document_laid_out_otherwise_reads_back_equal(tmp_path: Path, layout: str) -> None:
    snap = big_snapshot(3 * json_format.CHUNK_EVENTS)
    path = write_snapshot(snap, tmp_path / "laid")
    if layout == "indented":
        path.write_text(json.dumps(json.loads(path.read_bytes()), indent=1))
    elif layout == "one line":
        path.write_text(json.dumps(json.loads(path.read_bytes())))
    else:  # valid JSON, but not one block per line
        path.write_bytes(path.read_bytes().replace(b"],\n[", b"]\n,["))
    loaded = Snapshot.load(path)
    assert type(loaded.events) is list
    assert loaded == snap


def test_a_bad_block_is_reported_when_loading_not_when_used(good: Path, tmp_path: Path) -> None:
    snap = big_snapshot(3 * json_format.CHUNK_EVENTS)
    path = write_snapshot(snap, tmp_path / "bad")
    data = path.read_bytes()
    at = data.rindex(b'"app.op3"')  # in the last block
    path.write_bytes(data[:at] + b"3" + data[at + len(b'"app.op3"') :])
    expect_error(path, "invalid ringtrace snapshot", "name must be str")


# -- writing what JSON cannot hold ------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.events[3].fields.update(obj=object()),
            r"event 3: fields\['obj'\] holds a object",
        ),
        (lambda s: s.events[2].fields.update(b=b"x"), r"event 2: fields\['b'\] holds a bytes"),
        (lambda s: s.metadata.update(when={1, 2}), r"metadata\['when'\] holds a set"),
        (
            lambda s: s.events.__setitem__(1, s.events[1]._replace(timestamp=1.5)),
            "event 1: timestamp",
        ),
        (lambda s: s.events.__setitem__(0, s.events[0]._replace(kind="begin")), "event 0: kind"),
        (lambda s: s.events[4].fields.__setitem__(3, "int key"), "event 4: fields has a key"),
    ],
)
def test_a_value_json_cannot_hold_is_a_clear_error_and_no_file(
    tmp_path: Path, change: Callable[[Snapshot], None], message: str, encoder: str
) -> None:
    snap = hand_built()
    change(snap)
    with pytest.raises((TypeError, ValueError), match=message):
        json_format.write(snap, io.BytesIO())
    with pytest.raises(FormatError, match=message) as info:
        write_snapshot(snap, tmp_path / "bad")
    assert isinstance(info.value.__cause__, (TypeError, ValueError))
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


# -- bad files ---------------------------------------------------------------------


def expect_error(path: Path, *words: str) -> SnapshotFileError:
    with pytest.raises(SnapshotFileError) as info:
        Snapshot.load(path)
    err = info.value
    assert isinstance(err, ValueError)
    text = str(err)
    assert "\n" not in text and text.startswith(str(path) + ": ")
    for word in words:
        assert word in text, text
    assert err.path == str(path)
    return err


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_snapshot(hand_built(), tmp_path / "good")


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.json", "no such file")


def test_a_directory(tmp_path: Path) -> None:
    expect_error(tmp_path, "directory")


@pytest.mark.parametrize(
    "content",
    [b"", b"  \n", gzip.compress(b"", mtime=0)],
    ids=["empty", "blank", "empty-gzip"],
)
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(content)
    expect_error(path, "not a ringtrace snapshot")


def test_truncated_at_any_point(good: Path, tmp_path: Path) -> None:
    data = good.read_bytes()
    cut = tmp_path / "cut.json"
    # every cut before the closing brace, at a spread of points and at the ends
    points = sorted({1, 2, 10, len(data) - 4, len(data) - 3, *range(1, len(data) - 3, 97)})
    for at in points:
        cut.write_bytes(data[:at])
        err = expect_error(cut)
        assert "truncated" in err.problem or "corrupt" in err.problem, (at, err.problem)
    cut.write_bytes(data[: data.index(b'"events":[') + 200])
    expect_error(cut, "truncated")


def test_truncated_gzip(tmp_path: Path) -> None:
    packed = write_snapshot(hand_built(), tmp_path / "g", "json.gz").read_bytes()
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    expect_error(cut, "gzip")


@pytest.mark.parametrize(
    "content",
    [
        b"\x1f\x8b" + b"garbage that is not deflate data" * 4,
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(256)),
    ],
    ids=["not-deflate", "bad-deflate"],
)
def test_gzip_garbage(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.json.gz"
    path.write_bytes(content)
    expect_error(path, "gzip")


def test_a_gzip_of_something_else(tmp_path: Path) -> None:
    path = tmp_path / "other.json.gz"
    path.write_bytes(gzip.compress(b"hello, world"))
    expect_error(path, "not a ringtrace snapshot")


def test_binary_data(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "pickle.json"
    path.write_bytes(pickle.dumps(hand_built()))  # never unpickled, never run
    expect_error(path, "not a ringtrace snapshot")


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ([1, 2, 3], ["not a ringtrace snapshot"]),
        ("just a string", ["not a ringtrace snapshot"]),
        ({"name": "package.json", "version": 1}, ["not a ringtrace snapshot"]),
        ({"traceEvents": []}, ["not a ringtrace snapshot", "Chrome trace"]),
        ({"schema": "something-else", "version": 1}, ["not a ringtrace snapshot"]),
    ],
)
def test_foreign_json(tmp_path: Path, doc: Any, words: list[str]) -> None:
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(doc))
    expect_error(path, *words)


def test_a_perfetto_file_is_named_as_such(tmp_path: Path) -> None:
    path = write_snapshot(hand_built(), tmp_path / "p", "perfetto")
    expect_error(path, "Chrome trace")


@pytest.mark.parametrize("version", [2, 0, "1", 1.0, None, True])
def test_wrong_version(good: Path, version: Any) -> None:
    doc = json.loads(good.read_bytes())
    doc["version"] = version
    good.write_text(json.dumps(doc))
    expect_error(good, "version", "not supported", "reads version 1")


def test_missing_version(good: Path) -> None:
    doc = json.loads(good.read_bytes())
    del doc["version"]
    good.write_text(json.dumps(doc))
    expect_error(good, "version")


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d["events"].pop(), ["truncated", "8 of 9 events"]),
        (lambda d: d.pop("events"), ["missing 'events'"]),
        (lambda d: d.pop("streams"), ["missing 'streams'"]),
        (lambda d: d.__setitem__("event_fields", ["timestamp"]), ["event_fields"]),
        (lambda d: d["events"][3].__setitem__(0, "1003"), ["events[3]: timestamp must be int"]),
        (lambda d: d["events"][2].__setitem__(2, "begin"), ["events[2]: kind"]),
        (lambda d: d["events"][4].pop(), ["events[4] must be an array of 9"]),
        (lambda d: d["events"].__setitem__(1, {"t": 1}), ["events[1] must be an array"]),
        (lambda d: d["events"][0].__setitem__(5, []), ["events[0]: fields must be dict"]),
        (lambda d: d["events"][0][5].__setitem__("x", {"$eval": "1"}), ["unknown tag '$eval'"]),
        (lambda d: d["events"][0][5].__setitem__("x", {"$float": "1e999"}), ["$float"]),
        (lambda d: d["events"][0][5].__setitem__("x", {"$tuple": 3}), ["$tuple"]),
        (lambda d: d["events"][0][5].__setitem__("x", {"$dict": [[[1], 2]]}), ["$dict key"]),
        (lambda d: d["streams"][0].__setitem__("mode", "ring"), ["streams[0]: mode"]),
        (lambda d: d["streams"][0].__setitem__("gaps", [[1]]), ["streams[0]", "gap"]),
        (lambda d: d["streams"][1].__setitem__("alive", 1), ["streams[1]: alive must be bool"]),
        (lambda d: d["streams"][0].__setitem__("produced", None), ["produced must be int"]),
        (lambda d: d.__setitem__("pid", "42"), ["pid must be int"]),
        (lambda d: d.__setitem__("metadata", []), ["metadata must be"]),
    ],
)
def test_invalid_structure(
    good: Path, change: Callable[[dict[str, Any]], None], words: list[str]
) -> None:
    edit(good, change)
    expect_error(good, *words)


def test_corrupt_json_in_the_middle(good: Path) -> None:
    data = bytearray(good.read_bytes())
    at = data.index(b'"events":[') + 12
    data[at : at + 1] = b"}"
    good.write_bytes(bytes(data))
    expect_error(good, "corrupt JSON", "line")


def test_extra_members_are_ignored(good: Path) -> None:
    """Version 1 readers skip what they do not know (additions keep the version)."""
    edit(good, lambda d: d.update(future={"x": 1}))
    same(Snapshot.load(good), hand_built())


@pytest.mark.parametrize("kind", ["plain", "tagged", "non-ascii", "surrogate", "empty"])
def test_a_document_shared_between_writers_is_the_streamed_one(
    kind: str, encoder: str, tmp_path: Path
) -> None:
    """Inside ``formats.sharing()`` the document is encoded once, in one
    buffer, and the HTML page embeds those bytes: the same bytes the writer
    streams block by block outside it, whatever the blocks hold."""
    snap = big_snapshot(0 if kind == "empty" else 2_000)
    odd = {
        "tagged": (1, 2),
        "non-ascii": "caf\u00e9 \u2603",
        "surrogate": "lone \udc80",
    }.get(kind)
    if odd is not None:
        ev = snap.events[1500]
        snap.events[1500] = ev._replace(fields={**ev.fields, "odd": odd})
    streamed = b"".join(json_format.document(snap))
    with sharing():
        shared = b"".join(json_format.document(snap))
        again = list(json_format.document(snap))
        page = write_snapshot(snap, tmp_path / "page", "html").read_bytes()
    assert shared == streamed
    assert len(again) == 1 and again[0] == streamed  # the first one's, kept
    assert json_format.parse(shared, "shared") == snap
    opening = b'<script type="application/json" id="ringtrace-snapshot">'
    start = page.index(opening) + len(opening)
    embedded = page[start : page.index(b"</script>", start)]
    assert embedded == streamed.replace(b"<", b"\\u003c")
