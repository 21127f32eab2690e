"""Values are captured when recorded: lifetimes, memory, safe representations.

A record never refers to a program object, so recording changes no object's
lifetime: each lifetime test drops the object while recording and checks
that its ``weakref.finalize`` ran at once, and that an unclosed file's
``ResourceWarning`` comes at the same point as without recording.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import gc
import os
import sys
import threading
import tracemalloc
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import _secrets_app as app
import pytest

import instrument
from instrument import Channel, Recorder
from instrument.values import REDACTED, capture, capture_fields, stream_bytes


class Resource:
    """A program object whose end we watch."""

    def __init__(self, name: str = "r") -> None:
        self.name = name


def watched() -> tuple[Resource, list[str]]:
    obj = Resource()
    ended: list[str] = []
    weakref.finalize(obj, ended.append, "finalized")
    return obj, ended


@instrument.trace(name="use", fields="*")
def use(thing: Any) -> None:
    return None


@instrument.trace(name="make", retval=True)
def make(into: list[Any]) -> Resource:
    obj, ended = watched()
    into.append(ended)
    return obj


@instrument.trace(name="fail", fields="*")
def fail(thing: Any) -> None:
    raise ValueError(thing)


# -- lifetimes -------------------------------------------------------------------


def drop_as_event_field() -> list[str]:
    obj, ended = watched()
    instrument.event("e", obj=obj)
    del obj
    return ended


def drop_as_span_field() -> list[str]:
    obj, ended = watched()
    with instrument.span("s", obj=obj):
        del obj
        return ended  # checked inside the block: the span holds nothing either


def drop_as_traced_argument() -> list[str]:
    obj, ended = watched()
    use(obj)
    del obj
    return ended


def drop_as_return_value() -> list[str]:
    box: list[Any] = []
    obj = make(box)
    del obj
    ended: list[str] = box[0]
    return ended


def drop_as_exception_argument() -> list[str]:
    obj, ended = watched()
    with pytest.raises(ValueError):
        fail(obj)
    del obj
    return ended


def drop_nested_in_containers() -> list[str]:
    obj, ended = watched()
    instrument.event("e", items=[obj], mapping={"k": (obj,)}, tree=[[{"deep": obj}]])
    del obj
    return ended


def record_on_thread(obj: Any) -> None:
    instrument.event("e", obj=obj)


def drop_on_a_thread_that_ended() -> list[str]:
    obj, ended = watched()
    thread = threading.Thread(target=record_on_thread, args=(obj,), name="short")
    thread.start()
    thread.join()
    del obj, thread
    return ended


DROPS = {
    "event field": drop_as_event_field,
    "span field": drop_as_span_field,
    "traced argument": drop_as_traced_argument,
    "return value": drop_as_return_value,
    "exception argument": drop_as_exception_argument,
    "nested in containers": drop_nested_in_containers,
    "thread that ended": drop_on_a_thread_that_ended,
}


@pytest.mark.parametrize("values", ["safe", "repr", "none"])
@pytest.mark.parametrize("case", list(DROPS))
def test_an_object_is_collected_as_soon_as_the_program_drops_it(
    start_recording: Callable[..., Recorder], case: str, values: str
) -> None:
    gc.disable()  # collected by reference counting, at once: no collector run needed
    try:
        start_recording(values=values)
        assert DROPS[case]() == ["finalized"]
        snap = instrument.snapshot()
    finally:
        gc.enable()
    assert snap.events  # it was recorded
    if case == "thread that ended":
        assert [s.alive for s in snap.streams if s.thread_name == "short"] == [False]


def file_steps(record: Callable[[Any], None]) -> list[str]:
    """Open a file, record it, drop it: the order of steps and warnings."""
    log: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        handle = open(os.devnull)  # noqa: SIM115 - left unclosed on purpose
        log.append("opened")
        record(handle)
        log.append(f"recorded ({len(caught)} warnings)")
        del handle
        log.append(f"dropped ({len(caught)} warnings)")
    log.extend(str(w.category.__name__) for w in caught)
    return log


RECORDS: dict[str, Callable[[Any], None]] = {
    "event field": lambda f: instrument.event("e", file=f),
    "span field": lambda f: instrument.span("s", file=f).__enter__().__exit__(None, None, None),
    "traced argument": use,
    "nested in containers": lambda f: instrument.event("e", files=[f], by_name={"f": f}),
}


@pytest.mark.parametrize("case", list(RECORDS))
def test_resource_warnings_come_at_the_same_point_as_without_recording(case: str) -> None:
    without = file_steps(RECORDS[case])
    instrument.start()
    try:
        with_recording = file_steps(RECORDS[case])
    finally:
        instrument.stop()
    assert without == [
        "opened",
        "recorded (0 warnings)",
        "dropped (1 warnings)",
        "ResourceWarning",
    ]
    assert with_recording == without


def test_snapshot_and_stop_hold_nothing_either(recorder: Recorder) -> None:
    obj, ended = watched()
    instrument.event("e", obj=obj)
    snap = instrument.snapshot()
    stopped = instrument.stop()
    del obj
    assert ended == ["finalized"]
    assert snap.events[0].fields == {"obj": "<Resource>"}
    assert instrument.snapshot(recorder=stopped).events[0].fields == {"obj": "<Resource>"}


# -- the memory bound --------------------------------------------------------------


def test_a_full_ring_of_huge_values_stays_within_the_documented_bound() -> None:
    capacity = 64
    limit = 512
    huge: dict[str, Any] = {
        "text": "x" * (4 << 20),
        "wide": "\U0001f600" * (1 << 20),  # 4 bytes a character
        "data": b"\x00" * (4 << 20),
        "buffer": bytearray(4 << 20),
        "items": list(range(1 << 20)),
        "nested": {"k": ["y" * (1 << 20)]},
    }
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rec = instrument.start(
            [Channel("big", subbuf_size=16, num_subbuf=4)], max_field_chars=limit
        )
        for i in range(3 * capacity):  # full, and overwritten twice
            instrument.event("huge", i=i, **huge)
        huge.clear()  # the program lets go of its values
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        instrument.stop()
    finally:
        tracemalloc.stop()
    bound = stream_bytes(capacity, fields=7, limit=limit)
    assert held <= bound, f"{held} bytes held, bound {bound}"
    assert bound < 2 << 20  # far below one of the values passed
    snap = instrument.snapshot(recorder=rec)
    fields = snap.events[-1].fields
    assert fields["text"] == "x" * limit + f"…[+{(4 << 20) - limit} chars]"
    assert (
        fields["data"].endswith(
            f"…[+{(4 << 20) - limit} bytes]…[+{len(fields['data']) - limit} chars]"
        )
        or len(fields["data"]) <= limit + 30
    )
    assert len(fields["buffer"]) <= limit + 30 and fields["buffer"].startswith("bytearray(b'")
    assert fields["items"].startswith("[0, 1, 2, ") and f"+{(1 << 20) - 1}" not in fields["items"]


# -- safe mode runs no program code ----------------------------------------------


class Tripwire:
    """Every hook a renderer could call raises, or never returns."""

    calls: list[str] = []

    def _tripped(self, name: str) -> Any:
        Tripwire.calls.append(name)
        raise SystemExit(f"{name} was called")

    def __repr__(self) -> str:
        return self._tripped("__repr__")  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return self._tripped("__str__")  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        Tripwire.calls.append(f"__getattr__({name})")
        raise KeyboardInterrupt

    def __len__(self) -> int:
        return self._tripped("__len__")  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[Any]:
        return self._tripped("__iter__")  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        return self._tripped("__eq__")  # type: ignore[no-any-return]

    def __hash__(self) -> int:
        return self._tripped("__hash__")  # type: ignore[no-any-return]

    def __format__(self, spec: str) -> str:
        return self._tripped("__format__")  # type: ignore[no-any-return]


class Forever:
    def __repr__(self) -> str:
        while True:
            pass


class TrippedList(list):  # type: ignore[type-arg]
    def __iter__(self) -> Iterator[Any]:
        raise GeneratorExit("list iteration")

    def __len__(self) -> int:
        raise KeyboardInterrupt


class TrippedDict(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise SystemExit("dict items")

    def __iter__(self) -> Iterator[Any]:
        raise SystemExit("dict iter")


class TrippedError(Exception):
    def __str__(self) -> str:
        raise KeyboardInterrupt

    def __getattribute__(self, name: str) -> Any:
        raise SystemExit(name)


class Meta(type):
    def __getattribute__(cls, name: str) -> Any:
        raise SystemExit(f"class attribute {name}")


@dataclasses.dataclass
class Order:
    order_id: int
    sku: str
    lines: list[Any]
    password: str = "pw"
    note: str = dataclasses.field(default="hidden", repr=False)

    @property
    def total(self) -> int:
        raise SystemExit("property")


@dataclasses.dataclass(frozen=True)
class Slotted:
    __slots__ = ("x", "y")
    x: int
    y: Any


class Point(NamedTuple):
    x: int
    y: Any


class Color(enum.Enum):
    RED = 1

    def __repr__(self) -> str:
        raise SystemExit("enum repr")


class Level(enum.IntEnum):
    HIGH = 3


def run_bounded(body: Callable[[], Any], timeout: float = 30.0) -> Any:
    """``body()`` on a thread: a hang fails the test instead of hanging it."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(body())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "it hangs"
    assert errors == []
    return result[0]


