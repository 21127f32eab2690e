"""Child processes of a test session record into a session directory.

The plugin's side of :mod:`instrument.childstart`: a private directory per
session (per pytest-xdist worker), named in the environment that children
inherit; ended children's files removed when a test's window opens; and the
children's events in a window merged into the test's snapshot.

pytest-xdist workers are children of the controller, which records nothing
and sets nothing: they never inherit the variable from it, and each worker
is a session of its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence

from instrument import Channel, Recorder, Snapshot, childstart
from instrument.children import merge_children, prune_ended

from .options import Settings
from .warning import warn


class ChildProcesses:
    """The session directory and the environment that point children at it."""

    def __init__(self, channels: Sequence[Channel], settings: Settings):
        self.previous = os.environ.get(childstart.ENV)
        if childstart.ensure_startup_hook() is None:
            warn(
                "no writable site-packages directory for ringtrace-children.pth: "
                "Python children started with a new interpreter will not record "
                "(forked children still do)"
            )
        self.directory = tempfile.mkdtemp(prefix="ringtrace-children-")
        self.seen = 0  # the directory's mtime when last pruned
        childstart.enable(
            self.directory,
            channels=channels,
            packages=settings.instrument,
            log_level=settings.log_level,
        )

    def prune(self) -> None:
        """A window opens: ended children cannot have events in it.

        Only when a file was added or removed since the last look (one
        ``stat``): a test that starts no process pays nothing more.
        """
        try:
            if os.stat(self.directory).st_mtime_ns == self.seen:
                return
            prune_ended(self.directory)
            self.seen = os.stat(self.directory).st_mtime_ns
        except OSError:
            pass

    def merge(self, snapshot: Snapshot, since: int | None, recorder: Recorder) -> None:
        """Add the children's events at or after ``since`` to ``snapshot``."""
        merge_children(
            snapshot,
            self.directory,
            since,
            redactor=recorder.redactor,
            limit=recorder.max_field_chars,
        )

    def close(self) -> None:
        """The session ends: children started later do not record."""
        childstart.disable(self.previous)
        shutil.rmtree(self.directory, ignore_errors=True)
