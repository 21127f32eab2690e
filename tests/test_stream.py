"""Streams: position arithmetic, overwrite and discard, lap detection, gaps,
``read_stream`` and the discard-mode consumer."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from itertools import count
from typing import Any

import pytest

import instrument
from instrument import Channel, Recorder, Snapshot, reading
from instrument.stream import COPY_ATTEMPTS, Stream, read_stream

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


def test_the_ring_holds_the_newest_capacity_records_in_position_order(ring: Recorder) -> None:
    write(CAPACITY + 5)
    stream = my_stream(ring)
    assert stream.produced() == CAPACITY + 5
    assert stream.ring.maxlen == CAPACITY
    # each of the first 5 was dropped by the record of the next lap at its place
    assert positions(list(stream.ring)) == list(range(5, CAPACITY + 5))
    assert all(len(record) == 4 for record in stream.ring)  # point events: no kind


def test_positions_are_free_running_far_beyond_64_bits(ring: Recorder) -> None:
    write(1)
    stream = my_stream(ring)
    # a writer that has run for ages; not sub-buffer aligned, crossing 2**64
    base = (1 << 64) - CAPACITY - 3
    stream.counter = count(base)
    routes()["e"] = stream.writer()  # this thread's writer pair, on the new counter
    write(3 * CAPACITY)
    produced = base + 3 * CAPACITY
    assert produced > 1 << 64
    assert stream.produced() == produced  # read from the counter, not advanced
    assert stream.produced() == produced
    read = read_stream(stream)
    assert read.produced == produced
    assert read.gaps == []
    # the writer's sub-buffer belongs to the current lap: the ring holds
    # from the start of the oldest whole sub-buffer of this lap
    filled_to = -(-produced // SIZE) * SIZE
    assert positions(read.records) == list(range(filled_to - CAPACITY, produced))
    assert read.begin == filled_to - CAPACITY
    assert read.begin % SIZE == 0


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
    assert my_stream(ring).produced() == 13


# -- discard mode -------------------------------------------------------------


def test_discard_keeps_the_oldest_and_counts_drops(discard: Recorder) -> None:
    for i in range(CAPACITY + 7):
        instrument.event("e", i=i)
    stream = my_stream(discard)
    assert stream.produced() == CAPACITY
    assert stream.dropped == 7
    assert len(stream.ring) == CAPACITY
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
    assert stream.consumed == CAPACITY and len(stream.ring) == 0  # taken out of the ring
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


class RacingRing(deque):  # type: ignore[type-arg]
    """A ring that lets the writer (this same thread) run just before the
    reader copies it: a deterministic write-while-reading."""

    def __init__(self, ring: deque[Any], action: Callable[[], None]):
        super().__init__(ring, ring.maxlen)
        self.action: Callable[[], None] | None = action

    def __iter__(self) -> Iterator[Any]:
        action, self.action = self.action, None
        if action is not None:
            action()
        return super().__iter__()


class InterruptedRing(deque):  # type: ignore[type-arg]
    """A ring whose next append first runs ``handler``: the write being
    committed has its position reserved and is not in the ring yet, as when
    a signal handler runs between a writer's reserve and commit."""

    def __init__(self, ring: deque[Any], handler: Callable[[], None]):
        super().__init__(ring, ring.maxlen)
        self.handler: Callable[[], None] | None = handler

    def append(self, record: Any) -> None:
        handler, self.handler = self.handler, None
        if handler is not None:
            handler()
        super().append(record)


def routes() -> dict[Any, Any]:
    """This thread's cached writer pairs."""
    return instrument.hotpath._local.routes  # type: ignore[no-any-return]


def replace_ring(stream: Stream, ring: deque[Any]) -> None:
    stream.ring = ring
    routes().clear()  # the cached writer pairs were bound to the old ring


