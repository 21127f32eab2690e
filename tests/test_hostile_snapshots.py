"""Hostile snapshot files: every bad input is a ``SnapshotFileError`` from
``Snapshot.load`` and the one-line bad-input error (exit 1) from
``ringtrace``, never an internal error. Table-driven cases from the issue
(huge integers, a sub-buffer size of 0, lone surrogates...), then a
hypothesis fuzz that replaces any value of a real snapshot file."""

from __future__ import annotations

import copy
import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import instrument
from instrument import Snapshot, SnapshotFileError
from instrument.formats import write_snapshot
from instrument.view import cli

HUGE = 10**400


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    instrument.start()
    try:
        for i in range(3):
            instrument.event("tick", i=i, text="t")
        with instrument.span("work", n=1):
            pass
        snap = instrument.snapshot()
    finally:
        instrument.stop()
    path = write_snapshot(snap, tmp_path_factory.mktemp("doc") / "base", "json")
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def mutate(doc: dict[str, Any], where: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    target = out
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    return out


def save(path: Path, doc: Any) -> Path:
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if limit:
        sys.set_int_max_str_digits(0)
    try:
        path.write_text(json.dumps(doc), encoding="utf-8")
    finally:
        if limit:
            sys.set_int_max_str_digits(limit)
    return path


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


def assert_every_command_copes(path: Path, tmp: Path) -> None:
    """Each command either works or gives the one-line bad-input error."""
    for args in (
        ["show", str(path), "--color", "always"],
        ["show", str(path), "--clock", "wall"],
        ["stats", str(path)],
        ["convert", str(path), "--to", "ctf", "-o", str(tmp / "o")],
        ["convert", str(path), "--to", "html", "-o", str(tmp / "o")],
        ["convert", str(path), "--to", "perfetto", "-o", str(tmp / "o")],
    ):
        code, _out, err = run(*args)
        assert code in (0, 1), (args, err)
        assert "internal error" not in err and "Traceback" not in err, (args, err)
        if code:
            assert len(err.splitlines()) == 1, err


BAD = {
    "huge taken_at": (["taken_at"], HUGE),
    "huge clock offset": (["clock_offset_ns"], HUGE),
    "wall clock past 2262": (["clock_offset_ns"], 2**63 - 1),
    "negative taken_at": (["taken_at"], -5),
    "huge pid": (["pid"], HUGE),
    "huge timestamp": (["events", 0, 0], HUGE),
    "negative timestamp": (["events", 0, 0], -1),
    "huge thread id": (["events", 0, 3], 2**64),
    "huge position": (["events", 0, 8], HUGE),
    "sub-buffer size 0": (["streams", 0, "subbuf_size"], 0),
    "negative sub-buffer size": (["streams", 0, "subbuf_size"], -4),
    "huge sub-buffer size": (["streams", 0, "subbuf_size"], HUGE),
    "no sub-buffers": (["streams", 0, "num_subbuf"], 0),
    "huge produced": (["streams", 0, "produced"], HUGE),
    "negative produced": (["streams", 0, "produced"], -3),
    "huge gap": (["streams", 0, "gaps"], [[0, HUGE]]),
    "reversed gap": (["streams", 0, "gaps"], [[10, 2]]),
    "huge overwritten": (["streams", 0, "overwritten"], HUGE),
    "negative stream thread id": (["streams", 0, "thread_id"], -1),
    "huge since": (["since"], HUGE),
    "float timestamp": (["events", 0, 0], 1.5),
    "bool timestamp": (["events", 0, 0], True),
    "unknown kind": (["events", 0, 2], "bogus"),
    "string as fields": (["events", 0, 5], "x"),
    "streams not a list": (["streams"], {"a": 1}),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_values_are_bad_input(document: dict[str, Any], tmp_path: Path, case: str) -> None:
    where, value = BAD[case]
    path = save(tmp_path / "bad.json", mutate(document, where, value))
    with pytest.raises(SnapshotFileError, match="invalid ringtrace snapshot"):
        Snapshot.load(path)
    code, out, err = run("show", str(path))
    assert code == 1 and out == ""
    assert err.startswith(f"ringtrace: {path}: invalid ringtrace snapshot")
    assert err.count("\n") == 1 and "internal error" not in err


GOOD = {
    "lone surrogate in a name": (["events", 0, 1], "tick\ud800"),
    "lone surrogate in a thread name": (["events", 0, 4], "\udfff"),
    "lone surrogate in a field": (["events", 0, 5], {"\ud800": "\udc00"}),
    "lone surrogate in metadata": (["metadata"], {"\ud800": ["\udc00"]}),
    "lone surrogate in a channel": (["streams", 0, "channel"], "\ud800"),
    "huge field value": (["events", 0, 5], {"n": HUGE}),
    "control characters": (["events", 0, 1], "\x1b]52;c;eA==\x07"),
    "many sub-buffers skipped": (["streams", 0, "gaps"], [[0, 10**12]]),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_odd_but_valid_values_load_and_every_command_copes(
    document: dict[str, Any], tmp_path: Path, case: str
) -> None:
    where, value = GOOD[case]
    path = save(tmp_path / "odd.json", mutate(document, where, value))
    Snapshot.load(path)
    assert_every_command_copes(path, tmp_path)


def leaves(doc: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``doc`` a value can be replaced at."""
    if isinstance(doc, dict):
        inner = [p for k, v in doc.items() for p in leaves(v, (*at, k))]
    elif isinstance(doc, list):
        inner = [p for i, v in enumerate(doc) for p in leaves(v, (*at, i))]
    else:
        inner = []
    return inner + ([at] if at else [])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_fuzz_any_value_replaced(
    document: dict[str, Any], tmp_path: Path, data: st.DataObject
) -> None:
    where = data.draw(st.sampled_from(leaves(document)))
    value = data.draw(json_values)
    path = save(tmp_path / "fuzz.json", mutate(document, list(where), value))
    try:
        Snapshot.load(path)
    except SnapshotFileError:
        code, _out, err = run("stats", str(path))
        assert code == 1 and err.count("\n") == 1 and "internal error" not in err, err
        return
    assert_every_command_copes(path, tmp_path)
