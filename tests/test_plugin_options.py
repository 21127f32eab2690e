"""Options of the pytest plugin: command line, ini equivalents, usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from plugin_helpers import FAST, artifact_files, make_app

from pytest_ringtrace.options import Settings
from pytest_ringtrace.state import PLUGIN_NAME, SETTINGS


def _settings(pytester: pytest.Pytester, *args: str) -> Settings:
    config = pytester.parseconfigure(*args)
    return config.stash[SETTINGS]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ringtrace-tail=abc"], "--ringtrace-tail: expected a whole number, got 'abc'"),
        (["--ringtrace-tail=-1"], "--ringtrace-tail: expected a whole number between 0 and"),
        (["--ringtrace-window=all"], "--ringtrace-window: expected 'test' or 'session', got 'all'"),
        (
            ["--ringtrace-subbuf-size=1000"],
            "--ringtrace-subbuf-size: expected a power of two between 2 and 1048576, got 1000",
        ),
        (["--ringtrace-num-subbuf=1"], "--ringtrace-num-subbuf: expected a power of two between 2"),
        (
            ["--ringtrace-subbuf-size=1048576", "--ringtrace-num-subbuf=64"],
            "ring size: sub-buffer size x number of sub-buffers = 1048576 x 64",
        ),
        (["--ringtrace-max-dead-streams=x"], "--ringtrace-max-dead-streams: expected a whole"),
        (
            ["--ringtrace-instrument", "my-app"],
            "--ringtrace-instrument: expected a dotted package name such as 'myapp.orders', "
            "got 'my-app'",
        ),
        (
            ["--ringtrace", "--ringtrace-formats=json,pdf"],
            "--ringtrace-formats: unknown snapshot format(s) 'pdf'; known: json",
        ),
        (["--ringtrace-formats=,"], "--ringtrace-formats: name at least one snapshot format"),
    ],
)
def test_bad_values_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str):
    with pytest.raises(pytest.UsageError) as excinfo:
        pytester.parseconfigure(*args)
    assert str(excinfo.value).startswith(message)


def test_usage_error_ends_the_run_with_the_message(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--ringtrace", "--ringtrace-window=forever")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --ringtrace-window: expected 'test' or 'session', got 'forever'"]
    )


def test_bad_ini_value_names_the_ini_option(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\nringtrace_tail = lots\n")
    with pytest.raises(pytest.UsageError, match=r"^ini option ringtrace_tail: expected a whole"):
        pytester.parseconfigure()


def test_numeric_ini_value_of_the_wrong_type_in_pyproject_names_the_option(
    pytester: pytest.Pytester,
):
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nringtrace_num_subbuf = "many"\n')
    with pytest.raises(pytest.UsageError, match=r"^ini option ringtrace_num_subbuf: expected"):
        pytester.parseconfigure()


def test_dir_that_is_a_file_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makefile(".txt", snaps="not a directory")
    with pytest.raises(pytest.UsageError, match=r"snaps.txt exists and is not a directory"):
        pytester.parseconfigure("--ringtrace-dir=snaps.txt")


def test_defaults(pytester: pytest.Pytester):
    settings = _settings(pytester)
    assert settings == Settings(
        enabled=False,
        directory=Path(pytester.path, ".ringtrace"),
        tail=20,
        instrument=(),
        window="test",
        subbuf_size=4096,
        num_subbuf=16,
        max_dead_streams=64,
        formats=("json", "html"),
        formats_given=False,
        formats_where="ini option ringtrace_formats",
        xfail=False,
    )


def test_every_option_on_the_command_line(pytester: pytest.Pytester):
    settings = _settings(
        pytester,
        "--ringtrace",
        "--ringtrace-dir=out",
        "--ringtrace-tail=5",
        "--ringtrace-instrument=pkg_a",
        "--ringtrace-instrument",
        "pkg_b.sub",
        "--ringtrace-window=session",
        "--ringtrace-subbuf-size=128",
        "--ringtrace-num-subbuf=8",
        "--ringtrace-max-dead-streams=3",
        "--ringtrace-formats=json,perfetto",
        "--ringtrace-formats=ctf",
        "--ringtrace-xfail",
        "--ringtrace-log-level=info",
        "--ringtrace-engine=wrapt",
    )
    assert settings == Settings(
        enabled=True,
        directory=Path(pytester.path, "out"),
        tail=5,
        instrument=("pkg_a", "pkg_b.sub"),
        window="session",
        subbuf_size=128,
        num_subbuf=8,
        max_dead_streams=3,
        formats=("json", "perfetto", "ctf"),
        formats_given=True,
        formats_where="--ringtrace-formats",
        xfail=True,
        log_level="INFO",
        engine="wrapt",
    )


def test_every_option_in_pyproject(pytester: pytest.Pytester):
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        ringtrace = true
        ringtrace_dir = "artifacts/rt"
        ringtrace_tail = 7
        ringtrace_instrument = ["pkg_a", "pkg_b"]
        ringtrace_window = "session"
        ringtrace_subbuf_size = 256
        ringtrace_num_subbuf = 4
        ringtrace_max_dead_streams = 9
        ringtrace_formats = ["json", "html"]
        ringtrace_xfail = true
        ringtrace_log_level = "off"
        ringtrace_engine = "Sysmon"
        """
    )
    settings = _settings(pytester)
    assert settings == Settings(
        enabled=True,
        directory=Path(pytester.path, "artifacts/rt"),
        tail=7,
        instrument=("pkg_a", "pkg_b"),
        window="session",
        subbuf_size=256,
        num_subbuf=4,
        max_dead_streams=9,
        formats=("json", "html"),
        formats_given=True,
        formats_where="ini option ringtrace_formats",
        xfail=True,
        log_level=None,
        engine="sysmon",
    )


