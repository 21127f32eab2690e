"""Snapshots outside pytest: on demand, and on a crash, a signal or exit.

A flight recorder in production keeps recording and writes its rings to a
file when something happens::

    instrument.start()
    instrument.dump_on(exception=True, signal=signal.SIGUSR1, directory="/var/tmp/app")
    ...
    instrument.dump("/tmp/now.json")     # on demand, any time

Each trigger writes one snapshot file per format, named
``ringtrace-<pid>-<UTC time>-<trigger>`` plus the format's suffix, and
then hands over to whatever was installed before it: the previous
``sys.excepthook`` / ``threading.excepthook`` / signal handler still runs.
A trigger that cannot write says so in one line on stderr and never masks
the exception or signal that fired it.

Signals: a previous Python handler is called; ``SIG_IGN`` stays ignored
(only the snapshot is written); ``SIG_DFL`` is carried out after the
snapshot (a ``SIGTERM`` still ends the process, with the usual status),
except for ``SIGUSR1``/``SIGUSR2``, whose default action (ending the
process) is exactly what asking for a dump with them replaces.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import os
import re
import signal as _signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from . import hotpath
from .formats import get_format, write_snapshot
from .reading import take_snapshot
from .recorder import Recorder

_MAX_TRACEBACK_CHARS = 16_000

SignalHandler = Callable[[int, FrameType | None], Any] | int | _signal.Handlers | None


def dump(
    path: str | os.PathLike[str],
    format: str = "json",
    *,
    since: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    recorder: Recorder | None = None,
) -> Path:
    """Write a snapshot of the rings to ``path`` now; return the path written.

    The format's suffix is added unless ``path`` already ends with it (so
    ``dump("run.json")`` writes ``run.json``, ``dump("run", "json.gz")``
    writes ``run.json.gz``). ``since`` keeps events at or after that
    monotonic time; ``metadata`` (plain data) is stored in the snapshot.
    Raises ``RuntimeError`` when not recording, ``ValueError`` for an unknown
    format, ``OSError`` when the file cannot be written.
    """
    fmt = get_format(format)
    rec = recorder if recorder is not None else hotpath.active()
    if rec is None:
        raise RuntimeError("instrument is not recording; call instrument.start() first")
    base = os.fspath(path)
    if fmt.suffix and base.endswith(fmt.suffix) and len(base) > len(fmt.suffix):
        base = base[: -len(fmt.suffix)]
    snap = take_snapshot(rec, since)
    if metadata:
        snap.metadata.update(metadata)
    return write_snapshot(snap, base, fmt.name)


# -- triggers ----------------------------------------------------------------


def _warn(message: str) -> None:
    """One line on stderr; never raises (stderr may be gone at exit)."""
    try:
        stream = sys.stderr
        if stream is not None:
            stream.write(f"ringtrace: {message}\n")
            stream.flush()
    except Exception:
        pass


def _exception_info(
    exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None
) -> dict[str, Any]:
    try:
        message = str(exc) if exc is not None else ""
    except Exception as inner:
        message = f"<str() raised {type(inner).__name__}>"
    try:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
    except Exception as inner:
        text = f"<traceback could not be formatted: {type(inner).__name__}>"
    if len(text) > _MAX_TRACEBACK_CHARS:
        text = "…" + text[-_MAX_TRACEBACK_CHARS:]
    return {"type": exc_type.__qualname__, "message": message[:2000], "traceback": text}


class Triggers:
    """A set of installed triggers; :meth:`remove` uninstalls them.

    Created by :func:`dump_on`. Each hook it installed stays chained to the
    one it replaced; removing restores that one if ours is still the one in
    place, and otherwise leaves ours as a pass-through (another library
    installed a hook over ours and may still call it).
    """

    def __init__(
        self,
        *,
        directory: Path,
        formats: tuple[str, ...],
        prefix: str,
    ):
        self.directory = directory
        self.formats = formats
        self.prefix = prefix
        self.active = True
        self.written: list[Path] = []
        self._lock = threading.Lock()
        self._prev_excepthook: Callable[..., Any] | None = None
        self._prev_threading_hook: Callable[..., Any] | None = None
        self._prev_signals: dict[int, SignalHandler] = {}
        self._worker: _SignalWorker | None = None
        self._exit_registered = False

    # -- writing --

    def _name(self, trigger: str) -> Path:
        now = time.time_ns()
        stamp = _dt.datetime.fromtimestamp(now // 1_000_000_000, tz=_dt.timezone.utc)
        text = f"{stamp:%Y%m%dT%H%M%S}.{(now // 1000) % 1_000_000:06d}Z"
        base = self.directory / f"{self.prefix}-{os.getpid()}-{text}-{trigger}"
        n = 1
        candidate = base
        while any(
            Path(f"{candidate}{get_format(f).suffix}").exists() for f in self.formats
        ):  # two triggers in one microsecond
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
        return candidate

    def fire(self, trigger: str, metadata: dict[str, Any], *, quiet: bool = False) -> list[Path]:
        """Write the snapshot files for ``trigger``; warn (never raise) on failure.

        Returns the paths written. ``quiet`` skips the note printed when
        nothing is being recorded.
        """
        written: list[Path] = []
        try:
            rec = hotpath.active()
            if rec is None:
                if not quiet:
                    _warn(f"{trigger} trigger: not recording, no snapshot written")
                return written
            snap = take_snapshot(rec)
            snap.metadata.update({"trigger": trigger, **metadata})
            with self._lock:
                base = self._name(trigger)
                for fmt in self.formats:
                    try:
                        written.append(write_snapshot(snap, base, fmt))
                    except Exception as exc:
                        _warn(
                            f"{trigger} trigger could not write a {fmt} snapshot to "
                            f"{self.directory}: {type(exc).__name__}: {exc}"
                        )
                self.written.extend(written)
        except Exception as exc:
            _warn(f"{trigger} trigger could not take a snapshot: {type(exc).__name__}: {exc}")
        return written

    # -- the hooks --

    def _excepthook(
        self,
        exc_type: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.active:
                info = _exception_info(exc_type, exc, tb)
                thread = threading.current_thread().name
                self.fire("exception", {"exception": info, "thread": thread})
        finally:
            prev = self._prev_excepthook or sys.__excepthook__
            prev(exc_type, exc, tb)

    def _threading_excepthook(self, args: Any) -> None:
        try:
            if self.active and not issubclass(args.exc_type, SystemExit):
                info = _exception_info(args.exc_type, args.exc_value, args.exc_traceback)
                thread = getattr(args.thread, "name", None)
                self.fire("exception", {"exception": info, "thread": thread})
        finally:
            prev = self._prev_threading_hook or threading.__excepthook__
            prev(args)

    def _signal_handler(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes of whatever it was
        # doing, maybe inside a lock (the recorder's, the import lock): the
        # snapshot is taken by the worker thread, woken through a pipe (a
        # system call, no Python lock), so this handler can never deadlock.
        prev = self._prev_signals.get(signum, _signal.SIG_DFL)
        worker = self._worker
        ticket = worker.request(signum) if self.active and worker is not None else None
        if callable(prev):
            prev(signum, frame)
        elif prev == _signal.SIG_DFL and signum not in _DUMP_ONLY:
            # carry out the default action (e.g. end the process on SIGTERM),
            # once the snapshot is written (or after a bounded wait)
            if ticket is not None and worker is not None:
                worker.wait(ticket, _DEFAULT_ACTION_WAIT)
            _signal.signal(signum, _signal.SIG_DFL)
            try:
                os.kill(os.getpid(), signum)
            finally:
                _signal.signal(signum, self._signal_handler)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every snapshot asked for by a signal so far is written.

        Signal snapshots are written by a worker thread; returns ``False`` if
        ``timeout`` (seconds) passed first.
        """
        worker = self._worker
        return True if worker is None else worker.wait(worker.requested, timeout)

    def _at_exit(self) -> None:
        if not self.active:
            return
        try:
            with _deadline(EXIT_DUMP_SECONDS):
                self.fire("exit", {}, quiet=True)
        except _ExitDumpTimeout:
            _warn(
                f"exit trigger: no snapshot, it took longer than {EXIT_DUMP_SECONDS} s "
                "(busy threads?): interpreter exit is not held up further"
            )

    # -- installing --

    def install(self, *, exception: bool, signals: Iterable[int], exit: bool) -> None:
        """Install the chosen hooks (signal handlers: main thread only)."""
        sigs = list(signals)
        # signals first: the only step that can fail (not the main thread)
        if sigs:
            if threading.current_thread() is not threading.main_thread():
                raise ValueError("dump_on(signal=...) must be called from the main thread")
            self._worker = _SignalWorker(self)
            try:
                for sig in sigs:
                    self._prev_signals[sig] = _signal.getsignal(sig)
                    _signal.signal(sig, self._signal_handler)
            except BaseException:
                self._restore_signals()
                self._worker.close()
                self._worker = None
                raise
        if exception:
            self._prev_excepthook = sys.excepthook
            sys.excepthook = self._excepthook
            self._prev_threading_hook = threading.excepthook
            threading.excepthook = self._threading_excepthook
        if exit:
            atexit.register(self._at_exit)
            self._exit_registered = True

    def _restore_signals(self) -> None:
        for sig, prev in self._prev_signals.items():
            if _signal.getsignal(sig) == self._signal_handler:
                _signal.signal(sig, prev if prev is not None else _signal.SIG_DFL)
        self._prev_signals.clear()

    def remove(self) -> None:
        """Uninstall every hook this set installed (idempotent)."""
        if not self.active:
            return
        self.active = False
        if self._prev_excepthook is not None and sys.excepthook == self._excepthook:
            sys.excepthook = self._prev_excepthook
        if (
            self._prev_threading_hook is not None
            and threading.excepthook == self._threading_excepthook
        ):
            threading.excepthook = self._prev_threading_hook
        if self._prev_signals:
            self._restore_signals()
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        if self._exit_registered:
            atexit.unregister(self._at_exit)
            self._exit_registered = False
        global _installed
        with _install_lock:
            if _installed is self:
                _installed = None


