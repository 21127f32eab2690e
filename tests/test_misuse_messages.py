"""Every mistake gets the right message, and nothing reaches a file it must
not: ``dump_on`` arguments given as single strings, prefixes with directory
parts, a directory that is a file, directories created owner-only whatever
the umask, temporary files of killed writers cleaned up, a full disk
reported as ``OSError``, and the ``RINGTRACE`` switch's spellings."""

from __future__ import annotations

import errno
import gc
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import instrument
from instrument import control
from instrument import formats as formats_module
from instrument.formats import FormatError

pytest_plugins = ["pytester"]


@pytest.fixture
def recording() -> Iterator[None]:
    instrument.start()
    instrument.event("tick", i=1)
    try:
        yield
    finally:
        instrument.dump_off()
        instrument.stop()


@pytest.fixture
def no_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- dump_on arguments ----------------------------------------------------------


def test_dump_on_takes_one_format_as_a_string(recording: None, tmp_path: Path) -> None:
    triggers = instrument.dump_on(formats="json.gz", directory=tmp_path)
    assert triggers.formats == ("json.gz",)
    (path,) = triggers.fire("exception", {})
    assert path.name.endswith(".json.gz")
    with pytest.raises(ValueError, match="unknown snapshot format 'jsn'"):
        instrument.dump_on(formats="jsn", directory=tmp_path)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1")
@pytest.mark.parametrize("given", ["SIGUSR1", "USR1", "sigusr1", ["SIGUSR1", signal.SIGUSR1]])
def test_dump_on_takes_signal_names(recording: None, tmp_path: Path, given: Any) -> None:
    triggers = instrument.dump_on(signal=given, directory=tmp_path)
    assert list(triggers._prev_signals) == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) == triggers._signal_handler


