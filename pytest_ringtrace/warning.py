"""The plugin's own problems, reported as warnings: never a changed outcome."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

#: Characters of an exception's message quoted in a warning.
MAX_MESSAGE = 500


class PytestRingtraceWarning(pytest.PytestWarning):
    """Something in ringtrace went wrong; the test's outcome is untouched."""


def warn(message: str) -> None:
    """Issue a :class:`PytestRingtraceWarning` (pytest attributes it to the running test).

    Under ``-W error`` the warning would be raised into pytest's machinery
    and end the run; it is printed to stderr instead. The message is made
    terminal-safe (it may quote names and exception messages of the program).
    """
    from instrument.view.render import printable  # not at import: the plugin off loads no kit

    warning = PytestRingtraceWarning(f"ringtrace: {printable(message)}")
    try:
        warnings.warn(warning, stacklevel=2)
    except PytestRingtraceWarning:
        sys.stderr.write(f"{type(warning).__name__}: {warning}\n")


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, for a warning (at most
    :data:`MAX_MESSAGE` characters of the message)."""
    try:
        text = str(exc)
    except BaseException:  # a hostile __str__ may raise anything
        text = "<str() raised>"
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + f"…[+{len(text) - MAX_MESSAGE} chars]"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _SigintWatch:
    """Tells a Ctrl-C the user pressed from a ``KeyboardInterrupt`` raised by
    program code (a field's ``__repr__``, say) while the plugin works.

    While active, in the main thread, the SIGINT handler is wrapped to note
    that the signal arrived before the previous handler runs (and raises as
    it always did). Elsewhere nothing is wrapped and nothing is noted.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None

    def __enter__(self) -> _SigintWatch:
        if threading.current_thread() is not threading.main_thread():
            return self
        try:
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):

                def noted(signum: int, frame: Any) -> Any:
                    self.pressed = True
                    return previous(signum, frame)

                signal.signal(signal.SIGINT, noted)
                self._previous = previous
        except (ValueError, OSError, RuntimeError):
            self._previous = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                signal.signal(signal.SIGINT, self._previous)
            self._previous = None


@contextlib.contextmanager
def contained(what: str) -> Iterator[None]:
    """Run the plugin's own work so that nothing it raises ends the session.

    Any exception, ``BaseException``s included (pytest-timeout's signal
    ``Failed``, or ``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``
    raised by a program's ``__repr__``), becomes a warning ``what: Type:
    message``. A Ctrl-C the user pressed meanwhile still stops the run: its
    ``KeyboardInterrupt`` is raised again, even if something inside swallowed
    it.
    """
    with _SigintWatch() as watch:
        try:
            yield
        except BaseException as exc:
            if watch.pressed and isinstance(exc, KeyboardInterrupt):
                raise
            warn(f"{what}: {describe(exc)}")
    if watch.pressed:
        raise KeyboardInterrupt