def test_safe_mode_calls_no_code_of_the_program(recorder: Recorder) -> None:
    class WithMeta(metaclass=Meta):  # here: pytest's collection looks at module classes
        pass

    Tripwire.calls.clear()
    tripped_list = TrippedList([1, 2])
    tripped_dict = TrippedDict(a=1)
    values = {
        "trip": Tripwire(),
        "forever": Forever(),
        "in_list": [Tripwire(), 1],
        "as_key": {1: Tripwire()},
        "tlist": tripped_list,
        "tdict": tripped_dict,
        "error": TrippedError("bad", 2),
        "meta": WithMeta(),
        "cls": WithMeta,
        "order": Order(7, "lamp", [1, Tripwire()]),
        "slotted": Slotted(1, Tripwire()),
        "point": Point(1, Tripwire()),
        "color": Color.RED,
        "level": Level.HIGH,
    }

    def record() -> dict[str, Any]:
        instrument.event("e", **values)
        return instrument.snapshot().events[-1].fields

    fields = run_bounded(record)
    qualname = "test_safe_mode_calls_no_code_of_the_program.<locals>.WithMeta"
    assert Tripwire.calls == []
    assert fields == {
        "trip": "<Tripwire>",
        "forever": "<Forever>",
        "in_list": "[<Tripwire>, 1]",
        "as_key": "{1: <Tripwire>}",
        "tlist": "TrippedList([1, 2])",
        "tdict": "TrippedDict({'a': 1})",
        "error": "TrippedError(\"'bad', 2\")",
        "meta": f"<{qualname}>",
        "cls": f"<class {qualname}>",
        "order": f"Order(order_id=7, sku='lamp', lines=[1, <Tripwire>], password={REDACTED})",
        "slotted": "Slotted(x=1, y=<Tripwire>)",
        "point": "Point(x=1, y=<Tripwire>)",
        "color": "Color.RED",
        "level": "Level.HIGH",
    }


