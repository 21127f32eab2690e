"""The logging bridge: ``logging`` records and shown warnings as events.

Programs already log; a flight recorder that puts those lines among its own
events, on the thread that logged them and at the moment they were logged,
lines them up with everything else for free. Two sources:

* ``logging``: a handler on the root logger records each record that reaches
  it at or above its own level as a ``log`` event (``level``, ``logger``,
  ``message`` formatted when logged, ``exception`` type if any, ``thread``
  when the record came from another thread, e.g. through a queue). It only
  ever sees what reaches the root logger's handlers: it never changes a
  logger's level, ``propagate`` flag, or what other handlers receive. When it
  is the only handler a record finds, it hands the record to
  ``logging.lastResort`` as ``logging`` would have done without it, so a
  program's output does not change either.
* ``warnings``: each warning *shown* (after filters and "once" rules) is a
  ``warning`` event (``category``, ``message``, ``where``). The bridge wraps
  ``warnings._showwarnmsg``, the one function every shown warning goes
  through (the C implementation looks it up at each warning), so it also sees
  warnings that ``catch_warnings(record=True)`` (pytest) collects; the
  warning's attribution is computed before, and is unchanged.

``record_logging()`` switches both on, ``stop_logging()`` off.
"""

from __future__ import annotations

import logging
import threading
import warnings
from contextlib import suppress
from typing import Any

from . import hotpath
from .values import capture_fields

#: Accepted level names (``off`` is handled by the callers that offer it).
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_lock = threading.Lock()
_get_ident = threading.get_ident
_event = hotpath.event


class RingtraceLogHandler(logging.Handler):
    """Records each log record it handles as a ``log`` event.

    Never raises and never prints: a record it cannot format is recorded with
    a note instead of its message (the program's own handlers report it).
    """

    def __init__(self, level: int = logging.DEBUG):
        # The handler's own level stays NOTSET: ``callHandlers`` must call it
        # for every record, so that it can stand in for ``lastResort``.
        super().__init__(logging.NOTSET)
        self.threshold = level

    # Handler.handle takes the handler's lock around emit: not needed here
    # (the write path is lock-free), and skipping it keeps the cost down.
    def handle(self, record: logging.LogRecord) -> bool:
        if hotpath._recorder is not None and record.levelno >= self.threshold:
            with suppress(Exception):  # never disturb the program's logging
                self.emit(record)
        if record.levelno >= logging.WARNING:
            self._last_resort(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception as exc:
            message = f"<message could not be formatted: {type(exc).__name__}: {record.msg!r}>"
        fields: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        exc_info = record.exc_info
        if exc_info and exc_info[0] is not None:
            fields["exception"] = exc_info[0].__qualname__
        if record.thread is not None and record.thread != _get_ident():
            fields["thread"] = record.threadName
        _event("log", **capture_fields(fields))

    def _last_resort(self, record: logging.LogRecord) -> None:
        """What ``Logger.callHandlers`` does when it finds no handler: without
        this one, would this record have found another?"""
        resort = logging.lastResort
        if resort is None or record.levelno < resort.level:
            return
        if len(logging.root.handlers) > 1:
            return  # the record reached the root, whose other handler it found
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            for handler in logger.handlers:
                if handler is not self:
                    return
            if not logger.propagate:
                return
            logger = logger.parent
        resort.handle(record)


class _Bridge:
    """What is installed: the handler, and the original ``_showwarnmsg``."""

    def __init__(self) -> None:
        self.handler: RingtraceLogHandler | None = None
        self.original_show: Any = None  # kept once wrapped: others may wrap us
        self.warnings_on = False


_bridge = _Bridge()


def _show_warning(msg: warnings.WarningMessage) -> None:
    original = _bridge.original_show
    if _bridge.warnings_on and hotpath._recorder is not None:
        try:
            category = msg.category.__qualname__ if msg.category is not None else "Warning"
            _event(
                "warning",
                **capture_fields(
                    {
                        "category": category,
                        "message": str(msg.message),
                        "where": f"{msg.filename}:{msg.lineno}",
                    }
                ),
            )
        except Exception:  # never disturb the program's warnings
            pass
    original(msg)


def _level_number(level: int | str) -> int:
    if isinstance(level, bool):
        raise TypeError(f"level must be a logging level name or number, got {level!r}")
    if isinstance(level, int):
        return level
    if isinstance(level, str) and level.strip().upper() in LEVELS:
        return int(getattr(logging, level.strip().upper()))
    raise ValueError(f"level must be one of {', '.join(LEVELS)} or a number, got {level!r}")


def record_logging(level: int | str = logging.DEBUG, *, warnings_too: bool = True) -> None:
    """Record ``logging`` records of ``level`` and above that reach the root
    logger's handlers as ``log`` events, and shown warnings as ``warning``
    events (unless ``warnings_too=False``).

    Calling it again changes the level. Events are recorded only while a
    recorder runs (:func:`instrument.start`). Undo with :func:`stop_logging`.
    """
    number = _level_number(level)
    with _lock:
        handler = _bridge.handler
        if handler is None:
            handler = _bridge.handler = RingtraceLogHandler(number)
            logging.getLogger().addHandler(handler)
        else:
            handler.threshold = number
        if warnings_too and not _bridge.warnings_on:
            if warnings._showwarnmsg is not _show_warning:  # type: ignore[attr-defined]
                _bridge.original_show = warnings._showwarnmsg  # type: ignore[attr-defined]
                warnings._showwarnmsg = _show_warning  # type: ignore[attr-defined]
            _bridge.warnings_on = True
        elif not warnings_too:
            _restore_warnings()


def _restore_warnings() -> None:
    # Put the original back only if nobody wrapped ours since; otherwise ours
    # stays in their chain, passing warnings through.
    _bridge.warnings_on = False
    if warnings._showwarnmsg is _show_warning:  # type: ignore[attr-defined]
        warnings._showwarnmsg = _bridge.original_show  # type: ignore[attr-defined]


def stop_logging() -> None:
    """Stop recording log records and warnings (harmless if not on)."""
    with _lock:
        handler = _bridge.handler
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            _bridge.handler = None
        _restore_warnings()


def logging_level() -> int | None:
    """The bridge's level, or ``None`` when it is off."""
    handler = _bridge.handler
    return None if handler is None else handler.threshold
