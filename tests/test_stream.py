"""Streams: position arithmetic, overwrite and discard, lap detection, gaps,
``read_stream`` and the discard-mode consumer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import instrument
from instrument import Channel, Recorder
from instrument.stream import UNLIMITED, Stream, copy_range, read_stream

SIZE = 4
COUNT = 4
CAPACITY = SIZE * COUNT


def my_stream(rec: Recorder, channel: str = "c") -> Stream:
    """The calling thread's stream of ``channel``."""
    me = threading.get_ident()
    (found,) = [s for s in rec.streams() if s.channel.name == channel and s.thread_id == me]
    return found


def write(n: int, name: str = "e") -> None:
    for _ in range(n):
        instrument.event(name)


def positions(records: list[Any]) -> list[int]:
    return [r[0] for r in records]


@pytest.fixture
def ring(start_recording: Callable[..., Recorder]) -> Recorder:
    """An overwrite-mode channel of 4 sub-buffers of 4 events."""
    return start_recording(Channel("c", subbuf_size=SIZE, num_subbuf=COUNT))


@pytest.fixture
def discard(start_recording: Callable[..., Recorder]) -> Recorder:
    """A discard-mode channel of 4 sub-buffers of 4 events."""
    return start_recording(Channel("c", subbuf_size=SIZE, num_subbuf=COUNT, mode="discard"))


# -- position arithmetic ------------------------------------------------------


def test_each_record_is_stored_at_its_position_masked_by_the_capacity(ring: Recorder) -> None:
    write(CAPACITY + 5)
    stream = my_stream(ring)
    assert stream.pos == CAPACITY + 5
    assert stream.mask == CAPACITY - 1
    for slot, record in enumerate(stream.slots):
        assert record is not None
        assert record[0] & stream.mask == slot
        # the newest lap that reached this slot
        assert record[0] == (slot + CAPACITY if slot < 5 else slot)


