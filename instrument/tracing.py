"""``@trace`` and ``span``: entry and exit events around code.

Built on wrapt's ``FunctionWrapper``, so a traced function keeps its
signature, ``__wrapped__``, docstring and descriptor behaviour (methods,
classmethods, staticmethods), and ``isinstance`` checks pass through.
Generators, coroutines and async generators are traced from their first
resumption to their end, and behave exactly as the original under
``send``/``throw``/``close`` (and ``asend``/``athrow``/``aclose``).
"""

from __future__ import annotations

import copy
import inspect
import sys
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Sequence
from time import monotonic_ns
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import wrapt

from . import hotpath
from .hotpath import call_wrapper, check_name, emit, exit_error
from .stream import ENTRY, EXIT
from .values import DEFAULT_MAX_FIELD_CHARS, plain_value

F = TypeVar("F", bound=Callable[..., Any])
FieldSpec = Sequence[str] | Literal["*"] | None


def _limit() -> int:
    recorder = hotpath.active()
    return recorder.max_field_chars if recorder is not None else DEFAULT_MAX_FIELD_CHARS


def unwrap_descriptor(func: Any) -> Any:
    """The function inside a classmethod or staticmethod, else ``func``."""
    return func.__func__ if isinstance(func, (classmethod, staticmethod)) else func