def test_a_sub_buffer_overwritten_while_read_is_skipped_whole(ring: Recorder) -> None:
    write(CAPACITY)  # the ring is full: positions 0..15
    stream = my_stream(ring)
    # Just before the reader copies the ring, the writer laps into sub-buffer 0.
    replace_ring(stream, RacingRing(stream.ring, action=lambda: write(SIZE)))
    read = read_stream(stream)
    assert read.produced == CAPACITY  # published when the read began
    assert read.gaps == [(0, SIZE)]
    assert positions(read.records) == list(range(SIZE, CAPACITY))
    # the next snapshot sees the new lap and no gap
    snap = instrument.snapshot()
    assert snap.streams[0].gaps == []
    assert [ev.position for ev in snap.events] == list(range(SIZE, CAPACITY + SIZE))


@pytest.mark.parametrize("lapped", [CAPACITY - SIZE, CAPACITY + SIZE])
def test_a_writer_that_laps_the_reader_turns_each_stale_sub_buffer_into_a_gap(
    ring: Recorder, lapped: int
) -> None:
    write(CAPACITY)
    stream = my_stream(ring)
    # before the ring is copied, the writer writes most of a ring, or more
    replace_ring(stream, RacingRing(stream.ring, action=lambda: write(lapped)))
    read = read_stream(stream)
    assert read.produced == CAPACITY
    stale = min(lapped, CAPACITY)  # positions below this were overwritten
    assert positions(read.records) == list(range(stale, CAPACITY))
    assert read.gaps == [(k, k + SIZE) for k in range(0, stale, SIZE)]
    for start, end in read.gaps:
        assert (end - start) % SIZE == 0 and start % SIZE == 0
    assert len(read.records) + sum(e - s for s, e in read.gaps) == read.produced


def test_writes_after_the_read_began_are_not_read_and_cause_no_gap(ring: Recorder) -> None:
    write(SIZE + 2)
    stream = my_stream(ring)
    # the writer adds to its current sub-buffer while the reader copies the ring
    replace_ring(stream, RacingRing(stream.ring, action=lambda: write(1)))
    read = read_stream(stream)
    assert read.gaps == []
    assert read.produced == SIZE + 2
    assert positions(read.records) == list(range(SIZE + 2))


@pytest.mark.parametrize(
    ("at", "handler_events"),
    [
        (SIZE, 2 * SIZE - 1),  # the first position of sub-buffer 1
        (SIZE + 1, 2 * SIZE - 2),  # one in the middle
        (2 * SIZE - 1, SIZE),  # its last
        (2 * SIZE + 1, 0),  # in the writer's own, partly filled sub-buffer
    ],
)
def test_a_reserved_uncommitted_position_costs_its_record_or_its_sub_buffer(
    ring: Recorder, at: int, handler_events: int
) -> None:
    """Read from a signal handler that interrupted a write on the reader's own
    thread: the position being written is missing. It counts as one lost
    record and its neighbours are kept: from the reader's view it is as good
    as abandoned (a writer in progress on another thread is skipped whole:
    test_signal_loss)."""
    write(at)
    stream = my_stream(ring)
    produced = at + 1 + handler_events
    gap = (at, at + 1)
    during: list[Snapshot] = []

    def handler() -> None:
        # position ``at`` is reserved, its record not in the ring yet; the
        # handler's own events take the next positions and commit first
        write(handler_events, name="handler")
        assert positions(read_stream(stream).records) == [
            p for p in range(produced) if not gap[0] <= p < gap[1]
        ]
        during.append(instrument.snapshot())

    replace_ring(stream, InterruptedRing(stream.ring, handler))
    instrument.event("e")  # takes position ``at``, is interrupted, commits
    (snap,) = during
    (info,) = snap.streams
    assert info.produced == produced
    assert info.gaps == [gap]
    assert info.skipped == min(gap[1], produced) - gap[0]
    assert info.skipped_subbufs == 0
    assert snap.lost == info.skipped and info.overwritten == 0
    assert info.overwritten + len(snap.events) + info.skipped == info.produced
    # Committed now, after the handler's events: the ring holds it out of
    # position order; a reader puts it back, with no gap.
    assert positions(list(stream.ring))[-1] == at
    snap = instrument.snapshot()
    assert snap.streams[0].gaps == [] and snap.lost == 0
    assert [ev.position for ev in snap.events] == list(range(produced))
    stamps = [ev.timestamp for ev in snap.events]
    assert stamps == sorted(stamps)  # timestamps follow positions
    assert snap.events[at].name == "e"