def test_safe_representations_of_builtin_values(recorder: Recorder) -> None:
    got = capture_fields(
        {
            "n": 3,
            "big": 2**64,
            "ratio": 0.5,
            "flag": False,
            "none": None,
            "data": b"\x00ab",
            "buffer": bytearray(b"xy"),
            "view": memoryview(b"abc"),
            "items": [1, "a", None, 2.5],
            "pair": (1,),
            "empty": set(),
            "tags": frozenset({"x"}),
            "queue": collections.deque([1, 2]),
            "counts": collections.Counter(a=2),
            "deep": [[[[[1]]]]],
            "cplx": 1 + 2j,
            "span": range(3),
            "path": Path("/tmp/x"),
            "error": KeyError("missing"),
            "func": use,
        }
    )
    assert got["n"] == 3 and got["ratio"] == 0.5 and got["flag"] is False and got["none"] is None
    assert got["big"] == str(2**64)
    assert got["data"] == "b'\\x00ab'"
    assert got["buffer"] == "bytearray(b'xy')"
    assert got["view"] == "<memoryview of 3 bytes>"
    assert got["items"] == "[1, 'a', None, 2.5]"
    assert got["pair"] == "(1,)"
    assert got["empty"] == "set()"
    assert got["tags"] == "frozenset({'x'})"
    assert got["queue"] == "deque([1, 2])"
    assert got["counts"] == "Counter({'a': 2})"
    assert got["deep"] == "[[[<list of 1>]]]"
    assert got["cplx"] == "(1+2j)"
    assert got["span"] == "range(0, 3)"
    assert got["path"] == "PosixPath('/tmp/x')" or got["path"].endswith("Path('/tmp/x')")
    assert got["error"] == "KeyError(\"'missing'\")"
    assert got["func"].startswith("<TracedFunction")


