"""Writers never wait for readers, and readers never see torn data.

Several threads write into small rings while another thread snapshots (or
consumes) in a loop. Every snapshot must be self-consistent: each stream's
positions strictly increase, every position missing between the first and
the last read lies in a counted gap, every gap is a whole number of
sub-buffers, and each event read is the one written at its position.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise

import pytest

import instrument
from instrument import Channel, Recorder, Snapshot

WRITERS = 4
SIZE = 8  # events per sub-buffer: small, so writers lap the reader often
RUN_SECONDS = 1.0


@pytest.fixture(autouse=True)
def _switch_often() -> Iterator[None]:
    """Switch threads far more often than the default 5 ms."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def check_snapshot(snap: Snapshot, n_is_position: bool = True) -> list[str]:
    """Every invariant a snapshot taken while writers run must hold.

    Each writer numbers its events ``n``; without drops (overwrite mode) the
    event at position p is the writer's p-th, so ``n == position``.
    """
    problems: list[str] = []
    by_stream: dict[tuple[str, int], list[int]] = {}
    numbers: dict[tuple[str, int], list[int]] = {}
    for ev in snap.events:
        if ev.name != "w":
            continue
        by_stream.setdefault((ev.channel, ev.thread_id), []).append(ev.position)
        numbers.setdefault((ev.channel, ev.thread_id), []).append(ev.fields["n"])
        if n_is_position and ev.fields["n"] != ev.position:
            problems.append(f"event at position {ev.position} holds n={ev.fields['n']}")
    for info in snap.streams:
        positions = by_stream.get((info.channel, info.thread_id), [])
        size = info.subbuf_size
        where = f"{info.thread_name}: "
        if any(b <= a for a, b in pairwise(positions)):
            problems.append(where + "positions do not strictly increase")
        if any(b <= a for a, b in pairwise(numbers.get((info.channel, info.thread_id), []))):
            problems.append(where + "events are not in the order they were written")
        if positions and (positions[0], positions[-1]) != (
            info.first_position,
            info.last_position,
        ):
            problems.append(where + "first/last position disagree with the events read")
        for start, end in info.gaps:
            if start % size or end % size or end <= start:
                problems.append(where + f"gap {start, end} is not whole sub-buffers")
        in_gaps = {p for start, end in info.gaps for p in range(start, end)}
        if positions:
            read = set(positions)
            missing = set(range(positions[0], positions[-1] + 1)) - read
            if not missing <= in_gaps:
                problems.append(
                    where + f"missing positions outside gaps: {sorted(missing - in_gaps)[:5]}"
                )
            if read & in_gaps:
                problems.append(where + "positions read inside a gap")
        if info.skipped != sum(min(e, info.produced) - s for s, e in info.gaps):
            problems.append(where + "skipped count disagrees with the gaps")
    return problems


def run_writers(write: Callable[[], None], stop: threading.Event) -> list[threading.Thread]:
    def loop() -> None:
        while not stop.is_set():
            write()

    threads = [threading.Thread(target=loop, name=f"writer-{i}") for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    return threads


def test_snapshots_taken_while_threads_write_are_consistent(
    start_recording: Callable[..., Recorder],
) -> None:
    start_recording(Channel("c", subbuf_size=SIZE, num_subbuf=4))
    local = threading.local()

    def write() -> None:
        n = getattr(local, "n", 0)
        for i in range(n, n + 50):
            instrument.event("w", n=i, pad="x")
        local.n = n + 50

    stop = threading.Event()
    problems: list[str] = []
    errors: list[BaseException] = []
    taken = gaps = 0

    def reader() -> None:
        nonlocal taken, gaps
        try:
            deadline = time.monotonic() + RUN_SECONDS
            while time.monotonic() < deadline:
                snap = instrument.snapshot()
                taken += 1
                gaps += sum(len(info.gaps) for info in snap.streams)
                problems.extend(check_snapshot(snap))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    writers = run_writers(write, stop)
    snapshotter = threading.Thread(target=reader, name="snapshotter")
    snapshotter.start()
    snapshotter.join()
    stop.set()
    for thread in writers:
        thread.join()
    assert errors == []
    assert problems == [], f"{len(problems)} problems in {taken} snapshots: {problems[:5]}"
    assert taken > 0
    # writers lapped the reader mid-read: the gap accounting above was exercised
    assert gaps > 0, f"no gap in {taken} snapshots"
    final = instrument.snapshot()
    assert check_snapshot(final) == []
    assert len({info.thread_id for info in final.streams}) == WRITERS
    assert final.overwritten > 0  # the writers lapped their rings many times


def test_consuming_a_discard_channel_while_threads_write_loses_nothing_uncounted(
    start_recording: Callable[..., Recorder],
) -> None:
    start_recording(Channel("d", subbuf_size=SIZE, num_subbuf=4, mode="discard"))
    written: dict[str, int] = {}
    local = threading.local()

    def write() -> None:
        n = getattr(local, "n", 0)
        for i in range(n, n + 20):
            instrument.event("w", n=i)
        local.n = n + 20
        written[threading.current_thread().name] = local.n

    stop = threading.Event()
    taken: dict[str, list[int]] = {}
    problems: list[str] = []
    errors: list[BaseException] = []

    def consumer() -> None:
        try:
            deadline = time.monotonic() + RUN_SECONDS
            while time.monotonic() < deadline:
                for info, batch in instrument.consume():
                    positions = [ev.position for ev in batch]
                    if positions != list(
                        range(info.first_position or 0, (info.last_position or 0) + 1)
                    ):
                        problems.append(f"batch not contiguous: {positions[:3]}...")
                    if len(batch) != info.subbuf_size:
                        problems.append(f"incomplete sub-buffer consumed: {len(batch)}")
                    got = taken.setdefault(info.thread_name, [])
                    got.extend(ev.fields["n"] for ev in batch)
                    problems.extend(check_snapshot(instrument.snapshot(), n_is_position=False))
        except BaseException as exc:
            errors.append(exc)

    writers = run_writers(write, stop)
    reader = threading.Thread(target=consumer, name="consumer")
    reader.start()
    reader.join()
    stop.set()
    for thread in writers:
        thread.join()
    for info, batch in instrument.consume(flush=True):  # the rest, at exit
        taken.setdefault(info.thread_name, []).extend(ev.fields["n"] for ev in batch)
    assert errors == [] and problems == [], problems[:5]
    snap = instrument.snapshot()
    dropped = {info.thread_name: info.dropped for info in snap.streams}
    assert set(taken) == set(written) == set(dropped)
    for name, count in written.items():
        got = taken[name]
        # kept events arrive in order, without duplicates; kept + dropped = written
        assert got == sorted(set(got)), name
        assert len(got) + dropped[name] == count, name
        assert got[0] == 0