def test_command_line_wins_over_ini(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\nringtrace_tail = 7\nringtrace_window = session\n")
    settings = _settings(pytester, "--ringtrace-tail=3")
    assert (settings.tail, settings.window) == (3, "session")


def test_ini_switches_the_recorder_on(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makeini("[pytest]\nringtrace = true\n")
    pytester.makepyfile("from app import step\ndef test_x():\n    step(1)\n    assert 0\n")
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(failed=1)
    assert "- ringtrace call -" in result.stdout.str()
    assert len(artifact_files(pytester)) == 1


def test_session_plugin_registered_only_when_on(pytester: pytest.Pytester):
    assert pytester.parseconfigure().pluginmanager.get_plugin(PLUGIN_NAME) is None
    assert pytester.parseconfigure("--ringtrace").pluginmanager.get_plugin(PLUGIN_NAME) is not None


def test_help_lists_every_option(pytester: pytest.Pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["flight recorder: snapshot the trace rings on failure:"])
    text = result.stdout.str()
    for option in (
        "--ringtrace ",
        "--ringtrace-dir=DIR",
        "--ringtrace-tail=N",
        "--ringtrace-instrument=PKG",
        "--ringtrace-window=test|session",
        "--ringtrace-subbuf-size=EVENTS",
        "--ringtrace-num-subbuf=N",
        "--ringtrace-max-dead-streams=N",
        "--ringtrace-formats=FMT[,FMT]",
        "--ringtrace-xfail",
        "--ringtrace-junit-paths=absolute|rootdir",
    ):
        assert option in text, option
    for ini in (
        "ringtrace (bool)",
        "ringtrace_dir (string)",
        "ringtrace_tail (int)",
        "ringtrace_instrument (linelist)",
        "ringtrace_window (string)",
        "ringtrace_subbuf_size (int)",
        "ringtrace_num_subbuf (int)",
        "ringtrace_max_dead_streams (int)",
        "ringtrace_formats (args)",
        "ringtrace_xfail (bool)",
        "ringtrace_retention_count (int)",
        "ringtrace_junit_paths (string)",
    ):
        assert ini in text, ini


def test_marker_is_registered(pytester: pytest.Pytester):
    pytester.makepyfile(
        "import pytest\n@pytest.mark.ringtrace(always=True)\ndef test_x():\n    pass\n"
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)
    pytester.runpytest("--markers").stdout.fnmatch_lines(["@pytest.mark.ringtrace(always=False*"])


def test_plugin_module_does_not_import_the_kit_when_off():
    # every pytest run imports the plugin; only --ringtrace pays for the kit
    code = "import sys, pytest_ringtrace.plugin; print('instrument' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
