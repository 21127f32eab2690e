"""Channel: geometry, modes, event globs and context names."""

from __future__ import annotations

import dataclasses

import pytest

from instrument import Channel
from instrument.channel import (
    DEFAULT_CHANNEL,
    MAX_CAPACITY,
    MAX_NUM_SUBBUF,
    MAX_SUBBUF_SIZE,
    MIN_NUM_SUBBUF,
    MIN_SUBBUF_SIZE,
)


def test_default_channel_is_an_overwrite_flight_recorder_taking_every_event() -> None:
    chan = Channel()
    assert chan.name == DEFAULT_CHANNEL == "default"
    assert chan.mode == "overwrite"
    assert chan.capacity == chan.subbuf_size * chan.num_subbuf
    assert chan.takes("anything.at.all")
    assert chan.contexts == ("thread", "pid")


@pytest.mark.parametrize("size", [MIN_SUBBUF_SIZE, 4, 1024, MAX_SUBBUF_SIZE // 64])
@pytest.mark.parametrize("count", [MIN_NUM_SUBBUF, 8, 64])
def test_powers_of_two_in_range_are_accepted(size: int, count: int) -> None:
    chan = Channel("c", subbuf_size=size, num_subbuf=count)
    assert chan.capacity == size * count


def test_the_largest_geometry_is_accepted() -> None:
    assert Channel("big", subbuf_size=MAX_SUBBUF_SIZE, num_subbuf=16).capacity == MAX_CAPACITY
    assert Channel("many", subbuf_size=256, num_subbuf=MAX_NUM_SUBBUF).capacity == MAX_CAPACITY


def test_events_accepts_one_glob_or_an_iterable_and_stores_a_tuple() -> None:
    assert Channel("a", events="db.*").events == ("db.*",)
    assert Channel("b", events=["db.*", "http.*"]).events == ("db.*", "http.*")
    assert Channel("c", contexts=["thread"]).contexts == ("thread",)
    assert Channel("d", contexts=()).contexts == ()


@pytest.mark.parametrize(
    ("globs", "name", "taken"),
    [
        (("db.*",), "db.query", True),
        (("db.*",), "db", False),
        (("db.*",), "http.db.query", False),
        (("db.*", "http.?et"), "http.get", True),
        (("db.*", "http.?et"), "http.post", False),
        (("*.error",), "app.db.error", True),
        (("exact",), "exact", True),
        (("exact",), "exactly", False),
        (("[ab].x",), "b.x", True),
        (("[ab].x",), "c.x", False),
    ],
)
def test_takes_matches_the_whole_name_against_any_glob(
    globs: tuple[str, ...], name: str, taken: bool
) -> None:
    assert Channel("c", events=globs).takes(name) is taken


def test_channels_are_immutable_values() -> None:
    chan = Channel("c", subbuf_size=8, num_subbuf=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        chan.mode = "discard"  # type: ignore[misc]
    assert chan == Channel("c", subbuf_size=8, num_subbuf=4)
    assert chan != Channel("c", subbuf_size=8, num_subbuf=8)


def test_limits_are_powers_of_two_and_consistent() -> None:
    for value in (MIN_SUBBUF_SIZE, MAX_SUBBUF_SIZE, MIN_NUM_SUBBUF, MAX_NUM_SUBBUF, MAX_CAPACITY):
        assert value & (value - 1) == 0
    assert MIN_SUBBUF_SIZE * MIN_NUM_SUBBUF <= MAX_CAPACITY
