"""The sysmon engine (``sys.monitoring``, Python 3.12+): it records calls and
changes nothing in the program: no object replaced, no frame added, every
call path seen, events off while not recording, patches undone exactly,
other tools' ids left alone."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib
import inspect
import itertools
import pickle
import subprocess
import sys
import textwrap
import traceback
import types
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import instrument
from instrument import Recorder, engines, trace
from instrument.values import capture_fields

pytestmark = [
    pytest.mark.skipif(not hasattr(sys, "monitoring"), reason="sys.monitoring is 3.12+"),
    pytest.mark.usefixtures("sysmon"),
]

monitoring: Any = getattr(sys, "monitoring", None)
_counter = itertools.count()


def recorded(*kinds: str) -> list[tuple[str, str]]:
    kinds = kinds or ("entry", "exit")
    return [(ev.kind, ev.name) for ev in instrument.snapshot().events if ev.kind in kinds]


def ours() -> list[int]:
    """The tool ids ringtrace holds now."""
    return [t for t in range(6) if monitoring.get_tool(t) == "ringtrace"]


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``package(files)`` writes an importable package and returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def write(files: dict[str, str]) -> str:
        name = f"rt_sysmon_{next(_counter)}"
        names.append(name)
        for rel, source in files.items():
            path = tmp_path / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return name

    yield write
    for mod in [m for m in sys.modules if any(m.split(".")[0] == n for n in names)]:
        del sys.modules[mod]


PACKAGE = {
    "__init__.py": "from .mod import f, C, make_point\n",
    "mod.py": """
        import sys
        import warnings

        def f(x):
            return x + 1

        def caller_name():
            return sys._getframe(1).f_code.co_name

        def warn_caller():
            warnings.warn("old", DeprecationWarning, stacklevel=2)

        def make_point(name):
            # a factory that names its class after its caller's module, as
            # collections.namedtuple does
            cls = type(name, (tuple,), {})
            cls.__module__ = sys._getframe(1).f_globals["__name__"]
            return cls

        class C:
            @staticmethod
            def s(x):
                return x

            @classmethod
            def k(cls):
                return cls

            def m(self):
                return self

        REGISTRY = {"f": f}
    """,
}


# -- the engine is chosen and said ---------------------------------------------


def test_the_engine_in_use_is_sysmon_and_says_so() -> None:
    assert instrument.engine() == "sysmon"


def test_trace_returns_the_very_function_and_records_its_calls(recorder: Recorder) -> None:
    def f(x: int) -> int:
        return x * 2

    traced = trace(f)
    assert traced is f and type(traced) is types.FunctionType
    assert f(2) == 4
    name = f"{__name__}.{f.__qualname__}"
    assert recorded() == [("entry", name), ("exit", name)]


def test_patch_module_changes_no_attribute_and_records_every_path(
    package: Any, recorder: Recorder
) -> None:
    name = package(PACKAGE)
    pkg = importlib.import_module(name)
    mod = importlib.import_module(f"{name}.mod")
    before = dict(vars(mod)), dict(vars(mod.C))
    early = mod.REGISTRY["f"]  # a reference taken before patching
    with instrument.patch_module(name):
        assert dict(vars(mod)) == before[0] and dict(vars(mod.C)) == before[1]
        assert pkg.f is mod.f is early
        assert type(vars(mod.C)["s"]) is staticmethod
        assert type(vars(mod.C)["k"]) is classmethod
        assert type(mod.f) is types.FunctionType
        obj = mod.C()
        method = weakref.WeakMethod(obj.m)
        assert method() == obj.m
        assert early(1) == 2 and pkg.f(1) == 2
        assert mod.C.s(3) == 3
    fname = f"{name}.mod.f"
    assert recorded() == [("entry", fname), ("exit", fname)] * 2 + [
        ("entry", f"{name}.mod.C.s"),
        ("exit", f"{name}.mod.C.s"),
    ]


def test_no_frame_is_added(package: Any, recorder: Recorder) -> None:
    name = package(PACKAGE)
    mod = importlib.import_module(f"{name}.mod")

    def here() -> tuple[str, list[str], Any]:
        stack = [frame.function for frame in inspect.stack()[:3]]
        return mod.caller_name(), stack, sys._getframe(0).f_back

    untraced = here()
    with instrument.patch_module(name):
        assert trace(here) is here
        traced = here()
    assert traced[0] == untraced[0] == "here"
    assert traced[1] == untraced[1]
    assert traced[2] is untraced[2]
    assert ("entry", f"{name}.mod.caller_name") in recorded()


def test_warnings_are_attributed_to_the_same_caller(package: Any, recorder: Recorder) -> None:
    name = package(PACKAGE)
    mod = importlib.import_module(f"{name}.mod")

    def attribution() -> tuple[str, int]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mod.warn_caller()
        return caught[0].filename, caught[0].lineno

    plain = attribution()
    with instrument.patch_module(name):
        assert attribution() == plain == (__file__, plain[1])


def test_tracebacks_are_the_same(recorder: Recorder) -> None:
    def inner() -> None:
        raise ValueError("boom")

    def outer() -> None:
        inner()

    def formatted() -> list[str]:
        try:
            outer()
        except ValueError as exc:
            return traceback.format_exception(exc)
        raise AssertionError("no exception")

    plain = formatted()
    trace(inner), trace(outer)
    assert formatted() == plain
    exits = [ev for ev in instrument.snapshot().events if ev.kind == "exit"]
    assert [(ev.fields["exception"], ev.fields["message"]) for ev in exits] == [
        ("ValueError", "boom")
    ] * 2


def test_pickling_and_copying_are_unchanged(package: Any, recorder: Recorder) -> None:
    name = package(PACKAGE)
    pkg = importlib.import_module(name)
    mod = importlib.import_module(f"{name}.mod")
    with instrument.patch_module(name):
        point = mod.make_point("Point")
        assert point.__module__ == __name__  # the factory still sees its caller
        assert pickle.loads(pickle.dumps(mod.f)) is mod.f
        assert pickle.loads(pickle.dumps(pkg.C.s)) is mod.C.s
        assert copy.copy(mod.f) is mod.f and copy.deepcopy(mod.f) is mod.f
        obj = mod.C()
        assert type(pickle.loads(pickle.dumps(obj))) is mod.C


# -- on and off -------------------------------------------------------------------


def test_events_are_switched_off_before_start_and_after_stop() -> None:
    def f() -> int:
        return 1

    trace(f)
    assert ours() == []  # nothing held, nothing switched on: an untraced call
    rec = instrument.start()
    try:
        (tool,) = ours()
        ev = monitoring.events
        assert monitoring.get_local_events(tool, f.__code__) == ev.PY_START | ev.PY_RETURN
        f()
    finally:
        instrument.stop()
    assert ours() == []
    f()
    assert [e.kind for e in instrument.snapshot(recorder=rec).events] == ["entry", "exit"]


def test_unpatch_switches_off_exactly_what_it_switched_on(package: Any, recorder: Recorder) -> None:
    name = package(PACKAGE)
    mod = importlib.import_module(f"{name}.mod")
    (tool,) = ours()
    code = mod.f.__code__
    first = instrument.patch(f"{name}.mod:f")
    second = instrument.patch(f"{name}:f")  # the re-export: the same code object
    first.unpatch()
    assert monitoring.get_local_events(tool, code) != 0  # still traced by the second
    mod.f(1)
    second.unpatch()
    assert monitoring.get_local_events(tool, code) == 0
    mod.f(1)
    assert recorded() == [("entry", f"{name}.mod.f"), ("exit", f"{name}.mod.f")]


def test_a_registration_changed_while_recording_takes_effect_at_once(
    package: Any, recorder: Recorder
) -> None:
    # Each thread caches what a code object records as; a change of the
    # registration in force must not leave a thread recording the old one.
    name = package(PACKAGE)
    mod = importlib.import_module(f"{name}.mod")
    first = instrument.patch(f"{name}.mod:f", name="first.f", fields="*")
    second = instrument.patch(f"{name}:f", name="second.f")
    mod.f(1)  # cached as the first registration
    first.unpatch()  # now the second is in force: no arguments
    mod.f(2)
    second.unpatch()
    mod.f(3)  # not traced any more
    again = instrument.patch(f"{name}.mod:f", name="third.f", retval=True)
    mod.f(4)
    again.unpatch()
    calls = [(ev.kind, ev.name, ev.fields) for ev in instrument.snapshot().events]
    assert [(kind, n) for kind, n, _ in calls] == [
        ("entry", "first.f"),
        ("exit", "first.f"),
        ("entry", "second.f"),
        ("exit", "second.f"),
        ("entry", "third.f"),
        ("exit", "third.f"),
    ]
    assert calls[0][2] == {"x": 1} and not calls[2][2]
    assert calls[5][2]["retval"] == 5


def test_what_monitoring_cannot_see_keeps_the_wrapt_path(package: Any, recorder: Recorder) -> None:
    name = package({"__init__.py": "import math\nsqrt = math.sqrt\n"})
    pkg = importlib.import_module(name)
    with instrument.patch(f"{name}:sqrt"):
        assert pkg.sqrt is not importlib.import_module("math").sqrt  # a wrapper
        assert pkg.sqrt(4.0) == 2.0
    assert recorded() == [("entry", "math.sqrt"), ("exit", "math.sqrt")]


def test_arguments_and_return_values_are_captured_when_asked(recorder: Recorder) -> None:
    def f(a: int, password: str, rest: object = None) -> list[int]:
        return [a]

    trace(fields="*", retval=True)(f)
    f(3, "hunter2")
    entry, exit_ = (ev for ev in instrument.snapshot().events if ev.kind in ("entry", "exit"))
    assert entry.fields == {"a": 3, "password": "[redacted]", "rest": None}
    assert exit_.fields["retval"] == "[3]"


class _Opaque:
    """Shown by its class name alone (the engine's cached case)."""


_OF_EVERY_KIND: list[Any] = [
    3,
    2**64 - 1,
    2**64,
    -(2**64),
    True,
    1.5,
    None,
    "short",
    "x" * 600,
    "a=b",
    "user@host",
    _Opaque(),
    _Opaque(),  # the second one: the class's text is cached by then
    [1, "two"],
    list(range(300)),
    (3 + 4j),
    b"bytes",
    {"token": "t", "k": 1},
    _Opaque,
]


@pytest.mark.parametrize(
    ("values", "redact"), [("safe", True), ("repr", True), ("none", True), ("safe", ["ret"])]
)
def test_traced_arguments_and_results_are_what_capture_gives_them(
    start_recording: Any, values: str, redact: Any
) -> None:
    """The engine captures common values inline: the records must hold
    exactly what ``capture_fields`` makes of the same values, in every
    mode, for names redacted or not (``retval`` itself, when asked)."""
    start_recording(values=values, redact=redact)

    def f(value: Any, other: Any, *rest: Any, **named: Any) -> Any:
        return value

    def g(password: Any, value: Any) -> Any:
        return value

    trace(fields="*", retval=True)(f)
    trace(fields="*", retval=True)(g)
    expected = []
    for value in _OF_EVERY_KIND:
        f(value, 7, value, key=value)
        g(value, value)
        expected += [
            capture_fields({"value": value, "other": 7, "rest": (value,), "named": {"key": value}}),
            capture_fields({"retval": value}),
            capture_fields({"password": value, "value": value}),
            capture_fields({"retval": value}),
        ]
    events = [ev for ev in instrument.snapshot().events if ev.kind in ("entry", "exit")]
    got = [
        ev.fields
        if ev.kind == "entry"
        else {k: v for k, v in ev.fields.items() if k != "duration_ns"}
        for ev in events
    ]
    assert got == expected
    assert any(fields for fields in expected) is (values != "none")


def test_capturing_arguments_keeps_none_alive_and_leaves_a_held_locals_dict_alone(
    recorder: Recorder,
) -> None:
    """On 3.12 a frame's ``f_locals`` is a dict that the frame keeps: the
    arguments read from it must not live on in it past a ``del`` (a
    generator's, for its whole life), and a dict the program holds is not
    emptied under it."""
    freed: list[str] = []

    class Resource:
        pass

    def consume(resource: Resource) -> None:
        weakref.finalize(resource, freed.append, "freed")
        del resource
        freed.append("after del")

    def counter(start: int) -> Iterator[int]:
        step = 1
        yield step
        yield start

    trace(fields="*")(consume)
    trace(fields="*")(counter)
    consume(Resource())
    assert freed == ["freed", "after del"]
    gen = counter(5)
    held = gen.gi_frame.f_locals  # a dict on 3.12, a proxy on 3.13
    assert next(gen) == 1
    live = {"start": 5, "step": 1}  # 3.13's proxy reads the frame as it is now
    assert dict(held) == ({"start": 5} if type(held) is dict else live)
    assert list(gen) == [5]
    entries = [ev.fields for ev in instrument.snapshot().events if ev.kind == "entry"]
    assert [sorted(fields) for fields in entries] == [["resource"], ["start"]]


# -- generators and coroutines -------------------------------------------------------


def test_coroutines_record_start_suspensions_resumptions_and_end(recorder: Recorder) -> None:
    async def job(delay: float) -> float:
        await asyncio.sleep(delay)
        return delay

    trace(name="job")(job)

    async def main() -> None:
        await asyncio.gather(job(0.03), job(0.01), job(0.02))

    asyncio.run(main())
    events = [ev for ev in instrument.snapshot().events if ev.name == "job"]
    kinds = [ev.kind for ev in events]
    assert kinds.count("entry") == kinds.count("exit") == 3
    assert kinds.count("suspend") >= 3 and kinds.count("resume") >= 3
    # every record of one coroutine carries its entry's timestamp
    starts = {ev.timestamp for ev in events if ev.kind == "entry"}
    for ev in events:
        if ev.kind != "entry":
            assert ev.timestamp - ev.fields["duration_ns"] in starts
    # started 30, 10, 20 ms jobs in that order: by duration, the exits belong
    # to the second, third and first entry
    first, second, third = sorted(starts)
    exits = sorted(
        (ev for ev in events if ev.kind == "exit"), key=lambda e: e.fields["duration_ns"]
    )
    assert [e.timestamp - e.fields["duration_ns"] for e in exits] == [second, third, first]


def test_generators_thrown_into_and_closed_record_their_end(recorder: Recorder) -> None:
    def gen() -> Iterator[int]:
        try:
            yield 1
            yield 2
        except KeyError:
            yield 3

    trace(name="gen")(gen)
    g = gen()
    assert next(g) == 1 and g.throw(KeyError()) == 3
    g.close()
    events = [ev for ev in instrument.snapshot().events if ev.name == "gen"]
    # close() resumes it with GeneratorExit, which ends it
    kinds = [ev.kind for ev in events]
    assert kinds == ["entry", "suspend", "resume", "suspend", "resume", "exit"]
    assert events[-1].fields["exception"] == "GeneratorExit"


# -- exceptions -----------------------------------------------------------------------


def test_exceptions_handled_inside_traced_code_are_recorded(recorder: Recorder) -> None:
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            return 0

    trace(name="parse")(parse)
    assert parse("x") == 0 and parse("1") == 1
    (handled,) = (ev for ev in instrument.snapshot().events if ev.name == "exception.handled")
    line = parse.__code__.co_firstlineno + 2
    assert handled.fields == {
        "type": "ValueError",
        "message": "invalid literal for int() with base 10: 'x'",
        "where": f"{__file__}:{line}",
        "function": "parse",
    }


def test_exceptions_handled_in_untraced_code_are_not_recorded(recorder: Recorder) -> None:
    with contextlib.suppress(ValueError):
        int("x")
    assert [ev for ev in instrument.snapshot().events if ev.name == "exception.handled"] == []


def test_traced_code_is_located_once(recorder: Recorder) -> None:
    from instrument.sources import sources_of

    def located() -> None:
        pass

    trace(name="located.here")(located)
    assert sources_of({"located.here"}) == {
        "located.here": f"{__file__}:{located.__code__.co_firstlineno}"
    }


def test_recursion_reaches_the_same_depth_as_untraced() -> None:
    def depth_of(fn: Any) -> int:
        reached = [0]

        def down(n: int) -> None:
            reached[0] = n
            fn(down, n + 1)

        with contextlib.suppress(RecursionError):
            down(0)
        return reached[0]

    def step(down: Any, n: int) -> None:
        down(n)

    plain = depth_of(step)
    trace(step)
    rec = instrument.start()
    try:
        traced = depth_of(step)
    finally:
        instrument.stop()
    assert len(instrument.snapshot(recorder=rec).events) > 0
    # The callback runs one frame above the traced one while it records the
    # entry, so the limit is met one call earlier: at most one frame deeper.
    assert plain - 1 <= traced <= plain


# -- coexistence ------------------------------------------------------------------------


def test_a_held_tool_id_is_never_taken() -> None:
    monitoring.use_tool_id(3, "other-tool")
    try:
        rec = instrument.start()
        try:
            assert ours() == [4]
            assert monitoring.get_tool(3) == "other-tool"
        finally:
            instrument.stop()
        assert monitoring.get_tool(3) == "other-tool"
        del rec
    finally:
        monitoring.free_tool_id(3)


def test_no_free_id_falls_back_to_wrapt_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "_warned_fallback", False)
    for tool in (3, 4):
        monitoring.use_tool_id(tool, "other-tool")
    try:
        with pytest.warns(RuntimeWarning, match="wrapt engine instead of sysmon") as caught:
            assert instrument.engine() == "wrapt"
            traced = trace(lambda: 1)
            assert instrument.engine() == "wrapt"
        assert len(caught) == 1
        assert traced is not None and type(traced) is not types.FunctionType
    finally:
        for tool in (3, 4):
            monitoring.free_tool_id(tool)
    assert instrument.engine() == "sysmon"


