"""Transparency on real patterns: what tracing a whole package may not change.

``_patterns`` is a package that uses, on purpose, what tracers break: code
that reads its caller's frame, warnings blamed on the caller, tracebacks
formatted as text, re-exports, registries, pickling by reference, override
checks, weak methods, ``functools.singledispatch``, enums, dataclasses,
``__slots__``, classes made by ``type()``, a metaclass, zero-argument
``super()``, a module ``__getattr__``, ``__set_name__``; generators and
async generators driven by ``send``/``throw``/``close`` and
``asend``/``athrow``/``aclose``, ``async for`` left early, a template
engine's async loops (``auto_aiter``, ``auto_aclose``, a look-ahead loop
context), async generators finalized by the event loop, arguments freed as
soon as the function lets go of them, and a runtime without
``sys._getframe``.

Each case observes the package from this module (a probe returns plain
data) once untraced and once traced whole with ``patch_module``, as
``--ringtrace-instrument`` does, in three ways: patched before the package
is imported, recording; the same, not recording; patched after the import,
recording. The observations must be equal.

Every case runs on each engine that can run here. On the sys.monitoring
engine (Python 3.12 and later), which changes no object and adds no frame,
every case must hold. On the wrapt engine the cases it cannot meet are
strict xfails that say why: it puts a wrapper
object in place of each function and calls the function from a frame of
its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib
import logging
import pickle
import re
import sys
import traceback
import types
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import wrapt.importer

import instrument
from instrument import Channel

PACKAGE = "_patterns"


#: The engines to check: wrapt everywhere, sysmon where it can run (3.12+).
ENGINES = ["wrapt"] + (["sysmon"] if instrument.engines.sysmon_available() is None else [])


@contextmanager
def engine_in_use(name: str) -> Iterator[None]:
    before = instrument.engines.setting()
    instrument.engines.use(name)
    try:
        yield
    finally:
        instrument.engines.use(before)


WRAPPER_FRAME = (
    "the wrapt engine calls the function from a Python frame of its own, "
    "which code reading frames further up sees"
)
WRAPPER_OBJECT = "the wrapt engine puts a wrapper object in place of the function"
WRAPPER_HOLDS_ARGUMENTS = (
    "the wrapt engine's wrapper holds the call's arguments until the call "
    "returns, so an argument the function lets go of is freed only then"
)
IMPORT_TIME_COPY = (
    "the wrapt engine patches a module's attribute after the module ran, so "
    "what the module stored at import time is still the original"
)


def per_engine(*values: Any, wrapt_fails: str | None = None) -> list[Any]:
    """``values`` with each engine, as parameters; on the wrapt engine a
    strict xfail that says why, when it cannot meet the case."""
    marks = [] if wrapt_fails is None else [pytest.mark.xfail(reason=wrapt_fails, strict=True)]
    probes = [v.__name__.rstrip("_") for v in values if callable(v)]
    return [
        pytest.param(
            *values, name, marks=marks if name == "wrapt" else [], id="-".join([*probes, name])
        )
        for name in ENGINES
    ]


# -- importing the package plain and traced ------------------------------------

MODES = [
    "patched before import, recording",
    "patched before import, not recording",
    "patched after import, recording",
]


def _forget() -> None:
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def _ensure_import_hooks() -> None:
    # An in-process pytester run restores sys.meta_path when it ends, taking
    # wrapt's finder (installed once per process) with it: put it back, or
    # hooks for modules imported later never fire in this process.
    if not any(isinstance(f, wrapt.importer.ImportHookFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, wrapt.importer.ImportHookFinder())


@contextmanager
def fresh_package(mode: str) -> Iterator[Any]:
    """``_patterns`` imported anew, untraced (``"plain"``) or as ``mode`` says."""
    _forget()
    group = None
    started = False
    try:
        if mode.startswith("patched before import"):
            _ensure_import_hooks()
            group = instrument.patch_module(PACKAGE)
        pkg = importlib.import_module(PACKAGE)
        if mode.startswith("patched after import"):
            group = instrument.patch_module(PACKAGE)
        if mode != "plain" and "not recording" not in mode:
            instrument.start([Channel("t", subbuf_size=256, num_subbuf=4)])
            started = True
        yield pkg
    finally:
        if started:
            instrument.stop()
        if group is not None:
            group.unpatch()
        _forget()


def observe(probe: Callable[[Any], Any], mode: str) -> Any:
    with fresh_package(mode):
        return probe(importlib.import_module(PACKAGE))


def outcome(call: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    try:
        return ("return", call(*args))
    except Exception as exc:
        return ("raise", type(exc).__name__, str(exc))


# -- the probes ----------------------------------------------------------------


def caller_frame_read_by_the_function_itself(pkg: Any) -> Any:
    return pkg.api.caller_module(), pkg.api.caller_function()


def caller_frame_read_two_levels_up(pkg: Any) -> Any:
    return pkg.api.caller_of_caller()


def class_factory_naming_the_callers_module(pkg: Any) -> Any:
    cls = pkg.api.make_sentinel("Missing")
    return cls.__module__, repr(cls())


def namedtuple_made_for_the_caller_pickles(pkg: Any) -> Any:
    record = pkg.api.record_type("Rec", "a b")
    globals()["Rec"] = record  # where pickle looks for it if its module is ours
    try:
        return record.__module__, outcome(lambda: pickle.loads(pickle.dumps(record(1, 2))))
    finally:
        del globals()["Rec"]


def _warnings_of(call: Callable[[], Any]) -> list[tuple[str, str, str, int]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [
        (w.category.__name__, str(w.message), w.filename.rsplit("/", 1)[-1], w.lineno)
        for w in caught
    ]


def _under_a_filter_for_this_module(call: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", category=DeprecationWarning, module=re.escape(__name__))
        return outcome(call)


def warning_blames_the_caller(pkg: Any) -> Any:
    return (
        _warnings_of(lambda: pkg.api.old_api()),
        _under_a_filter_for_this_module(lambda: pkg.api.old_api()),
    )


def warning_blames_the_caller_through_a_helper(pkg: Any) -> Any:
    return (
        _warnings_of(lambda: pkg.api.old_api_through()),
        _under_a_filter_for_this_module(lambda: pkg.api.old_api_through()),
    )


def module_getattr_warning_blames_the_caller(pkg: Any) -> Any:
    return (
        _warnings_of(lambda: pkg.OLD_LIMIT),
        pkg.lazy_double(4),
        hasattr(pkg, "no_such_name"),
    )


def traceback_format_exception(pkg: Any) -> Any:
    try:
        pkg.fail_through(3)
    except ValueError as exc:
        return traceback.format_exception(type(exc), exc, exc.__traceback__)
    return None


def logging_exception_text(pkg: Any) -> Any:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep()
    handler.setFormatter(logging.Formatter("%(funcName)s:%(lineno)d %(message)s"))
    logger = logging.getLogger(pkg.api.__name__)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        pkg.api.log_failure(5)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return lines


def reexports_are_the_same_object(pkg: Any) -> Any:
    return pkg.double is pkg.api.double, pkg.lazy_double is pkg.api.double


def module_function_pickles_by_reference(pkg: Any) -> Any:
    return [pickle.loads(pickle.dumps(pkg.api.double, p)) is pkg.api.double for p in (2, 5)]


def registry_holds_the_modules_function(pkg: Any) -> Any:
    return pkg.registry.HANDLERS["upper"] is pkg.registry.upper, pkg.registry.handle("upper", "a")


def registered_function_pickles_by_reference(pkg: Any) -> Any:
    handler = pkg.registry.HANDLERS["lower"]
    return outcome(lambda: pickle.loads(pickle.dumps(handler)) is handler)


def descriptors_stay_themselves_in_the_class_dict(pkg: Any) -> Any:
    base = pkg.shapes.Base
    return type(vars(base)["unit"]) is staticmethod, type(vars(base)["make"]) is classmethod


def override_checks(pkg: Any) -> Any:
    shapes = pkg.shapes
    return (
        shapes.Blank().overrides_area(),
        shapes.Square().overrides_area(),
        shapes.Blank.area is shapes.Base.area,
    )


def a_function_looked_up_on_its_class_is_itself(pkg: Any) -> Any:
    shapes = pkg.shapes

    class Later:
        pass

    return (
        shapes.Frozen.__setattr__ is shapes._frozen_setattr,
        shapes.Frozen.__setattr__ is vars(shapes.Frozen)["__setattr__"],
        shapes.Base.area is shapes.Base.area,
        shapes.freeze(Later),
        shapes.freeze(Later),
        outcome(lambda: setattr(shapes.Frozen(), "x", 1)),
    )


def weak_methods(pkg: Any) -> Any:
    square = pkg.shapes.Square(3)
    return outcome(lambda: weakref.WeakMethod(square.area)()())


def functions_are_functions(pkg: Any) -> Any:
    return (
        type(pkg.api.double) is types.FunctionType,
        type(pkg.shapes.Base.area) is types.FunctionType,
        type(pkg.shapes.Square().area) is types.MethodType,
    )


def singledispatch_registration_identity(pkg: Any) -> Any:
    dispatch = pkg.dispatch
    return (
        dispatch.describe.registry[int] is dispatch.describe_int,
        dispatch.describe.dispatch(str) is dispatch.describe_str,
    )


def singledispatch_behaviour_and_late_registration(pkg: Any) -> Any:
    describe = pkg.dispatch.describe
    before = [describe(1), describe("a"), describe(1.5)]
    describe.register(float, lambda value: f"float {value}")
    formatter = pkg.dispatch.Formatter()
    return before, describe(2.5), formatter.format(3), formatter.format("x")


def enums(pkg: Any) -> Any:
    color = pkg.shapes.Color
    return (
        color.RED.label(),
        color.parse("green") is color.GREEN,
        [member.name for member in color],
        pickle.loads(pickle.dumps(color.RED)) is color.RED,
        color(2) is color.GREEN,
    )


def dataclasses_(pkg: Any) -> Any:
    point_type = pkg.shapes.Point
    point = point_type(1, -2)
    return (
        repr(point),
        point == point_type(1, -2),
        hash(point) == hash(point_type(1, -2)),
        point.norm(),
        [f.name for f in dataclasses.fields(point)],
        repr(dataclasses.replace(point, y=5)),
        dataclasses.asdict(point),
        pickle.loads(pickle.dumps(point)) == point,
        outcome(setattr, point, "x", 3),
    )


def slots(pkg: Any) -> Any:
    item = pkg.shapes.Slotted(1, 2)
    return item.total(), hasattr(item, "__dict__"), outcome(setattr, item, "c", 3)


def classes_made_by_type(pkg: Any) -> Any:
    dynamic = pkg.shapes.Dynamic()
    return dynamic.shout(), dynamic.area(), dynamic.describe(), type(dynamic).__module__


def metaclasses(pkg: Any) -> Any:
    shapes = pkg.shapes

    class Later(shapes.Model):
        def extra(self) -> str:
            return "extra"

    model, later = shapes.Model(), Later()
    return (
        model.made_by,
        model.save(),
        later.save(),
        shapes.Model.methods,
        Later.methods,
        sorted(shapes.Registered.classes),
    )


def zero_argument_super(pkg: Any) -> Any:
    square = pkg.shapes.Square(3)
    return square.describe(), type(pkg.shapes.Square.make()).__name__


def set_name(pkg: Any) -> Any:
    shapes = pkg.shapes

    class Later:
        subtitle = shapes.Field()

    form = shapes.Form()
    return shapes.Form.title.name, form.field_name(), form.size, form.title, Later.subtitle.name


# generators, coroutines and async generators (a template engine's async loops)


def arguments_let_go_of_are_freed_at_once(pkg: Any) -> Any:
    # A generator or a coroutine alone holds what it was given once the call
    # that made it returned, on every version.
    flows = pkg.flows
    log: list[Any] = []
    gen = flows.release_later(flows.Resource(), log)
    first = next(gen)
    rest = list(gen)
    return asyncio.run(flows.release_async(flows.Resource())), first, rest, log


def a_plain_functions_argument_is_freed_at_del(pkg: Any) -> Any:
    return pkg.flows.release(pkg.flows.Resource())


def generators_driven_by_send_throw_and_close(pkg: Any) -> Any:
    flows = pkg.flows
    log: list[Any] = []
    gen = flows.countdown(3, log)
    steps = [next(gen), gen.send("a"), gen.throw(ValueError("boom")), outcome(gen.close)]
    early = flows.countdown(2, log)
    steps.append(next(early))
    early.close()
    steps.append(outcome(next, early))
    thrown = flows.countdown(2, log)
    next(thrown)
    steps.append(outcome(thrown.throw, KeyError("escapes")))
    return steps, log


async def _async_outcome(awaitable: Any) -> tuple[Any, ...]:
    try:
        return ("return", await awaitable)
    except (Exception, GeneratorExit) as exc:
        return ("raise", type(exc).__name__, str(exc))


def async_generators_driven_by_asend_athrow_and_aclose(pkg: Any) -> Any:
    flows = pkg.flows
    log: list[Any] = []

    async def drive() -> list[Any]:
        agen = flows.numbers(5, log)
        steps = [await agen.asend(None), await agen.asend("x")]
        steps.append(await agen.athrow(KeyError("k")))
        steps.append(await agen.asend("y"))
        steps.append(await _async_outcome(agen.aclose()))
        steps.append(await _async_outcome(agen.__anext__()))
        escaping = flows.numbers(3, log)
        await escaping.__anext__()
        steps.append(await _async_outcome(escaping.athrow(ValueError("out"))))
        steps.append(await _async_outcome(escaping.aclose()))
        never_started = flows.numbers(3, log)
        steps.append(await _async_outcome(never_started.aclose()))
        return steps

    return asyncio.run(drive()), log


def async_for_with_break_and_auto_aclose(pkg: Any) -> Any:
    flows = pkg.flows
    log: list[Any] = []

    async def render() -> list[Any]:
        return [
            await flows.render_loop([1, 2, 3, 4], log),
            await flows.render_loop([1, 2, 3, 4], log, stop_at=3),
            await flows.render_loop(flows.auto_aiter([5, 6]), log, stop_at=6),
            await flows.render_length([7, 8, 9]),
            await flows.render_length(flows.numbers(3, log)),
        ]

    return asyncio.run(render()), log


def _unraisable_and_warnings(run: Callable[[], Any]) -> Any:
    unraisable: list[tuple[str, str]] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append((type(u.exc_value).__name__, str(u.exc_value)))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = outcome(run)
            gc.collect()
    finally:
        sys.unraisablehook = hook
    return result, unraisable, [(w.category.__name__, str(w.message)) for w in caught]


def abandoned_async_generators_are_finalized_by_the_event_loop(pkg: Any) -> Any:
    flows = pkg.flows
    log: list[Any] = []

    async def abandon() -> None:
        agen = flows.numbers(3, log)
        await agen.__anext__()
        log.append("abandoned")
        del agen
        await asyncio.sleep(0)
        log.append("after a turn of the loop")

    async def left_suspended() -> None:
        agen = flows.numbers(3, log)
        await agen.__anext__()
        abandon.agen = agen  # type: ignore[attr-defined]  # alive until the loop shuts down

    def run_all() -> Any:
        asyncio.run(abandon())
        log.append("first loop closed")
        asyncio.run(left_suspended())
        log.append("second loop closed")
        del abandon.agen  # type: ignore[attr-defined]
        return asyncio.run(flows.undefined_in_loop([0, 1, 2]))

    return _unraisable_and_warnings(run_all), log


def locals_read_by_the_program(pkg: Any) -> Any:
    flows = pkg.flows
    return flows.own_locals(1), flows.own_locals(1, b=5), list(flows.counter_with_locals(5))


def runs_where_sys_getframe_does_not_exist(pkg: Any) -> Any:
    flows = pkg.flows
    log: list[Any] = []
    getframe = sys._getframe
    del sys._getframe  # as attrs' own suite does, to test its fallback
    try:
        return flows.caller_module_or_none(), list(flows.countdown(2, log)), log
    finally:
        sys._getframe = getframe


CASES: list[tuple[Callable[[Any], Any], str | None]] = [
    # an added frame
    (caller_frame_read_by_the_function_itself, None),
    (caller_frame_read_two_levels_up, WRAPPER_FRAME),
    (class_factory_naming_the_callers_module, None),
    (namedtuple_made_for_the_caller_pickles, WRAPPER_FRAME),
    (warning_blames_the_caller, None),
    (warning_blames_the_caller_through_a_helper, WRAPPER_FRAME),
    (module_getattr_warning_blames_the_caller, None),
    (traceback_format_exception, WRAPPER_FRAME),
    (logging_exception_text, WRAPPER_FRAME),
    # identity
    (reexports_are_the_same_object, None),
    (module_function_pickles_by_reference, None),
    (registry_holds_the_modules_function, IMPORT_TIME_COPY),
    (registered_function_pickles_by_reference, IMPORT_TIME_COPY),
    (descriptors_stay_themselves_in_the_class_dict, None),
    (override_checks, None),
    (a_function_looked_up_on_its_class_is_itself, None),
    (weak_methods, WRAPPER_OBJECT),
    (functions_are_functions, WRAPPER_OBJECT),
    (singledispatch_registration_identity, IMPORT_TIME_COPY),
    # class machinery and module protocols
    (singledispatch_behaviour_and_late_registration, None),
    (enums, None),
    (dataclasses_, None),
    (slots, None),
    (classes_made_by_type, None),
    (metaclasses, None),
    (zero_argument_super, None),
    (set_name, None),
    # generators, coroutines, async generators; lifetimes; a changed runtime
    (arguments_let_go_of_are_freed_at_once, None),
    (generators_driven_by_send_throw_and_close, None),
    (async_generators_driven_by_asend_athrow_and_aclose, None),
    (async_for_with_break_and_auto_aclose, None),
    (abandoned_async_generators_are_finalized_by_the_event_loop, None),
    (locals_read_by_the_program, None),
    (runs_where_sys_getframe_does_not_exist, None),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "probe, engine",
    [param for probe, wrapt_fails in CASES for param in per_engine(probe, wrapt_fails=wrapt_fails)],
)
def test_tracing_the_package_changes_nothing_observable(
    probe: Callable[[Any], Any], engine: str, mode: str
) -> None:
    plain = observe(probe, "plain")
    with engine_in_use(engine):
        assert observe(probe, mode) == plain


def test_the_probes_see_what_they_are_meant_to_see_untraced() -> None:
    """The untraced observations themselves (so that equal means right)."""
    with fresh_package("plain") as pkg:
        assert caller_frame_read_by_the_function_itself(pkg) == (
            __name__,
            "caller_frame_read_by_the_function_itself",
        )
        assert caller_frame_read_two_levels_up(pkg) == "caller_frame_read_two_levels_up"
        assert class_factory_naming_the_callers_module(pkg) == (__name__, "<Missing>")
        assert namedtuple_made_for_the_caller_pickles(pkg)[1][0] == "return"
        ((category, _, filename, _),), raised = warning_blames_the_caller(pkg)
        assert category == "DeprecationWarning" and filename == __file__.rsplit("/", 1)[-1]
        assert raised[:2] == ("raise", "DeprecationWarning")
        assert warning_blames_the_caller_through_a_helper(pkg)[1][0] == "raise"
        assert "instrument" not in "".join(traceback_format_exception(pkg))
        assert reexports_are_the_same_object(pkg) == (True, True)
        assert registry_holds_the_modules_function(pkg) == (True, "A")
        assert registered_function_pickles_by_reference(pkg) == ("return", True)
        assert descriptors_stay_themselves_in_the_class_dict(pkg) == (True, True)
        assert override_checks(pkg) == (False, True, True)
        *same, frozen = a_function_looked_up_on_its_class_is_itself(pkg)
        assert same == [True] * 5 and frozen[:2] == ("raise", "AttributeError")
        assert weak_methods(pkg) == ("return", 9)
        assert functions_are_functions(pkg) == (True, True, True)
        assert singledispatch_registration_identity(pkg) == (True, True)
        assert zero_argument_super(pkg) == ("square: Square of area 9", "Square")
        assert arguments_let_go_of_are_freed_at_once(pkg) == (
            True,
            1,
            [],
            [("freed before the first yield", True), ("resumed", True)],
        )
        steps, log = async_generators_driven_by_asend_athrow_and_aclose(pkg)
        assert steps[:4] == [0, 1, "recovered", 2] and ("caught", "k") in log
        rendered, log = async_for_with_break_and_auto_aclose(pkg)
        assert rendered[1] == [(1, 1, False), (2, 2, False)] and ("break", 3) in log
        assert rendered[3] == [(7, 3), (8, 3), (9, 3)]
        (result, unraisable, caught), log = (
            abandoned_async_generators_are_finalized_by_the_event_loop(pkg)
        )
        assert result == ("raise", "NameError", "'loop' is undefined")
        assert (unraisable, caught) == ([], [])
        assert log.index(("finally", "numbers")) < log.index("first loop closed")
        assert runs_where_sys_getframe_does_not_exist(pkg)[0] is None


#: From 3.11 a call hands its arguments over to the callee; on 3.10 the
#: caller's stack keeps them until the call returns, traced or not.
HANDED_OVER = sys.version_info >= (3, 11)


@pytest.mark.parametrize(
    "engine", per_engine(wrapt_fails=WRAPPER_HOLDS_ARGUMENTS if HANDED_OVER else None)
)
@pytest.mark.parametrize("mode", MODES)
def test_an_argument_the_function_lets_go_of_is_freed_at_once(mode: str, engine: str) -> None:
    plain = observe(a_plain_functions_argument_is_freed_at_del, "plain")
    assert plain is HANDED_OVER
    with engine_in_use(engine):
        assert observe(a_plain_functions_argument_is_freed_at_del, mode) == plain


# -- blind spots: calls through references taken before patching ---------------


def entries(suffix: str) -> list[str]:
    return [
        e.name
        for e in instrument.snapshot().events
        if e.kind == "entry" and e.name.endswith(suffix)
    ]


@pytest.mark.parametrize("engine", per_engine())
@pytest.mark.parametrize("mode", [MODES[0], MODES[2]])
def test_a_call_through_the_module_attribute_is_recorded(mode: str, engine: str) -> None:
    with engine_in_use(engine), fresh_package(mode) as pkg:
        assert pkg.registry.upper("a") == "A"
        assert entries("registry.upper") == [f"{PACKAGE}.registry.upper"]


@pytest.mark.parametrize("engine", per_engine(wrapt_fails=IMPORT_TIME_COPY))
@pytest.mark.parametrize("mode", [MODES[0], MODES[2]])
def test_a_call_through_a_registry_filled_at_import_is_recorded(mode: str, engine: str) -> None:
    with engine_in_use(engine), fresh_package(mode) as pkg:
        assert pkg.registry.handle("lower", "B") == "b"
        assert entries("registry.lower") == [f"{PACKAGE}.registry.lower"]


@pytest.mark.parametrize(
    "engine",
    per_engine(
        wrapt_fails="the wrapt engine replaces the attribute, not the references copied before"
    ),
)
def test_a_call_through_a_reference_taken_before_patching_is_recorded(engine: str) -> None:
    _forget()
    early = importlib.import_module(f"{PACKAGE}.api").double
    try:
        with engine_in_use(engine), instrument.patch_module(PACKAGE):
            instrument.start([Channel("t", subbuf_size=256, num_subbuf=4)])
            try:
                assert early(3) == 6
                assert entries("api.double") == [f"{PACKAGE}.api.double"]
            finally:
                instrument.stop()
    finally:
        _forget()


@pytest.mark.parametrize("engine", per_engine(wrapt_fails=IMPORT_TIME_COPY))
def test_a_singledispatch_implementation_is_recorded_when_dispatched_to(engine: str) -> None:
    with engine_in_use(engine), fresh_package(MODES[0]) as pkg:
        assert pkg.dispatch.describe(7) == "int 7"
        assert entries("dispatch.describe_int") == [f"{PACKAGE}.dispatch.describe_int"]
