"""Transparency: tracing never changes what the traced code does.

Property-based (hypothesis): for generated behaviours (return values,
exceptions, arguments that fit the signature or not) and generated
sequences of send/throw/close on generators and async generators, the traced
and the untraced function give the same results, raise the same exceptions
with the same traceback through user code, and leave the same state. The
introspection a decorator could break (signature, ``__wrapped__``, the
``functools.wraps`` attributes, pickling, ``isinstance``) is checked too.
Everything runs with recording on and with it off.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import os
import pickle
import sys
import traceback
import types
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import _transparency_targets as targets
import pytest
import wrapt
from coroutine_helpers import own_code
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import instrument
from instrument import Channel, Recorder

HIDDEN = (os.path.dirname(instrument.__file__) + os.sep, os.path.dirname(wrapt.__file__) + os.sep)

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(params=["recording", "not recording"])
def recording(request: pytest.FixtureRequest, start_recording: Callable[..., Recorder]) -> bool:
    """Both ways a traced function runs: recording (into a small ring that
    laps, as in real use) and not."""
    if request.param == "recording":
        start_recording(Channel("t", subbuf_size=64, num_subbuf=4))
        return True
    return False


TRACE_OPTIONS: list[dict[str, Any]] = [
    {},
    {"fields": "*", "retval": True},
    {"name": "custom.name", "fields": ["a"]},
]


# -- outcomes -------------------------------------------------------------


def user_frames(tb: types.TracebackType | None) -> list[tuple[str, str, int | None]]:
    """(file, function, line) of each traceback frame outside the kit and wrapt."""
    return [
        (frame.filename, frame.name, frame.lineno)
        for frame in traceback.extract_tb(tb)
        if not frame.filename.startswith(HIDDEN)
    ]


def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """What ``call(*args, **kwargs)`` did: ("return", value) or ("raise",
    type, args, frames). Called from this one line, so that the frames of two
    calls compare equal when the code they run does."""
    try:
        return ("return", call(*args, **kwargs))
    except BaseException as exc:  # KeyboardInterrupt, SystemExit... are outcomes too
        return (
            "raise",
            type(exc),
            exc.args,
            user_frames(exc.__traceback__),
            # what a printed traceback shows of the exceptions behind this one
            type(exc.__cause__),
            type(exc.__context__),
            exc.__suppress_context__,
        )


class Oddity(Exception):
    """An exception whose ``str`` raises, as user exceptions sometimes do."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


EXCEPTIONS = [ValueError, KeyError, TypeError, ZeroDivisionError, Oddity, KeyboardInterrupt]

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
behaviours = st.one_of(
    st.tuples(st.just("return"), values),
    st.tuples(st.just("raise"), st.sampled_from(EXCEPTIONS), st.lists(values, max_size=2)),
)
arguments = st.tuples(
    st.lists(st.integers(-5, 5), max_size=4),
    st.dictionaries(st.sampled_from(["a", "b", "c", "scale", "extra", "x"]), st.integers(-5, 5)),
)


def act(behaviour: tuple[Any, ...], got: Any) -> Any:
    if behaviour[0] == "raise":
        raise behaviour[1](*behaviour[2])
    return (behaviour[1], got)


def make_functions(behaviour: tuple[Any, ...]) -> list[Callable[..., Any]]:
    """Functions of several signature shapes that act out ``behaviour``."""

    def positional_only(a: int, b: int = 2, /, c: int = 3) -> Any:
        return act(behaviour, (a, b, c))

    def varargs(a: int, *rest: int, scale: int = 1, **extra: int) -> Any:
        return act(behaviour, (a, rest, scale, extra))

    def keyword_only(*, a: int, b: int = 0) -> Any:
        return act(behaviour, (a, b))

    def nothing() -> Any:
        return act(behaviour, ())

    return [positional_only, varargs, keyword_only, nothing]