def test_dump_on_names_a_bad_signal(recording: None, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown signal name 'SIGNOPE'"):
        instrument.dump_on(signal="SIGNOPE", directory=tmp_path)
    with pytest.raises(TypeError, match=r"signal number or name, got 1\.5"):
        instrument.dump_on(signal=1.5, directory=tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["../x", "a/b", "/abs", ".hidden", "", "a\\b", "x\x00y"])
def test_dump_on_refuses_a_prefix_with_directory_parts(
    recording: None, tmp_path: Path, prefix: str
) -> None:
    with pytest.raises(ValueError, match="prefix"):
        instrument.dump_on(prefix=prefix, directory=tmp_path / "in")
    assert not (tmp_path / "in").exists() and list(tmp_path.iterdir()) == []


def test_dump_on_refuses_a_directory_that_is_a_file(recording: None, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        instrument.dump_on(directory=afile)
    assert afile.read_text() == "x"


# -- permissions --------------------------------------------------------------


def test_dump_creates_owner_only_directories_under_umask_000(
    recording: None, tmp_path: Path, no_umask: None
) -> None:
    path = instrument.dump(tmp_path / "a" / "b" / "c" / "now.json")
    for directory in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert mode(directory) == 0o700, directory
    assert mode(path) == 0o600
    trace = instrument.dump(tmp_path / "d" / "t", "ctf")
    assert mode(tmp_path / "d") == 0o700 and mode(trace) == 0o700


def test_dump_on_creates_its_directory_owner_only(
    recording: None, tmp_path: Path, no_umask: None
) -> None:
    triggers = instrument.dump_on(directory=tmp_path / "dumps" / "here")
    (path,) = triggers.fire("exception", {})
    assert mode(tmp_path / "dumps") == 0o700 and mode(tmp_path / "dumps" / "here") == 0o700
    assert mode(path) == 0o600


def test_plugin_directories_are_owner_only_under_umask_000(
    pytester: pytest.Pytester, no_umask: None
) -> None:
    pytester.makepyfile(
        "import instrument\ndef test_x():\n    instrument.event('e')\n    assert 0\n"
    )
    pytester.runpytest("--ringtrace", "-p", "no:cacheprovider").assert_outcomes(failed=1)
    files = [p for p in (pytester.path / ".ringtrace").rglob("*") if p.is_file()]
    assert files
    for path in (pytester.path / ".ringtrace").rglob("*"):
        assert mode(path) in (0o600, 0o700), path
    assert mode(pytester.path / ".ringtrace") == 0o700


def test_a_directory_in_the_way_is_an_error(recording: None, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        instrument.dump(tmp_path / "f" / "sub" / "now.json")


# -- temporary files of killed writers ---------------------------------------


def test_stale_temporaries_are_removed_by_the_next_write(recording: None, tmp_path: Path) -> None:
    old = time.time() - formats_module.STALE_TEMPORARY_SECONDS - 60
    stale_file = tmp_path / ".snap.json.4242-0123abcd.tmp"
    stale_file.write_bytes(b"x" * 1000)
    stale_dir = tmp_path / ".snap.ctf.4242-89abcdef.tmp"
    stale_dir.mkdir()
    (stale_dir / "metadata").write_text("/* CTF 1.8 */")
    fresh = tmp_path / ".other.json.4243-00000000.tmp"  # a writer at work right now
    fresh.write_bytes(b"y")
    unrelated = tmp_path / ".keep.tmp"
    unrelated.write_bytes(b"z")
    for path in (stale_file, stale_dir, unrelated):
        os.utime(path, (old, old))
    instrument.dump(tmp_path / "now.json")
    assert not stale_file.exists() and not stale_dir.exists()
    assert fresh.exists() and unrelated.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".other.json.4243-00000000.tmp", ".keep.tmp", "now.json"]
    )


# -- a full disk ----------------------------------------------------------------


class FullDisk:
    """A file that takes nothing: every write fails as on a full disk."""

    def __init__(self, real: Any):
        self.real = real

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def __enter__(self) -> FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.real.close()


# A file object a failed writer leaves open is finalized later, wherever the
# collector runs: its close (a flush into the full disk) raises there, or it
# warns that it was never closed. Both are errors here, in this test.
@pytest.mark.filterwarnings("error::ResourceWarning")
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("fmt", ["json", "json.gz", "html", "perfetto", "ctf"])
def test_out_of_space_is_an_oserror_not_a_format_error(
    recording: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    real = os.fdopen
    monkeypatch.setattr(formats_module.os, "fdopen", lambda *a, **k: FullDisk(real(*a, **k)))
    with pytest.raises(OSError) as info:
        instrument.dump(tmp_path / "now", fmt)
    assert not isinstance(info.value, FormatError)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
    del info  # its traceback holds the writer's frames
    gc.collect()  # what they left open is finalized now, inside this test


# -- RINGTRACE ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "on"),
    [
        *((v, True) for v in ("1", "true", "True", "YES", "on", "y", "enable", "enabled", " 1 ")),
        *((v, False) for v in ("", "0", "false", "no", "off", "n", "disable", "disabled", "  ")),
    ],
)
def test_ringtrace_switch_spellings(monkeypatch: pytest.MonkeyPatch, value: str, on: bool) -> None:
    monkeypatch.setenv("RINGTRACE", value)
    assert control.environment_switch("RINGTRACE") is on


@pytest.mark.parametrize("value", ["2", "maybe", "yes please", "-1"])
def test_ringtrace_switch_rejects_the_rest(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RINGTRACE", value)
    with pytest.raises(
        ValueError, match=re.escape(f"RINGTRACE={value!r}: expected one of 1, true")
    ):
        control.environment_switch("RINGTRACE")


def run_import(value: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RINGTRACE": value}
    code = "import instrument; print(instrument.recording())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_ringtrace_env_at_import() -> None:
    assert run_import("y").stdout.strip() == "True"
    assert run_import("off").stdout.strip() == "False"
    bad = run_import("2")
    assert bad.returncode != 0
    assert "RINGTRACE='2': expected one of 1, true" in bad.stderr


# -- pytest-html ------------------------------------------------------------------


@pytest.mark.parametrize("redact", [True, False])
def test_html_report_embeds_nothing_when_redaction_is_off(
    pytester: pytest.Pytester, redact: bool
) -> None:
    from test_plugin_integrations import _html_tests

    pytester.makeconftest(f"import instrument\ninstrument.start(redact={redact})\n")
    pytester.makepyfile(
        "import instrument\n"
        "def test_fails():\n"
        "    instrument.event('log' + 'in', password='hun' + 'ter2', user='an' + 'nie')\n"
        "    assert 0\n"
    )
    result = pytester.runpytest_subprocess(
        "--ringtrace", "-p", "no:cacheprovider", "--html=out.html", "--self-contained-html"
    )
    result.assert_outcomes(failed=1)
    (report,) = _html_tests(pytester.path / "out.html")[
        "test_html_report_embeds_nothing_when_redaction_is_off.py::test_fails"
    ]
    kinds = [e["format_type"] for e in report["extras"]]
    page = (pytester.path / "out.html").read_text(encoding="utf-8")
    if redact:
        assert kinds == ["text", "html", "url", "url"]
        assert "hunter2" not in page and "annie" in page  # redacted, embedded
    else:
        assert kinds == ["url", "url"]  # links to the 0600 files only
        # no text extra and no timeline (pytest-html still shows the terminal
        # section in its log, as it shows every captured section)
        assert "iframe" not in page
