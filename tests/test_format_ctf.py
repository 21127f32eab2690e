"""CTF 1.8 output, read back by the real ``babeltrace2`` (Debian package).

The end-to-end tests record with several threads and channels, write the
snapshot as CTF, run ``babeltrace2`` on it and compare every printed event
(name, timestamp to the nanosecond, thread, channel, context and fields)
with the snapshot; and check that skipped sub-buffers and lost records come
out as babeltrace2's "discarded packets" / "discarded events" warnings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import re
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import instrument
from instrument import Channel, Event, Recorder, Snapshot, StreamInfo
from instrument.formats import FormatError, ctf, get_format, write_snapshot

# -- babeltrace2 -------------------------------------------------------------


@pytest.fixture(scope="module")
def babeltrace2() -> str:
    """Path of ``babeltrace2``. CI installs it: missing there is a failure."""
    path = shutil.which("babeltrace2")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(
                "babeltrace2 is not installed, and CI must run the CTF tests: "
                "apt-get install -y babeltrace2",
                pytrace=False,
            )
        pytest.skip("babeltrace2 is not installed (apt-get install -y babeltrace2)")
    return path


def run_babeltrace(binary: str, trace: Path, *options: str) -> subprocess.CompletedProcess[str]:
    colour = [] if "-c" in options else ["--color=never"]  # an option of the default sink
    result = subprocess.run(
        [binary, *colour, *options, str(trace)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"babeltrace2 failed:\n{result.stderr}"
    return result


@pytest.fixture
def stopped_after() -> Iterator[Callable[..., Recorder]]:
    """Start the process-wide recorder; it is always stopped after the test."""

    def start(*channels: Channel) -> Recorder:
        return instrument.start(list(channels) or None)

    try:
        yield start
    finally:
        if instrument.recording():
            instrument.stop()


# -- reading babeltrace2's pretty output -------------------------------------

# A printed value: ("int", "42") / ("real", "1.5") for numbers as printed,
# ("str", text) for strings (unescaped), ("enum", label, "1") for enumerations.
Value = tuple[str, ...]

_ESCAPES = {
    "\\": "\\", "'": "'", '"': '"', "?": "?", "0": "\0", "a": "\a", "b": "\b",
    "e": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
}  # fmt: skip


class _Parser:
    """A small reader for one line of ``sink.text.pretty`` output."""

    def __init__(self, text: str):
        self.text = text
        self.i = 0

    def expect(self, token: str) -> None:
        assert self.text.startswith(token, self.i), (token, self.text[self.i :])
        self.i += len(token)

    def at(self, token: str) -> bool:
        return self.text.startswith(token, self.i)

    def string(self) -> str:
        self.expect('"')
        out = bytearray()
        while True:
            ch = self.text[self.i]
            if ch == '"':
                self.i += 1
                return out.decode("utf-8")
            if ch == "\\":
                esc = self.text[self.i + 1]
                if esc == "x":
                    out.append(int(self.text[self.i + 2 : self.i + 4], 16))
                    self.i += 4
                    continue
                out += _ESCAPES[esc].encode()
                self.i += 2
                continue
            out += ch.encode("utf-8")
            self.i += 1

    def value(self) -> Value:
        if self.at('"'):
            return ("str", self.string())
        if self.at("( "):
            self.expect("( ")
            label = self.string()
            self.expect(" : container = ")
            number = self.number()
            self.expect(" )")
            return ("enum", label, number)
        return ("num", self.number())

    def number(self) -> str:
        match = re.compile(r"[-+0-9.eEinfa]+").match(self.text, self.i)
        assert match, self.text[self.i :]
        self.i = match.end()
        return match.group()

    def struct(self) -> dict[str, Value]:
        self.expect("{")
        fields: dict[str, Value] = {}
        if self.at(" }"):
            self.expect(" }")
            return fields
        while True:
            self.expect(" ")
            match = re.compile(r"[^ =]+").match(self.text, self.i)
            assert match
            self.i = match.end()
            self.expect(" = ")
            fields[match.group()] = self.value()
            if self.at(" }"):
                self.expect(" }")
                return fields
            self.expect(",")


_LINE = re.compile(r"\[(?P<ts>[0-9.]+)\] (?:\(\d+\) )?(?P<name>\S+): (?P<rest>.*)\Z")


@dataclasses.dataclass(frozen=True)
class Printed:
    timestamp: str
    name: str
    scopes: tuple[dict[str, Value], ...]


def parse_pretty(stdout: str) -> list[Printed]:
    events = []
    for line in stdout.splitlines():
        match = _LINE.match(line)
        assert match, f"unexpected babeltrace2 line: {line!r}"
        parser = _Parser(match["rest"])
        scopes = [parser.struct()]
        while parser.at(", {"):
            parser.expect(", ")
            scopes.append(parser.struct())
        assert parser.i == len(parser.text), line
        events.append(Printed(match["ts"], match["name"], tuple(scopes)))
    return events


# -- what babeltrace2 should print for a snapshot -----------------------------

#: Field names that are not TSDL identifiers, and how babeltrace2 prints them.
ODD_NAMES = {"a-b": "a_b", "_private": "_private", "event": "event", "1st": "1st"}


def _field_types(events: list[Event]) -> dict[tuple[str, str, str], set[type]]:
    types: dict[tuple[str, str, str], set[type]] = {}
    for ev in events:
        for key, value in ev.fields.items():
            types.setdefault((ev.name, ev.kind, key), set()).add(type(value))
    return types


def _expected_value(value: Any, types: set[type]) -> Value:
    """How babeltrace2 prints ``value`` of a field whose values have ``types``."""
    if types == {bool}:
        return ("enum", str(value), str(int(value)))
    if types == {int}:
        return ("num", str(value))
    if types == {float}:
        return ("num", f"{value:g}")  # C's %g, as babeltrace2 prints
    return ("str", value if isinstance(value, str) else repr(value))


def expected_events(snap: Snapshot, clock: Callable[[int], str]) -> list[Printed]:
    types = _field_types(snap.events)
    ctx_types: dict[tuple[str, str], set[type]] = {}
    for ev in snap.events:
        for key, value in ev.context.items():
            ctx_types.setdefault((ev.channel, key), set()).add(type(value))
    out = []
    for ev in snap.events:
        name = ev.name if ev.kind == "event" else f"{ev.name}:{ev.kind}"
        packet: dict[str, Value] = {
            "thread_id": ("num", str(ev.thread_id)),
            "thread_name": ("str", ev.thread_name),
            "channel": ("str", ev.channel),
        }
        scopes: list[dict[str, Value]] = [packet]
        if ev.context:
            scopes.append(
                {k: _expected_value(v, ctx_types[(ev.channel, k)]) for k, v in ev.context.items()}
            )
        scopes.append(
            {
                ODD_NAMES.get(k, k): _expected_value(v, types[(ev.name, ev.kind, k)])
                for k, v in ev.fields.items()
            }
        )
        out.append(Printed(clock(ev.timestamp), name, tuple(scopes)))
    return out


def _order(events: list[Printed]) -> list[Printed]:
    return sorted(events, key=repr)


def cycles(ts: int) -> str:
    return f"{ts:020d}"


# -- recordings --------------------------------------------------------------


@instrument.trace(fields="*", retval=True)
def compute(n: int, label: str) -> int:
    if n % 5 == 3:
        raise KeyError(f"no {label}")
    return n * n


def _worker(index: int, rounds: int, start: threading.Barrier | None = None) -> None:
    if start is not None:
        start.wait(timeout=30)  # all threads alive together: distinct thread ids
    for i in range(rounds):
        instrument.event(
            "tick",
            i=i,
            neg=-i - index,
            ratio=i / 7 + index,
            label=f'w{index} "quoted" back\\slash\ttab\nnewline é ? \'',
            ok=i % 2 == 0,
            **{"a-b": i, "_private": "p", "event": index, "1st": True},
        )
        instrument.event("io.read", size=(1 << 63) + i, path="/tmp/x")
        with contextlib.suppress(KeyError):
            compute(i, "label")
        with instrument.span("phase", step=i):
            instrument.event("mixed", v=i if i % 3 else None)


def _record(threads: int, rounds: int) -> Snapshot:
    start = threading.Barrier(threads)
    workers = [
        threading.Thread(target=_worker, args=(n, rounds, start), name=f"worker-{n}")
        for n in range(threads)
    ]
    for t in workers:
        t.start()
    _worker(99, 2)
    for t in workers:
        t.join()
    return instrument.snapshot()


# -- end to end ----------------------------------------------------------------


def test_babeltrace2_prints_every_event_of_a_multithread_recording(
    babeltrace2: str, stopped_after: Callable[..., Recorder], tmp_path: Path
) -> None:
    stopped_after(
        Channel(
            "default", subbuf_size=8, num_subbuf=4, events=("tick", "mixed", "phase", "*.compute")
        ),
        Channel("io", subbuf_size=4, num_subbuf=2, events=("io.*",), contexts=("thread",)),
    )
    snap = _record(threads=4, rounds=12)
    instrument.stop()
    assert snap.overwritten > 0, "the rings should have wrapped: first packets are mid-stream"
    assert len({(s.channel, s.thread_id) for s in snap.streams}) == len(snap.streams) == 10
    trace = write_snapshot(snap, tmp_path / "snap", "ctf")
    assert trace.is_dir()
    assert (trace / "metadata").read_text().startswith("/* CTF 1.8 */")

    printed = parse_pretty(
        run_babeltrace(babeltrace2, trace, "--clock-cycles", "--no-delta").stdout
    )
    expected = expected_events(snap, cycles)
    assert len(printed) == len(snap.events)
    assert _order(printed) == _order(expected)
    names = Counter(p.name for p in printed)
    assert names["tick"] and names["io.read"] and names["phase:entry"] and names["phase:exit"]
    assert any(p.name.endswith("compute:exit") and "exception" in p.scopes[-1] for p in printed)

    # Wall-clock time: the clock offset makes babeltrace2 print Unix time.
    offset = snap.clock_offset_ns
    seconds = parse_pretty(
        run_babeltrace(babeltrace2, trace, "--clock-seconds", "--no-delta").stdout
    )
    assert _order(seconds) == _order(
        expected_events(snap, lambda ts: f"{(ts + offset) // 10**9}.{(ts + offset) % 10**9:09d}")
    )
    first = min(snap.events, key=lambda e: e.timestamp).timestamp + offset
    wall = datetime.datetime.fromtimestamp(first // 10**9, datetime.timezone.utc)
    dated = run_babeltrace(babeltrace2, trace, "--clock-gmt", "--clock-date", "--no-delta")
    assert dated.stdout.startswith(f"[{wall:%Y-%m-%d %H:%M:%S}.{first % 10**9:09d}]")
    assert "discarded" not in dated.stderr  # overwritten records are not losses


def test_babeltrace2_reports_skipped_subbufs_and_lost_records_as_discarded(
    babeltrace2: str, stopped_after: Callable[..., Recorder], tmp_path: Path
) -> None:
    stopped_after(Channel("db", subbuf_size=4, num_subbuf=8, mode="discard"))

    def write(n: int) -> None:
        for i in range(n):
            instrument.event("db.query", i=i)

    sizes = {"a": 40, "b": 20, "c": 20}  # a overflows its 32-event ring
    for name, n in sizes.items():
        t = threading.Thread(target=write, args=(n,), name=name)
        t.start()
        t.join()
    real = instrument.snapshot()
    instrument.stop()
    assert {s.thread_name: s.dropped for s in real.streams} == {"a": 8, "b": 0, "c": 0}

    # Skip sub-buffers as a snapshot does when a writer was in one: a interior
    # (sub-buffer 2) and trailing (7); b leading from position 0; c leading (1, 2)
    # after sub-buffer 0, which is left out as if older than ``since``.
    skip = {"a": [2, 7], "b": [0], "c": [1, 2]}
    left_out = {"c": [0]}
    streams = []
    for info in real.streams:
        gaps = [(k * 4, k * 4 + 4) for k in skip[info.thread_name]]
        streams.append(dataclasses.replace(info, gaps=gaps))
    events = [
        ev
        for ev in real.events
        if ev.position // 4 not in skip[ev.thread_name] + left_out.get(ev.thread_name, [])
    ]
    snap = dataclasses.replace(real, events=events, streams=streams)
    assert snap.skipped_subbufs == 5 and snap.dropped == 8

    trace = write_snapshot(snap, tmp_path / "lossy", "ctf")
    # Warnings always print times as wall-clock time: use seconds since the epoch.
    result = run_babeltrace(babeltrace2, trace, "--clock-seconds", "--no-delta")
    offset = snap.clock_offset_ns

    def seconds(ts: int) -> str:
        return f"{(ts + offset) // 10**9}.{(ts + offset) % 10**9:09d}"

    assert _order(parse_pretty(result.stdout)) == _order(expected_events(snap, seconds))

    warning = re.compile(
        r"WARNING: Tracer discarded (\d+) (event|packet)s? between \[([\d.]+)\] and "
        r'\[([\d.]+)\] in trace .*? within stream "[^"]*/db_\d+_(\w+)"'
    )
    reported: Counter[tuple[str, str]] = Counter()
    for match in warning.finditer(result.stderr):
        count, what, begin, end, thread = match.groups()
        assert begin <= end
        reported[(thread, what)] += int(count)
    assert "may have" not in result.stderr  # every loss is counted
    assert reported == {
        ("a", "packet"): 2,  # sub-buffer 2, then 7 before the closing packet
        ("a", "event"): 8,  # dropped by the full ring
        ("b", "event"): 4,  # the records of sub-buffer 0: no packet number precedes it
        ("c", "packet"): 2,
    }, result.stderr
    # a's drops happened after its last kept record, before the snapshot.
    last_a = max(ev.timestamp for ev in events if ev.thread_name == "a")
    drops = re.search(r"discarded 8 events between \[([\d.]+)\] and \[([\d.]+)\]", result.stderr)
    assert drops, result.stderr
    assert (drops[1], drops[2]) == (seconds(last_a), seconds(max(last_a, snap.taken_at)))


def test_streams_without_events_still_report_their_losses(babeltrace2: str, tmp_path: Path) -> None:
    quiet = StreamInfo("default", 7, "quiet", False, "discard", 4, 4, produced=16,
                       gaps=[(8, 16)], dropped=5)  # fmt: skip
    # The only sub-buffer, partly filled (2 records) and skipped: no packet
    # number precedes it, so its records are reported as discarded events.
    young = StreamInfo("default", 8, "young", True, "overwrite", 4, 4, produced=2,
                       gaps=[(0, 4)])  # fmt: skip
    snap = Snapshot(events=[], streams=[quiet, young], clock_offset_ns=0, taken_at=1000)
    result = run_babeltrace(babeltrace2, write_snapshot(snap, tmp_path / "q", "ctf"))
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    quiet_lines = [line for line in lines if "default_0_quiet" in line]
    young_lines = [line for line in lines if "default_1_young" in line]
    assert len(quiet_lines) == 2 and len(young_lines) == 1, result.stderr
    assert sorted(re.findall(r"discarded \d+ \w+", " ".join(quiet_lines))) == [
        "discarded 2 packets",
        "discarded 5 events",
    ]
    assert "Tracer discarded 2 events" in young_lines[0]
    assert young.skipped == 2


def test_metadata_parses_with_the_declared_types(babeltrace2: str, tmp_path: Path) -> None:
    info = StreamInfo("default", 1, "main", True, "overwrite", 4, 4, produced=3,
                      first_position=0, last_position=2)  # fmt: skip
    fields: list[dict[str, Any]] = [
        {"n": 1, "x": 0.5, "flag": True, "s": "a", "big": 1 << 63, "a-b": 1, "a_b": 2},
        {"n": -1, "x": 2.5, "flag": False, "s": "b", "big": 5, "a-b": 3, "a_b": 4},
        {"n": None, "x": 1, "flag": 0, "s": "c", "big": -1, "a-b": 5, "a_b": 6},
    ]
    events = [
        Event(10 + i, "ev", "event", 1, "main", f, {"pid": 4}, "default", i)
        for i, f in enumerate(fields[:2])
    ] + [Event(20, "other", "exit", 1, "main", fields[2], {"pid": "x"}, "default", 2)]
    metadata = {"test_id": 'tests/t.py::t["x"]', "worker": "gw1", "events": 7}
    snap = Snapshot(events, [info], clock_offset_ns=-5, taken_at=30, metadata=metadata)
    trace = write_snapshot(snap, tmp_path / "m", "ctf")
    text = (trace / "metadata").read_text()
    assert text.startswith("/* CTF 1.8 */\n")
    assert 'rt_s64 a_b_2; /* field "a-b" */' in text
    assert "offset_s = -1;\n    offset = 999999995;" in text
    assert 'test_id = "tests/t.py::t[\\"x\\"]";' in text and "metadata_events = 7;" in text

    details = run_babeltrace(babeltrace2, trace, "-c", "sink.text.details", "-p", "with-data=no")
    classes = details.stdout.split("Event class ")
    ev = next(c for c in classes if c.startswith("`ev`"))
    other = next(c for c in classes if c.startswith("`other:exit`"))
    assert "n: Signed integer (64-bit" in ev
    assert "x: Double-precision real" in ev
    assert "flag: Unsigned enumeration (8-bit" in ev
    assert "s: String" in ev
    assert "big: Unsigned integer (64-bit" in ev
    assert "a_b: Signed integer" in ev and "a_b_2: Signed integer" in ev
    assert "n: String" in other and "x: Signed integer" in other and "big: Signed integer" in other
    assert "pid: String" in details.stdout  # context: 4 and "x" on the same channel
    printed = parse_pretty(
        run_babeltrace(babeltrace2, trace, "--clock-cycles", "--no-delta").stdout
    )
    assert [p.scopes[-1]["big"] for p in printed] == [
        ("num", str(1 << 63)),
        ("num", "5"),
        ("num", "-1"),
    ]


# -- units: names, types, structure ----------------------------------------------


def test_field_names_become_unique_tsdl_identifiers() -> None:
    names = ["ok", "a-b", "a_b", "a b", "_x", "event", "1st", "", "héllo", "int", "rt_u64"]
    idents = ctf.field_identifiers(names)
    assert idents == {
        "ok": "ok",
        "a-b": "a_b_2",  # "a_b" is a valid name and keeps it
        "a_b": "a_b",
        "a b": "a_b_3",
        "_x": "__x",
        "event": "_event",
        "1st": "_1st",
        "": "_field",  # nothing printable left: babeltrace2 would print "_" as ""
        "héllo": "h_llo",
        "int": "_int",
        "rt_u64": "_rt_u64",
    }
    assert len(set(idents.values())) == len(idents)
    for ident in idents.values():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident)
        assert ident not in ctf.TSDL_RESERVED
    assert [ctf.printed_name(idents[n]) for n in ("_x", "event", "1st")] == ["_x", "event", "1st"]


@pytest.mark.parametrize(
    ("values", "kind", "tsdl"),
    [
        ([1, 2], "int", "rt_s64"),
        ([1, -2], "sint", "rt_s64"),
        ([1, 1 << 63], "uint", "rt_u64"),
        ([-1, 1 << 63], "str", "string"),
        ([1 << 64], "str", "string"),
        ([-(1 << 63)], "sint", "rt_s64"),
        ([-(1 << 63) - 1], "str", "string"),
        ([1.0, 2.5], "float", "rt_double"),
        ([True, False], "bool", "rt_bool"),
        ([True, 1], "str", "string"),
        ([1, 1.5], "str", "string"),
        ([1, None], "str", "string"),
        (["a", None], "str", "string"),
        ([None], "str", "string"),
        ([[1, 2]], "str", "string"),
    ],
)
def test_field_types_unify_across_values(values: list[Any], kind: str, tsdl: str) -> None:
    found = ctf.value_kind(values[0])
    for value in values[1:]:
        found = ctf.unify(found, ctf.value_kind(value))
    assert (found, ctf.tsdl_type(found)) == (kind, tsdl)


def test_tsdl_strings_escape_what_the_lexer_needs() -> None:
    assert ctf.tsdl_string('a"b\\c\nd\te\x01é') == '"a\\"b\\\\c\\nd\\te\\x01é"'


def _packets(path: Path) -> list[tuple[int, ...]]:
    """(seq, events_discarded, content bits, packet bits, begin, end) per packet."""
    import struct

    data = path.read_bytes()
    out: list[tuple[int, ...]] = []
    offset = 0
    while offset < len(data):
        magic, _uuid, _sid = struct.unpack_from("<I16sI", data, offset)
        assert magic == ctf.MAGIC
        begin, end, content, size, seq, disc, _tid = struct.unpack_from("<7Q", data, offset + 24)
        out.append((seq, disc, content, size, begin, end))
        assert content % 8 == 0 and size == content
        offset += size // 8
    assert offset == len(data)
    return out


def test_each_subbuf_is_one_packet_numbered_by_position(
    stopped_after: Callable[..., Recorder], tmp_path: Path
) -> None:
    stopped_after(Channel(subbuf_size=4, num_subbuf=4))
    for i in range(23):
        instrument.event("e", i=i)
    snap = instrument.snapshot()
    instrument.stop()
    trace = write_snapshot(snap, tmp_path / "p", "ctf")
    (stream,) = [p for p in trace.iterdir() if p.name != "metadata"]
    packets = _packets(stream)
    # 23 records in a 16-record ring: sub-buffers 2..5 (positions 8..22) remain
    assert [p[0] for p in packets] == [2, 3, 4, 5]
    assert all(p[1] == 0 for p in packets)
    by_seq: dict[int, list[int]] = {}
    for ev in snap.events:
        by_seq.setdefault(ev.position // 4, []).append(ev.timestamp)
    assert [(p[4], p[5]) for p in packets] == [(min(t), max(t)) for t in by_seq.values()]


def test_written_twice_the_trace_is_identical(
    stopped_after: Callable[..., Recorder], tmp_path: Path
) -> None:
    stopped_after()
    instrument.event("e", s="x", n=1)
    snap = instrument.snapshot()
    instrument.stop()
    one = write_snapshot(snap, tmp_path / "one", "ctf")
    two = write_snapshot(snap, tmp_path / "two", "ctf")
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    for p in one.iterdir():
        assert p.read_bytes() == (two / p.name).read_bytes()
        assert p.stat().st_mode & 0o077 == 0


def test_ctf_is_a_registered_directory_format() -> None:
    fmt = get_format("ctf")
    assert (fmt.suffix, fmt.directory) == (".ctf", True)


def test_bad_snapshots_are_refused_with_the_reason(tmp_path: Path) -> None:
    info = StreamInfo("default", 1, "main", True, "overwrite", 4, 4, produced=2)
    ev = Event(5, "e", "event", 1, "main", {}, {}, "default", 1)
    orphan = ev._replace(thread_id=2)
    backwards = [ev, ev._replace(position=0, timestamp=6)]
    earlier = [ev, ev._replace(position=2, timestamp=4)]
    cases = [
        ([orphan], "has no stream"),
        (backwards, "not in position order"),
        (earlier, "go backwards"),
        ([ev._replace(timestamp=-1)], "bad timestamp"),
        # values the batched writer finds only when it packs them
        ([ev._replace(timestamp=1 << 64)], "bad timestamp"),
        ([ev._replace(timestamp=True)], "bad timestamp"),
        ([ev, ev._replace(timestamp=6.5)], "bad timestamp"),
        ([ev, ev._replace(position=2.0, timestamp=6)], "bad position"),
    ]
    for i, (events, reason) in enumerate(cases):
        snap = Snapshot(events, [info], clock_offset_ns=0, taken_at=10)
        with pytest.raises(FormatError, match=reason):
            write_snapshot(snap, tmp_path / f"bad{i}", "ctf")
        assert not (tmp_path / f"bad{i}.ctf").exists()