def test_positions_are_free_running_far_beyond_32_bits(ring: Recorder) -> None:
    write(1)
    stream = my_stream(ring)
    # a writer that has run for ages (an overwrite stream's positions are
    # bounded only by UNLIMITED, 2**62); not sub-buffer aligned
    base = UNLIMITED - 4 * CAPACITY - 3
    assert base > 1 << 60
    stream.pos = base
    write(3 * CAPACITY)
    produced = base + 3 * CAPACITY
    assert stream.pos == produced
    read = read_stream(stream)
    assert read.produced == produced
    assert read.gaps == []
    # the writer's sub-buffer belongs to the current lap: the ring holds
    # from the start of the oldest whole sub-buffer of this lap
    filled_to = -(-produced // SIZE) * SIZE
    assert positions(read.records) == list(range(filled_to - CAPACITY, produced))
    assert read.begin == filled_to - CAPACITY
    assert all(r[0] & stream.mask == i % CAPACITY for i, r in enumerate(read.records, filled_to))


@pytest.mark.parametrize(
    ("written", "first", "overwritten"),
    [
        (0, None, 0),
        (1, 0, 0),
        (SIZE - 1, 0, 0),
        (SIZE, 0, 0),
        (CAPACITY - 1, 0, 0),
        (CAPACITY, 0, 0),
        # entering sub-buffer 0 again: its previous lap counts as overwritten
        (CAPACITY + 1, SIZE, SIZE),
        (CAPACITY + SIZE, SIZE, SIZE),
        (CAPACITY + SIZE + 1, 2 * SIZE, 2 * SIZE),
        (5 * CAPACITY, 4 * CAPACITY, 4 * CAPACITY),
        (5 * CAPACITY + 3, 4 * CAPACITY + SIZE, 4 * CAPACITY + SIZE),
    ],
)
def test_what_a_snapshot_holds_after_n_writes(
    ring: Recorder, written: int, first: int | None, overwritten: int
) -> None:
    write(written)
    snap = instrument.snapshot()
    mine = [s for s in snap.streams if s.channel == "c"]
    if written == 0:
        assert mine == []
        return
    (info,) = mine
    assert info.produced == written
    assert info.first_position == first
    assert info.last_position == written - 1
    assert info.overwritten == overwritten
    assert info.gaps == [] and info.skipped == 0 and info.dropped == 0
    assert [ev.position for ev in snap.events] == list(range(first or 0, written))
    assert len(snap.events) + overwritten == written


# -- overwrite mode -----------------------------------------------------------


def test_overwrite_keeps_the_newest_events_and_counts_the_rest(ring: Recorder) -> None:
    for i in range(100):
        instrument.event("e", i=i)
    snap = instrument.snapshot()
    values = [ev.fields["i"] for ev in snap.events]
    assert values == list(range(100 - len(values), 100))
    assert CAPACITY - SIZE < len(values) <= CAPACITY
    assert snap.overwritten == 100 - len(values)
    assert snap.lost == 0  # overwriting is by design, not a loss


def test_snapshots_repeat_and_do_not_disturb_the_writer(ring: Recorder) -> None:
    write(10)
    first = instrument.snapshot()
    again = instrument.snapshot()
    assert [e.position for e in first.events] == [e.position for e in again.events]
    write(3)
    later = instrument.snapshot()
    assert [e.position for e in later.events] == list(range(13))
    assert my_stream(ring).pos == 13


# -- discard mode -------------------------------------------------------------


def test_discard_keeps_the_oldest_and_counts_drops(discard: Recorder) -> None:
    for i in range(CAPACITY + 7):
        instrument.event("e", i=i)
    stream = my_stream(discard)
    assert stream.pos == CAPACITY
    assert stream.dropped == 7
    snap = instrument.snapshot()
    assert [ev.fields["i"] for ev in snap.events] == list(range(CAPACITY))
    assert snap.dropped == 7 and snap.lost == 7
    assert snap.overwritten == 0


def test_consume_takes_whole_sub_buffers_in_order_and_frees_room(discard: Recorder) -> None:
    for i in range(CAPACITY + 2):  # two dropped
        instrument.event("e", i=i)
    batches = list(instrument.consume())
    assert [(info.first_position, info.last_position) for info, _ in batches] == [
        (k, k + SIZE - 1) for k in range(0, CAPACITY, SIZE)
    ]
    taken = [ev.fields["i"] for _, batch in batches for ev in batch]
    assert taken == list(range(CAPACITY))
    assert all(info.dropped == 2 for info, _ in batches)
    # the room is free again: the next events are kept, not dropped
    stream = my_stream(discard)
    assert stream.consumed == CAPACITY and stream.limit == 2 * CAPACITY
    for i in range(100, 100 + CAPACITY):
        instrument.event("e", i=i)
    assert stream.dropped == 2
    assert list(instrument.consume()) != []
    assert list(instrument.consume()) == []  # nothing complete left


def test_consume_leaves_a_partial_sub_buffer_unless_flushed(discard: Recorder) -> None:
    for i in range(SIZE + 2):
        instrument.event("e", i=i)
    assert [len(b) for _, b in instrument.consume()] == [SIZE]
    assert list(instrument.consume()) == []
    flushed = list(instrument.consume(flush=True))
    assert [[ev.fields["i"] for ev in b] for _, b in flushed] == [[SIZE, SIZE + 1]]
    assert list(instrument.consume(flush=True)) == []
    # after a flush the consumer position is inside a sub-buffer
    stream = my_stream(discard)
    assert stream.consumed == SIZE + 2
    for i in range(SIZE + 2, SIZE + 2 + CAPACITY + 1):  # fills the ring, one dropped
        instrument.event("e", i=i)
    assert stream.dropped == 1
    # a snapshot sees every held event, from the consumer position on
    snap = instrument.snapshot()
    assert [ev.fields["i"] for ev in snap.events] == list(range(SIZE + 2, SIZE + 2 + CAPACITY))
    assert snap.streams[0].gaps == []
    # and the consumer takes them in order: first the rest of the sub-buffer
    firsts = [(info.first_position, len(b)) for info, b in instrument.consume(flush=True)]
    assert firsts[0] == (SIZE + 2, SIZE - 2)
    assert sum(n for _, n in firsts) == CAPACITY


def test_consume_ignores_overwrite_channels(ring: Recorder) -> None:
    write(CAPACITY)
    assert list(instrument.consume(flush=True)) == []
    assert my_stream(ring).consumed == 0


def test_consume_and_snapshot_agree_on_field_conversion(discard: Recorder) -> None:
    instrument.event("e", obj=[1, 2], password="hunter2", n=3)
    (ev,) = instrument.snapshot().events
    ((_, (taken,)),) = list(instrument.consume(flush=True))
    assert ev.fields == taken.fields == {"obj": "[1, 2]", "password": "[redacted]", "n": 3}


# -- lap detection and gaps ---------------------------------------------------


class RacingSlots(list):  # type: ignore[type-arg]
    """Ring slots that let the writer (this same thread) run just before the
    reader copies a given sub-buffer: a deterministic overwrite-while-reading."""

    def __init__(self, slots: list[Any], when: int, action: Callable[[], None]):
        super().__init__(slots)
        self.when = when  # the position of the copy that triggers the writer
        self.action: Callable[[], None] | None = action

    def __getitem__(self, index: Any) -> Any:
        if type(index) is slice and self.action is not None and index.start == self.when:
            action, self.action = self.action, None
            action()
        return super().__getitem__(index)


def test_a_sub_buffer_overwritten_while_read_is_skipped_whole(ring: Recorder) -> None:
    write(CAPACITY)  # the ring is full: positions 0..15
    stream = my_stream(ring)
    # Just before the reader copies sub-buffer 0, the writer laps into it.
    stream.slots = RacingSlots(stream.slots, when=0, action=lambda: write(SIZE))
    read = read_stream(stream)
    assert read.produced == CAPACITY  # published when the read began
    assert read.gaps == [(0, SIZE)]
    assert positions(read.records) == list(range(SIZE, CAPACITY))
    # the next snapshot sees the new lap and no gap
    snap = instrument.snapshot()
    assert snap.streams[0].gaps == []
    assert [ev.position for ev in snap.events] == list(range(SIZE, CAPACITY + SIZE))


def test_a_writer_that_laps_the_reader_turns_each_stale_sub_buffer_into_a_gap(
    ring: Recorder,
) -> None:
    write(CAPACITY)
    stream = my_stream(ring)
    # before sub-buffer 1 is copied, the writer writes a whole ring and more
    stream.slots = RacingSlots(stream.slots, when=SIZE, action=lambda: write(CAPACITY + SIZE))
    read = read_stream(stream)
    assert positions(read.records) == list(range(SIZE))
    assert read.gaps == [(k, k + SIZE) for k in range(SIZE, CAPACITY, SIZE)]
    for start, end in read.gaps:
        assert (end - start) % SIZE == 0 and start % SIZE == 0


def test_writes_after_the_read_began_are_not_read_and_cause_no_gap(ring: Recorder) -> None:
    write(SIZE + 2)
    stream = my_stream(ring)
    # the writer adds to its current sub-buffer while the reader copies it
    stream.slots = RacingSlots(stream.slots, when=SIZE, action=lambda: write(1))
    read = read_stream(stream)
    assert read.gaps == []
    assert positions(read.records) == list(range(SIZE + 2))


@pytest.mark.parametrize("where", ["head", "tail", "middle-of-lap-head"])
def test_a_slot_holding_another_lap_fails_validation(ring: Recorder, where: str) -> None:
    write(3 * SIZE)
    stream = my_stream(ring)
    slots = stream.slots
    if where == "head":  # overwritten by a later lap
        old = slots[SIZE]
        assert old is not None
        slots[SIZE] = (SIZE + CAPACITY, *old[1:])
    elif where == "tail":  # not yet committed (a free-threaded writer): previous lap
        old = slots[2 * SIZE - 1]
        assert old is not None
        slots[2 * SIZE - 1] = (2 * SIZE - 1 - CAPACITY, *old[1:])
    else:  # never written at all
        slots[SIZE] = None
    read = read_stream(stream)
    assert read.gaps == [(SIZE, 2 * SIZE)]
    assert positions(read.records) == [*range(SIZE), *range(2 * SIZE, 3 * SIZE)]
    snap = instrument.snapshot()
    (info,) = snap.streams
    assert info.gaps == [(SIZE, 2 * SIZE)]
    assert info.skipped == SIZE and info.skipped_subbufs == 1
    assert snap.skipped == SIZE and snap.lost == SIZE


def test_read_stream_since_passes_over_old_sub_buffers(ring: Recorder) -> None:
    write(2 * SIZE)
    stream = my_stream(ring)
    cut = stream.slots[SIZE + 1]
    assert cut is not None
    read = read_stream(stream, since=cut[1])
    # whole sub-buffers whose last record is older are not copied
    assert positions(read.records)[0] == SIZE
    snap = instrument.snapshot(since=cut[1])
    assert all(ev.timestamp >= cut[1] for ev in snap.events)
    assert [ev.position for ev in snap.events] == [
        p
        for p in range(2 * SIZE)
        if stream.slots[p][1] >= cut[1]  # type: ignore[index]
    ]


def test_copy_range_unwraps_the_ring(ring: Recorder) -> None:
    write(CAPACITY + 3)
    stream = my_stream(ring)
    assert positions(copy_range(stream, CAPACITY - 2, CAPACITY + 3)) == list(
        range(CAPACITY - 2, CAPACITY + 3)
    )
    assert positions(copy_range(stream, 4, 8)) == [4, 5, 6, 7]
    assert copy_range(stream, 5, 5) == []


def test_a_fresh_stream_is_empty_and_its_limit_follows_the_mode() -> None:
    me = threading.current_thread()
    over = Stream(Channel("o", subbuf_size=SIZE, num_subbuf=COUNT), me, {"pid": 1})
    disc = Stream(Channel("d", subbuf_size=SIZE, num_subbuf=COUNT, mode="discard"), me, {})
    assert over.limit == UNLIMITED and disc.limit == CAPACITY
    assert over.slots == [None] * CAPACITY
    read = read_stream(over)
    assert read.records == [] and read.gaps == [] and read.produced == 0
    assert over.thread_id == me.ident and over.current_thread_name() == me.name
    assert over.static == {"pid": 1}