@pytest.mark.parametrize("options", TRACE_OPTIONS, ids=["bare", "fields+retval", "named"])
@SETTINGS
@given(behaviour=behaviours, args=arguments)
def test_traced_functions_return_and_raise_as_the_originals(
    recording: bool,
    options: dict[str, Any],
    behaviour: tuple[Any, ...],
    args: tuple[list[int], dict[str, int]],
) -> None:
    positional, keywords = args
    for func in make_functions(behaviour):
        if "a" in options.get("fields", ()) and "a" not in inspect.signature(func).parameters:
            continue  # trace(fields=["a"]) rightly refuses a function without ``a``
        traced = instrument.trace(**options)(func) if options else instrument.trace(func)
        expected = outcome(func, *positional, **keywords)
        got = outcome(traced, *positional, **keywords)
        assert got == expected, func.__name__


@pytest.mark.parametrize("options", TRACE_OPTIONS[:2], ids=["bare", "fields+retval"])
@SETTINGS
@given(behaviour=behaviours, amount=st.integers(-5, 5))
def test_traced_methods_behave_as_the_originals(
    recording: bool, options: dict[str, Any], behaviour: tuple[Any, ...], amount: int
) -> None:
    def build(trace: Callable[[Any], Any]) -> type:
        class Box:
            def __init__(self) -> None:
                self.state: list[Any] = []

            @trace
            def method(self, x: int) -> Any:
                self.state.append(x)
                return act(behaviour, x)

            @trace
            @classmethod
            def klass(cls, x: int) -> Any:
                return act(behaviour, (cls.__name__, x))

            @trace
            @staticmethod
            def static(x: int) -> Any:
                return act(behaviour, x)

        return Box

    def identity(f: Any) -> Any:
        return f

    def tracer(f: Any) -> Any:
        return instrument.trace(**options)(f) if options else instrument.trace(f)

    results = []
    for cls in (build(identity), build(tracer)):
        box = cls()
        results.append(
            [
                outcome(box.method, amount),
                outcome(cls.method, box, amount),
                outcome(cls.klass, amount),
                outcome(box.klass, amount),
                outcome(cls.static, amount),
                outcome(box.static, amount),
                box.state,
                isinstance(box, cls),
            ]
        )
    assert results[1] == results[0]


# -- the live stack ---------------------------------------------------------
#
# What the called code sees of the stack while it runs: its caller's frame,
# the frame a ``warnings.warn(stacklevel=N)`` blames, and the traceback text
# ``traceback.format_exception`` makes (what logging and libraries that
# rewrite tracebacks print). The sys.monitoring engine adds no frame; the
# wrapt engine calls the function from a frame of its own.

#: wrapt everywhere, sysmon where it can run (3.12+).
ENGINES = ["wrapt"] + (["sysmon"] if instrument.engines.sysmon_available() is None else [])
WRAPPER_FRAME = "the wrapt engine calls a traced function from a Python frame of its own"


def stack_engines(wrapt_fails: bool = True) -> Any:
    """Each engine as a parameter ``engine``; a strict xfail on wrapt."""
    marks = [pytest.mark.xfail(reason=WRAPPER_FRAME, strict=True)] if wrapt_fails else []
    return pytest.mark.parametrize(
        "engine",
        [pytest.param(e, marks=marks if e == "wrapt" else [], id=e) for e in ENGINES],
    )


@pytest.fixture
def engine_in_use(engine: str) -> Iterator[str]:
    """Trace with ``engine`` (a parameter of the test) in this test."""
    before = instrument.engines.setting()
    instrument.engines.use(engine)
    yield engine
    instrument.engines.use(before)


# Where they are expected to fail, failing is the point: no shrinking.
STACK_SETTINGS = settings(SETTINGS, phases=[Phase.explicit, Phase.generate])


def looks_at_the_stack(behaviour: tuple[Any, ...], stacklevel: int) -> Callable[..., Any]:
    def probe(x: int) -> Any:
        caller = sys._getframe(1)
        seen = (caller.f_code.co_name, caller.f_lineno, caller.f_globals["__name__"])
        warnings.warn(f"probe {x}", UserWarning, stacklevel=stacklevel)
        return act(behaviour, seen)

    return probe


