"""The wrapt engine: a wrapt ``FunctionWrapper`` around each traced function.

Runs on every Python version, and on the sysmon engine traces what
``sys.monitoring`` cannot see (C functions, builtins, callables without a
code object). A traced function keeps its signature, ``__wrapped__``,
docstring and descriptor behaviour (methods, classmethods, staticmethods),
and ``isinstance`` checks pass through. Generators, coroutines and async
generators are traced from their first resumption to their end, and behave
exactly as the original under ``send``/``throw``/``close`` (and
``asend``/``athrow``/``aclose``).

What it cannot remove, by design: the wrapper is another object (identity,
``type(f)``), its Python wrapper function is another frame, and a call
through a reference taken before patching is not seen.
"""

from __future__ import annotations

import copy
import inspect
import sys
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import Any

import wrapt

from .. import hotpath
from ..hotpath import call_wrapper, emit, emit_exit, error_fields
from ..stream import ENTRY
from . import TraceOptions, Undo, unwrap_descriptor

_POSITIONAL_OR_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD


def _capture_for(func: Any, wanted: tuple[str, ...] | None) -> hotpath.Capture | None:
    """A function that turns call arguments into entry fields, or ``None``."""
    if wanted is None:
        return None
    target = unwrap_descriptor(func)
    sig = inspect.signature(target)
    params = list(sig.parameters)
    takes_self = bool(params) and params[0] in ("self", "cls")
    kinds = [p.kind for p in sig.parameters.values()]
    # Plain parameters only (no *args, **kwargs, keyword-only): arguments
    # are matched by position and name directly, without Signature.bind
    # (which costs several microseconds), unless the call is unusual.
    positional = params if all(k == _POSITIONAL_OR_KEYWORD for k in kinds) else None
    known = frozenset(params)

    def capture(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if takes_self and instance is not None:
            args = (instance, *args)
        if (
            positional is not None
            and len(args) <= len(positional)
            and known.issuperset(kwargs)
            and not any(name in kwargs for name in positional[: len(args)])
        ):
            got = dict(zip(positional, args, strict=False))
            got.update(kwargs)
        else:
            try:
                got = sig.bind(*args, **kwargs).arguments
            except TypeError as exc:  # the call itself is wrong: it will raise too
                return {"arguments_error": str(exc)}
        # Captured now, redacted by parameter name (see instrument.values).
        fields: dict[str, Any] = hotpath.plain({n: got[n] for n in wanted if n in got})
        return fields

    return capture


def _finish_for(retval: bool) -> hotpath.Finish | None:
    if not retval:
        return None

    def finish(result: Any) -> dict[str, Any]:
        # no "retval" at all when values are off (plain gives {})
        fields: dict[str, Any] = hotpath.plain({"retval": result})
        return fields

    return finish


def _exit_fields(finish: hotpath.Finish | None, result: Any) -> Any:
    return None if finish is None else finish(result)


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
                emit_exit(key, name, t0, error_fields(exc))
            raise
        if t0:
            emit_exit(key, name, t0, _exit_fields(finish, result))
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
                emit_exit(key, name, t0, error_fields(exc))
            raise
        if t0:
            emit_exit(key, name, t0, _exit_fields(finish, result))
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
                emit_exit(key, name, t0, error_fields(exc))
            raise
        if t0:
            emit_exit(key, name, t0, _exit_fields(finish, None))

    return _deferred(traced, capture)


def make_wrapper(func: Any, options: TraceOptions) -> Callable[[Any, Any, Any, Any], Any]:
    """The wrapt wrapper function that traces ``func`` (used by trace and patch)."""
    key, event_name = options.key, options.name
    capture = _capture_for(func, options.fields)
    finish = _finish_for(options.retval)
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


class PatchWrapper(TracedFunction):
    """The wrapper :func:`patch` puts in place (``@trace`` makes the base class):
    a copy of it found at another target is undone too."""


def _traced_by_sysmon(func: Any) -> bool:
    """Whether the sysmon engine traces ``func``'s code already."""
    sysmon = sys.modules.get("instrument.engines.sysmon")
    return sysmon is not None and id(sysmon.code_of(func)) in sysmon._targets


class WraptEngine:
    """The wrapt engine (see the module docstring)."""

    name = "wrapt"

    def __init__(self) -> None:
        #: One wrapper per function object (and options), shared by every
        #: target that names it, so that a re-export stays the same object as
        #: its source (``pkg.f is pkg.mod.f``): [original, wrapper, users].
        self._shared: dict[tuple[int, TraceOptions], list[Any]] = {}

    def trace(self, func: Any, options: TraceOptions) -> Any:
        if _traced_by_sysmon(func):  # never traced twice, by two engines
            return func
        return TracedFunction(func, make_wrapper(func, options))

    def patch(
        self, parent: Any, attribute: str, original: Any, options: TraceOptions
    ) -> Undo | None:
        owned = attribute in getattr(parent, "__dict__", {})
        key: tuple[int, TraceOptions] | None = None
        if type(original) is PatchWrapper:
            # Another patch's wrapper, copied here by an import while it was
            # applied (``from .mod import f``): adopt it, so that unpatching
            # puts back what the import would have copied without patching.
            original = original.__wrapped__
        elif _traced_by_sysmon(original):
            return None
        else:
            # A TracedFunction around a classmethod passes isinstance(classmethod)
            # (wrapt proxies __class__): test the object itself first.
            if isinstance(original, TracedFunction) or isinstance(
                unwrap_descriptor(original), TracedFunction
            ):
                return None  # already traced by @trace: never wrap twice
            key = (id(original), options)
            shared = self._shared.get(key)
            if shared is None:
                wrapper = PatchWrapper(original, make_wrapper(original, options))
                shared = self._shared[key] = [original, wrapper, 0]
            shared[2] += 1
            wrapt.apply_patch(parent, attribute, shared[1])

        def undo() -> None:
            if owned:
                setattr(parent, attribute, original)
            else:
                delattr(parent, attribute)
            if key is not None:
                shared = self._shared.get(key)
                if shared is not None:
                    shared[2] -= 1
                    if shared[2] <= 0:
                        del self._shared[key]

        return undo

    def start(self) -> None:
        pass  # the wrappers read hotpath's recorder on every call

    def stop(self) -> None:
        pass
