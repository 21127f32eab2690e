"""The wrapt engine: a wrapt ``FunctionWrapper`` around each traced function.

Runs on every Python version, and on the sysmon engine traces what
``sys.monitoring`` cannot see (C functions, builtins, callables without a
code object). A traced function keeps its signature, ``__wrapped__``,
docstring and descriptor behaviour (methods, classmethods, staticmethods),
and ``isinstance`` checks pass through. Generators, coroutines and async
generators are traced from their first resumption to their end, with a
``suspend`` record each time they hand a value out (to their consumer, or
to the event loop from an ``await`` inside) and a ``resume`` record each
time they are sent, thrown or closed into, as the sysmon engine records
them; they behave exactly as the original under ``send``/``throw``/``close``
(and ``asend``/``athrow``/``aclose``). A coroutine is stepped by hand for
that (see ``_steps``), not awaited: the wrapper's ``cr_await`` is that
stepper, not the coroutine. Records go to the recorder that was active at
the entry only, so that a generator that outlives a recording writes no
half of a pair into the next one.

What it cannot remove, by design: the wrapper is another object (identity,
``type(f)``), its Python wrapper function is another frame, and a call
through a reference taken before patching is not seen.
"""

from __future__ import annotations

import copy
import inspect
import sys
import types
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from typing import Any

import wrapt

from .. import hotpath
from ..hotpath import call_wrapper, emit, emit_captured, emit_exit, error_fields
from ..stream import ENTRY, RESUME, SUSPEND
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
    # Recorded as the function receives them, defaults included (as the
    # sysmon engine reads them from the frame).
    defaults = {n: p.default for n, p in sig.parameters.items() if p.default is not p.empty}

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
            if kwargs or len(args) < len(positional):  # in parameter order, defaults filled in
                got.update(kwargs)
                got = {
                    n: got[n] if n in got else defaults[n]
                    for n in positional
                    if n in got or n in defaults
                }
        else:
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as exc:  # the call itself is wrong: it will raise too
                return {"arguments_error": str(exc)}
            bound.apply_defaults()
            got = bound.arguments
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


#: What a generator, coroutine or async generator whose first resumption
#: was not recorded compares its recorder with: never the active one.
_NOT_RECORDED = object()


def _recording_for(t0: int) -> Any:
    """The recorder a generator entered at ``t0`` records to: the one active
    at its entry, never a later one (its suspensions, resumptions and exit
    would pair with no entry), and none when no entry was recorded."""
    return hotpath._recorder if t0 else _NOT_RECORDED


@types.coroutine
def _steps(
    awaitable: Any,
    key: Any,
    name: str,
    t0: int,
    recorder: Any,
    thrown: list[BaseException] | None = None,
    closes: bool = True,
) -> Any:
    """``await awaitable`` (a coroutine, an async generator's ``asend`` or
    ``athrow``), stepped by hand to record a suspension before each value it
    yields out to the event loop and a resumption when it is sent or thrown
    into, exactly as ``await`` would step it otherwise. ``thrown`` holds an
    exception to throw in first instead of sending.

    * Exceptions are thrown outside the ``except`` block that caught them, so
      that what ``awaitable`` raises later gets no ``__context__`` from them,
      and are handed over in a list, so that no frame of ours keeps one
      alive through its traceback.
    * A ``GeneratorExit`` (``close()``, or thrown) is raised again, having
      closed ``awaitable`` if ``closes``, as ``await`` does. The coroutine
      wrapper passes ``closes=False`` and throws it in itself: an ``await``
      that closes would make a coroutine that catches it end, where the
      original could go on.
    """
    __tracebackhide__ = True
    send, throw = awaitable.send, awaitable.throw
    sent: Any = None
    while True:
        try:
            if thrown is None:
                out = send(sent)
            else:
                box, thrown = thrown, None
                out = throw(box.pop())
        except StopIteration as stop:
            return stop.value
        if hotpath._recorder is recorder:  # the recording its entry went to
            emit_captured(key, SUSPEND, name, t0)
        try:
            sent = yield out
        except BaseException as exc:
            thrown = [exc]
        out = None  # the loop's future: not kept alive by this frame
        if hotpath._recorder is recorder:  # the recording its entry went to
            emit_captured(key, RESUME, name, t0)
        if thrown is not None and isinstance(thrown[0], GeneratorExit):
            if closes:
                awaitable.close()
            raise thrown.pop()


