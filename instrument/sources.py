"""Where traced code lives: ``file:line`` per traced name, noted once per code
object when it is traced (never per event), so that views can link a call
to its source."""

from __future__ import annotations

from types import CodeType

#: Traced name -> ``"path:line"`` of its first line. Bounded: names past the
#: bound are simply not located.
_SOURCES: dict[str, str] = {}
MAX_SOURCES = 65536


def note_source(name: str, code: CodeType) -> None:
    """Remember where the code traced under ``name`` starts."""
    if len(_SOURCES) < MAX_SOURCES:
        _SOURCES[name] = f"{code.co_filename}:{code.co_firstlineno}"


def sources_of(names: set[str]) -> dict[str, str]:
    """``file:line`` of each of ``names`` that was noted."""
    return {name: _SOURCES[name] for name in names if name in _SOURCES}
