"""Thread churn: 10,000 short-lived threads, each filling its ring.

The streams of ended threads stay readable, but only up to the configured
cap (``max_dead_streams``): memory must stay bounded by that cap, whatever
the number of threads that came and went. Measured with tracemalloc against
a bound computed from the channel's size and the cap. The figures are
printed (``pytest -s``) for the notes.
"""

from __future__ import annotations

import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

import instrument
from instrument import Channel, Recorder
from instrument.stream import Stream

THREADS = 10_000
WAVE = 50  # threads alive at once
CAP = 32  # max_dead_streams
CHANNEL = Channel("churn", subbuf_size=8, num_subbuf=4)
EVENTS = CHANNEL.capacity + 8  # every ring full and lapped


def body(i: int) -> None:
    for n in range(EVENTS):
        instrument.event("churn.event", i=i, n=n)


def run_wave(first: int) -> None:
    threads = [threading.Thread(target=body, args=(first + k,)) for k in range(WAVE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture
def traced_memory() -> Iterator[None]:
    """tracemalloc on for the test (left on if it already was)."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    yield
    if not was_tracing:
        tracemalloc.stop()


def stream_bytes(stream: Stream) -> int:
    """What one full stream holds, from ``sys.getsizeof`` of its parts.

    The ring holds record tuples, each with its own position and timestamp
    ints and a fields dict; names are shared strings, counted nowhere.
    """
    total = sys.getsizeof(stream) + sys.getsizeof(stream.ring) + sys.getsizeof(stream.static)
    total += sys.getsizeof(stream.counter)
    assert len(stream.ring) == stream.capacity
    for record in stream.ring:
        pos, ts, _name, fields = record
        total += sys.getsizeof(record) + sys.getsizeof(pos) + sys.getsizeof(ts)
        total += sys.getsizeof(fields) + sum(sys.getsizeof(v) for v in fields.values())
    return total


def test_10000_short_lived_threads_keep_memory_under_the_retained_stream_cap(
    start_recording: Callable[..., Recorder],
    traced_memory: None,
    wait_until: Callable[..., bool],
) -> None:
    # What churning threads costs without recording: the same waves, recorder off.
    idle_base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    run_wave(-2 * WAVE)
    run_wave(-WAVE)
    churn_overhead = tracemalloc.get_traced_memory()[1] - idle_base

    rec = start_recording(CHANNEL, max_dead_streams=CAP)
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    most_streams = 0
    most_memory = 0
    per_stream = 0
    for first in range(0, THREADS, WAVE):
        run_wave(first)
        held = rec.streams()
        live = threading.active_count()
        assert len(held) <= CAP + live, f"{len(held)} streams held after {first + WAVE} threads"
        most_streams = max(most_streams, len(held))
        most_memory = max(most_memory, tracemalloc.get_traced_memory()[0] - base)
        if not per_stream:
            per_stream = max(stream_bytes(s) for s in held)
    current, peak = tracemalloc.get_traced_memory()
    # Every ended thread is noticed; the oldest beyond the cap are evicted.
    assert wait_until(lambda: len(rec.streams()) == CAP and rec.evicted == THREADS - CAP)
    retained = rec.streams()
    assert all(not s.alive for s in retained)
    assert all(s.produced() == EVENTS for s in retained)

    # The bound: the cap's streams plus those of one wave still running (or
    # ended and not yet evicted), each as big as a full ring can be; plus what
    # churning threads costs with recording off, plus 25% for allocator
    # rounding and the recorder's own bookkeeping.
    bound = int((CAP + WAVE) * per_stream * 1.25) + churn_overhead
    unbounded = THREADS * per_stream  # what keeping every stream would cost
    print(
        f"\nchurn: {THREADS} threads, cap {CAP}: {per_stream} B per full stream "
        f"({CHANNEL.capacity} events), held at most {most_streams} streams, "
        f"{most_memory} B after a wave (peak {peak - base} B), "
        f"{(current - base) // CAP} B per retained stream at the end; bound {bound} B; "
        f"without the cap {unbounded} B"
    )
    assert bound * 20 < unbounded  # the bound proves the cap works, not a formality
    assert most_memory <= bound
    assert peak - base <= bound
    assert current - base <= CAP * per_stream * 1.25 + churn_overhead

    # Each retained stream is still readable: the last events of threads of
    # the last wave, each ring whole.
    snap = instrument.snapshot()
    assert len(snap.streams) == CAP
    assert len(snap.events) == CAP * CHANNEL.capacity
    kept = {ev.fields["i"] for ev in snap.events}
    assert len(kept) == CAP and min(kept) >= THREADS - WAVE
    assert {ev.fields["n"] for ev in snap.events} == set(range(EVENTS - CHANNEL.capacity, EVENTS))