SCRIPT = """
import sys
import instrument

def f(x):
    return x + 1

instrument.trace(f)
instrument.start()
f(1)
snap = instrument.snapshot()
instrument.stop()
print(instrument.engine(), [(e.kind, e.name) for e in snap.events])
print("tool 1:", sys.monitoring.get_tool(1))
"""


def test_recording_works_under_coverage_sysmon_core(tmp_path: Path) -> None:
    pytest.importorskip("coverage")
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {**__import__("os").environ, "COVERAGE_CORE": "sysmon", "RINGTRACE_ENGINE": "auto"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "coverage",
            "run",
            "--data-file",
            str(tmp_path / "cov"),
            str(script),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert "sysmon [('entry', '__main__.f'), ('exit', '__main__.f')]" in out.stdout, out
    assert "tool 1: coverage.py" in out.stdout
    report = subprocess.run(
        [sys.executable, "-m", "coverage", "report", "--data-file", str(tmp_path / "cov")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert "script.py" in report.stdout and "100%" in report.stdout, report.stdout


def test_an_engine_first_used_while_recording_is_switched_on(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(engines._engines, "sysmon")  # as in a process that never traced

    def f() -> None:
        pass

    trace(f)
    f()
    assert recorded() == [
        ("entry", f"{__name__}.{f.__qualname__}"),
        ("exit", f"{__name__}.{f.__qualname__}"),
    ]
    engines._engines["sysmon"].stop()  # the one made here: release its id


def test_the_pytest_header_names_the_engine(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="def test_ok():\n    pass\n")
    for option, engine in (("sysmon", "sysmon"), ("wrapt", "wrapt"), ("auto", "sysmon")):
        result = pytester.runpytest_subprocess(
            "--ringtrace", f"--ringtrace-engine={option}", "-p", "no:cacheprovider"
        )
        result.stdout.fnmatch_lines([f"ringtrace: engine {engine}, window test, *"])
    result = pytester.runpytest_subprocess("--ringtrace", "--ringtrace-engine=fast")
    result.stderr.fnmatch_lines(["*--ringtrace-engine: expected auto, sysmon or wrapt, got 'fast'"])


def test_whole_package_tracing_records_arguments_and_results_by_default(
    package: Any, recorder: Recorder
) -> None:
    name = package(
        {
            "__init__.py": "from ._impl import total\n",
            "_impl.py": "def total(items, token=None):\n    return sum(items)\n",
        }
    )
    pkg = importlib.import_module(name)
    with instrument.patch_module(name, exclude=()):
        assert pkg.total([1, 2], token="s3cret") == 3
    entry, exit_ = (ev for ev in instrument.snapshot().events if ev.kind in ("entry", "exit"))
    assert entry.name == f"{name}._impl.total"
    assert entry.fields == {"items": "[1, 2]", "token": "[redacted]"}
    assert exit_.fields["retval"] == 3


def test_the_plugin_traces_private_modules(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **{
            "privpkg/__init__.py": "from ._impl import total\n",
            "privpkg/_impl.py": "def _helper(x):\n    return x + 1\n\ndef total(x):\n"
            "    return _helper(x)\n",
            "test_it.py": "from privpkg import total\n\ndef test_it():\n    assert total(1) == 3\n",
        }
    )
    result = pytester.runpytest_subprocess(
        "--ringtrace",
        "--ringtrace-instrument=privpkg",
        "--ringtrace-view=flat",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*-> privpkg._impl._helper  x=1*", "*<- privpkg._impl._helper*"])
