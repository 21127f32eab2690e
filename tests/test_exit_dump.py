"""An exit snapshot is bounded in time: busy daemon threads competing for
the GIL cannot hold up interpreter exit past ``EXIT_DUMP_SECONDS``; past it
the snapshot is abandoned with one line on stderr and leaves no file."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys, threading, time
import instrument
from instrument import triggers

triggers.EXIT_DUMP_SECONDS = float(sys.argv[2])
instrument.start()
instrument.dump_on(exit=True, exception=False, directory=sys.argv[1])


def busy(n):
    while True:
        instrument.event("spin", n=n)


for n in range(int(sys.argv[3])):
    threading.Thread(target=busy, args=(n,), daemon=True).start()
time.sleep(0.5)
"""


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timers (Windows)")
def test_an_exit_snapshot_past_its_deadline_is_abandoned(tmp_path: Path) -> None:
    out = tmp_path / "dumps"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), "0.001", "8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "exit trigger: no snapshot, it took longer than 0.001 s" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []  # nothing half-written


def test_an_exit_snapshot_within_its_deadline_is_written(tmp_path: Path) -> None:
    out = tmp_path / "dumps"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), "120", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (written,) = out.iterdir()
    assert written.name.endswith("-exit.json")
