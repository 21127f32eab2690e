"""Bad input: a clear error at the point of the mistake, or a safe capture;
never a crash of the traced program."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import instrument
from instrument import Channel, Recorder, span, trace
from instrument.channel import MAX_CAPACITY

# -- channels -----------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 6, 12, 1000, 1 << 21, 1, 0, -4])
def test_subbuf_size_must_be_a_power_of_two_in_range(size: int) -> None:
    with pytest.raises(ValueError, match=rf"subbuf_size must be a power of two .*got {size}"):
        Channel("c", subbuf_size=size)


@pytest.mark.parametrize("count", [3, 5, 1, 0, -2, 1 << 17])
def test_num_subbuf_must_be_a_power_of_two_in_range(count: int) -> None:
    with pytest.raises(ValueError, match=rf"num_subbuf must be a power of two .*got {count}"):
        Channel("c", num_subbuf=count)


@pytest.mark.parametrize("value", ["4", 4.0, True, None, [4]])
def test_sizes_must_be_ints(value: object) -> None:
    with pytest.raises(TypeError, match="subbuf_size must be an int"):
        Channel("c", subbuf_size=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="num_subbuf must be an int"):
        Channel("c", num_subbuf=value)  # type: ignore[arg-type]


def test_the_ring_of_one_stream_is_capped() -> None:
    with pytest.raises(ValueError, match=f"exceeds the limit of {MAX_CAPACITY}"):
        Channel("huge", subbuf_size=1 << 20, num_subbuf=32)


@pytest.mark.parametrize("mode", ["ring", "OVERWRITE", "", None, 1])
def test_mode_must_be_overwrite_or_discard(mode: object) -> None:
    with pytest.raises(ValueError, match="mode must be 'overwrite' or 'discard'"):
        Channel("c", mode=mode)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a b", "1st", "tab\tname", "slash/name", None, 5])
def test_channel_names_are_identifier_like(name: object) -> None:
    with pytest.raises(ValueError, match="channel name must be"):
        Channel(name)  # type: ignore[arg-type]


def test_event_globs_and_contexts_must_be_strings() -> None:
    with pytest.raises(ValueError, match="at least one glob"):
        Channel("c", events=[])
    with pytest.raises(TypeError, match="events must hold non-empty strings"):
        Channel("c", events=["db.*", ""])
    with pytest.raises(TypeError, match="events must be a string or an iterable"):
        Channel("c", events=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="contexts must hold non-empty strings"):
        Channel("c", contexts=["thread", 3])  # type: ignore[list-item]


# -- start --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"channels": []}, ValueError, "at least one channel"),
        ({"channels": ["default"]}, TypeError, "instrument.Channel objects"),
        ({"channels": [Channel("a"), Channel("a")]}, ValueError, "two channels are named 'a'"),
        ({"channels": [Channel("a", contexts=["thread", "nope"])]}, ValueError, "unknown context"),
        ({"max_dead_streams": -1}, ValueError, "max_dead_streams must be >= 0"),
        ({"max_dead_streams": 2.5}, TypeError, "max_dead_streams must be an int"),
        ({"max_field_chars": 8}, ValueError, "max_field_chars must be >= 16"),
        ({"max_field_chars": "512"}, TypeError, "max_field_chars must be an int"),
        ({"redact": 5}, TypeError, "redact must be True, False, or field-name fragments"),
        ({"redact": ["password", ""]}, TypeError, "non-empty strings"),
    ],
)
def test_bad_start_arguments_raise_and_leave_recording_off(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        instrument.start(**kwargs)
    assert not instrument.recording()


def test_unknown_context_error_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown context field\(s\) tenant; known: .*pid.*task"):
        instrument.start([Channel("c", contexts=["tenant"])])


def test_snapshot_since_must_be_monotonic_nanoseconds(recorder: Recorder) -> None:
    with pytest.raises(TypeError, match="monotonic_ns"):
        instrument.snapshot(since=time.monotonic())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="since must be"):
        instrument.snapshot(since="now")  # type: ignore[arg-type]
    assert instrument.snapshot(since=time.monotonic_ns()).events == []


# -- event names --------------------------------------------------------------


@pytest.mark.parametrize("name", [5, None, b"bytes", ["list"], ("default", "x"), 1.5])
def test_event_names_must_be_strings(recorder: Recorder, name: Any) -> None:
    with pytest.raises(TypeError, match="event name must be a str"):
        instrument.event(name)
    assert instrument.snapshot().events == []


@pytest.mark.parametrize("name", ["", "has space", "x" * 257, "new\nline", "tab\t", "nul\x00"])
def test_event_names_must_be_short_printable_without_spaces(recorder: Recorder, name: str) -> None:
    with pytest.raises(ValueError, match="event name must be 1 to 256 printable characters"):
        instrument.event(name)
    # the mistake is reported every time, not cached as a route
    with pytest.raises(ValueError):
        instrument.event(name)


def test_valid_unusual_names_are_accepted(recorder: Recorder) -> None:
    names = ["x" * 256, "ünïcödé.名前", "a:b/c-d[0]", "<lambda>"]
    for name in names:
        instrument.event(name)
    assert [ev.name for ev in instrument.snapshot().events] == names


def test_span_names_are_checked_when_the_span_is_made() -> None:
    with pytest.raises(TypeError, match="event name must be a str"):
        span(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="printable"):
        span("bad name")


# -- trace --------------------------------------------------------------------


def test_trace_given_a_name_positionally_says_how_to_pass_options() -> None:
    with pytest.raises(TypeError, match=r"use @trace\(name=...\)"):
        trace("my.name")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="decorates a callable"):
        trace(5)  # type: ignore[call-overload]


def test_trace_fields_must_name_parameters() -> None:
    def f(a: int, b: int) -> None:
        pass

    with pytest.raises(ValueError, match=r"names \['c'\] which are not parameters"):
        trace(fields=["a", "c"])(f)
    with pytest.raises(ValueError, match="list of argument names or '\\*'"):
        trace(fields="a")(f)


def test_trace_name_and_channel_are_checked_at_decoration() -> None:
    with pytest.raises(ValueError, match="printable"):
        trace(name="two words")(lambda: None)
    with pytest.raises(TypeError, match="channel must be a channel name"):
        trace(channel=3)(lambda: None)  # type: ignore[arg-type]


def test_an_unknown_channel_warns_and_the_traced_code_runs_unchanged(
    start_recording: Callable[..., Recorder],
) -> None:
    @trace(name="work", channel="nope")
    def work(x: int) -> int:
        return x + 1

    start_recording(Channel("main"))
    with pytest.warns(RuntimeWarning, match="unknown channel 'nope' for 'work'.*channels: main"):
        assert work(1) == 2
    assert work(2) == 3  # warned once per thread and name; still runs
    with (
        pytest.warns(RuntimeWarning, match="unknown channel 'elsewhere'"),
        span("block", channel="elsewhere"),
    ):
        pass
    assert instrument.snapshot().events == []


def test_trace_wrong_call_arguments_fail_as_without_tracing(recorder: Recorder) -> None:
    @trace
    def one(a: int) -> int:
        return a

    with pytest.raises(TypeError, match="positional argument"):
        one()  # type: ignore[call-arg]


# -- patch --------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["nocolon", "mod:", ":func", "1mod:f", "mod:f g", "mod:1f", "a:b:c", "", 5]
)
def test_patch_targets_must_look_like_module_colon_path(target: Any) -> None:
    with pytest.raises(ValueError, match=r"package\.module:Class\.method"):
        instrument.patch(target)
    assert instrument.patched() == []


def test_patch_of_a_missing_attribute_in_an_imported_module() -> None:
    with pytest.raises(AttributeError, match=r"cannot patch 'json:no_such_function'"):
        instrument.patch("json:no_such_function")
    with pytest.raises(AttributeError, match=r"JSONDecoder\.nope"):
        instrument.patch("json:JSONDecoder.nope")
    assert instrument.patched() == []


def test_patch_of_something_not_callable() -> None:
    with pytest.raises(TypeError, match="not callable"):
        instrument.patch("json:__version__")
    assert instrument.patched() == []


def test_unpatch_of_something_not_patched() -> None:
    with pytest.raises(KeyError, match="not patched"):
        instrument.unpatch("json:dumps")


def test_patch_module_needs_a_dotted_name() -> None:
    for bad in ["", "has space", "1pkg", 5]:
        with pytest.raises(ValueError, match="dotted package name"):
            instrument.patch_module(bad)  # type: ignore[arg-type]


# -- contexts -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["1x", "a-b", "", 5, None])
def test_context_names_must_be_identifiers(name: Any) -> None:
    with pytest.raises(ValueError, match="context name must be an identifier"):
        instrument.register_context(name, lambda: 1)


@pytest.mark.parametrize("name", ["thread", "pid"])
def test_built_in_contexts_cannot_be_replaced(name: str) -> None:
    with pytest.raises(ValueError, match="built in"):
        instrument.register_context(name, lambda: 1)


def test_context_providers_must_be_callable() -> None:
    with pytest.raises(TypeError, match="must be callable or a ContextVar"):
        instrument.register_context("tenant", "not callable")  # type: ignore[arg-type]


def test_unregistering_an_unknown_context() -> None:
    with pytest.raises(KeyError, match="never_registered"):
        instrument.unregister_context("never_registered")
