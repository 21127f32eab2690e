"""Readers refuse what is not a snapshot file, and bound what they read.

A FIFO would block a reader forever and ``/dev/zero`` never ends: only
regular files are opened. A file larger than the reading limit, and gzip data
that inflates far beyond its size (a gzip bomb), are refused with a clear
one-line error, before memory fills up.
"""

from __future__ import annotations

import gzip
import os
import socket
import sys
from pathlib import Path

import pytest

import instrument
from instrument import Snapshot, SnapshotFileError
from instrument import formats as formats_module
from instrument.formats import write_snapshot
from instrument.view import cli

pytestmark = pytest.mark.timeout(60)  # a reader that blocks must fail, not hang the suite


def small_snapshot(tmp_path: Path, fmt: str = "json") -> Path:
    rec = instrument.start()
    try:
        for i in range(50):
            instrument.event("tick", i=i, text="x" * 20)
        snap = instrument.snapshot(recorder=rec)
    finally:
        instrument.stop()
    return write_snapshot(snap, tmp_path / "snap", fmt)


def refuse(path: Path, capsys: pytest.CaptureFixture[str], *words: str) -> None:
    with pytest.raises(SnapshotFileError) as info:
        Snapshot.load(path)
    for word in words:
        assert word in str(info.value)
    for command in ("show", "stats"):
        assert cli.main([command, str(path)]) == 1
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and "Traceback" not in err
        assert err.startswith(f"ringtrace: {path}")
        for word in words:
            assert word in err
    assert cli.main(["convert", str(path), "--to", "json", "-o", str(path) + ".out"]) == 1
    capsys.readouterr()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs (Windows)")
def test_a_fifo_is_refused_without_blocking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "snapshot.json"
    os.mkfifo(fifo)
    refuse(fifo, capsys, "a FIFO, not a regular file")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_symlink_to_dev_zero_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "snapshot.json"
    link.symlink_to("/dev/zero")
    refuse(link, capsys, "a character device, not a regular file")


def test_a_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refuse(tmp_path, capsys, "is a directory")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_a_socket_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.json"
    if len(str(path)) > 100:  # AF_UNIX path limit
        pytest.skip("temporary path too long for a Unix socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        refuse(path, capsys, "a socket, not a regular file")
    finally:
        server.close()


def gzip_bomb(path: Path, inflated_mib: int) -> Path:
    """Many gzip members of 1 MiB of zeros each: about 1 KiB per MiB inflated."""
    member = gzip.compress(b"\0" * (1 << 20), 9)
    path.write_bytes(member * inflated_mib)
    return path


def test_a_gzip_bomb_is_refused_early(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the 4 MB bomb inflates to 4 GB; a smaller one and a smaller
    # floor keep the test quick: the limit is the same rule
    monkeypatch.setattr(formats_module, "MIN_INFLATE_BYTES", 4 << 20)
    bomb = gzip_bomb(tmp_path / "bomb.json.gz", 200)
    assert bomb.stat().st_size < 1 << 20
    refuse(bomb, capsys, "gzip data inflating past", "gzip bomb")


def test_a_real_snapshot_is_well_within_the_inflate_limit(tmp_path: Path) -> None:
    path = small_snapshot(tmp_path, "json.gz")
    ratio = len(gzip.decompress(path.read_bytes())) / path.stat().st_size
    assert ratio < formats_module.MAX_INFLATE_RATIO
    assert len(Snapshot.load(path)) == 50


def test_a_file_larger_than_the_reading_limit_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = small_snapshot(tmp_path)
    assert len(Snapshot.load(path)) == 50
    monkeypatch.setattr(formats_module, "MAX_READ_BYTES", path.stat().st_size - 1)
    refuse(path, capsys, "larger than the reading limit")


def test_gzip_data_larger_than_the_reading_limit_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = small_snapshot(tmp_path, "json.gz")
    monkeypatch.setattr(formats_module, "MAX_READ_BYTES", 1000)
    refuse(path, capsys, "larger than the reading limit")


def test_the_limits_are_documented() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert "Only regular files are read" in readme
    assert f"{formats_module.MAX_INFLATE_RATIO} times its size" in readme
    assert sys.modules["instrument.formats"] is formats_module