def stack_outcome(call: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """What ``call`` saw and showed of the stack: its result (which holds the
    caller frame it saw) or the formatted traceback, and where each warning
    was attributed. Called from this one line, as ``outcome`` is."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result: tuple[Any, ...] = ("return", call(*args))
        except BaseException as exc:
            result = ("raise", traceback.format_exception(type(exc), exc, exc.__traceback__))
    return result, [(w.filename, w.lineno, str(w.message)) for w in caught]


@stack_engines()
@pytest.mark.parametrize("options", TRACE_OPTIONS, ids=["bare", "fields+retval", "named"])
@STACK_SETTINGS
@given(behaviour=behaviours, stacklevel=st.integers(1, 3), x=st.integers(-5, 5))
def test_traced_functions_see_and_show_the_same_stack(
    engine_in_use: str,
    recording: bool,
    options: dict[str, Any],
    behaviour: tuple[Any, ...],
    stacklevel: int,
    x: int,
) -> None:
    func = looks_at_the_stack(behaviour, stacklevel)
    plain = own_code(func)
    if options.get("fields") == ["a"]:
        options = {**options, "fields": ["x"]}
    mine = own_code(func)
    traced = instrument.trace(**options)(mine) if options else instrument.trace(mine)
    assert stack_outcome(traced, x) == stack_outcome(plain, x)


@pytest.mark.parametrize(
    "engine, recording_generators",
    [
        pytest.param(
            e,
            rec,
            # not recording, the wrapt engine hands out the generator itself
            marks=[pytest.mark.xfail(reason=WRAPPER_FRAME, strict=True)]
            if e == "wrapt" and rec
            else [],
            id=f"{e}-{'recording' if rec else 'not recording'}",
        )
        for e in ENGINES
        for rec in (True, False)
    ],
)
@STACK_SETTINGS
@given(items=st.lists(st.integers(0, 9), min_size=1, max_size=4), stacklevel=st.integers(1, 2))
def test_traced_generators_see_the_same_stack_at_each_resumption(
    engine_in_use: str,
    start_recording: Callable[..., Recorder],
    recording_generators: bool,
    items: list[int],
    stacklevel: int,
) -> None:
    if recording_generators and not instrument.recording():
        start_recording(Channel("t", subbuf_size=64, num_subbuf=4))

    def gen() -> Iterator[Any]:
        for item in items:
            caller = sys._getframe(1)
            warnings.warn(f"item {item}", UserWarning, stacklevel=stacklevel)
            yield item, caller.f_code.co_name, caller.f_lineno

    plain = own_code(gen)
    traced = instrument.trace(own_code(gen))
    assert stack_outcome(list, traced()) == stack_outcome(list, plain())


@stack_engines()
@STACK_SETTINGS
@given(behaviour=behaviours, amount=st.integers(-5, 5))
def test_traced_methods_see_the_same_stack(
    engine_in_use: str, recording: bool, behaviour: tuple[Any, ...], amount: int
) -> None:
    probe = looks_at_the_stack(behaviour, 2)

    class Box:
        def method(self, x: int) -> Any:
            return probe(x)

    class TracedBox:
        method = instrument.trace(own_code(Box.method))

    # ``probe`` is called from ``method`` in both: what differs is the frame
    # between this test and ``method``, seen by the warning two levels up
    # and by the traceback.
    assert stack_outcome(TracedBox().method, amount) == stack_outcome(Box().method, amount)


# -- generators -------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.just(("next",)),
        st.tuples(st.just("send"), st.integers(0, 9)),
        st.tuples(st.just("throw"), st.sampled_from([ValueError, KeyError, GeneratorExit])),
        st.just(("close",)),
    ),
    max_size=8,
)
generator_shapes = st.fixed_dictionaries(
    {
        "items": st.lists(st.integers(0, 99), max_size=5),
        "catch": st.sampled_from(
            [(), (ValueError,), (GeneratorExit,), (ValueError, GeneratorExit)]
        ),
        "on_exit": st.sampled_from(["return", "raise", "yield"]),
        "result": values,
    }
)


def make_generator(shape: dict[str, Any]) -> Callable[[], Iterator[Any]]:
    """A generator function: yields ``items``, records what it is sent,
    catches ``catch`` (yielding a note, or on GeneratorExit doing ``on_exit``),
    and returns ``result`` with what it received."""

    def gen() -> Iterator[Any]:
        received = []
        for item in shape["items"]:
            try:
                received.append((yield item))
            except GeneratorExit:
                if GeneratorExit not in shape["catch"]:
                    raise
                if shape["on_exit"] == "raise":
                    raise RuntimeError("cleanup failed") from None
                if shape["on_exit"] == "yield":
                    yield "ignored close"
                return ("closed", received)
            except shape["catch"] as exc:
                received.append(("caught", type(exc).__name__))
        return (shape["result"], received)

    return gen


def before_start(step: tuple[Any, ...]) -> tuple[Any, ...]:
    """The outcome of a throw into a generator that has not started, without
    its frames: one known difference. The untraced generator raises it in its
    own first line, the traced one in the wrapper's (its own body never runs
    either way), so the user frame of the ``def`` line is missing."""
    return step[:3] + step[4:]


def refused_send(op: tuple[Any, ...], step: tuple[Any, ...]) -> bool:
    """A value sent to a generator that has not started is refused with a
    TypeError, and the generator stays unstarted."""
    return op[0] == "send" and step[:2] == ("raise", TypeError)


def drive(gen: Any, ops: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Apply ``ops`` to a generator; the outcome of each."""
    steps = []
    started = False
    for op in ops:
        if op[0] == "next":
            step = outcome(lambda: next(gen))
        elif op[0] == "send":
            step = outcome(lambda v=op[1]: gen.send(v))
        elif op[0] == "throw":
            step = outcome(lambda e=op[1]: gen.throw(e("thrown")))
            step = step if started else before_start(step)
        else:
            step = outcome(gen.close)
        steps.append(step)
        started = started or not refused_send(op, step)
    steps.append(outcome(lambda: list(gen)))  # whatever is left
    steps.append(outcome(gen.close))
    return steps


