"""Child processes record too: how recording starts in them.

A recording session (``pytest --ringtrace``, or :func:`enable` in any
program) makes a session directory and names it in the environment variable
``RINGTRACE_CHILDREN``; ``session.json`` there holds the channels, the
packages to trace, the logging bridge's level and the value limits. Then:

* a child that starts a new interpreter with the inherited environment
  (``subprocess`` running Python, ``multiprocessing`` spawn and forkserver,
  whose server is such a child) runs ``ringtrace-children.pth`` at start-up,
  which calls :func:`process_startup` only when that variable is set (one
  dictionary lookup otherwise, the way coverage.py's ``.pth`` checks
  ``COVERAGE_PROCESS_START``);
* a child made by ``os.fork`` (``multiprocessing`` fork, a fork-based
  ``ProcessPoolExecutor``, forkserver's own children) keeps the parent's
  recorder and patches; an at-fork hook points its fresh streams at the
  session directory.

Either way the child records with the same channels into
:class:`~instrument.shared.SharedStream` rings, files in the session
directory that the parent reads (:mod:`instrument.children`), and writes
``proc-<pid>.json`` (its pid, parent, command line, start time).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

ENV = "RINGTRACE_CHILDREN"
SESSION_FILE = "session.json"

_lock = threading.Lock()


def _write_json(path: str, data: Mapping[str, Any]) -> None:
    """Atomically: a reader sees the old file or the new one, never half."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


def enable(
    directory: str,
    *,
    channels: Sequence[Any],
    packages: Sequence[str] = (),
    log_level: str | None = None,
    max_field_chars: int | None = None,
) -> None:
    """Make Python children started from now on record into ``directory``.

    Writes ``session.json`` and sets ``RINGTRACE_CHILDREN`` in this process's
    environment (children inherit it). Undo with :func:`disable`.
    """
    os.makedirs(directory, mode=0o700, exist_ok=True)
    config = {
        "channels": [
            {
                "name": chan.name,
                "subbuf_size": chan.subbuf_size,
                "num_subbuf": chan.num_subbuf,
                "mode": chan.mode,
                "events": list(chan.events),
                "contexts": list(chan.contexts),
            }
            for chan in channels
        ],
        "packages": list(packages),
        "log_level": log_level,
        "max_field_chars": max_field_chars,
        "parent": os.getpid(),
    }
    _write_json(os.path.join(directory, SESSION_FILE), config)
    os.environ[ENV] = directory


def disable(previous: str | None = None) -> None:
    """Children started from now on do not record (``RINGTRACE_CHILDREN`` is
    put back to ``previous``)."""
    if previous is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = previous


def _command() -> list[str]:
    argv = getattr(sys, "orig_argv", None) or getattr(sys, "argv", None) or []
    return [str(a) for a in argv]


#: (pid, monotonic start) of this process as first announced: a rewrite (to
#: add the multiprocessing name) keeps the start time.
_started: tuple[int, int] = (0, 0)


def _write_process(directory: str, how: str, **extra: Any) -> None:
    global _started
    if _started[0] != os.getpid():
        _started = (os.getpid(), time.monotonic_ns())
    _write_json(
        os.path.join(directory, f"proc-{os.getpid()}.json"),
        {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "command": _command(),
            "how": how,
            "start_ns": _started[1],
            **extra,
        },
    )


class _SharedFactory:
    """The recorder's stream factory in a child: shared-memory streams in
    ``directory``; on the first one, the process file is completed with the
    multiprocessing process name (set only after the fork)."""

    def __init__(self, directory: str, how: str):
        self.directory = directory
        self.how = how
        self.named = False

    def __call__(self, channel: Any, thread: threading.Thread, static: Mapping[str, object]) -> Any:
        from .shared import SharedStream

        if not self.named:
            self.named = True
            mp = sys.modules.get("multiprocessing")
            name = getattr(mp.current_process(), "name", None) if mp is not None else None
            if name and name != "MainProcess":
                with contextlib.suppress(OSError):
                    _write_process(self.directory, self.how, name=name)
        return SharedStream(channel, thread, static, self.directory)


def process_startup() -> bool:
    """Start recording in a child of a recording session, if this is one.

    Called by ``ringtrace-children.pth`` at interpreter start-up when
    ``RINGTRACE_CHILDREN`` is set. Never raises: a child must run whether
    or not it can record. Returns whether recording started.
    """
    directory = os.environ.get(ENV)
    if not directory:
        return False
    try:
        return _start(directory)
    except Exception as exc:  # never break the child
        with contextlib.suppress(Exception):
            sys.stderr.write(f"ringtrace: child {os.getpid()} does not record: {exc}\n")
        return False


def _start(directory: str) -> bool:
    with open(os.path.join(directory, SESSION_FILE)) as f:
        config = json.load(f)
    import instrument
    from instrument import Channel

    active = instrument.active_recorder()
    if active is not None:  # RINGTRACE=1 started one at import: make it shared
        if not isinstance(active.stream_factory, _SharedFactory):
            active.stream_factory = _SharedFactory(directory, "exec")
            _write_process(directory, "exec")
        return False
    channels = [
        Channel(
            name=c["name"],
            subbuf_size=c["subbuf_size"],
            num_subbuf=c["num_subbuf"],
            mode=c["mode"],
            events=tuple(c["events"]),
            contexts=tuple(c["contexts"]),
        )
        for c in config["channels"]
    ]
    options: dict[str, Any] = {}
    if config.get("max_field_chars"):
        options["max_field_chars"] = config["max_field_chars"]
    recorder = instrument.start(channels, **options)
    recorder.stream_factory = _SharedFactory(directory, "exec")
    _write_process(directory, "exec")
    for package in config.get("packages") or ():
        instrument.patch_module(package)
    if config.get("log_level"):
        instrument.record_logging(config["log_level"])
    return True


def _after_fork_in_child() -> None:
    directory = os.environ.get(ENV)
    if not directory:
        return
    from . import hotpath

    recorder = hotpath.active()
    if recorder is None:
        return
    try:
        recorder.stream_factory = _SharedFactory(directory, "fork")
        _write_process(directory, "fork")
    except Exception:
        pass


# Registered at import, after instrument.control's own hook (which gives the
# child fresh streams): this one makes them shared.
os.register_at_fork(after_in_child=_after_fork_in_child)


PTH_NAME = "ringtrace-children.pth"
PTH_LINE = (
    'import os; "RINGTRACE_CHILDREN" in os.environ and '
    '__import__("instrument.childstart").childstart.process_startup()\n'
)


def ensure_startup_hook() -> str | None:
    """Make sure new interpreters of this environment run the start-up hook.

    A regular install puts ``ringtrace-children.pth`` in site-packages; an
    editable one cannot, so it is written here, into the first writable
    site-packages directory on ``sys.path`` (as coverage.py does for its
    subprocess patch), and left there: it does nothing unless
    ``RINGTRACE_CHILDREN`` is set. Returns the file, or ``None`` when no
    site-packages directory is writable (children then do not record).
    """
    import site

    dirs: list[str] = []
    with contextlib.suppress(AttributeError):  # some virtualenv layouts
        dirs.extend(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    dirs = [d for d in dict.fromkeys(dirs) if d in sys.path]
    for d in dirs:
        path = os.path.join(d, PTH_NAME)
        if os.path.exists(path):
            return path
    for d in dirs:
        path = os.path.join(d, PTH_NAME)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w") as out:
                out.write(PTH_LINE)
            os.replace(tmp, path)
            return path
        except OSError:
            continue
    return None
