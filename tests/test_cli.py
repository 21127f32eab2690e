"""The ``ringtrace`` command: show, convert, stats, and every bad input.

The snapshot files are real: recorded by ``instrument`` (with a discard
channel that drops and a sub-buffer made stale under the reader, so the
snapshot has drops and a gap) and written by the JSON format. A second,
hand-built snapshot has exact timestamps for the figures of ``stats``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import instrument
from instrument import Channel, Event, Snapshot, StreamInfo, plugins
from instrument.formats import Format, format_names, write_snapshot
from instrument.view import cli

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The single line of ``err``; fails if there is more or a traceback."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ringtrace"), err
    return lines[0]


# -- snapshots -----------------------------------------------------------------


def _record() -> Snapshot:
    """A real recording: two threads, three channels, 2 dropped, one gap."""
    app = Channel(
        "app", subbuf_size=4, num_subbuf=8, events=("request", "db.*", "render", "cache.*", "done")
    )
    jobs = Channel("jobs", subbuf_size=16, num_subbuf=2, events=("job", "tick"))
    drops = Channel("drops", subbuf_size=2, num_subbuf=2, mode="discard", events=("noisy",))
    rec = instrument.start([app, jobs, drops])
    try:

        def worker() -> None:
            with instrument.span("job", n=1):
                instrument.event("tick", i=0)
                instrument.event("tick", i=1)
            try:
                with instrument.span("job", n=2):
                    raise ValueError("bad job")
            except ValueError:
                pass

        t = threading.Thread(target=worker, name="worker-1")
        t.start()
        t.join()
        with instrument.span("request", id=1):  # positions 0..8 of the app stream
            instrument.event("db.query", sql="select 1")
            with instrument.span("render"):
                pass
            for key in "abcd":  # positions 4..7: the sub-buffer made stale below
                instrument.event("cache.miss", key=key)
        instrument.event("done", status="ok", note="héllo ✓")
        for i in range(6):  # a discard ring of 4: 2 dropped
            instrument.event("noisy", i=i)
        me = threading.get_ident()
        (stream,) = [s for s in rec.streams() if s.channel.name == "app" and s.thread_id == me]
        # positions 4..7 abandoned (reserved, never committed: an exception
        # from a signal handler each time): the reader counts sub-buffer 1 lost
        assert [r[0] for r in list(stream.ring)[4:8]] == [4, 5, 6, 7]
        for _ in range(4):
            del stream.ring[4]
        return instrument.snapshot()
    finally:
        instrument.stop()


def _handmade() -> Snapshot:
    """Exact timestamps: spans of known durations, one still open, one whose
    entry was overwritten."""

    def ev(ts: int, name: str, kind: str, tid: int, **fields: Any) -> Event:
        return Event(ts, name, kind, tid, "main" if tid == 1 else "pool-2", fields, {}, "c", ts)

    events = [
        ev(100, "load", "exit", 1, duration_ns=900),  # entry overwritten: began at -800
        ev(1_000, "serve", "entry", 1, path="/a"),
        ev(1_100, "hit", "event", 1),
        ev(1_200, "query", "entry", 1, table="t"),
        ev(1_500, "hit", "event", 1),
        ev(51_200, "query", "exit", 1, duration_ns=50_000),
        ev(61_000, "serve", "exit", 1, duration_ns=60_000),
        ev(62_000, "hang", "entry", 2, why="lock"),  # never ends
        ev(63_000, "hit", "event", 2),
        ev(64_000, "fail", "entry", 2),
        ev(64_500, "fail", "exit", 2, duration_ns=500, exception="KeyError", message="'k'"),
    ]
    streams = [
        StreamInfo("c", 1, "main", True, "overwrite", 4, 4, 40, 100, 61_000, [], 24, 0),
        StreamInfo("c", 2, "pool-2", False, "discard", 4, 4, 9, 62_000, 64_500, [], 0, 3),
    ]
    return Snapshot(
        events,
        streams,
        clock_offset_ns=1_700_000_000 * 10**9,
        taken_at=100_000,
        pid=4242,
        metadata={"test": "t.py::test_x"},
    )


@pytest.fixture(scope="module")
def recorded_snapshot() -> Snapshot:
    return _record()


@pytest.fixture
def recorded(recorded_snapshot: Snapshot, tmp_path: Path) -> Path:
    return write_snapshot(recorded_snapshot, tmp_path / "recorded", "json")


@pytest.fixture
def handmade(tmp_path: Path) -> Path:
    return write_snapshot(_handmade(), tmp_path / "handmade", "json")


def test_the_recording_has_what_the_tests_rely_on(recorded_snapshot: Snapshot) -> None:
    snap = recorded_snapshot
    assert len(snap.events) == 16
    assert snap.dropped == 2 and snap.skipped == 4 and snap.skipped_subbufs == 1
    assert [ev.name for ev in snap.events if ev.name.startswith("cache")] == []


# -- show ------------------------------------------------------------------------


def _body(line: str, thread: str) -> str:
    """What follows the thread column of a timeline line."""
    return line.split(thread, 1)[1]


def test_show_prints_header_and_every_event(
    capsys: pytest.CaptureFixture[str], recorded: Path, recorded_snapshot: Snapshot
) -> None:
    code, out, err = run(capsys, "show", str(recorded))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"snapshot {recorded}  pid {os.getpid()}  taken ")
    assert lines[1] == (
        "16 events, 2 threads, 3 streams, lost 6 (dropped 2, skipped 4 in 1 sub-buffers), "
        "1 gaps, 0 overwritten"
    )
    assert lines[2] == "16 of 16 events shown; time: seconds relative to the origin (the snapshot)"
    timeline = lines[4:]
    names = [ev.name for ev in recorded_snapshot.events]
    event_lines = [line for line in timeline if "gap:" not in line]
    assert len(event_lines) == 16
    for line, name in zip(event_lines, names, strict=True):
        assert f" {name}" in line
    # times are relative to the snapshot's origin: here the moment it was taken
    last = recorded_snapshot.events[-1].timestamp - recorded_snapshot.origin
    assert event_lines[-1].split()[0] == f"{last / 1e9:+.6f}"
    # a gap marker where the lost sub-buffer was, on the main thread
    (gap,) = [i for i, line in enumerate(timeline) if "gap:" in line]
    assert "MainThread" in timeline[gap]
    assert "4 events lost (1 sub-buffers skipped, positions 4..7, channel app)" in timeline[gap]
    assert "← render" in timeline[gap - 1]
    assert "← request" in timeline[gap + 1]


def test_show_indents_spans_by_depth_per_thread(
    capsys: pytest.CaptureFixture[str], recorded: Path
) -> None:
    out = run(capsys, "show", str(recorded), "--no-header")[1]
    main = [_body(line, "MainThread") for line in out.splitlines() if "MainThread" in line]
    assert main[0] == "  → request  id=1"
    assert main[1] == "    · db.query  sql='select 1'"
    assert main[2] == "    → render"
    assert main[3].startswith("    ← render  (")
    assert main[5].startswith("  ← request  (")
    assert main[6] == "  · done  status='ok' note='héllo ✓'"
    worker = [_body(line, "worker-1") for line in out.splitlines() if "worker-1" in line]
    assert [w.strip().split("  ")[0] for w in worker] == [
        "→ job",
        "· tick",
        "· tick",
        "← job",
        "→ job",
        "← job",
    ]
    assert worker[1].startswith("      · tick")  # thread column padded to "MainThread"
    assert "raised ValueError: bad job" in worker[5]


def test_show_filters_by_thread_name_glob_and_id(
    capsys: pytest.CaptureFixture[str], recorded: Path, recorded_snapshot: Snapshot
) -> None:
    by_name = run(capsys, "show", str(recorded), "--no-header", "--thread", "worker-1")[1]
    assert len(by_name.splitlines()) == 6
    assert all("worker-1" in line for line in by_name.splitlines())
    assert run(capsys, "show", str(recorded), "--no-header", "--thread", "work*")[1] == by_name
    tid = next(ev.thread_id for ev in recorded_snapshot.events if ev.thread_name == "worker-1")
    assert run(capsys, "show", str(recorded), "--no-header", "--thread", str(tid))[1] == by_name
    both = run(
        capsys,
        "show",
        str(recorded),
        "--no-header",
        "--thread",
        "worker-1",
        "--thread",
        "MainThread",
    )[1]
    assert len(both.splitlines()) == 17  # 16 events and the gap


def test_show_thread_that_matches_nothing_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], recorded: Path
) -> None:
    code, out, err = run(capsys, "show", str(recorded), "--thread", "nope")
    assert code == 2 and out == ""
    line = one_line_error(err)
    assert "--thread 'nope' matches no thread" in line
    assert "MainThread (" in line and "worker-1 (" in line


def test_show_filters_by_event_glob(capsys: pytest.CaptureFixture[str], recorded: Path) -> None:
    out = run(capsys, "show", str(recorded), "--event", "tick", "--event", "d*")[1]
    assert out.splitlines()[2].startswith("4 of 16 events shown")
    names = [line.split()[3] for line in out.splitlines()[4:]]
    # the gap stays: events matching the glob may have been lost in it
    assert names == ["tick", "tick", "db.query", "gap:", "done"]


def test_show_tail_and_time_range(
    capsys: pytest.CaptureFixture[str], recorded: Path, recorded_snapshot: Snapshot
) -> None:
    events = recorded_snapshot.events
    out = run(capsys, "show", str(recorded), "--no-header", "--tail", "3")[1]
    assert [line.split()[3] for line in out.splitlines()] == [ev.name for ev in events[-3:]]
    assert run(capsys, "show", str(recorded), "--no-header", "--tail", "0")[1] == ""

    lo, hi = events[3].timestamp, events[9].timestamp
    out = run(
        capsys,
        "show",
        str(recorded),
        "--no-header",
        "--thread",
        "worker-1",
        "--since",
        f"@{lo}",
        "--until",
        f"@{hi}",
    )[1]
    expected = [ev for ev in events if lo <= ev.timestamp <= hi and ev.thread_name == "worker-1"]
    assert len(out.splitlines()) == len(expected) > 0

    # relative: seconds (or a unit) before the origin; a leading minus is allowed
    last = recorded_snapshot.origin
    for window in (last - events[-5].timestamp, last - events[-5].timestamp - 1):
        expected = [ev for ev in events if ev.timestamp >= last - window]
        for since in (f"{window / 1e9:.9f}", f"-{window}ns", f"{window / 1e3:.3f}us"):
            out = run(capsys, "show", str(recorded), "--no-header", "--since", since)[1]
            assert len(out.splitlines()) == len(expected), since
    out = run(capsys, "show", str(recorded), "--no-header", "--until", "0")[1]
    before = (events[-1].timestamp - recorded_snapshot.origin) / 1e9
    assert out.splitlines()[-1].split()[:4] == [f"{before:+.6f}", "MainThread", "·", "noisy"]
    assert len(out.splitlines()) == 1 + sum(ev.timestamp <= last for ev in events)


@pytest.mark.parametrize("value", ["soon", "@12x", "1 h", "--"])
def test_show_bad_time_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], recorded: Path, value: str
) -> None:
    code, out, err = run(capsys, "show", str(recorded), f"--since={value}")
    assert code == 2 and out == ""
    assert one_line_error(err).startswith("ringtrace show: --since: ")


def test_show_header_summarises_metadata(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    snap = _handmade()
    snap.metadata = {
        "trigger": "exception",
        "exception": {"type": "ValueError", "message": "bad\ninput", "traceback": "x\n" * 500},
        "note": "n" * 300,
    }
    path = write_snapshot(snap, tmp_path / "meta", "json")
    lines = run(capsys, "show", str(path))[1].splitlines()
    meta = lines[1]
    assert meta.startswith("trigger='exception' exception='ValueError: bad input' note='nnn")
    assert meta.endswith("…") and len(meta) < 200  # long values are cut, tracebacks left out
    assert lines[2].startswith("11 events, 2 threads")


def test_an_empty_snapshot_is_shown_and_measured(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = Snapshot([], [], clock_offset_ns=0, taken_at=5, pid=1)
    path = write_snapshot(empty, tmp_path / "empty", "json")
    code, out, err = run(capsys, "show", str(path))
    assert (code, err) == (0, "")
    assert (
        out.splitlines()[2]
        == "0 of 0 events shown; time: seconds relative to the origin (the snapshot)"
    )
    code, out, err = run(capsys, "stats", str(path))
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "(no spans)"


def test_show_clocks(capsys: pytest.CaptureFixture[str], handmade: Path) -> None:
    mono = run(capsys, "show", str(handmade), "--no-header", "--clock", "monotonic")[1]
    assert [int(line.split()[0]) for line in mono.splitlines()][:3] == [100, 1_000, 1_100]
    wall = run(capsys, "show", str(handmade), "--no-header", "--clock", "wall")[1]
    # 1_700_000_000 s after the epoch is 2023-11-14 22:13:20 UTC
    assert wall.splitlines()[0].startswith("22:13:20.000000")
    rel = run(capsys, "show", str(handmade), "--no-header")[1]
    snap = Snapshot.load(handmade)
    first = snap.events[0].timestamp - snap.origin
    assert rel.splitlines()[0].split()[0] == f"{first / 1e9:+.6f}"  # relative to the origin
    # a plus reaches after the origin
    after = run(capsys, "show", str(handmade), "--no-header", "--since", "+0ns")[1]
    assert len(after.splitlines()) == sum(ev.timestamp >= snap.origin for ev in snap.events)


def test_show_colour(
    capsys: pytest.CaptureFixture[str], recorded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    coloured = run(capsys, "show", str(recorded), "--color", "always")[1]
    plain = run(capsys, "show", str(recorded), "--color", "never")[1]
    assert ANSI.search(coloured) and not ANSI.search(plain)
    assert ANSI.sub("", coloured) == plain
    assert run(capsys, "show", str(recorded))[1] == plain  # captured output: not a terminal

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert cli.use_color("auto", Tty())
    assert not cli.use_color("never", Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cli.use_color("auto", Tty())
    assert cli.use_color("always", Tty())
    monkeypatch.setenv("NO_COLOR", "")
    monkeypatch.setenv("TERM", "dumb")
    assert not cli.use_color("auto", Tty())


def test_show_on_a_terminal_that_cannot_print_unicode(
    recorded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", out)
    assert cli.main(["show", str(recorded), "--no-header"]) == 0
    out.flush()
    text = raw.getvalue().decode("ascii")
    assert "-> request" in text and "<- request" in text and "* db.query" in text
    assert "!! gap:" in text
    assert r"note='h\xe9llo \u2713'" in text


# -- stats -----------------------------------------------------------------------


def test_stats_figures(capsys: pytest.CaptureFixture[str], handmade: Path) -> None:
    code, out, err = run(capsys, "stats", str(handmade))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"snapshot {handmade}  pid 4242")
    assert lines[1] == (
        "11 events in 2 threads; lost 3 (dropped 3, skipped 0 in 0 sub-buffers), 0 gaps, "
        "24 overwritten"
    )
    threads = lines[lines.index("threads") + 1 : lines.index("threads") + 4]
    assert threads[0].split() == [
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
    ]
    assert threads[1].split() == [
        "main",
        "1",
        "c",
        "7",
        "2",
        "3",
        "2",
        "0",
        "0",
        "(0",
        "sb)",
        "24",
        "0",
        "alive",
    ]
    assert threads[2].split() == [
        "pool-2",
        "2",
        "c",
        "4",
        "2",
        "1",
        "1",
        "3",
        "0",
        "(0",
        "sb)",
        "0",
        "0",
        "ended",
    ]
    start = lines.index("most frequent events")
    frequent = [line.split()[:3] for line in lines[start + 2 : start + 8]]
    assert frequent == [
        ["hit", "3", "0"],
        ["fail", "1", "1"],
        ["hang", "1", "1"],
        ["load", "1", "1"],
        ["query", "1", "1"],
        ["serve", "1", "1"],
    ]
    start = lines.index("slowest spans")
    slow = lines[start + 2 :]
    assert slow[0].split()[:5] == ["60.0", "us", "serve", "main", "done"]
    assert "path='/a'" in slow[0]
    assert slow[1].split()[:5] == ["50.0", "us", "query", "main", "done"]
    # hang: open from 62_000 until the snapshot was taken at 100_000
    assert slow[2].split()[:5] == ["38.0", "us", "hang", "pool-2", "open"]
    assert "why='lock'" in slow[2]
    assert slow[3].split()[:4] == ["900", "ns", "load", "main"]  # entry no longer held
    assert slow[4].split()[:5] == ["500", "ns", "fail", "pool-2", "error"]
    assert "KeyError: 'k'" in slow[4]


def test_stats_top_bounds_the_tables(capsys: pytest.CaptureFixture[str], handmade: Path) -> None:
    out = run(capsys, "stats", str(handmade), "--top", "2", "--no-header")[1].splitlines()
    start = out.index("most frequent events")
    assert [line.split()[0] for line in out[start + 2 : start + 4]] == ["hit", "fail"]
    assert out[start + 4] == ""
    start = out.index("slowest spans")
    assert len(out[start + 2 :]) == 2


def test_stats_on_a_recording(capsys: pytest.CaptureFixture[str], recorded: Path) -> None:
    code, out, _ = run(capsys, "stats", str(recorded), "--no-header")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("16 events in 2 threads; lost 6 (dropped 2, skipped 4 in 1 ")
    main = next(line for line in lines if line.startswith("MainThread"))
    assert main.split()[2:] == [
        "app,drops",
        "10",
        "2",
        "2",
        "6",
        "2",
        "4",
        "(1",
        "sb)",
        "0",
        "1",
        "alive",
    ]
    spans = lines[lines.index("slowest spans") + 2 :]
    names = [line.split()[2] for line in spans]
    assert sorted(names) == ["job", "job", "render", "request"]
    assert names.index("request") < names.index("render")  # it encloses render
    assert any("error" in line and "ValueError: bad job" in line for line in spans)


# -- convert ---------------------------------------------------------------------


class LinesFormat:
    """A test format plugin: one event name per line; and a directory format."""

    @plugins.hookimpl
    def ringtrace_formats(self) -> list[Format]:
        def lines(snap: Snapshot, out: Any) -> None:
            out.write("".join(f"{ev.name}\n" for ev in snap.events).encode())

        def tree(snap: Snapshot, directory: Path) -> None:
            (directory / "names").write_text(" ".join(ev.name for ev in snap.events))

        def broken(snap: Snapshot, out: Any) -> None:
            raise RuntimeError("writer exploded\nsecond line")

        return [
            Format("lines", ".lines.txt", lines, "event names"),
            Format("tree", ".tree", tree, "a directory", directory=True),
            Format("broken", ".broken", broken, "always fails"),
        ]


@pytest.fixture
def lines_format() -> Iterator[None]:
    name = plugins.register(LinesFormat(), name="test-lines-format")
    try:
        yield
    finally:
        plugins.unregister(name=name)


def test_convert_to_json_round_trips(
    capsys: pytest.CaptureFixture[str], recorded: Path, tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, "convert", str(recorded), "--to", "json", "-o", str(tmp_path / "copy.json")
    )
    assert (code, err) == (0, "")
    assert out == f"{tmp_path / 'copy.json'}\n"
    assert Snapshot.load(tmp_path / "copy.json") == Snapshot.load(recorded)


def test_convert_onto_its_input_is_refused(
    capsys: pytest.CaptureFixture[str], recorded: Path
) -> None:
    before = recorded.read_bytes()
    code, out, err = run(capsys, "convert", str(recorded), "--to", "json")
    assert code == 2 and out == ""
    assert "is the input file" in one_line_error(err)
    assert recorded.read_bytes() == before


def test_convert_formats_come_from_the_registry(
    capsys: pytest.CaptureFixture[str],
    recorded: Path,
    lines_format: None,
    recorded_snapshot: Snapshot,
) -> None:
    assert "lines" in format_names()
    code, out, err = run(capsys, "convert", str(recorded), "--to", "lines")
    assert (code, err) == (0, "")
    written = recorded.with_name("recorded.lines.txt")  # FILE's suffix replaced
    assert out == f"{written}\n"
    assert written.read_text().split() == [ev.name for ev in recorded_snapshot.events]
    # -o without the suffix gets it; with it, it is kept as given
    run(capsys, "convert", str(recorded), "--to", "lines", "-o", str(recorded.parent / "a"))
    assert (recorded.parent / "a.lines.txt").is_file()
    run(
        capsys,
        "convert",
        str(recorded),
        "--to",
        "lines",
        "-o",
        str(recorded.parent / "b.lines.txt"),
    )
    assert (recorded.parent / "b.lines.txt").is_file()


def test_convert_help_lists_the_registered_formats(
    capsys: pytest.CaptureFixture[str], lines_format: None
) -> None:
    code, out, _ = run(capsys, "convert", "--help")
    assert code == 0
    for name in format_names():
        assert name in out
    assert "lines: event names" in " ".join(out.split())


def test_convert_to_an_unknown_format_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], recorded: Path
) -> None:
    code, out, err = run(capsys, "convert", str(recorded), "--to", "lines")  # not registered
    assert code == 2 and out == ""
    line = one_line_error(err)
    assert "argument --to: invalid choice: 'lines'" in line
    for name in format_names():
        assert name in line


def test_convert_errors_while_writing(
    capsys: pytest.CaptureFixture[str], recorded: Path, lines_format: None
) -> None:
    out_dir = recorded.parent / "t.tree"
    assert run(capsys, "convert", str(recorded), "--to", "tree", "-o", str(out_dir))[0] == 0
    assert (out_dir / "names").is_file()
    code, out, err = run(capsys, "convert", str(recorded), "--to", "tree", "-o", str(out_dir))
    assert code == 1 and out == ""
    assert "already exists" in one_line_error(err)

    code, out, err = run(capsys, "convert", str(recorded), "--to", "broken")
    assert code == 1 and out == ""
    assert "writer exploded second line" in one_line_error(err)
    assert not recorded.with_name("recorded.broken").exists()

    code, _, err = run(capsys, "convert", str(recorded), "--to", "tree", "-o", "-")
    assert code == 2 and "writes a directory" in one_line_error(err)


def test_convert_to_stdout(recorded: Path, recorded_snapshot: Snapshot) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_ringtrace",
            "convert",
            str(recorded),
            "--to",
            "json",
            "-o",
            "-",
        ],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    copy = recorded.with_name("from-stdout.json")
    copy.write_bytes(proc.stdout)
    assert Snapshot.load(copy) == Snapshot.load(recorded)


# -- bad input -------------------------------------------------------------------


def _bad_files(directory: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input, and a fragment its error message must contain."""
    data = good.read_bytes()
    files: dict[str, tuple[Path, str]] = {}

    def put(name: str, content: bytes, expect: str) -> None:
        path = directory / name
        path.write_bytes(content)
        files[name] = (path, expect)

    put("empty.json", b"", "empty file, not a ringtrace snapshot")
    put("truncated.json", data[: len(data) // 2], "truncated")
    put("truncated.json.gz", gzip.compress(data)[:-40], "truncated")
    put("not-json.json", b"\x00\x01binary\xff garbage", "not a ringtrace snapshot")
    put("text.json", b"hello, world\n", "not a ringtrace snapshot (not JSON)")
    put(
        "chrome.json",
        json.dumps({"traceEvents": [], "displayTimeUnit": "ns"}).encode(),
        "Chrome trace",
    )
    put("list.json", b"[1, 2, 3]", "not a ringtrace snapshot")
    doc = json.loads(data)
    doc["version"] = 999
    put("version.json", json.dumps(doc).encode(), "version 999 is not supported")
    files["missing.json"] = (directory / "missing.json", "no such file")
    (directory / "a-dir").mkdir()
    files["a-dir"] = (directory / "a-dir", "is a directory")
    return files


BAD = [
    "empty.json",
    "truncated.json",
    "truncated.json.gz",
    "not-json.json",
    "text.json",
    "chrome.json",
    "list.json",
    "version.json",
    "missing.json",
    "a-dir",
]
COMMANDS = {
    "show": ["show"],
    "stats": ["stats"],
    "convert": ["convert", "--to", "json", "-o", "out.json"],
}


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_input_is_one_line_and_status_1(
    capsys: pytest.CaptureFixture[str],
    recorded: Path,
    tmp_path: Path,
    bad: str,
    command: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    path, expect = _bad_files(tmp_path, recorded)[bad]
    argv = COMMANDS[command]
    code, out, err = run(capsys, *argv[:1], str(path), *argv[1:])
    assert code == 1
    assert out == ""
    line = one_line_error(err)
    assert line.startswith(f"ringtrace: {path}: ")
    assert expect in line
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    "argv, expect",
    [
        ([], "the following arguments are required: COMMAND"),
        (["explode"], "invalid choice: 'explode'"),
        (["show"], "the following arguments are required: FILE"),
        (["show", "f.json", "--tail", "-1"], "must be 0 or more"),
        (["show", "f.json", "--tail", "many"], "not a whole number"),
        (["show", "f.json", "--color", "pink"], "invalid choice: 'pink'"),
        (["convert", "f.json"], "the following arguments are required: --to"),
        (["stats", "f.json", "--top", "x"], "not a whole number"),
        (["show", "f.json", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_are_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expect: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    line = one_line_error(err)
    assert expect in line
    assert "--help" in line


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "show" in out and "convert" in out and "stats" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("ringtrace ")


# -- as a program ----------------------------------------------------------------


def test_python_dash_m_runs_the_command(recorded: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "pytest_ringtrace", "stats", str(recorded)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and "slowest spans" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "pytest_ringtrace", "show", str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr == f"ringtrace: {tmp_path / 'nope.json'}: no such file\n"


def test_the_console_script_is_cli_main() -> None:
    from importlib.metadata import entry_points

    (ep,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "ringtrace"]
    assert ep.value == "instrument.view.cli:main"
    assert ep.load() is cli.main


def test_a_closed_pipe_ends_show_quietly(tmp_path: Path) -> None:
    instrument.start()
    try:
        for i in range(20_000):
            instrument.event("many", i=i)
        snap = instrument.snapshot()
    finally:
        instrument.stop()
    path = write_snapshot(snap, tmp_path / "big", "json")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_ringtrace", "show", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"snapshot ")
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert err == ""