@pytest.mark.parametrize("failures", [COPY_ATTEMPTS - 1, COPY_ATTEMPTS])
def test_a_ring_that_cannot_be_copied_is_skipped_and_counted(ring: Recorder, failures: int) -> None:
    """Without the GIL a writer may change the ring during the reader's copy
    ("deque mutated during iteration"): the reader tries again, and after
    too many failures skips what it could not read, counting it."""
    write(CAPACITY + 2)
    stream = my_stream(ring)

    class MutatingRing(deque):  # type: ignore[type-arg]
        left = failures

        def __iter__(self) -> Iterator[Any]:
            if self.left:
                self.left -= 1
                raise RuntimeError("deque mutated during iteration")
            return super().__iter__()

    replace_ring(stream, MutatingRing(stream.ring, stream.ring.maxlen))
    snap = instrument.snapshot()
    (info,) = snap.streams
    assert info.produced == CAPACITY + 2 and info.overwritten == SIZE
    if failures < COPY_ATTEMPTS:
        assert info.gaps == [] and len(snap.events) == CAPACITY - SIZE + 2
    else:
        assert snap.events == []
        assert info.gaps == [(k, k + SIZE) for k in range(SIZE, CAPACITY + SIZE, SIZE)]
        assert info.skipped == CAPACITY - SIZE + 2
    assert info.overwritten + len(snap.events) + info.skipped == info.produced


def test_consume_waits_for_a_writer_in_progress(discard: Recorder) -> None:
    write(SIZE - 1)
    stream = my_stream(discard)
    during: list[Any] = []

    def handler() -> None:
        # position SIZE - 1 is taken, its record not in the ring yet, and
        # it is the newest position: a writer is in its sub-buffer
        during.append(list(instrument.consume(flush=True)))

    replace_ring(stream, InterruptedRing(stream.ring, handler))
    instrument.event("e")
    assert during == [[]]
    batches = list(instrument.consume(flush=True))
    assert [[ev.position for ev in batch] for _, batch in batches] == [list(range(SIZE))]
    assert batches[0][0].gaps == []


def test_consume_counts_an_abandoned_position_and_takes_its_neighbours(
    discard: Recorder,
) -> None:
    write(SIZE - 1)
    stream = my_stream(discard)
    during: list[Any] = []

    def handler() -> None:
        # position SIZE - 1 is taken, its record not in the ring yet; later
        # positions are committed: from a reader's view it is abandoned
        write(SIZE, name="handler")
        during.append(instrument.snapshot())
        during.append(list(instrument.consume(flush=True)))

    replace_ring(stream, InterruptedRing(stream.ring, handler))
    instrument.event("e")
    snap, batches = during
    assert [[ev.position for ev in batch] for _, batch in batches] == [
        list(range(SIZE - 1)),
        list(range(SIZE, 2 * SIZE)),
    ]
    assert [info.gaps for info, _ in batches] == [[(SIZE - 1, SIZE)], []]
    # committed late, below what was consumed: removed by the next consume,
    # already counted
    assert positions(list(stream.ring)) == [SIZE - 1]
    write(SIZE, name="after")
    batches = list(instrument.consume())
    assert [[ev.position for ev in batch] for _, batch in batches] == [
        list(range(2 * SIZE, 3 * SIZE))
    ]
    assert len(stream.ring) == 0 and stream.dropped == 0
    (info,) = snap.streams
    # a snapshot counts the position being written as one lost record (later
    # ones are held) and keeps its neighbours
    assert info.gaps == [(SIZE - 1, SIZE)] and info.skipped == 1
    assert [ev.position for ev in snap.events] == [*range(SIZE - 1), *range(SIZE, 2 * SIZE)]


