"""Nothing hostile reaches a terminal: control characters, escape sequences
(clear-screen, an OSC 52 clipboard write), bare carriage returns, C1
controls, bidi overrides and lone surrogates in thread names, event names,
field values, context, metadata and exception messages are escaped in
``ringtrace show``, ``ringtrace stats`` and the pytest section, as pytest
escapes non-printable characters in test ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from snapshot_builders import stream_info

from instrument import Event, Snapshot
from instrument.formats import write_snapshot
from instrument.view import cli
from instrument.view.render import printable

pytest_plugins = ["pytester"]

# Everything a terminal may act on, in one place (the attacker's toolbox).
OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
CLEAR = "\x1b[2J\x1b[H"
HOSTILE = OSC52 + CLEAR + "\rfake\x00\x7f\x9b31m\x9d0;t\x9c\u202eevil\u2066\u2028\ud800"

#: Any character that must never reach a terminal raw.
UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff]"
)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("a\rb", "a\\rb"),
        ("a\nb\tc", "a\\nb\\tc"),
        ("\x00\x07\x7f", "\\x00\\x07\\x7f"),
        ("\x9b\x9d", "\\x9b\\x9d"),
        ("\u202eabc\u2069", "\\u202eabc\\u2069"),
        ("\u061c\u200e\u200f\u2028\u2029", "\\u061c\\u200e\\u200f\\u2028\\u2029"),
        ("\ud800x", "\\ud800x"),
        ("café ÿ 日本 🙂", "café ÿ 日本 🙂"),
        ("C:\\path", "C:\\path"),
    ],
)
def test_printable_escapes_what_a_terminal_acts_on(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(shown) == shown  # idempotent: escaping twice changes nothing


def test_printable_leaves_nothing_unsafe() -> None:
    every = "".join(map(chr, range(0x0, 0x3000))) + "\ud800\udfff"
    out = printable(every)
    assert UNSAFE.search(out) is None
    assert "\n" not in out and "\t" not in out
    out.encode("utf-8")  # no lone surrogate left


def hostile_snapshot() -> Snapshot:
    tid = 7
    name = "thr" + HOSTILE
    fields = {
        "value": "v" + HOSTILE,
        "key" + CLEAR: 1,
        "nested": {"k" + OSC52: ["x" + CLEAR]},
    }
    events = [
        Event(
            100,
            "ev" + HOSTILE,
            "entry",
            tid,
            name,
            fields,
            {"pid": 42, "req" + CLEAR: "r" + OSC52},
            "main" + CLEAR,
            0,
        ),
        Event(200, "point" + HOSTILE, "event", tid, name, fields, {"pid": 42}, "main" + CLEAR, 1),
        Event(
            300,
            "ev" + HOSTILE,
            "exit",
            tid,
            name,
            {"duration_ns": 200, "exception": "Err" + CLEAR, "message": "boom" + HOSTILE},
            {"pid": 42},
            "main" + CLEAR,
            2,
        ),
    ]
    info = stream_info(
        tid,
        4,
        thread_name=name,
        channel="main" + CLEAR,
        produced=3,
        first_position=0,
        last_position=2,
    )
    return Snapshot(
        events,
        [info],
        clock_offset_ns=0,
        taken_at=400,
        pid=42,
        metadata={
            "trigger" + CLEAR: "exception" + OSC52,
            "exception": {"type": "E" + CLEAR, "message": "m" + HOSTILE},
        },
    )


@pytest.fixture
def hostile_file(tmp_path: Path) -> Path:
    return write_snapshot(hostile_snapshot(), tmp_path / ("snap" + "\x1b[2J"), "json")


@pytest.mark.parametrize(
    "args",
    [
        ["show", "--color", "never"],
        ["show", "--color", "always"],
        ["show", "--clock", "wall"],
        ["stats", "--color", "never"],
        ["stats", "--color", "always"],
    ],
)
def test_ringtrace_command_escapes_everything(
    hostile_file: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main([args[0], str(hostile_file), *args[1:]])
    out, err = capsys.readouterr()
    assert code == 0, err
    # our own colours are the only escape sequences allowed
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out) if "always" in args else out
    assert UNSAFE.search(plain) is None, plain
    assert "\x1b" not in plain and "\r" not in plain
    # the hostile text is shown, escaped, not dropped
    assert "\\x1b]52;c;ZWNobyBwd25lZA==\\x07" in plain
    assert "\\u202eevil" in plain


def test_thread_error_listing_escapes(
    hostile_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["show", str(hostile_file), "--thread", "nope"])
    _out, err = capsys.readouterr()
    assert code == 2
    assert UNSAFE.search(err.rstrip("\n")) is None, err
    assert "thr\\x1b]52" in err


def test_pytest_section_escapes_everything(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import threading
        import instrument

        HOSTILE = {HOSTILE!r}

        def test_fails():
            def work():
                instrument.event("ev", value="v" + HOSTILE, **{{"k" + HOSTILE: 1}})
            t = threading.Thread(target=work, name="thr" + HOSTILE)
            t.start()
            t.join()
            with instrument.span("span", note=HOSTILE):
                instrument.event("point", obj=HOSTILE.encode("utf-8", "surrogatepass"))
            raise ValueError("boom" + HOSTILE)
        """
    )
    for view in ("tree", "flat"):
        result = pytester.runpytest(
            "--ringtrace", f"--ringtrace-view={view}", "--color=no", "-p", "no:cacheprovider"
        )
        result.assert_outcomes(failed=1)
        lines = result.outlines
        start = next(i for i, line in enumerate(lines) if "ringtrace call" in line)
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(("===", "---")))
        section = lines[start + 1 : end]
        assert any("boom\\x1b]52" in line for line in section), section  # the failure
        assert any("note=" in line and "\\x1b]52" in line for line in section), section
        for line in section:
            assert UNSAFE.search(line) is None, line
    assert any("v\\x1b]52" in line for line in section), section
    assert any("thr\\x1b]52" in line for line in section), section
    for line in section:
        assert UNSAFE.search(line) is None, line
    summary = lines[end:]
    for line in summary:
        if "ringtrace" in line:
            assert UNSAFE.search(line) is None, line
