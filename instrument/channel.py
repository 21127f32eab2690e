"""Channels: the named configuration every stream is created from.

A channel says how big each per-thread ring is (sub-buffer size and count,
both powers of two, counted in events), what happens when it is full
(``overwrite``: the flight recorder keeps the newest events; ``discard``: the
oldest are kept and new ones are dropped and counted), which events it takes
(name globs) and which context fields it records.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["overwrite", "discard"]

#: Limits on the ring geometry. A sub-buffer is the unit of reading and of
#: loss; the ring of one stream holds ``subbuf_size * num_subbuf`` events.
MIN_SUBBUF_SIZE = 2
MAX_SUBBUF_SIZE = 1 << 20
MIN_NUM_SUBBUF = 2
MAX_NUM_SUBBUF = 1 << 16
MAX_CAPACITY = 1 << 24

DEFAULT_CHANNEL = "default"

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _check_power_of_two(what: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if value < low or value > high or value & (value - 1):
        raise ValueError(f"{what} must be a power of two between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class Channel:
    """A named ring-buffer configuration; every thread gets one stream of it.

    ``events`` are globs matched against event names (``"db.*"``); an event
    goes to every channel whose globs match it. ``contexts`` names the context
    fields recorded with each event (see :mod:`instrument.context`).
    """

    name: str = DEFAULT_CHANNEL
    subbuf_size: int = 4096
    num_subbuf: int = 16
    mode: Mode = "overwrite"
    events: tuple[str, ...] = ("*",)
    contexts: tuple[str, ...] = ("thread", "pid")
    _matcher: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(
                f"channel name must be an identifier-like string "
                f"(letters, digits, '_', '.', '-'), got {self.name!r}"
            )
        _check_power_of_two("subbuf_size", self.subbuf_size, MIN_SUBBUF_SIZE, MAX_SUBBUF_SIZE)
        _check_power_of_two("num_subbuf", self.num_subbuf, MIN_NUM_SUBBUF, MAX_NUM_SUBBUF)
        if self.capacity > MAX_CAPACITY:
            raise ValueError(
                f"channel {self.name!r}: subbuf_size * num_subbuf = {self.capacity} "
                f"exceeds the limit of {MAX_CAPACITY} events per stream"
            )
        if self.mode not in ("overwrite", "discard"):
            raise ValueError(
                f"channel {self.name!r}: mode must be 'overwrite' or 'discard', got {self.mode!r}"
            )
        events = _as_str_tuple(f"channel {self.name!r}: events", self.events)
        if not events:
            raise ValueError(f"channel {self.name!r}: events must name at least one glob")
        contexts = _as_str_tuple(f"channel {self.name!r}: contexts", self.contexts)
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "contexts", contexts)
        pattern = "|".join(f"(?:{fnmatch.translate(glob)})" for glob in events)
        object.__setattr__(self, "_matcher", re.compile(pattern))

    @property
    def capacity(self) -> int:
        """Events one stream of this channel holds."""
        return self.subbuf_size * self.num_subbuf

    def takes(self, event_name: str) -> bool:
        """Whether an event of this name is recorded on this channel."""
        return self._matcher.match(event_name) is not None


def _as_str_tuple(what: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)  # one name or glob; checked as one item below
    if not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a string or an iterable of strings, got {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise TypeError(f"{what} must hold non-empty strings, got {item!r}")
    return items
