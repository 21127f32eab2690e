"""The catalogue of misuse: one row per mistake, each with its clear error.

Every row is a call a user could get wrong, the exception (or warning) it
must raise at that point, and a pattern its message must match, which names
the bad value, so the user sees at once what was wrong. A mistake also must
not change anything: the recorder that was running (or not) still is, and
no patch is left behind.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import instrument
from instrument import Channel, Recorder
from instrument.formats import write_snapshot


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[Path], Any]
    raises: type[BaseException] | type[Warning]
    message: str  # a regex searched in str(exception); it must name the bad value
    recording: bool = False  # run with the process-wide recorder started


def _traced(**options: Any) -> Callable[[Path], Any]:
    def target(a: int, b: int = 0) -> int:
        return a + b

    return lambda tmp: instrument.trace(**options)(target)


def _call_traced_on(channel: str) -> Callable[[Path], Any]:
    def run(tmp: Path) -> Any:
        @instrument.trace(channel=channel)
        def work() -> int:
            return 1

        return work()

    return run


def _empty_snapshot() -> instrument.Snapshot:
    return instrument.snapshot(recorder=Recorder([Channel("c")]))


ROWS = [
    # -- channel geometry: powers of two, in range, ints -------------------------
    Case(
        "subbuf_size=0",
        lambda t: Channel("c", subbuf_size=0),
        ValueError,
        r"subbuf_size must be a power of two between 2 and \d+, got 0$",
    ),
    Case(
        "subbuf_size=3",
        lambda t: Channel("c", subbuf_size=3),
        ValueError,
        r"subbuf_size must be a power of two .*, got 3$",
    ),
    Case(
        "subbuf_size=2**30",
        lambda t: Channel("c", subbuf_size=2**30),
        ValueError,
        r"subbuf_size must be a power of two between 2 and 1048576, got 1073741824$",
    ),
    Case(
        "subbuf_size='8'",
        lambda t: Channel("c", subbuf_size="8"),
        TypeError,
        r"subbuf_size must be an int, got str '8'",
    ),
    Case(
        "subbuf_size=True",
        lambda t: Channel("c", subbuf_size=True),
        TypeError,
        r"subbuf_size must be an int, got bool True",
    ),
    Case(
        "subbuf_size=2.0",
        lambda t: Channel("c", subbuf_size=2.0),
        TypeError,
        r"subbuf_size must be an int, got float 2\.0",
    ),
    Case(
        "num_subbuf=1",
        lambda t: Channel("c", num_subbuf=1),
        ValueError,
        r"num_subbuf must be a power of two between 2 and \d+, got 1$",
    ),
    Case(
        "num_subbuf=-4",
        lambda t: Channel("c", num_subbuf=-4),
        ValueError,
        r"num_subbuf must be a power of two .*, got -4$",
    ),
    Case(
        "num_subbuf=None",
        lambda t: Channel("c", num_subbuf=None),
        TypeError,
        r"num_subbuf must be an int, got NoneType None",
    ),
    Case(
        "capacity over the limit",
        lambda t: Channel("big", subbuf_size=2**20, num_subbuf=2**10),
        ValueError,
        r"channel 'big': subbuf_size \* num_subbuf = 1073741824 exceeds the limit",
    ),
    # -- modes --------------------------------------------------------------------
    Case(
        "mode='ring'",
        lambda t: Channel("c", mode="ring"),
        ValueError,
        r"channel 'c': mode must be 'overwrite' or 'discard', got 'ring'",
    ),
    Case(
        "mode='OVERWRITE'",
        lambda t: Channel("c", mode="OVERWRITE"),
        ValueError,
        r"mode must be 'overwrite' or 'discard', got 'OVERWRITE'",
    ),
    Case(
        "mode=None",
        lambda t: Channel("c", mode=None),
        ValueError,
        r"mode must be 'overwrite' or 'discard', got None",
    ),
    # -- channel names, event globs, contexts -----------------------------------
    Case(
        "channel name ''",
        lambda t: Channel(""),
        ValueError,
        r"channel name must be an identifier-like string .*, got ''",
    ),
    Case(
        "channel name with a space",
        lambda t: Channel("has space"),
        ValueError,
        r"channel name must be .*, got 'has space'",
    ),
    Case("channel name 3", lambda t: Channel(3), ValueError, r"channel name must be .*, got 3$"),
    Case("channel name '1abc'", lambda t: Channel("1abc"), ValueError, r"got '1abc'"),
    Case("channel name 'a/b'", lambda t: Channel("a/b"), ValueError, r"got 'a/b'"),
    Case(
        "events=''",
        lambda t: Channel("c", events=""),
        TypeError,
        r"channel 'c': events must hold non-empty strings, got ''",
    ),
    Case(
        "events=[]",
        lambda t: Channel("c", events=[]),
        ValueError,
        r"channel 'c': events must name at least one glob",
    ),
    Case(
        "events=3",
        lambda t: Channel("c", events=3),
        TypeError,
        r"channel 'c': events must be a string or an iterable of strings, got 3",
    ),
    Case(
        "events=[3]",
        lambda t: Channel("c", events=[3]),
        TypeError,
        r"channel 'c': events must hold non-empty strings, got 3",
    ),
    Case(
        "contexts=[3]",
        lambda t: Channel("c", contexts=[3]),
        TypeError,
        r"channel 'c': contexts must hold non-empty strings, got 3",
    ),
    Case(
        "unknown context",
        lambda t: instrument.start([Channel("c", contexts=("thread", "nope"))]),
        ValueError,
        r"unknown context field\(s\) nope; known: .*pid.*thread",
    ),
    Case(
        "duplicate channel names",
        lambda t: instrument.start([Channel("a"), Channel("a")]),
        ValueError,
        r"two channels are named 'a'",
    ),
    Case(
        "a channel name for a channel",
        lambda t: instrument.start(["default"]),
        TypeError,
        r"channels must be instrument.Channel objects, got 'default'",
    ),
    # -- start options ------------------------------------------------------------
    Case(
        "max_dead_streams=-1",
        lambda t: instrument.start(max_dead_streams=-1),
        ValueError,
        r"max_dead_streams must be >= 0, got -1",
    ),
    Case(
        "max_dead_streams='8'",
        lambda t: instrument.start(max_dead_streams="8"),
        TypeError,
        r"max_dead_streams must be an int, got '8'",
    ),
    Case(
        "max_field_chars=3",
        lambda t: instrument.start(max_field_chars=3),
        ValueError,
        r"max_field_chars must be >= 16, got 3",
    ),
    Case(
        "redact=3",
        lambda t: instrument.start(redact=3),
        TypeError,
        r"redact must be True, False, or field-name fragments .*, got 3",
    ),
    # -- start / stop / read at the wrong time ---------------------------------
    Case(
        "double start",
        lambda t: instrument.start(),
        RuntimeError,
        r"already recording; call instrument.stop\(\) first",
        recording=True,
    ),
    Case(
        "stop without start",
        lambda t: instrument.stop(),
        RuntimeError,
        r"not recording; call instrument.start\(\) first",
    ),
    Case(
        "snapshot without start",
        lambda t: instrument.snapshot(),
        RuntimeError,
        r"not recording; call instrument.start\(\) first",
    ),
    Case(
        "consume without start",
        lambda t: instrument.consume(),
        RuntimeError,
        r"not recording; call instrument.start\(\) first",
    ),
    Case(
        "snapshot since='now'",
        lambda t: instrument.snapshot(since="now"),
        TypeError,
        r"since must be a monotonic timestamp .*, got str 'now'",
        recording=True,
    ),
    # -- event names ----------------------------------------------------------------
    Case(
        "event name 3",
        lambda t: instrument.event(3),
        TypeError,
        r"event name must be a str, got int 3",
        recording=True,
    ),
    Case(
        "event name None",
        lambda t: instrument.event(None),
        TypeError,
        r"event name must be a str, got NoneType None",
        recording=True,
    ),
    Case(
        "event name bytes",
        lambda t: instrument.event(b"db.query"),
        TypeError,
        r"event name must be a str, got bytes b'db.query'",
        recording=True,
    ),
    Case(
        "event name a tuple",
        lambda t: instrument.event(("default", "x")),
        TypeError,
        r"event name must be a str, got tuple \('default', 'x'\)",
        recording=True,
    ),
    Case(
        "event name ''",
        lambda t: instrument.event(""),
        ValueError,
        r"event name must be 1 to 256 printable characters without spaces, got ''$",
        recording=True,
    ),
    Case(
        "event name with a space",
        lambda t: instrument.event("cache miss"),
        ValueError,
        r"without spaces, got 'cache miss'",
        recording=True,
    ),
    Case(
        "event name with a tab",
        lambda t: instrument.event("cache\tmiss"),
        ValueError,
        r"without spaces, got 'cache\\tmiss'",
        recording=True,
    ),
    Case(
        "event name of 257 chars",
        lambda t: instrument.event("x" * 257),
        ValueError,
        r"1 to 256 printable characters without spaces, got 'x{257}'",
        recording=True,
    ),
    Case(
        "span name with a space",
        lambda t: instrument.span("load all"),
        ValueError,
        r"without spaces, got 'load all'",
    ),
    Case(
        "span on an unknown channel",
        lambda t: instrument.span("x", channel="nochan").__enter__(),
        RuntimeWarning,
        r"unknown channel 'nochan' for 'x', not recorded; channels: default",
        recording=True,
    ),
    # -- trace ------------------------------------------------------------------------
    Case(
        "trace(fields=[unknown])",
        _traced(fields=["zz"]),
        ValueError,
        r"trace\(fields=...\) names \['zz'\] which are not parameters of .*target.*"
        r"parameters: \['a', 'b'\]",
    ),
    Case(
        "trace(fields='a')",
        _traced(fields="a"),
        ValueError,
        r"fields must be a list of argument names or '\*', got 'a'",
    ),
    Case("trace(name='a b')", _traced(name="a b"), ValueError, r"got 'a b'"),
    Case(
        "trace(channel=3)",
        _traced(channel=3),
        TypeError,
        r"channel must be a channel name \(str\), got 3",
    ),
    Case(
        "trace on a non-callable",
        lambda t: instrument.trace(3),
        TypeError,
        r"@trace decorates a callable; got 3",
    ),
    Case(
        "@trace('name') instead of @trace(name=...)",
        lambda t: instrument.trace("my.name"),
        TypeError,
        r"got 'my.name' \(use @trace\(name=...\) for options\)",
    ),
    Case(
        "a traced call on an unknown channel",
        _call_traced_on("nochan"),
        RuntimeWarning,
        r"unknown channel 'nochan' for '.*work', not recorded",
        recording=True,
    ),
    # -- patch targets ----------------------------------------------------------------
    Case(
        "patch target without a colon",
        lambda t: instrument.patch("os.path"),
        ValueError,
        r"patch target must look like 'package.module:Class.method', got 'os.path'",
    ),
    Case(
        "patch target not a string",
        lambda t: instrument.patch(3),
        ValueError,
        r"patch target must look like .*, got 3",
    ),
    Case(
        "patch target: unknown attribute",
        lambda t: instrument.patch("os.path:no_such_fn"),
        AttributeError,
        r"cannot patch 'os.path:no_such_fn': .*'no_such_fn'",
    ),
    Case(
        "patch target: unknown method",
        lambda t: instrument.patch("json:JSONDecoder.nope"),
        AttributeError,
        r"cannot patch 'json:JSONDecoder.nope': .*'nope'",
    ),
    Case(
        "patch target not callable",
        lambda t: instrument.patch("os:sep"),
        TypeError,
        r"patch target 'os:sep' is not callable",
    ),
    Case(
        "unpatch what is not patched",
        lambda t: instrument.unpatch("json:dumps"),
        KeyError,
        r"'json:dumps' is not patched",
    ),
    Case(
        "patch_module('a b')",
        lambda t: instrument.patch_module("a b"),
        ValueError,
        r"patch_module takes a dotted package name, got 'a b'",
    ),
    # -- context providers --------------------------------------------------------
    Case(
        "register_context('a b')",
        lambda t: instrument.register_context("a b", lambda: 1),
        ValueError,
        r"context name must be an identifier, got 'a b'",
    ),
    Case(
        "register_context('pid')",
        lambda t: instrument.register_context("pid", lambda: 1),
        ValueError,
        r"context name 'pid' is built in",
    ),
    Case(
        "register_context(provider=3)",
        lambda t: instrument.register_context("x", 3),
        TypeError,
        r"context provider for 'x' must be callable",
    ),
    Case(
        "unregister_context unknown",
        lambda t: instrument.unregister_context("never"),
        KeyError,
        r"no context named 'never' was registered",
    ),
    # -- snapshot files -----------------------------------------------------------
    Case(
        "write_snapshot in an unknown format",
        lambda t: write_snapshot(_empty_snapshot(), t / "snap", "yaml"),
        ValueError,
        r"unknown snapshot format 'yaml'; known: .*json",
    ),
]


@pytest.mark.parametrize("case", ROWS, ids=[row.id for row in ROWS])
def test_each_mistake_gets_a_clear_error_and_changes_nothing(
    case: Case, start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    if case.recording:
        start_recording()
    before = (instrument.active_recorder(), instrument.patched())
    if issubclass(case.raises, Warning):
        with pytest.warns(case.raises) as caught:
            case.call(tmp_path)
        messages = [str(w.message) for w in caught if issubclass(w.category, case.raises)]
        assert any(re.search(case.message, m) for m in messages), messages
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an error, not an error and a warning
            with pytest.raises(case.raises) as raised:
                case.call(tmp_path)
        assert raised.type is case.raises  # not some subclass that happens to match
        text = str(raised.value)
        assert re.search(case.message, text), text
        assert "\n" not in text.strip()  # one line: readable in any report
    assert (instrument.active_recorder(), instrument.patched()) == before
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_the_catalogue_has_one_row_per_mistake() -> None:
    ids = [row.id for row in ROWS]
    assert len(ids) == len(set(ids))