class _SignalWorker:
    """A daemon thread that writes the snapshots signals ask for.

    The signal handler writes the signal number to a pipe (non-blocking:
    a burst of signals beyond the pipe's room is dropped, not waited for);
    the thread reads it and fires the trigger. ``requested``/``completed``
    count requests so a caller can wait for one to be done.
    """

    def __init__(self, triggers: Triggers):
        self.triggers = triggers
        self.requested = 0
        self.completed = 0
        self._done = threading.Condition(threading.Lock())
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._thread = threading.Thread(target=self._run, name="ringtrace-signal-dump", daemon=True)
        self._thread.start()

    def request(self, signum: int) -> int:
        """Ask for a snapshot (from the signal handler); returns a ticket."""
        self.requested += 1
        ticket = self.requested
        try:
            os.write(self._write, bytes((signum & 0xFF,)))
        except OSError:  # pipe full or closed: count it done, never block
            self._mark_done(1)
        return ticket

    def wait(self, ticket: int, timeout: float | None) -> bool:
        """Wait until request ``ticket`` is done; ``False`` on timeout."""
        with self._done:
            return self._done.wait_for(lambda: self.completed >= ticket, timeout)

    def _mark_done(self, n: int) -> None:
        with self._done:
            self.completed += n
            self._done.notify_all()

    def _run(self) -> None:
        try:
            while True:
                try:
                    data = os.read(self._read, 64)
                except OSError:
                    return
                if not data:  # write end closed: removed
                    return
                for signum in data:
                    try:
                        name = _signal.Signals(signum).name
                    except ValueError:
                        name = str(signum)
                    self.triggers.fire("signal", {"signal": name})
                    self._mark_done(1)
        finally:
            with contextlib.suppress(OSError):
                os.close(self._read)

    def close(self) -> None:
        """Stop the thread; it finishes the snapshot it is writing, then closes the pipe."""
        with contextlib.suppress(OSError):
            os.close(self._write)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=_DEFAULT_ACTION_WAIT)

    def forget_after_fork(self) -> None:
        """In a forked child: the thread is gone and the pipe is the parent's."""
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