THROWN_GENERATOR_EXIT = [
    # A generator that catches a thrown GeneratorExit and returns, yields, or
    # raises: ``yield from`` would close it instead of throwing into it.
    ({"items": [1, 2], "catch": (GeneratorExit,), "on_exit": e, "result": 5}, ops)
    for e in ("return", "yield", "raise")
    for ops in ([("next",), ("throw", GeneratorExit)], [("next",), ("close",)])
]


def with_examples(cases: list[tuple[dict[str, Any], list[Any]]]) -> Callable[[Any], Any]:
    def add(test: Any) -> Any:
        for shape, ops in cases:
            test = example(shape=shape, ops=ops)(test)
        return test

    return add


@SETTINGS
@with_examples(THROWN_GENERATOR_EXIT)
@given(shape=generator_shapes, ops=operations)
def test_traced_generators_behave_as_the_originals_under_send_throw_close(
    recording: bool, shape: dict[str, Any], ops: list[tuple[Any, ...]]
) -> None:
    gen_function = make_generator(shape)
    traced = instrument.trace(gen_function)
    assert drive(traced(), ops) == drive(gen_function(), ops)


# -- async generators --------------------------------------------------------


def run(awaitable: Awaitable[Any]) -> Any:
    """Run a coroutine that awaits nothing but ``asyncio.sleep(0)``, without a loop."""
    coro = awaitable.__await__()
    while True:
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value


def make_async_generator(shape: dict[str, Any]) -> Callable[[], AsyncIterator[Any]]:
    async def agen() -> AsyncIterator[Any]:
        received = []
        for item in shape["items"]:
            await asyncio.sleep(0)
            try:
                received.append((yield item))
            except GeneratorExit:
                if GeneratorExit not in shape["catch"]:
                    raise
                if shape["on_exit"] == "raise":
                    raise RuntimeError("cleanup failed") from None
                if shape["on_exit"] == "yield":
                    yield "ignored close"
                return
            except shape["catch"] as exc:
                received.append(("caught", type(exc).__name__))
                await asyncio.sleep(0)

    return agen


