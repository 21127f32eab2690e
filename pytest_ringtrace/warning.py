"""The plugin's own problems, reported as warnings: never a changed outcome."""

from __future__ import annotations

import sys
import warnings

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
