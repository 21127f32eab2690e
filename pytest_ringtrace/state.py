"""Where the plugin keeps its state: ``config.stash`` and ``item.stash`` keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from .options import Settings

if TYPE_CHECKING:
    from .marker import TestOptions

#: Name the session plugin object is registered under.
PLUGIN_NAME = "ringtrace-session"

SETTINGS = pytest.StashKey[Settings]()


@dataclass
class TestState:
    """One test's recording state, kept on ``item.stash`` across its attempts."""

    __test__ = False

    options: TestOptions
    #: Attempts started so far (pytest-rerunfailures runs a test again).
    attempt: int = 0
    #: Monotonic time the current attempt's setup began: the test window.
    since: int = 0
    #: Whether the test runs on rings of its own size (marker).
    resized: bool = False
    #: Patches made for this test (marker ``patch``/``instrument``).
    patches: list[Any] = field(default_factory=list)
    #: Wall-clock start (``CallInfo.start``) of each phase of the attempt.
    phase_starts: dict[str, float] = field(default_factory=dict)


TEST = pytest.StashKey[TestState]()