def test_instances_shown_by_class_name_keep_no_class_alive(recorder: Recorder) -> None:
    # Safe mode remembers the text of such classes by id: a class made
    # after another one died may reuse its id, and must show its own name.
    for n in range(200):
        cls = type(f"Made{n}", (), {})
        assert capture(cls()) == f"<Made{n}>"
        gone = weakref.ref(cls)
        del cls
        gc.collect()
        assert gone() is None, "the capture cache keeps the class alive"


def test_a_class_given_dataclass_fields_is_shown_with_them(recorder: Recorder) -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    assert capture(Point(3)).endswith("Point(x=3)")
    assert capture(Point(4)).endswith("Point(x=4)")  # not the first text, remembered


def test_a_self_containing_container_is_bounded(recorder: Recorder) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert capture(loop) == "[1, <list …recursive>]"


def test_a_huge_container_is_rendered_bounded(start_recording: Callable[..., Recorder]) -> None:
    start_recording(max_field_chars=40)
    text = capture(list(range(1_000_000)))
    assert text.startswith("[0, 1, 2,") and "… +" in text and len(text) < 80


# -- repr mode: the program's own __repr__, bounded and guarded --------------------


class Raises:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __repr__(self) -> str:
        raise self.exc


class Recursive:
    def __repr__(self) -> str:
        return repr(self)


class Long:
    def __repr__(self) -> str:
        return "L" * 100_000


@pytest.mark.parametrize(
    "exc", [SystemExit(2), KeyboardInterrupt(), GeneratorExit(), ValueError("no")]
)
def test_repr_mode_turns_anything_a_repr_raises_into_text(
    start_recording: Callable[..., Recorder], exc: BaseException
) -> None:
    start_recording(values="repr")
    instrument.event("e", value=Raises(exc))
    (ev,) = instrument.snapshot().events
    name = type(exc).__name__
    assert ev.fields["value"].startswith(f"<Raises repr raised {name}")


class Recording:
    def __repr__(self) -> str:
        instrument.event("inside.repr", n=1)
        return "Recording()"


@instrument.trace(name="takes", fields="*")
def takes(thing: Any) -> None:
    return None


def test_repr_mode_on_a_thread_that_never_recorded(
    start_recording: Callable[..., Recorder],
) -> None:
    """The arguments are captured before the thread's first event: the
    event the repr records is dropped and counted there too."""
    rec = start_recording(values="repr")
    thread = threading.Thread(target=takes, args=(Recording(),), name="fresh")
    thread.start()
    thread.join()
    events = [ev for ev in instrument.snapshot().events if ev.thread_name == "fresh"]
    assert [(ev.name, ev.kind) for ev in events] == [("takes", "entry"), ("takes", "exit")]
    assert events[0].fields == {"thing": "Recording()"}
    assert rec.dropped_nested == 1


def test_repr_mode_stops_a_repr_that_loops_forever(
    start_recording: Callable[..., Recorder],
) -> None:
    start_recording(values="repr")

    def record() -> Any:
        instrument.event("e", value=Forever(), after=1)
        return instrument.snapshot().events[-1].fields

    fields = run_bounded(record)
    assert fields["value"].startswith("<Forever repr raised _ReprBudgetExceeded: stopped after")
    assert fields["after"] == 1


def test_repr_mode_survives_recursion_and_bounds_length(
    start_recording: Callable[..., Recorder],
) -> None:
    start_recording(values="repr", max_field_chars=100)
    fields = capture_fields({"rec": Recursive(), "long": Long(), "plain": Resource()})
    assert fields["rec"].startswith("<Recursive repr raised RecursionError")
    assert fields["long"] == "L" * 100 + "…[+99900 chars]"  # cut once, marked
    assert fields["plain"].endswith("Resource object at 0x…>")  # addresses masked