def adrive(agen: Any, ops: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    steps = []
    started = False
    for op in ops:
        if op[0] == "next":
            step = outcome(lambda: run(agen.__anext__()))
        elif op[0] == "send":
            step = outcome(lambda v=op[1]: run(agen.asend(v)))
        elif op[0] == "throw":
            step = outcome(lambda e=op[1]: run(agen.athrow(e("thrown"))))
            step = step if started else before_start(step)
        else:
            step = outcome(lambda: run(agen.aclose()))
        steps.append(step)
        started = started or not refused_send(op, step)

    async def rest() -> list[Any]:
        return [x async for x in agen]

    steps.append(outcome(lambda: run(rest())))
    steps.append(outcome(lambda: run(agen.aclose())))
    return steps


@SETTINGS
@with_examples(THROWN_GENERATOR_EXIT)
@given(shape=generator_shapes, ops=operations)
def test_traced_async_generators_behave_as_the_originals_under_asend_athrow_aclose(
    recording: bool, shape: dict[str, Any], ops: list[tuple[Any, ...]]
) -> None:
    agen_function = make_async_generator(shape)
    traced = instrument.trace(agen_function)
    assert adrive(traced(), ops) == adrive(agen_function(), ops)


# -- coroutines and cancellation ---------------------------------------------


@SETTINGS
@given(behaviour=behaviours, awaits=st.integers(0, 3))
def test_traced_coroutines_return_and_raise_as_the_originals(
    recording: bool, behaviour: tuple[Any, ...], awaits: int
) -> None:
    async def coro(x: int) -> Any:
        for _ in range(awaits):
            await asyncio.sleep(0)
        return act(behaviour, x)

    traced = instrument.trace(coro)
    assert outcome(run, traced(3)) == outcome(run, coro(3))


CANCEL_REACTIONS = ["propagate", "swallow and return", "cleanup and re-raise", "raise other"]


@pytest.mark.parametrize("reaction", CANCEL_REACTIONS)
def test_cancelling_a_traced_coroutine_propagates_as_for_the_original(
    recording: bool, reaction: str
) -> None:
    async def waiter(started: asyncio.Event, log: list[str]) -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            log.append("cancelled")
            if reaction == "swallow and return":
                return "swallowed"
            if reaction == "raise other":
                raise LookupError("instead") from None
            if reaction == "cleanup and re-raise":
                await asyncio.sleep(0)
            raise
        return "not cancelled"

    async def scenario(func: Callable[..., Any]) -> tuple[Any, ...]:
        started, log = asyncio.Event(), []
        task = asyncio.create_task(func(started, log))
        await started.wait()
        task.cancel("stop now")
        result = await asyncio.gather(task, return_exceptions=True)
        (value,) = result
        described = (type(value), value.args) if isinstance(value, BaseException) else value
        return (described, task.cancelled(), log)

    expected = asyncio.run(scenario(waiter))
    got = asyncio.run(scenario(instrument.trace(waiter)))
    assert got == expected
    if reaction in ("propagate", "cleanup and re-raise"):
        assert got[1] is True  # the task really was cancelled, through the wrapper


def test_wait_for_timeout_on_a_traced_coroutine_is_the_originals(recording: bool) -> None:
    async def slow() -> None:
        await asyncio.sleep(60)

    async def scenario(func: Callable[[], Any]) -> Any:
        try:
            await asyncio.wait_for(func(), timeout=0.01)
        except BaseException as exc:
            return type(exc)
        return None

    assert asyncio.run(scenario(instrument.trace(slow))) is asyncio.run(scenario(slow))


# -- introspection ----------------------------------------------------------


def documented(a: int, /, b: str = "x", *args: Any, c: float = 1.0, **kw: Any) -> list[int]:
    """A function with a docstring, annotations and an attribute."""
    return [a]


documented.custom = {"set": "before tracing"}  # type: ignore[attr-defined]

PAIRS: list[tuple[Any, Any]] = [
    (targets.add, targets.traced_add),
    (targets.add, targets.traced_fielded),
    (documented, instrument.trace(documented)),
    (documented, instrument.trace(name="x.y", fields="*", retval=True)(documented)),
]


@pytest.mark.parametrize("plain, traced", PAIRS)
def test_signature_wrapped_and_wraps_metadata_are_kept(
    recording: bool, plain: Any, traced: Any
) -> None:
    original = traced.__wrapped__
    assert inspect.signature(traced) == inspect.signature(original)
    assert inspect.signature(traced) == inspect.signature(plain)
    assert inspect.unwrap(traced) is original
    for attribute in functools.WRAPPER_ASSIGNMENTS:
        if hasattr(original, attribute):
            assert getattr(traced, attribute) == getattr(original, attribute), attribute
    assert traced.__dict__ == original.__dict__
    assert inspect.getdoc(traced) == inspect.getdoc(original)
    assert callable(traced)
    assert inspect.isfunction(traced) and isinstance(traced, types.FunctionType)
    assert not inspect.isgeneratorfunction(traced)
    if original is documented:
        assert traced.custom == {"set": "before tracing"}
        assert traced(1) == [1]


def test_kinds_of_function_are_still_recognised(recording: bool) -> None:
    assert inspect.isgeneratorfunction(targets.traced_countdown)
    assert inspect.iscoroutinefunction(targets.traced_double)
    assert asyncio.iscoroutinefunction(targets.traced_double)
    assert inspect.isasyncgenfunction(targets.traced_agen)
    assert not inspect.iscoroutinefunction(targets.traced_add)
    assert list(targets.traced_countdown(3)) == [3, 2, 1]
    assert run(targets.traced_double(4)) == 8
    coro = targets.traced_double(1)
    assert inspect.iscoroutine(coro) and inspect.isawaitable(coro)
    assert run(coro) == 2
    gen = targets.traced_countdown(1)
    assert inspect.isgenerator(gen) and gen.__name__ == "traced_countdown"
    gen.close()
    agen = targets.traced_agen(1)
    assert inspect.isasyncgen(agen) and agen.__qualname__ == "traced_agen"
    run(agen.aclose())


def test_methods_keep_their_descriptors_and_isinstance(recording: bool) -> None:
    account = targets.Account(10)
    assert isinstance(account, targets.Account)
    assert account.deposit(5) == 15 and targets.Account.deposit(account, 1) == 16
    assert account.deposit.__self__ is account
    assert targets.Account.with_rate(3) == 6 == account.with_rate(3)
    assert targets.Account.fee(50) == 5 == account.fee(50)
    for name in ("deposit", "with_rate", "fee"):
        traced_sig = inspect.signature(getattr(targets.Account, name))
        plain_sig = inspect.signature(getattr(targets.Plain, name))
        assert traced_sig == plain_sig, name
        assert getattr(targets.Account, name).__doc__ == getattr(targets.Plain, name).__doc__
    assert type(targets.Account.__dict__["with_rate"]) is classmethod
    assert type(targets.Account.__dict__["fee"]) is staticmethod


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_module_level_traced_functions_pickle_by_reference(recording: bool, protocol: int) -> None:
    for func in (
        targets.traced_add,
        targets.traced_fielded,
        targets.traced_countdown,
        targets.traced_double,
        targets.traced_agen,
    ):
        assert pickle.loads(pickle.dumps(func, protocol)) is func
        assert copy.copy(func) is func and copy.deepcopy(func) is func
    assert pickle.loads(pickle.dumps(targets.traced_add, protocol))(1, 2, 3) == 6
    # methods, as looked up on the class and on an instance (instances pickle too)
    for name in ("deposit", "with_rate", "fee"):
        on_class = pickle.loads(pickle.dumps(getattr(targets.Account, name), protocol))
        plain_on_class = pickle.loads(pickle.dumps(getattr(targets.Plain, name), protocol))
        assert on_class.__wrapped__ == getattr(targets.Account, name).__wrapped__
        assert inspect.signature(on_class) == inspect.signature(plain_on_class)
    account, plain = targets.Account(1), targets.Plain(1)
    deposit = pickle.loads(pickle.dumps(account.deposit, protocol))
    plain_deposit = pickle.loads(pickle.dumps(plain.deposit, protocol))
    assert deposit(2) == plain_deposit(2) == 3
    assert account.balance == plain.balance == 1  # bound to a copy, as a bound method is
    assert pickle.loads(pickle.dumps(account, protocol)) == account


def test_a_deep_copied_bound_method_is_bound_to_a_copy_as_for_the_original(
    recording: bool,
) -> None:
    account, plain = targets.Account(1), targets.Plain(1)
    copied, plain_copied = copy.deepcopy(account.deposit), copy.deepcopy(plain.deposit)
    assert copied(5) == plain_copied(5) == 6
    assert account.balance == plain.balance == 1


def test_the_traceback_of_a_traced_call_shows_the_same_user_frames(recording: bool) -> None:
    def inner(x: int) -> int:
        return 1 // x

    def outer(func: Callable[[int], int], x: int) -> int:
        return func(x) + 1

    plain = outcome(outer, inner, 0)
    traced = outcome(outer, instrument.trace(inner), 0)
    assert traced == plain
    assert [name for _, name, _ in plain[3]] == ["outcome", "outer", "inner"]
