"""Stress: 16 writer threads, a thread taking snapshots continuously, and in
discard mode a consumer draining the rings; every snapshot must be
consistent and every event accounted for.

Bounded in time: writers run until the reader has done enough passes or a
couple of seconds have gone by, whichever comes first. Nothing here asserts a
duration; the counts measured are printed (``pytest -s``) for the notes.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise

import pytest

import instrument
from instrument import Channel, Recorder, Snapshot, StreamInfo

WRITERS = 16
MIN_PASSES = 60  # snapshots (or consumer passes) wanted before stopping
MIN_SECONDS = 0.5
MAX_SECONDS = 20.0  # only reached on a loaded machine: the passes are what is wanted
BURST = 256  # events a writer writes before it lets other threads in
SUBBUF = 16
NUM_SUBBUF = 8


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads more often than CPython's default 5 ms, so that readers
    really do run while writers are in the middle of a sub-buffer."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-3)
    yield
    sys.setswitchinterval(before)


@dataclass
class Tally:
    """What a checking thread saw, shared with the test."""

    passes: int = 0
    problems: list[str] = field(default_factory=list)
    gaps: int = 0
    skipped: int = 0
    overwritten: int = 0
    events: int = 0
    error: BaseException | None = None


def check_snapshot(snap: Snapshot) -> list[str]:
    """Every way a snapshot can be inconsistent, as readable text (empty if none).

    Per stream: positions strictly increase in the snapshot's order; gaps are
    whole, aligned sub-buffers in increasing order; no read position lies in
    a gap; every position from the oldest still held to the last produced is
    either read or in a gap; and the counters add up to what was produced.
    """
    problems: list[str] = []
    read: dict[tuple[str, int], list[int]] = defaultdict(list)
    for ev in snap.events:
        read[(ev.channel, ev.thread_id)].append(ev.position)
    infos: dict[tuple[str, int], StreamInfo] = {}
    for info in snap.streams:
        key = (info.channel, info.thread_id)
        if key in infos:
            problems.append(f"two streams for {key}")
        infos[key] = info
    for key in read.keys() - infos.keys():
        problems.append(f"events of {key} without stream information")
    for key, info in infos.items():
        problems.extend(f"{key}: {p}" for p in _check_stream(info, read.get(key, [])))
    return problems


def _check_stream(info: StreamInfo, positions: list[int]) -> list[str]:
    size, produced = info.subbuf_size, info.produced
    problems: list[str] = []
    if any(b <= a for a, b in pairwise(positions)):
        problems.append(f"positions do not strictly increase: {positions}")
    if positions and (info.first_position, info.last_position) != (positions[0], positions[-1]):
        problems.append(
            f"first/last position {info.first_position}/{info.last_position} "
            f"but read {positions[0]}..{positions[-1]}"
        )
    if positions and not 0 <= positions[0] <= positions[-1] < produced:
        problems.append(f"read {positions[0]}..{positions[-1]} outside [0, {produced})")
    gap_positions: set[int] = set()
    for start, end in info.gaps:
        if start % size or end <= start or (end - start) % size:
            problems.append(f"gap {start, end} is not whole sub-buffers of {size}")
        if start >= produced:
            problems.append(f"gap {start, end} starts at or after produced {produced}")
        gap_positions.update(range(start, min(end, produced)))
    if any(b[0] < a[1] for a, b in pairwise(info.gaps)):
        problems.append(f"gaps overlap or are out of order: {info.gaps}")
    inside = gap_positions.intersection(positions)
    if inside:
        problems.append(f"positions {sorted(inside)[:5]}... read inside a gap")
    held = set(positions) | gap_positions
    if info.mode == "overwrite":
        begin = info.overwritten
        if info.dropped:
            problems.append(f"overwrite mode but {info.dropped} dropped")
    else:
        begin = min(held, default=produced)
        if info.overwritten:
            problems.append(f"discard mode but {info.overwritten} overwritten")
    missing = set(range(begin, produced)) - held
    if missing:
        problems.append(f"positions {sorted(missing)[:5]}... neither read nor in a counted gap")
    if min(held, default=begin) < begin:
        problems.append(f"read or skipped positions below the oldest held, {begin}")
    if info.skipped != len(gap_positions):
        problems.append(
            f"skipped counts {info.skipped} records, gaps {info.gaps} hold "
            f"{len(gap_positions)} produced positions (produced {produced})"
        )
    if info.mode == "overwrite" and info.overwritten + len(positions) + info.skipped != produced:
        problems.append(
            f"overwritten {info.overwritten} + read {len(positions)} + skipped "
            f"{info.skipped} != produced {produced}"
        )
    return problems


def snapshotting(stop: threading.Event, tally: Tally) -> Callable[[], None]:
    """The body of a thread that snapshots and checks until ``stop`` is set."""

    def run() -> None:
        try:
            while not stop.is_set():
                snap = instrument.snapshot()
                tally.passes += 1
                tally.events += len(snap.events)
                tally.gaps += sum(len(s.gaps) for s in snap.streams)
                tally.skipped += snap.skipped
                tally.overwritten = max(tally.overwritten, snap.overwritten)
                problems = check_snapshot(snap)
                if problems:
                    tally.problems.extend(problems[:10])
                    return
        except BaseException as exc:
            tally.error = exc

    return run


def run_until_enough(stop: threading.Event, tallies: list[Tally]) -> float:
    """Let the threads run until every tally has ``MIN_PASSES`` (and at
    least ``MIN_SECONDS`` passed), or ``MAX_SECONDS``; then set ``stop``."""
    began = time.monotonic()
    while True:
        elapsed = time.monotonic() - began
        done = all(t.passes >= MIN_PASSES for t in tallies) and elapsed >= MIN_SECONDS
        failed = any(t.problems or t.error for t in tallies)
        if done or failed or elapsed >= MAX_SECONDS:
            stop.set()
            return elapsed
        time.sleep(0.01)


@instrument.trace(name="stress.call")
def traced_call(i: int) -> int:
    return i + 1


def test_snapshots_taken_under_16_writers_are_always_consistent(
    start_recording: Callable[..., Recorder], busy_switching: None
) -> None:
    rec = start_recording(Channel("ring", subbuf_size=SUBBUF, num_subbuf=NUM_SUBBUF))
    stop = threading.Event()
    written = [0] * WRITERS
    errors: list[BaseException] = []

    def write(k: int) -> None:
        n = 0
        try:
            while not stop.is_set():
                instrument.event("stress.event", k=k, n=n)
                traced_call(n)  # an entry and an exit
                n += 3
                if n % (3 * BURST) == 0:
                    time.sleep(0)  # let the reader in between bursts
        except BaseException as exc:
            errors.append(exc)
        written[k] = n

    tally = Tally()
    reader = threading.Thread(target=snapshotting(stop, tally), name="snapshots")
    writers = [threading.Thread(target=write, args=(k,), name=f"w{k}") for k in range(WRITERS)]
    for t in [*writers, reader]:
        t.start()
    elapsed = run_until_enough(stop, [tally])
    for t in [*writers, reader]:
        t.join()

    print(
        f"\noverwrite stress: {tally.passes} snapshots in {elapsed:.2f}s, "
        f"{sum(written)} events written, {tally.events} read, {tally.gaps} gaps "
        f"({tally.skipped} records skipped) seen"
    )
    assert not errors
    assert tally.error is None, repr(tally.error)
    assert tally.problems == []
    assert tally.passes >= 20, "the reader barely ran: the test proved little"

    # After the writers end, a last snapshot accounts for every event each wrote.
    final = instrument.snapshot(recorder=rec)
    assert check_snapshot(final) == []
    produced = {s.thread_name: s.produced for s in final.streams}
    assert produced == {f"w{k}": written[k] for k in range(WRITERS)}
    assert all(s.alive is False for s in final.streams)
    assert final.skipped == 0  # no writer left to race with
    # the partly filled last sub-buffer belongs to the last lap as a whole
    capacity = SUBBUF * NUM_SUBBUF
    held = {s.thread_name: s.produced - s.overwritten for s in final.streams}
    assert held == {f"w{k}": capacity - (-written[k] % SUBBUF) for k in range(WRITERS)}


def test_discard_mode_counts_every_event_as_consumed_or_dropped(
    start_recording: Callable[..., Recorder], busy_switching: None
) -> None:
    start_recording(Channel("keep", subbuf_size=SUBBUF, num_subbuf=NUM_SUBBUF, mode="discard"))
    stop = threading.Event()
    written: dict[int, int] = {}
    errors: list[BaseException] = []

    def write(k: int) -> None:
        n = 0
        try:
            while not stop.is_set():
                instrument.event("stress.keep", k=k, n=n)
                n += 1
                if n % BURST == 0:
                    time.sleep(0)
        except BaseException as exc:
            errors.append(exc)
        written[threading.get_ident()] = n

    consumed: dict[int, list[int]] = defaultdict(list)
    dropped: dict[int, int] = {}
    order_problems: list[str] = []
    drain = Tally()

    def take(flush: bool) -> None:
        for info, batch in instrument.consume(flush=flush):
            got = consumed[info.thread_id]
            positions = [ev.position for ev in batch]
            # a consumer takes each stream's positions in order, none twice, none skipped
            expected = list(range(len(got), len(got) + len(positions)))
            if positions != expected or info.first_position != len(got):
                order_problems.append(f"{info.thread_name}: got {positions}, wanted {expected}")
            ns = [ev.fields["n"] for ev in batch]
            seq = got[-1:] + ns
            if any(b <= a for a, b in pairwise(seq)):
                order_problems.append(f"{info.thread_name}: field n does not increase: {ns}")
            got.extend(ev.fields["n"] for ev in batch)
            if dropped.get(info.thread_id, 0) > info.dropped:
                order_problems.append(f"{info.thread_name}: dropped went down")
            dropped[info.thread_id] = info.dropped

    def consuming() -> None:
        try:
            while not stop.is_set():
                take(flush=False)
                drain.passes += 1
                time.sleep(0)
        except BaseException as exc:
            drain.error = exc

    snaps = Tally()
    threads = [threading.Thread(target=write, args=(k,), name=f"d{k}") for k in range(WRITERS)]
    threads.append(threading.Thread(target=consuming, name="consumer"))
    threads.append(threading.Thread(target=snapshotting(stop, snaps), name="snapshots"))
    for t in threads:
        t.start()
    elapsed = run_until_enough(stop, [snaps, drain])
    for t in threads:
        t.join()
    take(flush=True)  # writers are done: take the partly filled sub-buffers too

    final = instrument.snapshot()
    final_dropped = {s.thread_id: s.dropped for s in final.streams}
    total_written = sum(written.values())
    total_consumed = sum(len(v) for v in consumed.values())
    total_dropped = sum(final_dropped.values())
    print(
        f"\ndiscard stress: {drain.passes} consumer passes and {snaps.passes} snapshots "
        f"in {elapsed:.2f}s; written {total_written} = consumed {total_consumed} "
        f"+ dropped {total_dropped}"
    )
    assert not errors
    assert drain.error is None and snaps.error is None, (drain.error, snaps.error)
    assert order_problems == []
    assert snaps.problems == []
    assert snaps.passes >= 20 and drain.passes >= 20
    assert set(written) == set(final_dropped)
    for tid, n in written.items():
        assert n == len(consumed[tid]) + final_dropped[tid], tid
        assert consumed[tid][:1] == [0]  # discard mode keeps the oldest
    assert total_written == total_consumed + total_dropped
    assert total_consumed > 0 and total_dropped > 0  # both paths were exercised
    assert all(s.produced == len(consumed[s.thread_id]) for s in final.streams)
    assert final.events == []  # everything was consumed
