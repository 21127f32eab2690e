"""``@trace`` and ``span``: entry and exit events around code.

``@trace`` checks its options here and hands the function to the tracing
engine in use (see :mod:`instrument.engines`): on the sysmon engine it
returns the very function, on the wrapt engine a wrapt wrapper.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from . import engines, hotpath
from .engines import TraceOptions, unwrap_descriptor
from .hotpath import check_name, emit, emit_exit, error_fields
from .stream import ENTRY
from .values import capture_fields

F = TypeVar("F", bound=Callable[..., Any])
FieldSpec = Sequence[str] | Literal["*"] | None


def wanted_fields(func: Any, fields: FieldSpec) -> list[str] | None:
    """The argument names ``trace(fields=...)`` records for ``func``, checked."""
    if fields is None:
        return None
    target = unwrap_descriptor(func)
    params = list(inspect.signature(target).parameters)
    if isinstance(fields, str):
        if fields != "*":
            raise ValueError(f"fields must be a list of argument names or '*', got {fields!r}")
        return [p for p in params if p not in ("self", "cls")]
    wanted = list(fields)
    unknown = [f for f in wanted if f not in params]
    if unknown:
        raise ValueError(
            f"trace(fields=...) names {unknown} which are not parameters of "
            f"{getattr(target, '__qualname__', target)!r}; parameters: {params}"
        )
    return wanted


def default_name(func: Any) -> str:
    """``module.qualname`` of ``func``: the event name ``@trace`` uses."""
    target = unwrap_descriptor(func)
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", "?")
    return f"{module}.{qualname}"


def trace_options(
    func: Any,
    *,
    name: str | None = None,
    fields: FieldSpec = None,
    retval: bool = False,
    channel: str | None = None,
    values: bool = False,
) -> TraceOptions:
    """The checked options of ``@trace``/``patch`` for ``func``, for an engine.

    ``values=True`` (whole-package tracing) records every argument and the
    return value through :mod:`instrument.values`.
    """
    event_name = check_name(default_name(func) if name is None else name)
    if channel is not None and not isinstance(channel, str):
        raise TypeError(f"channel must be a channel name (str), got {channel!r}")
    key: Any = event_name if channel is None else (channel, event_name)
    if values and fields is None:
        try:
            fields = "*"
            wanted = wanted_fields(func, fields)
        except (TypeError, ValueError):  # no signature to read: names only
            wanted = None
    else:
        wanted = wanted_fields(func, fields)
    fields_tuple = None if wanted is None else tuple(wanted)
    return TraceOptions(key, event_name, fields_tuple, retval or values, values)


@overload
def trace(func: F, /) -> F: ...
@overload
def trace(
    *,
    name: str | None = None,
    fields: FieldSpec = None,
    retval: bool = False,
    channel: str | None = None,
) -> Callable[[F], F]: ...
def trace(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    fields: FieldSpec = None,
    retval: bool = False,
    channel: str | None = None,
) -> Any:
    """Record an entry and an exit event around every call of a function.

    The event name is ``module.qualname`` unless ``name`` is given.
    ``fields`` lists argument names to record on entry (``"*"`` for all);
    ``retval=True`` records the return value on exit. The exit event always
    carries ``duration_ns``, and on an exception its type and message. Before
    :func:`instrument.start` a traced call costs about one wrapt pass-through.
    """
    if func is not None and not callable(unwrap_descriptor(func)):
        raise TypeError(
            f"@trace decorates a callable; got {func!r} (use @trace(name=...) for options)"
        )

    def decorate(f: Any) -> Any:
        options = trace_options(f, name=name, fields=fields, retval=retval, channel=channel)
        return engines.current().trace(f, options)

    return decorate if func is None else decorate(func)


class span:  # lower case: used like a function, as in ``with span("load"):``
    """An entry and an exit event around a block: ``with span("load", id=3):``.

    Works with ``with`` and ``async with``; the exit event carries
    ``duration_ns``, and the exception's type and message if one escapes
    (the exception is never swallowed).
    """

    __slots__ = ("_key", "_t0", "fields", "name")

    def __init__(self, name: str, /, *, channel: str | None = None, **fields: Any):
        self.name = check_name(name)
        self._key: Any = name if channel is None else (channel, name)
        self.fields = fields or None
        self._t0 = 0

    def __enter__(self) -> span:
        if self.fields is not None and hotpath._recorder is not None:
            # Captured when recorded: the span keeps no program object either.
            self.fields = capture_fields(self.fields)
        self._t0 = emit(self._key, ENTRY, self.name, self.fields)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._t0 == 0:  # recording was off when the block began
            return
        emit_exit(self._key, self.name, self._t0, None if exc is None else error_fields(exc))

    async def __aenter__(self) -> span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
