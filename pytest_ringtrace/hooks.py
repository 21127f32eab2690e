"""Hooks the plugin publishes (through ``pytest_addhooks``) for other plugins.

Implement them in a ``conftest.py`` or a plugin::

    def pytest_ringtrace_snapshot(snapshot, item, report, paths):
        if paths:
            upload(paths["json"])
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from instrument import Channel, Snapshot


@pytest.hookspec(firstresult=True)
def pytest_ringtrace_channels(config: pytest.Config) -> list[Channel] | None:
    """The channels the session's recorder is started with.

    Return a list of :class:`instrument.Channel` to replace the single
    default channel sized by ``--ringtrace-subbuf-size`` and
    ``--ringtrace-num-subbuf`` (for example several channels taking
    different event globs). The first non-``None`` result is used.
    """


@pytest.hookspec
def pytest_ringtrace_snapshot(
    snapshot: Snapshot,
    item: pytest.Item,
    report: pytest.TestReport | None,
    paths: dict[str, Path],
) -> None:
    """Called with each snapshot the plugin takes, after its files are written.

    ``paths`` maps each format written to its file; it is empty when
    nothing was recorded. ``report`` is the report the snapshot is attached
    to, or ``None`` for the file written shortly before a pytest-timeout
    ``thread``-method deadline (that process is about to be ended). An
    implementation that raises is reported as a warning.
    """
