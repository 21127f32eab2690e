"""The pytest plugin, loaded through the ``pytest11`` entry point.

This module is imported by every pytest run once the package is installed,
so it stays light: it registers the options, the marker, our hooks and the
``ringtrace`` fixture, checks the settings, and only when the flight
recorder is on (``--ringtrace`` or ini ``ringtrace = true``) imports the
recording kit and registers the session plugin
(:class:`pytest_ringtrace.session.RingtracePlugin`) that does the work.

It has no assertions for pytest to rewrite: PYTEST_DONT_REWRITE, which also
keeps pytest from warning when it was imported before a (nested) session.
"""

from __future__ import annotations

import pytest

from . import hooks
from .fixture import begin_phase, end_test, ringtrace
from .marker import MARKER_HELP
from .options import add_options, check_formats, read_settings
from .state import PLUGIN_NAME, SETTINGS
from .warning import PytestRingtraceWarning

__all__ = ["PytestRingtraceWarning", "ringtrace"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    settings = read_settings(config)
    config.stash[SETTINGS] = settings
    if not settings.enabled:
        return
    check_formats(settings)
    from .session import RingtracePlugin
    from .timeout import TimeoutSnapshots

    plugin = RingtracePlugin(config, settings)
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    if config.pluginmanager.has_plugin("timeout"):
        config.pluginmanager.register(TimeoutSnapshots(plugin), "ringtrace-timeout")


# The ``ringtrace`` fixture records from the start of its test's setup to the
# end of its teardown, with or without --ringtrace; tests that do not use it
# pay one membership test per phase.


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if "ringtrace" in getattr(item, "fixturenames", ()):
        begin_phase(item, "setup")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    if "ringtrace" in getattr(item, "fixturenames", ()):
        begin_phase(item, "call")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if "ringtrace" in getattr(item, "fixturenames", ()):
        begin_phase(item, "teardown")


@pytest.hookimpl(trylast=True, specname="pytest_runtest_teardown")
def pytest_runtest_teardown_last(item: pytest.Item) -> None:
    if "ringtrace" in getattr(item, "fixturenames", ()):
        end_test(item)
