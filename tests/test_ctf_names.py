"""No field or event name makes a CTF trace unreadable: names are mapped to
TSDL identifiers unique both as declared and as babeltrace2 prints them (it
strips one leading underscore), the originals kept in ``metadata``, and
babeltrace2 reads every such trace."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_format_ctf import babeltrace2, run_babeltrace

from instrument import Event, Snapshot, StreamInfo
from instrument.formats import write_snapshot
from instrument.formats.ctf import field_identifiers, printed_name

__all__ = ["babeltrace2"]  # a fixture, used by name

HOSTILE_NAMES = [
    ["_x", "__x"],
    ["x", "_x", "__x", "___x"],
    ["é", "日本", "\u03b1", "_é", "ü"],
    ["", "_", "__", "a b", "a_b", "a-b"],
    ["event", "_event", "stream", "struct", "1", "_1", "x_2", "x"],
    ["a*/b", "a\x00b", "\ud800", 'q"uote', "back\\slash"],
]


@pytest.mark.parametrize("names", HOSTILE_NAMES)
def test_identifiers_are_unique_as_declared_and_as_printed(names: list[str]) -> None:
    idents = field_identifiers(names)
    assert list(idents) == names
    assert len(set(idents.values())) == len(names)
    assert len({printed_name(i) for i in idents.values()}) == len(names)
    for ident in idents.values():
        assert ident.isascii() and ident.replace("_", "a").isalnum()
        assert printed_name(ident).strip("_")  # something to print


def snapshot_with(names: list[str], event_names: list[str]) -> Snapshot:
    fields = {name: i for i, name in enumerate(names)}
    events = [
        Event(1_000 + i, name, "event", 7, "t7", dict(fields), {"pid": 1}, "main", i)
        for i, name in enumerate(event_names)
    ]
    info = StreamInfo(
        channel="main",
        thread_id=7,
        thread_name="t\u202e7",
        alive=True,
        mode="overwrite",
        subbuf_size=4,
        num_subbuf=4,
        produced=len(events),
        first_position=0,
        last_position=len(events) - 1,
    )
    return Snapshot(events, [info], clock_offset_ns=10**18, taken_at=5_000, pid=1)


@pytest.mark.parametrize("names", HOSTILE_NAMES)
def test_babeltrace2_reads_every_such_trace(
    babeltrace2: str, tmp_path: Path, names: list[str]
) -> None:
    event_names = ["tick", "é.vent", 'a"b\\c', "x\ny", "\ud800s", "nul\x00l", "日本", "a*/b"]
    snap = snapshot_with(names, event_names)
    trace = write_snapshot(snap, tmp_path / "names", "ctf")
    result = run_babeltrace(babeltrace2, trace)
    # one line per event (the "x\ny" name breaks its line: keep the part with the fields)
    lines = [line for line in result.stdout.splitlines() if "thread_id = 7" in line]
    assert len(lines) == len(event_names)
    idents = field_identifiers(names)
    for line in lines:
        for name, ident in idents.items():
            assert f" {printed_name(ident)} = {names.index(name)}" in line, (name, line)
    metadata = (trace / "metadata").read_text(encoding="utf-8")
    for name, ident in idents.items():
        if ident != name and name.isprintable() and "\ud800" not in name and "*/" not in name:
            assert f'/* field "{name}"' in metadata.replace('\\"', '"').replace("\\\\", "\\")