def test_repr_mode_restores_a_trace_function(start_recording: Callable[..., Recorder]) -> None:
    start_recording(values="repr")
    seen: list[str] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        seen.append(event)
        return None

    before = sys.gettrace()
    sys.settrace(tracer)
    try:
        capture(Resource())
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(before)


def test_none_mode_records_no_values(start_recording: Callable[..., Recorder]) -> None:
    start_recording(values="none")
    instrument.event("e", n=1, text="x", obj=Resource())
    use(Resource())
    with pytest.raises(ValueError):
        fail("secret message")
    events = instrument.snapshot().events
    assert [ev.fields for ev in events[:2]] == [{}, {}]
    assert events[-1].fields["exception"] == "ValueError"
    assert "message" not in events[-1].fields


def test_values_mode_is_checked(start_recording: Callable[..., Recorder]) -> None:
    with pytest.raises(ValueError, match="values must be one of safe, repr, none"):
        start_recording(values="full")


# -- what the hot path keeps as it is -------------------------------------------------


def test_plain_fields_are_kept_as_they_are_and_others_captured(recorder: Recorder) -> None:
    text = "t" * 512
    instrument.event("e", a=1, b=2.5, c=text, d=None, e=True, f=-(2**64) + 1)
    instrument.event("e", long="t" * 513, big=2**64, url="https://u:p@h/", q="a=b")
    first, second = instrument.snapshot().events
    assert first.fields == {"a": 1, "b": 2.5, "c": text, "d": None, "e": True, "f": -(2**64) + 1}
    assert first.fields["c"] is text  # kept, not copied
    assert second.fields == {
        "long": "t" * 512 + "…[+1 chars]",
        "big": str(2**64),
        "url": f"https://{REDACTED}@h/",
        "q": "a=b",
    }


def test_emit_captures_fields_other_paths_pass(recorder: Recorder) -> None:
    from instrument import hotpath

    obj, ended = watched()
    hotpath.emit("x", "entry", "x", {"obj": obj, "password": "pw"})
    del obj
    assert ended == ["finalized"]
    (ev,) = instrument.snapshot().events
    assert ev.fields == {"obj": "<Resource>", "password": REDACTED}


# -- redaction in the terminal section ----------------------------------------------

INNER_TEST = """
import _secrets_app as app


def test_fails():
    app.record_nested_secrets()
    assert False, "fail on purpose"
"""


@pytest.mark.parametrize(
    ("redact", "view"), [("default", "tree"), ("default", "flat"), ("off", "flat")]
)
def test_secrets_stay_out_of_the_terminal_section(
    pytester: pytest.Pytester, redact: str, view: str
) -> None:
    pytester.makepyfile(_secrets_app=Path(app.__file__).read_text(), test_inner=INNER_TEST)
    args = [
        "--ringtrace",
        "--ringtrace-tail=50",
        "--ringtrace-formats=json",
        "-p",
        "no:cacheprovider",
    ]
    # flat: every event with all its fields (the tree shows the failing calls)
    result = pytester.runpytest_subprocess(
        *args, f"--ringtrace-redact={redact}", f"--ringtrace-view={view}"
    )
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "ringtrace call" in out and "auth.login" in out
    shown = [s for s in app.SECRETS if s in out]
    if redact == "default":
        assert shown == []
        assert REDACTED in out
    else:  # the control: the section shows the values when redaction is off
        assert shown == app.SECRETS
        assert REDACTED not in out


def test_values_and_redact_options(pytester: pytest.Pytester) -> None:
    from pytest_ringtrace.options import read_settings

    settings = read_settings(pytester.parseconfigure("--ringtrace-values=repr"))
    assert settings.values == "repr" and settings.redact is True
    settings = read_settings(pytester.parseconfigure("--ringtrace-redact=default,ssn"))
    assert isinstance(settings.redact, tuple) and "ssn" in settings.redact
    assert "password" in settings.redact
    assert read_settings(pytester.parseconfigure("--ringtrace-redact=off")).redact is False
    with pytest.raises(pytest.UsageError, match="--ringtrace-values: expected 'safe', 'repr'"):
        read_settings(pytester.parseconfigure("--ringtrace-values=all"))
    pytester.makeini("[pytest]\nringtrace_values = none\nringtrace_redact = ssn card\n")
    settings = read_settings(pytester.parseconfigure())
    assert settings.values == "none" and settings.redact == ("ssn", "card")
