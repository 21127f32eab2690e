"""``@pytest.mark.ringtrace(...)``: per-test settings, read and checked.

Markers on a class or module apply to each of their tests; the one closest
to the test wins key by key. A bad key or value is reported as a warning
naming the test (the plugin never changes an outcome) and that key is
ignored.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import pytest

MARKER_HELP = (
    "ringtrace(always=False, xfail=False, tail=None, window=None, patch=(), instrument=(), "
    "subbuf_size=None, num_subbuf=None, formats=None): per-test flight-recorder settings "
    "(used with --ringtrace). always: snapshot even when the test passes; patch: "
    "'pkg.mod:Class.method' targets traced during the test; instrument: packages traced whole "
    "during the test; subbuf_size/num_subbuf: the test runs on fresh rings of that size."
)

_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_PACKAGE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class TestOptions:
    """What a test's markers ask for; ``None`` means "as the session says"."""

    __test__ = False  # not a test class, whatever pytest's collector thinks

    always: bool = False
    xfail: bool | None = None
    tail: int | None = None
    window: str | None = None
    patch: tuple[str, ...] = ()
    instrument: tuple[str, ...] = ()
    subbuf_size: int | None = None
    num_subbuf: int | None = None
    formats: tuple[str, ...] | None = None

    @property
    def resizes(self) -> bool:
        """Whether the test asks for rings of its own size."""
        return self.subbuf_size is not None or self.num_subbuf is not None


NO_OPTIONS = TestOptions()


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected True or False, got {value!r}")
    return value


def _strings(pattern: re.Pattern[str], example: str) -> Any:
    def check(value: Any) -> tuple[str, ...]:
        items = (value,) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"expected a string or a list of strings, got {value!r}")
        for item in items:
            if not isinstance(item, str) or not pattern.match(item):
                raise ValueError(f"expected strings like {example!r}, got {item!r}")
        return tuple(items)

    return check


def _int_range(low: int, high: int, power: bool = False) -> Any:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected a whole number between {low} and {high}, got {value!r}")
        if power and value & (value - 1):
            raise ValueError(f"expected a power of two, got {value}")
        return value

    return check


def _window(value: Any) -> str:
    if value not in ("test", "session"):
        raise ValueError(f"expected 'test' or 'session', got {value!r}")
    return str(value)


@functools.cache
def _checks() -> dict[str, Any]:
    """The check of each marker key (built on first use: it needs the kit)."""
    from instrument import channel

    return {
        "always": _bool,
        "xfail": _bool,
        "tail": _int_range(0, 100_000),
        "window": _window,
        "patch": _strings(_TARGET_RE, "pkg.module:Class.method"),
        "instrument": _strings(_PACKAGE_RE, "pkg.module"),
        "subbuf_size": _int_range(channel.MIN_SUBBUF_SIZE, channel.MAX_SUBBUF_SIZE, power=True),
        "num_subbuf": _int_range(channel.MIN_NUM_SUBBUF, channel.MAX_NUM_SUBBUF, power=True),
        "formats": _strings(re.compile(r"^[\w.\-]+$"), "json"),
    }


def read_marker(item: pytest.Item) -> tuple[TestOptions, list[str]]:
    """The test's options from its ``ringtrace`` markers, and the problems found."""
    checks = _checks()
    values: dict[str, Any] = {}
    problems: list[str] = []
    for mark in item.iter_markers(name="ringtrace"):  # closest first
        if mark.args:
            problems.append(f"takes keyword arguments only (e.g. always=True), got {mark.args!r}")
        for key, value in mark.kwargs.items():
            check = checks.get(key)
            if check is None:
                problems.append(f"unknown option {key!r}; known: {', '.join(checks)}")
                continue
            if key in values:
                continue
            try:
                values[key] = check(value)
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
    if not values:
        return NO_OPTIONS, problems
    return TestOptions(**values), problems