def test_a_consumer_running_while_a_snapshot_copies_causes_no_gap(discard: Recorder) -> None:
    write(SIZE + 1)
    stream = my_stream(discard)
    taken: list[Any] = []

    def write_and_consume() -> None:
        # after the reader read ``produced``, before its copy: the writer
        # writes one more, and a flushing consumer takes everything, up to a
        # position inside the sub-buffer the reader saw as the last
        write(1)
        taken.extend(instrument.consume(flush=True))

    replace_ring(stream, RacingRing(stream.ring, write_and_consume))
    read = read_stream(stream)
    assert [[ev.position for ev in batch] for _, batch in taken] == [
        list(range(SIZE)),
        list(range(SIZE, SIZE + 2)),
    ]
    assert read.produced == SIZE + 1
    assert read.records == [] and read.gaps == []  # consumed, not lost
    snap = instrument.snapshot()
    assert snap.events == [] and snap.lost == 0


def test_timestamps_out_of_position_order_are_raised_across_the_whole_stream(
    start_recording: Callable[..., Recorder],
) -> None:
    """A write interrupted between its clock read and its reserve (``emit``
    reads the clock first) holds an earlier time than the handler's writes
    just before it in position order; a snapshot raises it to the latest
    time before it, however many records the stream holds (the reader
    converts them a chunk at a time)."""
    chunk = reading._CHUNK
    rec = start_recording(Channel("c", subbuf_size=chunk, num_subbuf=4))
    write(2 * chunk + 5)
    stream = my_stream(rec)
    held = list(stream.ring)
    early = held[chunk - 10][1]
    for p in (chunk, 2 * chunk + 1):  # the first of a chunk, and one inside one
        held[p] = (p, early, *held[p][2:])
    stream.ring.clear()
    stream.ring.extend(held)
    snap = instrument.snapshot()
    stamps = [ev.timestamp for ev in snap.events]
    assert [ev.position for ev in snap.events] == list(range(2 * chunk + 5))
    assert stamps == sorted(stamps)
    assert stamps[chunk] == held[chunk - 1][1]
    assert stamps[2 * chunk + 1] == held[2 * chunk][1]


def test_read_stream_since_passes_over_old_sub_buffers(ring: Recorder) -> None:
    write(2 * SIZE)
    stream = my_stream(ring)
    held = list(stream.ring)
    cut = held[SIZE + 1]
    read = read_stream(stream, since=cut[1])
    # whole sub-buffers whose last record is older are not read
    assert positions(read.records)[0] == SIZE
    snap = instrument.snapshot(since=cut[1])
    assert all(ev.timestamp >= cut[1] for ev in snap.events)
    assert [ev.position for ev in snap.events] == [r[0] for r in held if r[1] >= cut[1]]


def test_a_fresh_stream_is_empty_and_its_writer_follows_the_mode() -> None:
    me = threading.current_thread()
    over = Stream(Channel("o", subbuf_size=SIZE, num_subbuf=COUNT), me, {"pid": 1})
    disc = Stream(Channel("d", subbuf_size=SIZE, num_subbuf=COUNT, mode="discard"), me, {})
    assert over.ring.maxlen == CAPACITY and len(over.ring) == 0
    assert disc.ring.maxlen is None and len(disc.ring) == 0  # bounded by append_discard
    append, reserve = over.writer()
    assert append.__self__ is over.ring and reserve.__self__ is over.counter  # type: ignore[attr-defined]
    append, reserve = disc.writer()
    assert append == disc.append_discard and reserve() == 0
    for stream in (over, disc):
        assert stream.produced() == 0
        read = read_stream(stream)
        assert read.records == [] and read.gaps == [] and read.produced == 0
    assert over.thread_id == me.ident and over.current_thread_name() == me.name
    assert over.static == {"pid": 1}
