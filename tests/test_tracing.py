"""``@trace`` in every form, and ``span``: the events they record, and that
the traced code behaves exactly as before."""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import instrument
from instrument import Event, Recorder, span, trace
from instrument.engines.wrapt_engine import TracedFunction


def recorded(kinds: tuple[str, ...] = ("entry", "exit", "event")) -> list[Event]:
    return [ev for ev in instrument.snapshot().events if ev.kind in kinds]


def pairs() -> list[tuple[str, str]]:
    return [(ev.kind, ev.name) for ev in recorded()]


def check_exit(ev: Event, **expected: Any) -> None:
    """An exit event: a non-negative int duration, and exactly ``expected`` besides."""
    assert ev.kind == "exit"
    fields = dict(ev.fields)
    duration = fields.pop("duration_ns")
    assert type(duration) is int and duration >= 0
    assert fields == expected


# -- plain functions ----------------------------------------------------------


@trace
def add(a: int, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


def test_plain_function_records_entry_and_exit(recorder: Recorder) -> None:
    assert add(1) == 3
    entry, exit_ = recorded()
    name = f"{__name__}.add"
    assert (entry.kind, entry.name, entry.fields) == ("entry", name, {})
    assert exit_.name == name
    check_exit(exit_)
    assert entry.timestamp <= exit_.timestamp
    assert exit_.fields["duration_ns"] <= exit_.timestamp - entry.timestamp + 1


def test_exception_exit_records_type_and_message_and_reraises(recorder: Recorder) -> None:
    error = KeyError("missing")

    @trace(name="fails")
    def fails() -> None:
        raise error

    with pytest.raises(KeyError) as info:
        fails()
    assert info.value is error
    entry, exit_ = recorded()
    assert entry.name == exit_.name == "fails"
    check_exit(exit_, exception="KeyError", message="'missing'")


class Nasty(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


@trace(name="nasty")
def nasty(*args: object) -> None:
    raise Nasty(*args)


def test_exception_whose_str_raises_is_still_recorded(recorder: Recorder) -> None:
    # safe mode never calls the program's __str__: the message comes from args
    with pytest.raises(Nasty):
        nasty("card", 3)
    (_, exit_) = recorded()
    check_exit(exit_, exception="Nasty", message="'card', 3")


def test_exception_whose_str_raises_in_repr_mode(start_recording: Callable[..., Recorder]) -> None:
    start_recording(values="repr")
    with pytest.raises(Nasty):
        nasty()
    (_, exit_) = recorded()
    check_exit(
        exit_, exception="Nasty", message="<Nasty str() raised RuntimeError: no str for you>"
    )


def test_base_exceptions_are_recorded_too(recorder: Recorder) -> None:
    @trace(name="exits")
    def exits() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        exits()
    check_exit(recorded()[-1], exception="SystemExit", message="3")


def test_fields_list_and_star_and_retval(recorder: Recorder) -> None:
    @trace(name="f", fields=["a", "c"], retval=True)
    def f(a: int, b: str, c: object = None, *rest: int, **kw: int) -> list[int]:
        return [a, len(b)]

    @trace(name="g", fields="*")
    def g(a: int, *rest: int, key: str = "k", **kw: int) -> None:
        pass

    assert f(1, "xy", c={"k": [1]}) == [1, 2]
    g(1, 2, 3, key="v", extra=4)
    fe, fx, ge, gx = recorded()
    assert fe.fields == {"a": 1, "c": "{'k': [1]}"}  # converted when called
    check_exit(fx, retval="[1, 2]")
    assert ge.fields == {"a": 1, "rest": "(2, 3)", "key": "v", "kw": "{'extra': 4}"}
    check_exit(gx)


def test_captured_arguments_show_their_state_at_call_time(recorder: Recorder) -> None:
    @trace(name="take", fields=["items"])
    def take(items: list[int]) -> None:
        items.append(99)

    data = [1]
    take(data)
    assert recorded()[0].fields == {"items": "[1]"}


@pytest.mark.parametrize("engine", ["wrapt", "sysmon"])
def test_arguments_are_captured_as_received_defaults_included(
    engine: str, request: pytest.FixtureRequest, recorder: Recorder
) -> None:
    """Both engines record what the function received: the sysmon engine
    reads the frame, where defaults are filled in; the wrapt engine fills
    them in the same way, in parameter order."""
    if engine == "sysmon":
        request.getfixturevalue("sysmon")

    @trace(name="e", fields="*")
    def e(a: int, b: int = 5) -> None:
        pass

    @trace(name="d", fields="*")
    def d(a: int, b: int = 5, *rest: int, c: str = "x", **kw: int) -> None:
        pass

    d(1)
    d(1, b=7)
    d(1, 2, 3, c="y", z=4)
    e(b=2, a=1)
    e(1)
    entries = recorded(("entry",))
    assert [list(ev.fields.items()) for ev in entries] == [
        [("a", 1), ("b", 5), ("rest", "()"), ("c", "x"), ("kw", "{}")],
        [("a", 1), ("b", 7), ("rest", "()"), ("c", "x"), ("kw", "{}")],
        [("a", 1), ("b", 2), ("rest", "(3,)"), ("c", "y"), ("kw", "{'z': 4}")],
        [("a", 1), ("b", 2)],
        [("a", 1), ("b", 5)],
    ]


def test_a_call_with_wrong_arguments_raises_as_before_and_is_recorded(
    recorder: Recorder,
) -> None:
    @trace(name="strict", fields="*")
    def strict(a: int) -> int:
        return a

    with pytest.raises(TypeError) as traced_error:
        strict(1, 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError) as plain_error:
        strict.__wrapped__(1, 2)
    assert str(traced_error.value) == str(plain_error.value)
    entry, exit_ = recorded()
    assert "arguments_error" in entry.fields
    assert exit_.fields["exception"] == "TypeError"


def test_credential_like_argument_names_are_redacted(recorder: Recorder) -> None:
    @trace(name="login", fields="*")
    def login(user: str, password: str) -> bool:
        return True

    login("ann", "hunter2")
    assert recorded()[0].fields == {"user": "ann", "password": "[redacted]"}


# -- methods, classmethods, staticmethods -------------------------------------


class Shop:
    """A class whose methods are traced in every way."""

    rate = 10

    def __init__(self, stock: int) -> None:
        self.stock = stock

    @trace(fields="*", retval=True)
    def sell(self, n: int) -> int:
        self.stock -= n
        return self.stock

    @trace(fields="*")
    @classmethod
    def price(cls, n: int) -> int:
        return n * cls.rate

    @classmethod
    @trace(name="Shop.discounted")
    def discounted(cls, n: int) -> int:
        return n * cls.rate // 2

    @trace(fields="*")
    @staticmethod
    def tax(amount: int) -> int:
        return amount // 5

    @staticmethod
    @trace(name="Shop.rounded")
    def rounded(amount: float) -> int:
        return round(amount)


class Outlet(Shop):
    rate = 5


def test_method_binds_self_and_excludes_it_from_fields(recorder: Recorder) -> None:
    shop = Shop(10)
    assert shop.sell(3) == 7
    assert Shop.sell(shop, 2) == 5  # unbound call through the class
    e1, x1, e2, x2 = recorded()
    assert e1.name == f"{__name__}.Shop.sell"
    assert e1.fields == e2.fields | {"n": 3} and e2.fields == {"n": 2}
    check_exit(x1, retval=7)
    check_exit(x2, retval=5)


def test_classmethods_bind_the_class_they_are_called_on(recorder: Recorder) -> None:
    assert Shop.price(2) == 20
    assert Outlet.price(2) == 10
    assert Outlet(1).price(3) == 15
    assert Shop.discounted(4) == 20
    assert Outlet.discounted(4) == 10
    entries = recorded(("entry",))
    assert [(ev.name, ev.fields) for ev in entries] == [
        (f"{__name__}.Shop.price", {"n": 2}),
        (f"{__name__}.Shop.price", {"n": 2}),
        (f"{__name__}.Shop.price", {"n": 3}),
        ("Shop.discounted", {}),
        ("Shop.discounted", {}),
    ]


def test_staticmethods_through_class_and_instance(recorder: Recorder) -> None:
    assert Shop.tax(50) == 10
    assert Shop(1).tax(100) == 20
    assert Outlet.rounded(2.6) == 3
    entries = recorded(("entry",))
    assert [(ev.name, ev.fields) for ev in entries] == [
        (f"{__name__}.Shop.tax", {"amount": 50}),
        (f"{__name__}.Shop.tax", {"amount": 100}),
        ("Shop.rounded", {}),
    ]


def test_descriptor_kinds_are_kept() -> None:
    # A traced classmethod or staticmethod stays one, around the traced function.
    assert type(inspect.getattr_static(Shop, "price")) is classmethod
    assert isinstance(Shop.__dict__["price"].__func__, TracedFunction)
    assert type(inspect.getattr_static(Shop, "discounted")) is classmethod
    assert type(Shop.__dict__["tax"]) is staticmethod
    assert isinstance(Shop.__dict__["tax"].__func__, TracedFunction)
    assert Shop.tax is Shop.__dict__["tax"].__func__ is Shop(1).tax
    assert inspect.ismethod(Shop(1).sell) and Shop(1).sell.__self__.stock == 1
    assert inspect.ismethod(Shop.price) and Shop.price.__self__ is Shop


# -- introspection ------------------------------------------------------------


def test_traced_functions_keep_their_identity_for_introspection() -> None:
    original = add.__wrapped__
    assert add.__name__ == "add" and add.__qualname__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert add.__module__ == __name__
    assert inspect.signature(add) == inspect.signature(original)
    assert str(inspect.signature(add)) == "(a: 'int', b: 'int' = 2) -> 'int'"
    assert isinstance(add, types.FunctionType)
    assert inspect.isfunction(add)
    assert inspect.unwrap(add) is original
    assert add.__defaults__ == (2,)
    assert add.__annotations__ == original.__annotations__
    assert functools.partial(add, 1)() == 3


def test_generator_and_async_kinds_are_still_detected() -> None:
    @trace
    def gen() -> Iterator[int]:
        yield 1

    @trace
    async def coro() -> int:
        return 1

    @trace
    async def agen() -> AsyncIterator[int]:
        yield 1

    assert inspect.isgeneratorfunction(gen)
    assert inspect.iscoroutinefunction(coro) and asyncio.iscoroutinefunction(coro)
    assert inspect.isasyncgenfunction(agen)
    assert not inspect.iscoroutinefunction(gen)


def test_before_start_nothing_is_recorded_and_results_are_unchanged(
    start_recording: Callable[..., Recorder],
) -> None:
    assert not instrument.recording()
    assert add(2, 3) == 5
    with span("early"):
        pass
    gen = counting(2)  # created before start: stays untraced
    assert isinstance(gen, types.GeneratorType) and gen.gi_code is counting.__wrapped__.__code__
    start_recording()
    assert list(gen) == [0, 1]
    assert instrument.snapshot().events == []
    assert add(1, 1) == 2
    assert len(recorded()) == 2


@pytest.mark.parametrize("form", ["generator", "coroutine", "async generator"])
def test_started_while_not_recording_records_no_orphan_exit(
    start_recording: Callable[..., Recorder], form: str
) -> None:
    @trace(name="gen")
    def gen() -> Iterator[int]:
        yield 1
        yield 2

    @trace(name="coro")
    async def coro(gate: asyncio.Event) -> int:
        await gate.wait()
        return 3

    @trace(name="agen")
    async def agen() -> AsyncIterator[int]:
        yield 1
        yield 2

    loop = asyncio.new_event_loop()
    try:
        start_recording()
        if form == "generator":
            g = gen()  # made while recording: a traced generator
            instrument.stop()
            assert next(g) == 1  # first resumed while not recording: no entry
            start_recording()
            assert list(g) == [2]  # ends while recording
        elif form == "coroutine":
            gate = asyncio.Event()
            task = loop.create_task(coro(gate))
            instrument.stop()
            loop.run_until_complete(asyncio.sleep(0))  # started, waiting
            start_recording()
            gate.set()
            assert loop.run_until_complete(task) == 3
        else:
            a = agen()
            instrument.stop()
            assert loop.run_until_complete(a.__anext__()) == 1
            start_recording()
            assert loop.run_until_complete(a.__anext__()) == 2
            with pytest.raises(StopAsyncIteration):
                loop.run_until_complete(a.__anext__())
        assert recorded() == []
    finally:
        loop.close()


def test_trace_options_form_and_bare_form_are_the_same_wrapper() -> None:
    assert isinstance(add, TracedFunction)
    assert isinstance(trace(name="x")(lambda: 1), TracedFunction)
    assert isinstance(trace()(lambda: 1), TracedFunction)


# -- generators ---------------------------------------------------------------


@trace
def counting(n: int) -> Iterator[int]:
    yield from range(n)


@trace(name="acc", retval=True)
def accumulator() -> Iterator[int]:
    """Adds what is sent; a ValueError thrown in resets it; returns the total."""
    total = 0
    while True:
        try:
            got = yield total
        except ValueError:
            total = 0
            continue
        if got is None:
            return total
        total += got


def drive(gen: Any) -> list[Any]:
    """Every observable step of a send/throw/close scenario."""
    steps: list[Any] = [next(gen), gen.send(5), gen.send(3), gen.throw(ValueError("reset"))]
    steps.append(gen.send(4))
    try:
        gen.send(None)
    except StopIteration as stop:
        steps.append(("returned", stop.value))
    try:
        next(gen)
    except StopIteration as stop:
        steps.append(("again", stop.value))
    return steps


def test_generator_send_throw_and_return_behave_as_the_original(recorder: Recorder) -> None:
    plain = drive(accumulator.__wrapped__())
    traced = drive(accumulator())
    assert traced == plain == [0, 5, 8, 0, 4, ("returned", 4), ("again", None)]
    entry, exit_ = recorded()
    assert (entry.kind, entry.name) == ("entry", "acc")
    check_exit(exit_, retval=4)


def test_generator_throw_not_handled_propagates_and_is_recorded(recorder: Recorder) -> None:
    gen = accumulator()
    next(gen)
    with pytest.raises(KeyError):
        gen.throw(KeyError("boom"))
    check_exit(recorded()[-1], exception="KeyError", message="'boom'")


def test_generator_close_runs_finally_and_records_generator_exit(recorder: Recorder) -> None:
    cleaned = []

    @trace(name="closable")
    def closable() -> Iterator[int]:
        try:
            yield 1
            yield 2
        finally:
            cleaned.append(True)

    gen = closable()
    assert next(gen) == 1
    gen.close()
    assert cleaned == [True]
    assert gen.gi_frame is None  # finished
    check_exit(recorded()[-1], exception="GeneratorExit", message="")
    gen.close()  # closing again is a no-op, as for any generator


def test_generator_keeps_names_and_iterates(recorder: Recorder) -> None:
    gen = counting(3)
    assert gen.__name__ == "counting" and gen.__qualname__ == "counting"
    assert inspect.isgenerator(gen)
    assert list(gen) == [0, 1, 2]
    assert pairs() == [("entry", f"{__name__}.counting"), ("exit", f"{__name__}.counting")]


def test_generator_not_started_records_nothing(recorder: Recorder) -> None:
    gen = counting(3)
    gen.close()
    assert recorded() == []


# -- coroutines ---------------------------------------------------------------


def test_coroutine_records_around_its_whole_run(recorder: Recorder) -> None:
    @trace(name="fetch", fields=["key"], retval=True)
    async def fetch(key: str) -> str:
        await asyncio.sleep(0)
        return key.upper()

    coro = fetch("k")
    assert inspect.iscoroutine(coro) and coro.__name__ == "fetch"
    assert asyncio.run(coro) == "K"
    entry, exit_ = recorded()
    assert entry.fields == {"key": "k"}
    check_exit(exit_, retval="K")


def test_coroutine_exception_and_cancellation_are_recorded_and_propagate(
    recorder: Recorder,
) -> None:
    @trace(name="broken")
    async def broken() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad")

    @trace(name="slow")
    async def slow() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        with pytest.raises(ValueError, match="bad"):
            await broken()
        task = asyncio.create_task(slow())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    exits = {ev.name: ev for ev in recorded(("exit",))}
    check_exit(exits["broken"], exception="ValueError", message="bad")
    assert exits["slow"].fields["exception"] == "CancelledError"


def test_async_methods_bind_self(recorder: Recorder) -> None:
    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @trace(name="Client.get", fields="*")
        async def get(self, path: str) -> int:
            self.calls += 1
            return self.calls

    client = Client()
    assert asyncio.run(client.get("/a")) == 1
    assert recorded()[0].fields == {"path": "/a"}


# -- async generators ---------------------------------------------------------


@trace(name="aacc")
async def async_accumulator() -> AsyncIterator[int]:
    total = 0
    while True:
        try:
            got = yield total
        except ValueError:
            total = 0
            continue
        if got is None:
            return
        total += got


async def adrive(agen: Any) -> list[Any]:
    steps: list[Any] = [await agen.__anext__(), await agen.asend(5), await agen.asend(3)]
    steps.append(await agen.athrow(ValueError("reset")))
    steps.append(await agen.asend(4))
    try:
        await agen.asend(None)
    except StopAsyncIteration:
        steps.append("stopped")
    try:
        await agen.__anext__()
    except StopAsyncIteration:
        steps.append("stopped again")
    return steps


def test_async_generator_asend_athrow_behave_as_the_original(recorder: Recorder) -> None:
    plain = asyncio.run(adrive(async_accumulator.__wrapped__()))
    traced = asyncio.run(adrive(async_accumulator()))
    assert traced == plain == [0, 5, 8, 0, 4, "stopped", "stopped again"]
    entry, exit_ = recorded()
    assert (entry.name, exit_.name) == ("aacc", "aacc")
    check_exit(exit_)


def test_async_generator_athrow_unhandled_propagates(recorder: Recorder) -> None:
    async def main() -> None:
        agen = async_accumulator()
        await agen.__anext__()
        with pytest.raises(KeyError):
            await agen.athrow(KeyError("boom"))
        with pytest.raises(StopAsyncIteration):
            await agen.__anext__()

    asyncio.run(main())
    check_exit(recorded()[-1], exception="KeyError", message="'boom'")


def test_async_generator_aclose_runs_cleanup(recorder: Recorder) -> None:
    cleaned = []

    @trace(name="ticks")
    async def ticks() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            await asyncio.sleep(0)
            cleaned.append(True)

    async def main() -> list[int]:
        agen = ticks()
        got = [await agen.__anext__(), await agen.__anext__()]
        await agen.aclose()
        await agen.aclose()  # again: a no-op
        return got

    assert asyncio.run(main()) == [0, 1]
    assert cleaned == [True]
    check_exit(recorded()[-1], exception="GeneratorExit", message="")


def test_a_wrapt_traced_async_generator_closes_after_the_one_it_wraps(recorder: Recorder) -> None:
    """The event loop closes every async generator it saw at shutdown, in no
    set order: when it closes the wrapped generator first, closing the wrapt
    engine's wrapper is a no-op, as closing a closed generator is (it was
    "RuntimeError: async generator ignored GeneratorExit")."""
    cleaned = []
    before = instrument.engines.setting()
    instrument.engines.use("wrapt")
    try:

        @trace(name="ticks")
        async def ticks() -> AsyncIterator[int]:
            try:
                yield 1
            finally:
                cleaned.append(True)

    finally:
        instrument.engines.use(before)

    async def main() -> Any:
        agen = ticks()
        await agen.__anext__()
        wrapped = agen.ag_frame.f_locals["agen"]  # type: ignore[attr-defined]
        assert wrapped is not agen and wrapped.__name__ == "ticks"
        await wrapped.aclose()
        return await agen.aclose()

    assert asyncio.run(main()) is None
    assert cleaned == [True]


def test_async_generator_in_async_for_and_break(recorder: Recorder) -> None:
    @trace(name="numbers")
    async def numbers() -> AsyncIterator[int]:
        for i in range(5):
            yield i

    async def main() -> list[int]:
        out = [i async for i in numbers()]
        agen = numbers()
        async for i in agen:
            if i == 1:
                break
        await agen.aclose()
        return out

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    exits = recorded(("exit",))
    check_exit(exits[0])
    assert exits[1].fields["exception"] == "GeneratorExit"


def test_async_generator_keeps_its_kind(recorder: Recorder) -> None:
    agen = async_accumulator()
    assert inspect.isasyncgen(agen) and agen.__name__ == "async_accumulator"
    asyncio.run(agen.aclose())


# -- span ---------------------------------------------------------------------


def test_span_with_block(recorder: Recorder) -> None:
    with span("load", item=3) as s:
        instrument.event("inside")
    assert isinstance(s, span)
    entry, inside, exit_ = recorded()
    assert (entry.kind, entry.name, entry.fields) == ("entry", "load", {"item": 3})
    assert inside.name == "inside"
    check_exit(exit_)
    assert exit_.name == "load"


def test_span_records_the_exception_and_never_swallows_it(recorder: Recorder) -> None:
    with pytest.raises(ZeroDivisionError), span("divide"):
        1 / 0  # noqa: B018
    check_exit(recorded()[-1], exception="ZeroDivisionError", message="division by zero")


def test_span_async_with(recorder: Recorder) -> None:
    async def main() -> None:
        async with span("io", path="/x"):
            await asyncio.sleep(0)
        with pytest.raises(OSError):
            async with span("io.fail"):
                raise OSError("disk")

    asyncio.run(main())
    events = recorded()
    assert [(ev.kind, ev.name) for ev in events] == [
        ("entry", "io"),
        ("exit", "io"),
        ("entry", "io.fail"),
        ("exit", "io.fail"),
    ]
    assert events[0].fields == {"path": "/x"}
    check_exit(events[3], exception="OSError", message="disk")


def test_span_started_before_start_records_no_orphan_exit(
    start_recording: Callable[..., Recorder],
) -> None:
    with span("straddles"):
        start_recording()
    assert recorded() == []


def test_nested_spans_and_calls_keep_order(recorder: Recorder) -> None:
    with span("outer"):
        add(1)
        with span("inner"):
            pass
    assert [(k, n.rsplit(".", 1)[-1]) for k, n in pairs()] == [
        ("entry", "outer"),
        ("entry", "add"),
        ("exit", "add"),
        ("entry", "inner"),
        ("exit", "inner"),
        ("exit", "outer"),
    ]
