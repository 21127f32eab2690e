"""The shared-memory stream of a child process: written by one process,
read by another without stopping it; torn and overwritten slots counted."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from instrument import Channel, Snapshot
from instrument.children import merge_children
from instrument.shared import HEADER_SIZE, SLOT_SIZE, SharedStream, read_shared
from instrument.stream import ENTRY, EXIT


def _stream(tmp_path: Path, **channel: Any) -> SharedStream:
    chan = Channel(**{"subbuf_size": 4, "num_subbuf": 4, **channel})
    return SharedStream(chan, threading.current_thread(), {}, str(tmp_path))


def _write(stream: SharedStream, name: str, fields: Any = None, kind: str | None = None) -> None:
    append, reserve = stream.writer()
    record = (reserve(), 1000 + len(stream.ring), name, fields)
    append(record if kind is None else (*record, kind))


def test_records_read_back_from_the_file_in_position_order(tmp_path: Path) -> None:
    stream = _stream(tmp_path)
    _write(stream, "a", {"n": 1})
    _write(stream, "call", None, ENTRY)
    _write(stream, "call", 1001, EXIT)
    read = read_shared(stream.path)
    assert read.header["pid"] == os.getpid()
    assert read.header["thread_id"] == threading.get_native_id()
    assert read.records == [
        (0, (1000, "a", {"n": 1})),
        (1, (1001, "call", None, ENTRY)),
        (2, (1002, "call", 1001, EXIT)),
    ]
    assert read.gaps == [] and read.produced == 3
    assert list(stream.ring) == [  # the in-process ring has them too
        (0, 1000, "a", {"n": 1}),
        (1, 1001, "call", None, ENTRY),
        (2, 1002, "call", 1001, EXIT),
    ]


def test_a_wrapped_ring_keeps_the_newest_and_counts_the_rest(tmp_path: Path) -> None:
    stream = _stream(tmp_path)  # 16 slots, sub-buffers of 4
    for n in range(21):
        _write(stream, "e", {"n": n})
    read = read_shared(stream.path)
    # The writer is in the sub-buffer of 20: the ring holds 8..20 (its lap).
    assert [fields["n"] for _, (_, _, fields) in read.records] == list(range(8, 21))
    assert read.begin == 8 and read.gaps == []


def test_a_slot_left_open_by_a_dead_writer_is_a_counted_gap(tmp_path: Path) -> None:
    stream = _stream(tmp_path)
    for n in range(10):
        _write(stream, "e", {"n": n})
    # A writer killed in the middle of its write of position 5: open.
    stream.mm[HEADER_SIZE + 5 * SLOT_SIZE : HEADER_SIZE + 5 * SLOT_SIZE + 8] = bytes(8)
    read = read_shared(stream.path)
    assert read.gaps == [(4, 8)]  # the whole sub-buffer, as the in-process reader does
    assert [pos for pos, _ in read.records] == [0, 1, 2, 3, 8, 9]


def test_fields_marshal_refuses_are_captured_and_big_ones_shrunk(tmp_path: Path) -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<Thing>"

    stream = _stream(tmp_path)
    _write(stream, "odd", {"thing": Thing(), "password": "hunter2"})
    _write(stream, "big", {"blob": "x" * 2000})
    read = read_shared(stream.path)
    fields = read.records[0][1][2]
    # captured as text by instrument.values (its rendering is the values' own)
    assert fields["password"] == "[redacted]"
    assert isinstance(fields["thing"], str) and "Thing" in fields["thing"]
    assert read.records[1][1][1] == "big"
    assert "do not fit" in read.records[1][1][2]["ringtrace.truncated"]


def test_a_corrupt_file_is_skipped_by_the_merge(tmp_path: Path) -> None:
    (tmp_path / "stream-1-1-default.ring").write_bytes(b"garbage")
    snap = Snapshot(events=[], streams=[], clock_offset_ns=0, taken_at=0, pid=os.getpid())
    assert merge_children(snap, str(tmp_path), None) == 0
    assert snap.metadata["processes"] == []


def test_shared_streams_are_bounded(tmp_path: Path) -> None:
    stream = _stream(tmp_path, subbuf_size=65536, num_subbuf=16)
    assert os.path.getsize(stream.path) == HEADER_SIZE + 4096 * SLOT_SIZE  # 2 MiB


@pytest.mark.parametrize("window", [None, 1005])
def test_merge_keeps_the_window(tmp_path: Path, window: int | None) -> None:
    import subprocess
    import sys

    code = (
        f"import sys, threading; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
        "from instrument import Channel\n"
        "from instrument.shared import SharedStream\n"
        f"s = SharedStream(Channel(), threading.current_thread(), {{}}, {str(tmp_path)!r})\n"
        "append, reserve = s.writer()\n"
        "for n in range(10): append((reserve(), 1000 + n, 'e', {'n': n}))\n"
    )
    child = subprocess.run([sys.executable, "-c", code], check=True)
    assert child.returncode == 0
    snap = Snapshot(events=[], streams=[], clock_offset_ns=0, taken_at=0, pid=os.getpid())
    added = merge_children(snap, str(tmp_path), window)
    assert added == (10 if window is None else 5)
    (info,) = snap.streams
    assert info.alive is False and info.context["pid"] != os.getpid()
    assert all(ev.context == {"pid": info.context["pid"]} for ev in snap.events)


def test_the_startup_hook_shipped_is_the_one_written_and_is_inert_when_unset() -> None:
    import subprocess
    import sys

    from instrument.childstart import PTH_LINE

    shipped = Path(__file__).parents[1] / "ringtrace-children.pth"
    assert shipped.read_text() == PTH_LINE
    env = {k: v for k, v in os.environ.items() if k != "RINGTRACE_CHILDREN"}
    code = "import sys; print('instrument' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout == "False\n"  # nothing imported, nothing started