def _capture_for(func: Any, fields: FieldSpec) -> hotpath.Capture | None:
    """A function that turns call arguments into entry fields, or ``None``."""
    if fields is None:
        return None
    target = unwrap_descriptor(func)
    sig = inspect.signature(target)
    params = list(sig.parameters)
    if isinstance(fields, str):
        if fields != "*":
            raise ValueError(f"fields must be a list of argument names or '*', got {fields!r}")
        wanted = [p for p in params if p not in ("self", "cls")]
    else:
        wanted = list(fields)
        unknown = [f for f in wanted if f not in params]
        if unknown:
            raise ValueError(
                f"trace(fields=...) names {unknown} which are not parameters of "
                f"{getattr(target, '__qualname__', target)!r}; parameters: {params}"
            )
    takes_self = bool(params) and params[0] in ("self", "cls")

    def capture(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            if takes_self and instance is not None:
                bound = sig.bind(instance, *args, **kwargs)
            else:
                bound = sig.bind(*args, **kwargs)
        except TypeError as exc:  # the call itself is wrong: it will raise too
            return {"arguments_error": str(exc)}
        limit = _limit()
        got = bound.arguments
        return {name: plain_value(got[name], limit) for name in wanted if name in got}

    return capture


def _finish_for(retval: bool) -> hotpath.Finish | None:
    if not retval:
        return None

    def finish(t0: int, result: Any) -> dict[str, Any]:
        return {
            "duration_ns": monotonic_ns() - t0,
            "retval": plain_value(result, _limit()),
        }

    return finish


def _exit_fields(t0: int, finish: hotpath.Finish | None, result: Any) -> Any:
    return t0 if finish is None else finish(t0, result)


def _deferred(traced: Callable[[Any, Any], Any], capture: hotpath.Capture | None) -> Any:
    """The wrapt wrapper for functions whose body runs later (generators,
    coroutines, async generators): the call only creates the object, which
    ``traced`` wraps in one of the same kind and name, recording from its
    first resumption to its end. Untraced while not recording."""

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        inner = wrapped(*args, **kwargs)
        if hotpath._recorder is None:
            return inner
        entry = None if capture is None else capture(instance, args, kwargs)
        outer: Any = traced(inner, entry)
        outer.__name__, outer.__qualname__ = inner.__name__, inner.__qualname__
        return outer

    return wrapper


def _generator_wrapper(
    key: Any, name: str, capture: hotpath.Capture | None, finish: hotpath.Finish | None
) -> Any:
    def traced(gen: Generator[Any, Any, Any], entry: Any) -> Generator[Any, Any, Any]:
        # Forwards send/throw/close by hand: ``yield from`` turns a thrown
        # GeneratorExit into close() of ``gen`` (and drops what close()
        # returns on 3.13). The throw is made outside the ``except`` block, so
        # that an exception ``gen`` raises later gets no ``__context__`` from it.
        __tracebackhide__ = True
        t0 = emit(key, ENTRY, name, entry)
        try:
            try:
                value = next(gen)
                while True:
                    thrown = None
                    try:
                        sent = yield value
                    except BaseException as exc:
                        thrown = exc
                    if thrown is None:
                        value = gen.send(sent)
                    else:
                        value = gen.throw(thrown)
                        thrown = None
            except StopIteration as stop:
                result = stop.value
        except BaseException as exc:
            if t0:  # 0: not recording at the first resumption, no entry
                emit(key, EXIT, name, exit_error(t0, exc))
            raise
        if t0:
            emit(key, EXIT, name, _exit_fields(t0, finish, result))
        return result

    return _deferred(traced, capture)


def _coroutine_wrapper(
    key: Any, name: str, capture: hotpath.Capture | None, finish: hotpath.Finish | None
) -> Any:
    async def traced(coro: Coroutine[Any, Any, Any], entry: Any) -> Any:
        __tracebackhide__ = True
        t0 = emit(key, ENTRY, name, entry)
        try:
            result = await coro
        except BaseException as exc:  # CancelledError included: recorded, re-raised
            if t0:  # 0: not recording at the first resumption, no entry
                emit(key, EXIT, name, exit_error(t0, exc))
            raise
        if t0:
            emit(key, EXIT, name, _exit_fields(t0, finish, result))
        return result

    return _deferred(traced, capture)


def _async_generator_wrapper(
    key: Any, name: str, capture: hotpath.Capture | None, finish: hotpath.Finish | None
) -> Any:
    async def traced(agen: AsyncGenerator[Any, Any], entry: Any) -> AsyncGenerator[Any, Any]:
        # Forwards asend/athrow/aclose by hand, as the plain generator wrapper
        # does: aclose() reaches ``agen`` as the GeneratorExit it is, so that
        # ``agen`` reacts to it exactly as it would untraced.
        __tracebackhide__ = True
        t0 = emit(key, ENTRY, name, entry)
        try:
            try:
                value = await agen.__anext__()
                while True:
                    thrown = None
                    try:
                        sent = yield value
                    except BaseException as exc:
                        thrown = exc
                    if thrown is None:
                        value = await agen.asend(sent)
                    else:
                        value = await agen.athrow(thrown)
                        thrown = None
            except StopAsyncIteration:
                pass
        except BaseException as exc:
            if t0:  # 0: not recording at the first resumption, no entry
                emit(key, EXIT, name, exit_error(t0, exc))
            raise
        if t0:
            emit(key, EXIT, name, _exit_fields(t0, finish, None))

    return _deferred(traced, capture)


def default_name(func: Any) -> str:
    """``module.qualname`` of ``func``: the event name ``@trace`` uses."""
    target = unwrap_descriptor(func)
    module = getattr(target, "__module__", None) or "?"
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", "?")
    return f"{module}.{qualname}"


def make_wrapper(
    func: Any,
    *,
    name: str | None = None,
    fields: FieldSpec = None,
    retval: bool = False,
    channel: str | None = None,
) -> Callable[[Any, Any, Any, Any], Any]:
    """The wrapt wrapper function that traces ``func`` (used by trace and patch)."""
    event_name = check_name(default_name(func) if name is None else name)
    if channel is not None and not isinstance(channel, str):
        raise TypeError(f"channel must be a channel name (str), got {channel!r}")
    key: Any = event_name if channel is None else (channel, event_name)
    capture = _capture_for(func, fields)
    finish = _finish_for(retval)
    target = unwrap_descriptor(func)
    if inspect.isasyncgenfunction(target):
        return _async_generator_wrapper(key, event_name, capture, finish)  # type: ignore[no-any-return]
    if inspect.iscoroutinefunction(target):
        return _coroutine_wrapper(key, event_name, capture, finish)  # type: ignore[no-any-return]
    if inspect.isgeneratorfunction(target):
        return _generator_wrapper(key, event_name, capture, finish)  # type: ignore[no-any-return]
    return call_wrapper(key, event_name, capture, finish)  # type: ignore[no-any-return]


class TracedBoundFunction(wrapt.BoundFunctionWrapper):  # type: ignore[type-arg]
    """A traced function bound to an instance or a class (``obj.method``)."""

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, tuple[Any, str]]:
        # Pickled as the attribute lookup that made it, as a bound method is.
        me: Any = self
        owner = me._self_instance
        if owner is None:  # looked up on the class: find the class by name
            owner = sys.modules[me.__module__]
            for part in me.__qualname__.split(".")[:-1]:
                owner = getattr(owner, part)
        return getattr, (owner, me.__name__)

    def __copy__(self) -> TracedBoundFunction:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        # As for a bound method: the same lookup on a deep copy of its instance.
        lookup, args = self.__reduce_ex__(4)
        return lookup(*copy.deepcopy(args, memo))


class TracedFunction(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """The wrapt wrapper ``@trace`` and ``patch`` put around a function.

    A distinct type so that patching never wraps a traced function twice.
    Pickled and copied as the function it wraps is: by reference (module and
    qualified name, which find this wrapper again), never duplicated.
    """

    __bound_function_wrapper__ = TracedBoundFunction

    def __reduce_ex__(self, protocol: Any) -> str:
        me: Any = self
        return str(me.__qualname__)

    def __copy__(self) -> TracedFunction:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> TracedFunction:
        return self


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
        wrapper = make_wrapper(f, name=name, fields=fields, retval=retval, channel=channel)
        return TracedFunction(f, wrapper)

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
        if exc is None:
            emit(self._key, EXIT, self.name, self._t0)
        else:
            emit(self._key, EXIT, self.name, exit_error(self._t0, exc))

    async def __aenter__(self) -> span:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
