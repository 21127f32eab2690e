"""The plugin's own problems, reported as warnings: never a changed outcome."""

from __future__ import annotations

import sys
import warnings

import pytest


class PytestRingtraceWarning(pytest.PytestWarning):
    """Something in ringtrace went wrong; the test's outcome is untouched."""


def warn(message: str) -> None:
    """Issue a :class:`PytestRingtraceWarning` (pytest attributes it to the running test).

    Under ``-W error`` the warning would be raised into pytest's machinery
    and end the run; it is printed to stderr instead.
    """
    warning = PytestRingtraceWarning(f"ringtrace: {message}")
    try:
        warnings.warn(warning, stacklevel=2)
    except PytestRingtraceWarning:
        sys.stderr.write(f"{type(warning).__name__}: {warning}\n")


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, for a warning."""
    try:
        text = str(exc)
    except Exception:
        text = "<str() raised>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