class _Unstarted:
    """Holds a traced coroutine until its wrapper first runs.

    A wrapper that never runs (never awaited, closed, or thrown into before
    its first step, as a task cancelled at once is) closes it, so that only
    the wrapper, named as it is, warns that it was never awaited: once, as
    the coroutine alone would, and never when it was closed."""

    __slots__ = ("coro",)

    def __init__(self, coro: Any) -> None:
        self.coro: Any = coro

    def __del__(self) -> None:
        coro = self.coro
        if type(coro) is types.CoroutineType:
            self.coro = None
            coro.close()


def _generator_wrapper(
    key: Any, name: str, capture: hotpath.Capture | None, finish: hotpath.Finish | None
) -> Any:
    def traced(gen: Generator[Any, Any, Any], entry: Any) -> Generator[Any, Any, Any]:
        # Forwards send/throw/close by hand: ``yield from`` turns a thrown
        # GeneratorExit into close() of ``gen`` (and drops what close()
        # returns on 3.13). The throw is made outside the ``except`` block, so
        # that an exception ``gen`` raises later gets no ``__context__`` from it.
        # A suspension is recorded before each value handed to the consumer,
        # a resumption when the consumer sends, throws or closes.
        __tracebackhide__ = True
        t0 = emit(key, ENTRY, name, entry)
        recorder = _recording_for(t0)
        try:
            try:
                value = next(gen)
                while True:
                    thrown = None
                    if hotpath._recorder is recorder:  # the recording its entry went to
                        emit_captured(key, SUSPEND, name, t0)
                    try:
                        sent = yield value
                    except BaseException as exc:
                        thrown = exc
                    value = None  # not kept alive by this frame while gen runs
                    if hotpath._recorder is recorder:  # the recording its entry went to
                        emit_captured(key, RESUME, name, t0)
                    if thrown is None:
                        value = gen.send(sent)
                    else:
                        value = gen.throw(thrown)
                        thrown = None
            except StopIteration as stop:
                result = stop.value
        except BaseException as exc:
            if hotpath._recorder is recorder:
                emit_exit(key, name, t0, error_fields(exc))
            raise
        if hotpath._recorder is recorder:
            emit_exit(key, name, t0, _exit_fields(finish, result))
        return result

    return _deferred(traced, capture)


def _coroutine_wrapper(
    key: Any, name: str, capture: hotpath.Capture | None, finish: hotpath.Finish | None
) -> Any:
    async def traced(unstarted: _Unstarted, entry: Any) -> Any:
        # Awaits the coroutine through _steps, which records each suspension
        # and resumption. A GeneratorExit (close() or throw()) that reaches
        # the wrapper while the coroutine is suspended is thrown into it, as
        # it would reach it untraced, and the coroutine decides: it may end,
        # raise, or go on (then close() raises "ignored GeneratorExit").
        __tracebackhide__ = True
        coro, unstarted.coro = unstarted.coro, None
        t0 = emit(key, ENTRY, name, entry)
        recorder = _recording_for(t0)
        try:
            if type(coro) is not types.CoroutineType:  # another awaitable
                result = await coro
            else:
                thrown: list[BaseException] | None = None
                while True:
                    try:
                        result = await _steps(coro, key, name, t0, recorder, thrown, False)
                        break
                    except GeneratorExit as exc:
                        if coro.cr_frame is None:  # the coroutine ended with it
                            raise
                        thrown = [exc]
        except BaseException as exc:  # CancelledError included: recorded, re-raised
            if hotpath._recorder is recorder:
                emit_exit(key, name, t0, error_fields(exc))
            raise
        if hotpath._recorder is recorder:
            emit_exit(key, name, t0, _exit_fields(finish, result))
        return result

    def coroutine(coro: Coroutine[Any, Any, Any], entry: Any) -> Any:
        return traced(_Unstarted(coro), entry)

    return _deferred(coroutine, capture)


