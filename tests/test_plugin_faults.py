"""The plugin never ends a session nor changes an outcome.

Faults are injected where the plugin works on a failure: the snapshot
itself, the file writers, a hook called with the result, and a field value's
``__repr__``. Each raises a ``BaseException`` (``SystemExit``,
``KeyboardInterrupt``, ``GeneratorExit``, pytest-timeout's ``Failed``): the
failing test keeps its own outcome, the snapshot is dropped with a warning,
and the next test still runs. A Ctrl-C the user really pressed still stops
the run, as pytest does. Plus the usage errors of the options.
"""

from __future__ import annotations

import pytest
from plugin_helpers import FAST

import instrument

pytest_plugins = ["pytester"]

TESTS = """
import instrument


def test_fails():
    instrument.event("before.failure", n=1)
    assert 1 == 2, "the test's own failure"


def test_after():
    instrument.event("later", n=2)
"""

BASE_EXCEPTIONS = ["SystemExit(3)", "KeyboardInterrupt()", "GeneratorExit()"]


def assert_survived(result: pytest.RunResult, warned: bool = True) -> None:
    out = result.stdout.str()
    assert "INTERNALERROR" not in out + result.stderr.str(), out
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*AssertionError: the test's own failure*"])
    if warned:
        result.stdout.fnmatch_lines(["*PytestRingtraceWarning*snapshot at call failed*"])


@pytest.mark.parametrize("exc", BASE_EXCEPTIONS)
def test_base_exception_from_the_snapshot(pytester: pytest.Pytester, exc: str) -> None:
    pytester.makeconftest(
        f"""
        import instrument

        def snapshot(*args, **kwargs):
            raise {exc}

        instrument.snapshot = snapshot
        """
    )
    pytester.makepyfile(TESTS)
    # a subprocess: the conftest replaces instrument.snapshot for good
    assert_survived(pytester.runpytest_subprocess("--ringtrace", *FAST))


@pytest.mark.parametrize("exc", BASE_EXCEPTIONS)
def test_base_exception_from_a_format_writer(pytester: pytest.Pytester, exc: str) -> None:
    pytester.makeconftest(
        f"""
        from instrument import plugins
        from instrument.formats import Format

        def write(snapshot, out):
            out.write(b"partial")
            raise {exc}

        class Bad:
            @plugins.hookimpl
            def ringtrace_formats(self):
                return [Format("bad", ".bad", write)]

        plugins.register(Bad(), "bad-format")
        """
    )
    pytester.makepyfile(TESTS)
    # a subprocess: kit plugins are registered for the life of the process
    result = pytester.runpytest_subprocess("--ringtrace", *FAST, "--ringtrace-formats=bad,json")
    assert_survived(result)
    assert not list(pytester.path.glob(".ringtrace/*.bad"))  # nothing half-written is left


@pytest.mark.parametrize("exc", BASE_EXCEPTIONS)
def test_base_exception_from_a_field_repr(pytester: pytest.Pytester, exc: str) -> None:
    # The repr raises only once the test is failing, so whenever the value
    # is converted after that (at the snapshot, or in any file writer), it
    # raises there; converted earlier, it never raises. Either way the
    # outcome and the session must be untouched.
    pytester.makepyfile(
        f"""
        import instrument

        ARMED = []


        class Bomb:
            def __repr__(self):
                if ARMED:
                    raise {exc}
                return "Bomb()"

            __str__ = __repr__


        def test_fails():
            instrument.event("bomb", value=Bomb(), nested=[Bomb()])
            ARMED.append(1)
            assert 1 == 2, "the test's own failure"


        def test_after():
            instrument.event("later", n=2)
        """
    )
    result = pytester.runpytest("--ringtrace", *FAST, "--ringtrace-formats=json,html,ctf")
    assert_survived(result, warned=False)


def test_pytest_timeout_fires_inside_the_snapshot(pytester: pytest.Pytester) -> None:
    # pytest-timeout's signal method raises its Failed (a BaseException) from
    # SIGALRM wherever the main thread is: here, inside the plugin's work.
    pytester.makeconftest(
        """
        import time

        def pytest_ringtrace_snapshot(snapshot, item, report, paths):
            time.sleep(30)
        """
    )
    pytester.makepyfile(
        """
        import pytest
        import instrument


        @pytest.mark.timeout(1, method="signal")
        def test_fails():
            instrument.event("before.failure", n=1)
            assert 1 == 2, "the test's own failure"


        def test_after():
            instrument.event("later", n=2)
        """
    )
    result = pytester.runpytest_subprocess("--ringtrace", *FAST)
    assert_survived(result, warned=False)
    result.stdout.fnmatch_lines(["*PytestRingtraceWarning*Failed: Timeout*"])


def test_a_real_ctrl_c_still_stops_the_run(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import os
        import signal
        import time

        def pytest_ringtrace_snapshot(snapshot, item, report, paths):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        """
    )
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("--ringtrace", *FAST)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0  # test_after never ran


def test_a_real_ctrl_c_swallowed_inside_still_stops_the_run(pytester: pytest.Pytester) -> None:
    # a hook that catches the KeyboardInterrupt cannot hide the user's Ctrl-C
    pytester.makeconftest(
        """
        import os
        import signal
        import time

        def pytest_ringtrace_snapshot(snapshot, item, report, paths):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:
                pass
        """
    )
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("--ringtrace", *FAST)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert result.parseoutcomes().get("passed", 0) == 0


@pytest.mark.parametrize("package", ["instrument", "instrument.view", "pytest_ringtrace", "wrapt"])
def test_tracing_the_recorder_itself_is_a_usage_error(
    pytester: pytest.Pytester, package: str
) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--ringtrace", f"--ringtrace-instrument={package}", *FAST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--ringtrace-instrument*{package!r}*part of the recorder*"])


def test_patch_module_refuses_the_recorder_itself() -> None:
    with pytest.raises(ValueError, match="would trace itself"):
        instrument.patch_module("instrument")
    with pytest.raises(ValueError, match="would trace itself"):
        instrument.patch_module("pytest_ringtrace.session")


@pytest.mark.parametrize(
    "option",
    ["--ringtrace-window=", "--ringtrace-window= ", "--ringtrace-instrument=", "--ringtrace-tail="],
)
def test_an_empty_option_is_a_usage_error(pytester: pytest.Pytester, option: str) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--ringtrace", option, *FAST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected a value, got an empty one*"])


def test_a_package_never_imported_is_warned_about(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--ringtrace", "--ringtrace-instrument=no_such_pkg", *FAST)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*'no_such_pkg' was never imported*"])
    # an imported one is not
    result = pytester.runpytest("--ringtrace", "--ringtrace-instrument=json", *FAST)
    assert "never imported" not in result.stdout.str()


def test_a_missing_package_is_warned_about_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "--ringtrace", "--ringtrace-instrument=no_such_pkg", *FAST, "-n", "1"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*'no_such_pkg' was never imported*"])
