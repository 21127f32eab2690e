"""Snapshot files: their names, and writing them without ever overwriting one.

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

from .warning import describe

MAX_ID_CHARS = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-\[\]]+")


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


class ArtifactWriter:
    """Writes a snapshot in each requested format under one free base name."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()
        self._taken: set[Path] = set()

    def _reserve(self, stem: str, suffixes: Sequence[str]) -> Path:
        with self._lock:
            for n in range(1, 10_000):
                base = self.directory / (stem if n == 1 else f"{stem}~{n}")
                if base in self._taken:
                    continue
                if any(os.path.lexists(f"{base}{suffix}") for suffix in suffixes):
                    continue
                self._taken.add(base)
                return base
        raise FileExistsError(f"no free file name for {stem!r} in {self.directory}")

    def write(
        self, snapshot: Snapshot, stem: str, formats: Sequence[str]
    ) -> tuple[dict[str, Path], list[str]]:
        """Write ``snapshot`` in every format; return the paths and the problems.

        A format that fails (unknown, or its writer raised) is reported in
        the problems and the others are still written.
        """
        from instrument.formats import get_format, write_snapshot

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
        self.directory.mkdir(parents=True, exist_ok=True)
        base = self._reserve(stem, list(suffixes.values()))
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
