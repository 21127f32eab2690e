"""Field values as a snapshot shows them: bounded, safe, redacted, plain."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import instrument
from instrument import Channel, Recorder
from instrument import values as values_module
from instrument.values import (
    DEFAULT_MAX_FIELD_CHARS,
    REDACTED,
    Capturer,
    Redactor,
    plain_value,
    safe_repr,
    truncate,
)


class RaisingRepr:
    def __repr__(self) -> str:
        raise ValueError("repr is broken")


class RaisingEverything:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("str is broken too")

    def __repr__(self) -> str:
        raise self.Broken()


class HugeRepr:
    def __repr__(self) -> str:
        return "<" + "x" * 100_000 + ">"


class Plain:
    """Keeps the default repr, with its address."""


def one_event_fields(**fields: Any) -> dict[str, Any]:
    instrument.event("e", **fields)
    (ev,) = [ev for ev in instrument.snapshot().events if ev.name == "e"]
    return ev.fields


# -- safe_repr and plain_value ------------------------------------------------


def test_a_repr_that_raises_is_reported_as_text() -> None:
    assert safe_repr(RaisingRepr()) == "<RaisingRepr repr raised ValueError: repr is broken>"
    # the exception's own __str__ is never called: its args say nothing here
    text = safe_repr(RaisingEverything())
    assert text == "<RaisingEverything repr raised RaisingEverything.Broken: >"
    # inside a container, only the broken item says so
    assert safe_repr([1, RaisingRepr()]) == (
        "[1, <RaisingRepr repr raised ValueError: repr is broken>]"
    )


def test_a_huge_repr_is_truncated_and_the_cut_is_marked() -> None:
    text = safe_repr(HugeRepr(), 100)
    assert text == "<" + "x" * 99 + "…[+99902 chars]"
    assert truncate("abcdef", 3) == "abc…[+3 chars]"
    assert truncate("abc", 3) == "abc"


def test_a_huge_container_is_bounded_without_rendering_it_whole() -> None:
    text = safe_repr(list(range(1_000_000)), 64)
    assert len(text) <= 64 + len("…[+999 chars]")
    assert text.startswith("[0, 1, 2")
    nested = safe_repr([[[[[[["deep"]]]]]]])
    assert "deep" not in nested and "..." in nested
    assert len(safe_repr([HugeRepr()] * 3, 200)) <= 200 + len("…[+9999 chars]")


def test_addresses_are_hidden() -> None:
    text = safe_repr(Plain())
    assert re.fullmatch(r"<.*Plain object at 0x…>", text), text
    assert "0x…" in safe_repr([object(), object()])
    assert re.search(r"0x[0-9a-f]", safe_repr({"k": object()})) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (-5, -5),
        (2**64 - 1, 2**64 - 1),
        (-(2**64) + 1, -(2**64) + 1),
        (2**64, str(2**64)),
        (-(2**70), str(-(2**70))),
        (1.5, 1.5),
        (True, True),
        (None, None),
        ("text", "text"),
        (b"bytes", "b'bytes'"),
        ([1, "a"], "[1, 'a']"),
        ({"k": (1, 2)}, "{'k': (1, 2)}"),
    ],
)
def test_plain_value_keeps_scalars_and_converts_the_rest(value: object, expected: object) -> None:
    got = plain_value(value)
    assert got == expected and type(got) is type(expected)


def test_plain_value_truncates_long_strings_and_survives_giant_ints() -> None:
    assert plain_value("y" * 600) == "y" * DEFAULT_MAX_FIELD_CHARS + "…[+88 chars]"
    giant = plain_value(10**10_000)
    assert isinstance(giant, str) and len(giant) <= DEFAULT_MAX_FIELD_CHARS + 20


# -- in snapshots -------------------------------------------------------------


def test_bad_values_in_fields_never_break_the_program_or_the_snapshot(
    recorder: Recorder,
) -> None:
    # safe mode (the default) never calls them: each shows its type
    fields = one_event_fields(bad=RaisingRepr(), worse=RaisingEverything(), big=HugeRepr())
    assert fields == {"bad": "<RaisingRepr>", "worse": "<RaisingEverything>", "big": "<HugeRepr>"}


def test_bad_values_in_repr_mode_are_guarded_and_bounded(
    start_recording: Callable[..., Recorder],
) -> None:
    start_recording(values="repr")
    fields = one_event_fields(bad=RaisingRepr(), worse=RaisingEverything(), big=HugeRepr())
    assert fields["bad"] == "<RaisingRepr repr raised ValueError: repr is broken>"
    assert "repr raised RaisingEverything.Broken" in fields["worse"]
    assert fields["big"].endswith("chars]") and len(fields["big"]) < 600


@pytest.mark.parametrize("other", [{}, {"flag": True}, {"text": "t"}, {"obj": [1]}])
def test_integers_beyond_64_bits_become_text_whatever_else_the_event_holds(
    recorder: Recorder, other: dict[str, Any]
) -> None:
    fields = one_event_fields(big=2**64, fits=2**64 - 1, neg=-(2**64), **other)
    assert fields["big"] == str(2**64) and fields["neg"] == str(-(2**64))
    assert fields["fits"] == 2**64 - 1 and type(fields["fits"]) is int


def test_max_field_chars_bounds_every_value(start_recording: Callable[..., Recorder]) -> None:
    start_recording(max_field_chars=20)
    fields = one_event_fields(text="z" * 50, items=list(range(100)), ok="short")
    assert fields["text"] == "z" * 20 + "…[+30 chars]"
    assert fields["items"] == "[0, 1, 2, 3, … +96]"  # as many items as fit, and the count left
    assert fields["ok"] == "short"


def test_mutable_values_show_their_state_at_the_event(recorder: Recorder) -> None:
    # captured when recorded: what changes afterwards is not what happened then
    items = [1]
    instrument.event("e", items=items, frozen=list(items))
    items.append(2)
    (ev,) = instrument.snapshot().events
    assert ev.fields == {"items": "[1]", "frozen": "[1]"}


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "db_password",
        "PASSWORD",
        "api_key",
        "apiKey",
        "x-api-key",
        "auth_token",
        "session_id",
        "Authorization",
        "cookie",
        "private_key",
        "credentials",
        "client_secret",
    ],
)
def test_credential_like_names_are_redacted_by_default(recorder: Recorder, name: str) -> None:
    assert one_event_fields(**{name: "s3cr3t", "user": "ann"}) == {name: REDACTED, "user": "ann"}


def test_custom_redaction_replaces_the_defaults(start_recording: Callable[..., Recorder]) -> None:
    start_recording(redact=["ssn", "card"])
    fields = one_event_fields(ssn="123", credit_card="4111", password="pw", name="ann")
    assert fields == {"ssn": REDACTED, "credit_card": REDACTED, "password": "pw", "name": "ann"}


def test_a_single_fragment_string_is_one_fragment(start_recording: Callable[..., Recorder]) -> None:
    start_recording(redact="ssn")
    assert one_event_fields(ssn="1", name="ann") == {"ssn": REDACTED, "name": "ann"}


def test_redaction_off_shows_everything(start_recording: Callable[..., Recorder]) -> None:
    start_recording(redact=False)
    assert one_event_fields(password="pw", token=1) == {"password": "pw", "token": 1}


def test_redaction_applies_to_traced_arguments_and_return_dicts(recorder: Recorder) -> None:
    @instrument.trace(name="auth", fields="*", retval=True)
    def auth(user: str, token: str) -> str:
        return "ok"

    auth("ann", token="t0k3n")
    entry, exit_ = instrument.snapshot().events
    assert entry.fields == {"user": "ann", "token": REDACTED}
    assert exit_.fields["retval"] == "ok"


def test_redactor_decisions() -> None:
    redactor = Redactor(["Secret", "api-key"])
    assert redactor.hides("my_secret") and redactor.hides("SECRET")
    assert redactor.hides("X-Api-Key") and redactor.hides("api_key")
    assert not redactor.hides("public")
    assert not Redactor(()).hides("password")
    assert not Redactor(None).hides("password")


# -- a snapshot converts exactly as plain_value does, however it gets there ----

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**64 - 1, 2**64, -(2**64) + 1, -(2**64)]),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
values = st.one_of(
    scalars,
    st.lists(st.integers(), max_size=3),
    st.binary(max_size=5),
    st.builds(RaisingRepr),
)
names = st.sampled_from(["a", "b", "count", "token", "user", "session", "x"])
field_dicts = st.dictionaries(names, values, max_size=4)
# a record's stored fields: no fields, an event's fields, or an exit's entry stamp
stored = st.one_of(st.none(), field_dicts, st.just("exit"))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(stream=st.lists(stored, max_size=30), limit=st.sampled_from([16, 30, 512]))
@example(stream=[{"a": 2**64}, {"a": 1}], limit=512)
@example(stream=[{"a": "x" * 17}, "exit", None], limit=16)
@example(stream=[{"token": 1}, {"a": 1.5}], limit=16)
def test_snapshot_fields_equal_plain_value_of_each_field(stream: list[Any], limit: int) -> None:
    rec = instrument.start([Channel("c", subbuf_size=64, num_subbuf=2)], max_field_chars=limit)
    try:
        expected = []
        redactor = Redactor()
        for item in stream:
            if item == "exit":
                with instrument.span("s"):
                    pass
                expected += [{}, "duration"]
            elif item is None:
                instrument.event("e")
                expected.append({})
            else:
                instrument.event("e", **item)
                expected.append(redactor.plain_fields(item, limit))
        snap = instrument.snapshot(recorder=rec)
    finally:
        instrument.stop()
    got = [ev.fields for ev in snap.events]
    assert len(got) == len(expected)
    for fields, want in zip(got, expected, strict=True):
        if want == "duration":
            assert list(fields) == ["duration_ns"] and fields["duration_ns"] >= 0
        else:
            assert fields == want
            assert [type(v) for v in fields.values()] == [type(v) for v in want.values()]


# -- containers of plain items: their C reprs, as the renderer would show them ------

plain_items = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.sampled_from([2**64 - 1, 2**64, -(2**64), -(2**64) + 1]),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["a=b", "user@host", "x" * 600, "password"]),
    st.complex_numbers(allow_nan=False),
)
containers = st.sampled_from([list, tuple, set, frozenset, deque])


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(plain_items, max_size=400),
    kind=containers,
    limit=st.sampled_from([8, 30, 64, 100, 512]),
    nesting=st.integers(min_value=0, max_value=3),
    redact=st.booleans(),
)
def test_containers_of_plain_items_show_what_item_by_item_rendering_shows(
    items: list[Any], kind: Any, limit: int, nesting: int, redact: bool
) -> None:
    """A container whose items are all plain is shown from their own C
    reprs, checked on whole columns: the text must be the one rendering
    each item gives (at every depth, redaction on and off)."""
    try:
        value: Any = kind(items)
    except TypeError:  # unhashable in a set: nothing to compare
        return
    for _ in range(nesting):
        value = [value]
    capturer = Capturer(limit, "safe", Redactor() if redact else Redactor(()))
    fast = capturer.value(value)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(values_module, "_shown_as_repr", lambda *args: False)
        slow = capturer.value(value)
    assert fast == slow
