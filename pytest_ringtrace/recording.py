"""The session's recorder: started by the plugin unless one already runs.

If something started recording before the session (``RINGTRACE=1``, a
conftest calling ``instrument.start``), the plugin uses that recorder and
never stops it; a recorder the plugin started is stopped at the end of the
session. Packages named by ``--ringtrace-instrument`` are patched for the
session and unpatched after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import instrument
from instrument import Channel, Recorder
from instrument.patching import ModulePatch

from .warning import describe, warn


class SessionRecording:
    """Owns (or borrows) the recorder events go to during the session."""

    def __init__(self, channels: Sequence[Channel], max_dead_streams: int, **options: Any) -> None:
        self.channels = list(channels)
        self.max_dead_streams = max_dead_streams
        #: instrument.start's other options (values, redact)
        self.options: dict[str, Any] = {"max_dead_streams": max_dead_streams, **options}
        self.owned = False
        self.recorder: Recorder | None = None
        self._patches: list[ModulePatch] = []

    def start(self, packages: Sequence[str]) -> None:
        """Start recording (unless already on) and trace ``packages``."""
        active = instrument.active_recorder()
        if active is None:
            self.recorder = instrument.start(self.channels, **self.options)
            self.owned = True
        else:
            self.recorder = active
        for package in packages:
            # Private modules and helpers too: a library's implementation
            # lives there (the sysmon engine changes nothing to trace them).
            self._patches.append(instrument.patch_module(package, exclude=()))

    def instrumented(self) -> list[str]:
        """One line per package traced whole: how many functions are traced,
        and which were left untraced because their code reads frames."""
        lines = []
        for group in self._patches:
            readers = sorted(group.frame_readers)
            line = f"ringtrace: instrument {group.package}: {group.traced()} functions traced"
            if readers:
                shown = ", ".join(readers[:5]) + (", ..." if len(readers) > 5 else "")
                line += f", {len(readers)} left untraced because they read frames ({shown})"
            lines.append(line)
        return lines

    def current(self) -> Recorder | None:
        """The recorder to snapshot: the active one, else the one last used.

        A test that stops the recorder leaves it readable; one that starts
        its own is recording the code under test, so that one is read.
        """
        return instrument.active_recorder() or self.recorder

    def ensure(self) -> None:
        """Before a test: if a previous test stopped our recorder, record again."""
        if self.owned and instrument.active_recorder() is None:
            self.recorder = instrument.start(self.channels, **self.options)

    def resize(self, channels: Sequence[Channel]) -> bool:
        """Record on fresh rings of ``channels`` (a marker asked); False if not ours."""
        active = instrument.active_recorder()
        if not self.owned or (active is not None and active is not self.recorder):
            return False
        if active is not None:
            instrument.stop()
        self.recorder = instrument.start(channels, **self.options)
        return True

    def restore(self) -> None:
        """After a resized test: back to fresh rings of the session's channels."""
        active = instrument.active_recorder()
        if active is not None and active is not self.recorder:
            return  # the test left its own recorder running: not ours to stop
        if active is not None:
            instrument.stop()
        self.recorder = instrument.start(self.channels, **self.options)

    def stop(self) -> None:
        """Unpatch the packages; stop the recorder if the plugin started it."""
        for group in reversed(self._patches):
            try:
                group.unpatch()
            except Exception as exc:
                warn(f"cannot unpatch {group.package!r}: {describe(exc)}")
        self._patches.clear()
        if (
            self.owned
            and self.recorder is not None
            and instrument.active_recorder() is self.recorder
        ):
            instrument.stop()
        self.owned = False