#: How long a signal whose default action ends the process waits for its snapshot.
_DEFAULT_ACTION_WAIT = 5.0

#: The longest an ``exit=True`` snapshot may hold up interpreter exit: busy
#: daemon threads compete with it for the GIL (8 of them made it take tens of
#: seconds). Past it, the snapshot is abandoned with a note on stderr.
EXIT_DUMP_SECONDS = 10.0


class _ExitDumpTimeout(BaseException):
    """Raised into the exit snapshot by its deadline (not an ``Exception``:
    nothing on the way may catch it, and the writer removes its file)."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`_ExitDumpTimeout` in this (main) thread after ``seconds``,
    with ``SIGALRM``, when it is free (no handler or timer of the program's)."""
    usable = (
        hasattr(_signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and _signal.getsignal(_signal.SIGALRM) in (_signal.SIG_DFL, None)
        and _signal.getitimer(_signal.ITIMER_REAL) == (0.0, 0.0)
    )
    if not usable:
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        _signal.setitimer(_signal.ITIMER_REAL, 0, 0)
        raise _ExitDumpTimeout

    _signal.signal(_signal.SIGALRM, expire)
    _signal.setitimer(_signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0, 0)
        _signal.signal(_signal.SIGALRM, _signal.SIG_DFL)


_DUMP_ONLY = frozenset(
    getattr(_signal, name) for name in ("SIGUSR1", "SIGUSR2") if hasattr(_signal, name)
)
_install_lock = threading.Lock()
_installed: Triggers | None = None


def dump_on(
    *,
    exception: bool = True,
    signal: int | str | Iterable[int | str] | None = None,
    exit: bool = False,
    directory: str | os.PathLike[str] = ".",
    formats: str | Iterable[str] = ("json",),
    prefix: str = "ringtrace",
) -> Triggers:
    """Write a snapshot when something happens; returns the installed :class:`Triggers`.

    ``exception``: an unhandled exception in any thread (``sys.excepthook``
    and ``threading.excepthook``); ``signal``: one signal number or several
    (e.g. ``signal.SIGUSR1`` or ``"SIGUSR1"``; must be called from the
    main thread);
    ``exit``: normal interpreter exit (``atexit``; not ``os._exit`` or a
    fatal signal). Files go to ``directory`` (made absolute now, created when
    needed, owner-only) in each of ``formats`` (one name or several), named
    ``prefix`` + pid, time and trigger; a prefix with directory parts, or a
    directory that is a file, is refused here. Calling again replaces the previous
    triggers; :func:`dump_off` removes them.
    """
    fmts = (formats,) if isinstance(formats, str) else tuple(formats)
    if not fmts:
        raise ValueError("dump_on needs at least one format")
    for fmt in fmts:
        get_format(fmt)  # unknown names fail here, not at the crash
    if signal is None:
        given: list[object] = []
    elif isinstance(signal, (int, str)) or not isinstance(signal, Iterable):
        given = [signal]
    else:
        given = list(signal)
    sigs = [_signal_number(sig) for sig in given]
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise ValueError(
            "dump_on(prefix=...) must be a file-name start of letters, digits, '.', '_' "
            f"or '-', not starting with '.' (no directory parts), got {prefix!r}"
        )
    where = Path(directory).absolute()
    if where.exists() and not where.is_dir():
        raise NotADirectoryError(f"dump_on(directory=...): {where} exists and is not a directory")
    triggers = Triggers(directory=where, formats=fmts, prefix=prefix)
    global _installed
    with _install_lock:
        previous = _installed
    if previous is not None:
        previous.remove()
    triggers.install(exception=exception, signals=sigs, exit=exit)
    with _install_lock:
        _installed = triggers
    return triggers


_PREFIX_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,99}$")


def _signal_number(sig: object) -> int:
    """A signal given as a number, ``signal.SIGUSR1``, or a name (``"SIGUSR1"``, ``"USR1"``)."""
    if isinstance(sig, str):
        name = sig.strip().upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            return int(_signal.Signals[name])
        except KeyError:
            raise ValueError(f"unknown signal name {sig!r} (e.g. 'SIGUSR1')") from None
    if not isinstance(sig, int) or isinstance(sig, bool):
        raise TypeError(f"signal must be a signal number or name, got {sig!r}")
    return sig


def dump_off() -> None:
    """Remove the triggers installed by :func:`dump_on`, if any."""
    with _install_lock:
        triggers = _installed
    if triggers is not None:
        triggers.remove()


def installed() -> Triggers | None:
    """The triggers :func:`dump_on` installed, if any."""
    return _installed


def _after_fork_in_child() -> None:
    # The signal worker thread did not survive the fork and its pipe is shared
    # with the parent (a signal here must not make the parent dump): renew it.
    triggers = _installed
    if triggers is not None and triggers._worker is not None:
        triggers._worker.forget_after_fork()
        triggers._worker = _SignalWorker(triggers)


os.register_at_fork(after_in_child=_after_fork_in_child)
