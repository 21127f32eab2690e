"""The CTF writer's output, as babeltrace2 reads it, against a kept copy.

``fixtures/ctf_mixed.details.txt`` is what babeltrace2's ``sink.text.details``
printed for :func:`snapshot_builders.mixed_snapshot` written by the CTF
writer before its rewrite into a batched one (the one that walked events one
by one): the trace's classes and field types, environment, every packet with
its context, every discarded-events and discarded-packets message, and every
event with its context and fields. A faster writer must print the same.

Regenerate it only for an intended change of the trace, and say so in the
commit: ``python tests/test_format_ctf_golden.py``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from snapshot_builders import mixed_snapshot
from test_format_ctf import babeltrace2, run_babeltrace

from instrument.formats import write_snapshot

__all__ = ["babeltrace2"]  # a fixture, used by name

FIXTURE = Path(__file__).parent / "fixtures" / "ctf_mixed.details.txt"


def details(binary: str, directory: Path) -> str:
    """babeltrace2's details of the mixed snapshot written as CTF in ``directory``."""
    trace = write_snapshot(mixed_snapshot(), directory / "mixed", "ctf")
    text = run_babeltrace(binary, trace, "-c", "sink.text.details").stdout
    return text.replace(str(trace), "TRACE")


def test_babeltrace2_reads_the_mixed_snapshot_as_before(babeltrace2: str, tmp_path: Path) -> None:
    printed = details(babeltrace2, tmp_path)
    expected = FIXTURE.read_text(encoding="utf-8")
    assert printed.count("Event `") == len(mixed_snapshot().events)
    assert printed == expected


if __name__ == "__main__":
    binary = shutil.which("babeltrace2")
    if binary is None:
        sys.exit("babeltrace2 is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        FIXTURE.write_text(details(binary, Path(tmp)), encoding="utf-8")
    print(f"wrote {FIXTURE}")
