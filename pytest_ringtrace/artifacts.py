"""Snapshot files: their session directory, their names, and writing them
without ever overwriting one.

Like ``tmp_path``, each session writes into a numbered directory of its own,
``.ringtrace/session-000042/``, and keeps the last N of them (ini
``ringtrace_retention_count``, default 3): zero-padded numbers sort in run
order, and only directories of that exact form are ever removed, so nothing
else in ``.ringtrace/`` is touched. Under pytest-xdist the controller picks
the directory and its workers write into it. A session that wrote nothing
removes its empty directory at the end.

A name carries the test id, the phase, the attempt (pytest-rerunfailures
runs a test several times) and the pytest-xdist worker, e.g.
``tests_test_orders.py__test_refund--call--attempt1--gw0.json``. Names from
different workers cannot collide; within a process a lock and a check of the
directory pick a free name (``~2``, ``~3``... appended), so files of an
earlier run are never replaced either.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from instrument import Snapshot
from instrument.formats import make_private_dirs

from .warning import describe

MAX_ID_CHARS = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-\[\]]+")
SESSION_PREFIX = "session-"
_SESSION_RE = re.compile(r"^session-(\d{6,})$")


def worker_id(config: pytest.Config) -> str | None:
    """The pytest-xdist worker id (``gw0``...) of this session, or ``None``.

    Only the worker's own config says so: ``PYTEST_XDIST_WORKER`` is also
    inherited by sessions a test starts (pytester, subprocesses), which are
    not workers.
    """
    workerinput = getattr(config, "workerinput", None)
    if isinstance(workerinput, dict) and workerinput.get("workerid"):
        return str(workerinput["workerid"])
    return None


def safe_test_id(nodeid: str) -> str:
    """``nodeid`` as a file-name fragment: safe characters, bounded length.

    A long id keeps its start and gets a short hash of the whole, so two
    long ids that differ only at the end still get different names.
    """
    text = _UNSAFE.sub("_", nodeid.replace("::", "__")).strip("._") or "test"
    if len(text) > MAX_ID_CHARS:
        digest = hashlib.sha1(nodeid.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        text = f"{text[: MAX_ID_CHARS - 11]}-{digest}"
    return text


def file_stem(nodeid: str, phase: str, attempt: int, worker: str | None) -> str:
    """The name of a snapshot's files, without the format's suffix."""
    stem = f"{safe_test_id(nodeid)}--{phase}--attempt{attempt}"
    return f"{stem}--{worker}" if worker else stem


def _sessions(base: Path, *, only_directories: bool = True) -> list[tuple[int, Path]]:
    """The numbered session directories in ``base``, oldest first (with
    ``only_directories=False``, anything so named, e.g. a symlink)."""
    found = []
    for entry in os.scandir(base):
        match = _SESSION_RE.match(entry.name)
        if match and (not only_directories or entry.is_dir(follow_symlinks=False)):
            found.append((int(match.group(1)), Path(entry.path)))
    return sorted(found)


def new_session_directory(base: Path, keep: int) -> Path:
    """Create the next ``session-NNNNNN`` in ``base``; remove all but the last ``keep``.

    ``mkdir`` without ``exist_ok`` makes the pick atomic: two sessions
    starting at once get different numbers.
    """
    import shutil

    make_private_dirs(base)
    for _ in range(1000):
        number = max((n for n, _ in _sessions(base, only_directories=False)), default=0) + 1
        path = base / f"{SESSION_PREFIX}{number:06d}"
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # whatever the umask
        for _n, old in _sessions(base)[:-keep]:
            if old != path:
                shutil.rmtree(old, ignore_errors=True)
        return path
    raise FileExistsError(f"no free session directory in {base}")


class SessionDirectory:
    """This session's snapshot directory, created when first needed.

    ``fixed`` is a directory chosen elsewhere (by the pytest-xdist
    controller, for its workers): it is used as it is.
    """

    def __init__(self, base: Path, keep: int, fixed: Path | None = None):
        self.base = base
        self.keep = keep
        self._path = fixed
        self._fixed = fixed is not None
        self._created = False
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The directory (created now if it was not yet)."""
        with self._lock:
            if self._path is None:
                self._path = new_session_directory(self.base, self.keep)
                self._created = True
            elif self._fixed and not self._created:
                make_private_dirs(self._path)
                self._created = True
            return self._path

    @property
    def created(self) -> Path | None:
        """The directory if it exists by now, else ``None`` (nothing created)."""
        return self._path if self._created else None

    def remove_if_empty(self) -> None:
        """Remove the session's directory if nothing was written in it."""
        if self._created and self._path is not None and not self._fixed:
            try:
                self._path.rmdir()  # only succeeds when empty
            except OSError:
                return
            self._created = False
            self._path = None


class ArtifactWriter:
    """Writes a snapshot in each requested format under one free base name."""

    def __init__(self, directory: SessionDirectory):
        self.session = directory
        self._lock = threading.Lock()
        self._taken: set[Path] = set()

    @property
    def directory(self) -> Path:
        return self.session.path

    def _reserve(self, stem: str, suffixes: Sequence[str]) -> Path:
        directory = self.directory
        with self._lock:
            for n in range(1, 10_000):
                base = directory / (stem if n == 1 else f"{stem}~{n}")
                if base in self._taken:
                    continue
                if any(os.path.lexists(f"{base}{suffix}") for suffix in suffixes):
                    continue
                self._taken.add(base)
                return base
        raise FileExistsError(f"no free file name for {stem!r} in {directory}")

    def write(
        self, snapshot: Snapshot, stem: str, formats: Sequence[str]
    ) -> tuple[dict[str, Path], list[str]]:
        """Write ``snapshot`` in every format; return the paths and the problems.

        A format that fails (unknown, or its writer raised) is reported in
        the problems and the others are still written.
        """
        from instrument.formats import get_format, sharing, write_snapshot

        problems: list[str] = []
        suffixes: dict[str, str] = {}
        for fmt in formats:
            try:
                suffixes[fmt] = get_format(fmt).suffix
            except Exception as exc:
                problems.append(f"format {fmt}: {describe(exc)}")
        paths: dict[str, Path] = {}
        if not suffixes:
            return paths, problems
        base = self._reserve(stem, list(suffixes.values()))
        with sharing():  # the json file's encoding is the html page's too
            for fmt in suffixes:
                try:
                    paths[fmt] = write_snapshot(snapshot, base, fmt).resolve()
                except Exception as exc:
                    problems.append(f"format {fmt}: {describe(exc)}")
        return paths, problems

    def remove(self, paths: dict[str, Path]) -> None:
        """Delete files written for a snapshot that turned out not to be needed."""
        import shutil

        for path in paths.values():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