def _async_generator_wrapper(
    key: Any, name: str, capture: hotpath.Capture | None, finish: hotpath.Finish | None
) -> Any:
    async def traced(agen: AsyncGenerator[Any, Any], entry: Any) -> AsyncGenerator[Any, Any]:
        # Forwards asend/athrow/aclose by hand, as the plain generator wrapper
        # does: aclose() reaches ``agen`` as the GeneratorExit it is, so that
        # ``agen`` reacts to it exactly as it would untraced. Each step is
        # awaited through _steps: a suspension is recorded at each await
        # inside ``agen`` and at each value handed to the consumer.
        __tracebackhide__ = True
        t0 = emit(key, ENTRY, name, entry)
        recorder = _recording_for(t0)
        try:
            try:
                value = await _steps(agen.__anext__(), key, name, t0, recorder)
                while True:
                    thrown = None
                    if hotpath._recorder is recorder:  # the recording its entry went to
                        emit_captured(key, SUSPEND, name, t0)
                    try:
                        sent = yield value
                    except BaseException as exc:
                        thrown = exc
                    value = None
                    if hotpath._recorder is recorder:  # the recording its entry went to
                        emit_captured(key, RESUME, name, t0)
                    if thrown is None:
                        value = await _steps(agen.asend(sent), key, name, t0, recorder)
                    elif isinstance(thrown, GeneratorExit) and agen.ag_frame is None:  # type: ignore[attr-defined]
                        # ``agen`` was closed on its own (the event loop closes
                        # every async generator it saw at shutdown, in no set
                        # order), and athrow() on it would return, not raise:
                        # end as closing ``agen`` itself would have.
                        break
                    else:
                        step = agen.athrow(thrown)
                        thrown = None
                        value = await _steps(step, key, name, t0, recorder)
            except StopAsyncIteration:
                pass
        except BaseException as exc:
            if hotpath._recorder is recorder:
                emit_exit(key, name, t0, error_fields(exc))
            raise
        if hotpath._recorder is recorder:
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


_bind = wrapt.FunctionWrapper.__get__


class TracedFunction(wrapt.FunctionWrapper):  # type: ignore[type-arg]
    """The wrapt wrapper ``@trace`` and ``patch`` put around a function.

    A distinct type so that patching never wraps a traced function twice.
    Pickled and copied as the function it wraps is: by reference (module and
    qualified name, which find this wrapper again), never duplicated.
    """

    __bound_function_wrapper__ = TracedBoundFunction

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        # A plain function looked up on its class is that function itself
        # (``C.f is vars(C)["f"]``, which attrs checks of its own
        # ``__setattr__``): so is this wrapper. wrapt would bind it to
        # ``None``, a new object at every lookup.
        if instance is None and self._self_binding == "function":
            return self
        return _bind(self, instance, owner)

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


def _traced(kind: type[TracedFunction], func: Any, options: TraceOptions) -> Any:
    """``func`` traced by a wrapper of ``kind``. A staticmethod or classmethod
    stays one, around the traced function (``type(vars(C)["m"])`` is kept);
    binding goes through the wrapper as through a function."""
    if type(func) in (staticmethod, classmethod):
        inner = kind(func.__func__, make_wrapper(func, options))
        return type(func)(inner)
    return kind(func, make_wrapper(func, options))


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
        return _traced(TracedFunction, func, options)

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
                wrapper = _traced(PatchWrapper, original, options)
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
