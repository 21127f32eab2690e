"""Tracing engines: how ``@trace``, ``patch`` and ``patch_module`` see calls.

Two engines stand behind one interface, as coverage.py's tracers do:

* ``sysmon`` (Python 3.12+, :mod:`.sysmon`): registers code objects with
  ``sys.monitoring`` (PEP 669) and changes no object: ``@trace`` returns the
  very function, patched attributes stay as they were, no frame is added,
  and every call is seen whatever reference was used.
* ``wrapt`` (every version, :mod:`.wrapt_engine`): puts a wrapt wrapper
  around the function. It also serves what monitoring cannot see on the
  sysmon engine: C functions, builtins, callables without code.

One setting picks the engine for what is traced from then on:
``instrument.start(engine=...)``, :func:`use`, ``RINGTRACE_ENGINE`` in the
environment, or ``pytest --ringtrace-engine``. ``auto`` (the default) is
``sysmon`` on 3.12+ when a ``sys.monitoring`` tool id is free, else
``wrapt``. :func:`engine` says which engine traces new code now.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

EngineName = Literal["auto", "sysmon", "wrapt"]
ENGINE_NAMES = ("auto", "sysmon", "wrapt")


@dataclass(frozen=True)
class TraceOptions:
    """What ``@trace``/``patch`` asked for, checked (see ``tracing.trace``)."""

    key: Any  # the route key: the event name, or (channel, name)
    name: str  # the event name
    fields: tuple[str, ...] | None  # argument names recorded on entry
    retval: bool
    values: bool = False  # whole-package tracing: capture arguments and result


def unwrap_descriptor(func: Any) -> Any:
    """The function inside a classmethod or staticmethod, else ``func``."""
    return func.__func__ if isinstance(func, (classmethod, staticmethod)) else func


#: Undoes one patch exactly (see :meth:`Engine.patch`).
Undo = Callable[[], None]


class Engine(Protocol):
    """What a tracing engine does; the rest of the kit only calls these."""

    name: str

    def trace(self, func: Any, options: TraceOptions) -> Any:
        """What ``@trace`` returns for ``func``: ``func`` itself or a wrapper."""

    def patch(
        self, parent: Any, attribute: str, original: Any, options: TraceOptions
    ) -> Undo | None:
        """Trace ``parent.attribute`` (whose value is ``original``).

        Returns the function that undoes exactly this, or ``None`` when the
        target was already traced (nothing done, nothing to undo).
        """

    def start(self) -> None:
        """Recording started: switch tracing on."""

    def stop(self) -> None:
        """Recording stopped: switch tracing off, release what was taken."""


_lock = threading.RLock()
_setting: str | None = None  # None: not decided yet (read the environment)
_engines: dict[str, Engine] = {}
_warned_fallback = False


def check_engine_name(name: object) -> str:
    """``name`` if it names an engine setting, else a ``ValueError``."""
    if name not in ENGINE_NAMES:
        raise ValueError(f"engine must be one of {', '.join(ENGINE_NAMES)}; got {name!r}")
    return str(name)


def use(name: str | None) -> str | None:
    """Pick the engine for what is traced from now on (see the module doc);
    ``None`` goes back to ``RINGTRACE_ENGINE``. Returns the previous choice."""
    global _setting
    with _lock:
        previous = _setting
        _setting = None if name is None else check_engine_name(name)
        return previous


def setting() -> str:
    """The engine setting: ``use()``'s, else ``RINGTRACE_ENGINE``, else ``auto``."""
    global _setting
    with _lock:
        if _setting is None:
            raw = os.environ.get("RINGTRACE_ENGINE", "").strip().lower() or "auto"
            try:
                _setting = check_engine_name(raw)
            except ValueError:
                raise ValueError(
                    f"RINGTRACE_ENGINE must be one of {', '.join(ENGINE_NAMES)}; got {raw!r}"
                ) from None
        return _setting


def _get(name: str) -> Engine:
    found = _engines.get(name)
    if found is None:
        if name == "sysmon":
            from .sysmon import SysmonEngine

            found = SysmonEngine(wrapt_engine=_get("wrapt"))
        else:
            from .wrapt_engine import WraptEngine

            found = WraptEngine()
        _engines[name] = found
        from .. import hotpath

        if hotpath.active() is not None:  # made while recording: on at once
            found.start()
    return found


def sysmon_available() -> str | None:
    """Why the sysmon engine cannot run here, or ``None`` when it can."""
    if not hasattr(sys, "monitoring"):
        return f"sys.monitoring needs Python 3.12+, this is {sys.version.split()[0]}"
    from .sysmon import TOOL_IDS, free_tool_id

    existing: Any = _engines.get("sysmon")
    if existing is not None and existing.tool_id is not None:
        return None  # ours, while recording
    if existing is not None and not existing.usable:
        return "no sys.monitoring tool id was free when recording started"
    if free_tool_id() is None:
        monitoring: Any = getattr(sys, "monitoring", None)
        held = ", ".join(f"{t} ({monitoring.get_tool(t)})" for t in TOOL_IDS)
        return f"every sys.monitoring tool id ringtrace may take is held: {held}"
    return None


def current() -> Engine:
    """The engine that traces new code now (``auto`` resolved)."""
    global _warned_fallback
    with _lock:
        wanted = setting()
        if wanted == "wrapt":
            return _get("wrapt")
        why = sysmon_available()
        if why is None:
            return _get("sysmon")
        if (wanted == "sysmon" or hasattr(sys, "monitoring")) and not _warned_fallback:
            _warned_fallback = True
            warnings.warn(
                f"ringtrace: tracing with the wrapt engine instead of sysmon: {why}",
                RuntimeWarning,
                stacklevel=3,
            )
        return _get("wrapt")


def engine() -> str:
    """The name of the engine that traces new code now: ``sysmon`` or ``wrapt``."""
    return current().name


def started() -> None:
    """Recording started: every engine that traced something switches on."""
    with _lock:
        for found in list(_engines.values()):
            found.start()


def stopped() -> None:
    """Recording stopped: every engine switches off."""
    with _lock:
        for found in list(_engines.values()):
            found.stop()
