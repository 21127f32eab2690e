"""Turning recorded values into safe, bounded, plain data.

Field values are stored by reference when an event is recorded (checking
types there would double the cost of an event) and converted here, when a
snapshot is read: numbers, booleans, ``None`` and strings stay as they are
(long strings truncated); anything else becomes a bounded ``repr``. A
mutable object therefore shows its state at snapshot time: pass a copy or a
scalar when the state at the event matters. ``@trace(fields=...)`` converts
arguments at call time, since arguments are usually live objects.

Names that look like credentials are redacted by default.
"""

from __future__ import annotations

import builtins
import re
import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_MAX_FIELD_CHARS = 512

#: Field-name fragments redacted by default (case-insensitive substring match).
DEFAULT_REDACT = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "private_key",
    "credential",
)
REDACTED = "[redacted]"

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PLAIN = (bool, int, float, type(None))


class _BoundedRepr(reprlib.Repr):
    def __init__(self, limit: int):
        super().__init__()
        self.maxstring = self.maxother = self.maxlong = max(limit, 8)
        self.maxlevel = 4

    def repr_instance(self, x: object, level: int) -> str:
        # reprlib's own version hides a raising __repr__ behind "<X instance
        # at 0x...>" and cuts long ones in the middle, unmarked: report the
        # error, and cut at the end with the count of what was lost.
        try:
            text = builtins.repr(x)
        except Exception as exc:
            return _repr_error(x, exc)
        return text if level >= self.maxlevel else truncate(text, self.maxother)


def _repr_error(value: object, exc: Exception) -> str:
    try:
        name = type(value).__qualname__
    except Exception:
        name = "object"
    try:
        message = truncate(str(exc), 80)
    except Exception:
        message = "<str() raised>"
    return f"<{name} repr raised {type(exc).__name__}: {message}>"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with what was lost."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[+{len(text) - limit} chars]"


def safe_repr(value: object, limit: int = DEFAULT_MAX_FIELD_CHARS) -> str:
    """A ``repr`` that never raises, never runs away, and hides addresses.

    Containers are walked with :mod:`reprlib` bounds so a huge list is never
    rendered whole; a ``__repr__`` that raises is reported as text.
    """
    try:
        text = _BoundedRepr(limit).repr(value)
    except Exception as exc:
        return _repr_error(value, exc)
    return truncate(_ADDRESS.sub(" at 0x…", text), limit)


def plain_value(value: object, limit: int = DEFAULT_MAX_FIELD_CHARS) -> Any:
    """``value`` as plain data: scalars kept, strings truncated, others repr'd."""
    if type(value) in _PLAIN:
        if isinstance(value, int) and value.bit_length() > 64:
            return safe_repr(value, limit)
        return value
    if type(value) is str:
        return truncate(value, limit)
    return safe_repr(value, limit)


class Redactor:
    """Decides, once per field name, whether its value is hidden."""

    def __init__(self, patterns: Iterable[str] | None = DEFAULT_REDACT):
        self.patterns = tuple(p.lower().replace("-", "_") for p in patterns or ())
        self._decided: dict[str, bool] = {}

    def hides(self, name: str) -> bool:
        decided = self._decided.get(name)
        if decided is None:
            key = name.lower().replace("-", "_")
            decided = any(p in key for p in self.patterns)
            if len(self._decided) < 4096:
                self._decided[name] = decided
        return decided

    def plain_fields(self, fields: Mapping[str, object], limit: int) -> dict[str, Any]:
        """``fields`` redacted and converted with :func:`plain_value`."""
        return {k: REDACTED if self.hides(k) else plain_value(v, limit) for k, v in fields.items()}


def capture(value: object) -> Any:
    """``value`` as the active recorder keeps it in a record.

    The one entry point every recording path (fields, traced arguments,
    return values, context values) goes through to turn a program object
    into plain data, so that what is recorded never refers to the program's
    objects.
    """
    from . import hotpath  # late: hotpath imports this module's users

    recorder = hotpath.active()
    limit = recorder.max_field_chars if recorder is not None else DEFAULT_MAX_FIELD_CHARS
    return plain_value(value, limit)


def capture_fields(fields: Mapping[str, object]) -> dict[str, Any]:
    """``fields`` redacted by name and captured with :func:`capture`."""
    from . import hotpath

    recorder = hotpath.active()
    if recorder is None:
        return Redactor().plain_fields(fields, DEFAULT_MAX_FIELD_CHARS)
    return recorder.redactor.plain_fields(fields, recorder.max_field_chars)
