"""The sysmon engine: trace code objects with ``sys.monitoring`` (PEP 669).

``@trace``, ``patch`` and ``patch_module`` register the code object of a
Python function and change no object: ``@trace`` returns the very function,
attributes stay as they were, no frame is added (the callbacks run beside
the traced frame, not between it and its caller), and a call is seen
whatever reference was used to make it. What has no code object (C
functions, builtins, other callables) goes to the wrapt engine.

Events are switched on per code object only while recording
(``set_local_events`` at :meth:`SysmonEngine.start`, cleared at
:meth:`SysmonEngine.stop`), so before ``start()`` and after ``stop()`` a
traced function runs exactly as an untraced one. Registrations are counted
per code object: unpatching switches off exactly what that patch switched
on. The tool id is taken at start among those free (never one another tool
holds: coverage.py, debuggers, profilers) and freed at stop.

Records, as the wrapt engine writes them: an entry ``(pos, t0, name,
fields, "entry")``; an exit that stores the entry's timestamp ``t0`` (or a
dict with ``duration_ns`` measured from the exit's own timestamp); a
generator's or coroutine's suspension (``PY_YIELD``) and resumption
(``PY_RESUME``, ``PY_THROW``) as ``"suspend"``/``"resume"`` records that
store ``t0`` too (see :mod:`instrument.stream` on pairing).

The entry timestamp of a plain call waits for its exit on a per-thread
stack (plain calls nest); a generator's or coroutine's waits in a dict keyed
by its frame's id (they interleave), removed when it ends.

``PY_UNWIND`` (exit by exception) and ``EXCEPTION_HANDLED`` are global
events before Python 3.15: their callbacks return at once unless the code
is traced (one dict lookup), and are enabled only while something is traced.
"""

from __future__ import annotations

import sys
import threading
import warnings

# Bound once: a program may delete or replace sys._getframe (attrs' own
# suite does, to test its fallback), and a callback must never fail then.
from sys import _getframe, getrefcount
from time import monotonic_ns
from types import CodeType, FunctionType, MethodType
from typing import Any

from .. import hotpath
from ..hotpath import error_fields
from ..sources import note_source
from ..stream import ENTRY, EXIT
from ..values import _OPAQUE, MAX_NAME_CHARS, exception_message, type_name
from . import TraceOptions, Undo, unwrap_descriptor

monitoring: Any = getattr(sys, "monitoring", None)

#: The tool ids ringtrace may take, in order. 0 (debugger), 1 (coverage),
#: 2 (profiler) and 5 (optimizer) are other tools' by convention.
TOOL_IDS = (3, 4)
TOOL_NAME = "ringtrace"

#: Record kinds of a generator's or coroutine's suspension and resumption.
SUSPEND = "suspend"
RESUME = "resume"

#: getrefcount() of a frame's f_locals dict that only the frame and the
#: callback reading it hold (the frame, the local name, the call's argument).
_FRAME_AND_OURS = 3

_SUSPENDABLE = 0x20 | 0x80 | 0x100 | 0x200  # generator, coroutine, iterable coroutine, async gen

# A traced code object's target: (route key, event name, argument names to
# record or None, capture the return value, suspendable).
Target = tuple[Any, str, "tuple[str, ...] | None", bool, bool]

#: What the callbacks read: id of a code object -> target, for every traced
#: code. Keyed by identity: distinct code objects compare equal when their
#: contents do (two dataclasses' generated ``__init__``, say).
_targets: dict[int, Target] = {}
#: Every registration per code object (kept alive here, so ids stay
#: unique), first one in force.
_registrations: dict[int, tuple[CodeType, list[TraceOptions]]] = {}
#: Entry timestamps of running generators and coroutines, by frame id.
_suspendables: dict[int, int] = {}
_local: Any = threading.local()  # hotpath's thread-local while recording
_lock = threading.RLock()


def _new_epoch() -> None:
    global _epoch
    _epoch = object()


def free_tool_id() -> int | None:
    """A ``sys.monitoring`` tool id no tool holds, of those ringtrace takes."""
    if monitoring is None:
        return None
    for tool in TOOL_IDS:
        if monitoring.get_tool(tool) is None:
            return tool
    return None


def code_of(func: Any) -> CodeType | None:
    """The code object monitoring traces for ``func``, or ``None`` if it has none."""
    target = unwrap_descriptor(func)
    if type(target) is MethodType:
        target = target.__func__
    if type(target) is FunctionType:
        return target.__code__
    return None


def _target_of(code: CodeType, options: TraceOptions) -> Target:
    suspendable = bool(code.co_flags & _SUSPENDABLE)
    return (options.key, options.name, options.fields, options.retval, suspendable)


# -- callbacks: the hot path of this engine ------------------------------------
# Spelled out inline, like hotpath.event: a Python call costs as much as the
# write. Every callback finds what it needs with one lookup in the thread's
# routes (see _entry_of): the writer pair, the stack of entry times and the
# target, and whether this code's argument names need the slow path.


def _writer(key: Any) -> Any:
    try:
        return _local.routes[key]
    except (AttributeError, KeyError):
        return hotpath._route(key)


#: Replaced whenever a target changes, so that threads' cached entries
#: made before (see :func:`_entry_of`) are seen stale and made again.
_epoch = object()

# A thread's entry for one traced code object: (append, reserve, the
# thread's stack of entry times, event name, argument names or None, how
# values are captured (see _entry_of), capture the return value,
# suspendable, epoch).
Entry = tuple[Any, Any, list[int], str, "tuple[str, ...] | None", int, bool, bool, object]

#: How an entry's values are captured: argument names already checked (none
#: redacted, none long) and the return value's field name too: values are
#: captured inline (:func:`_entry_fields`); values off ("none" mode): no
#: values at all; anything else: through :func:`hotpath.plain`.
_INLINE, _OFF, _GENERIC = 0, 1, 2

# What the inline capture reads, set from the recorder's Capturer by
# _entry_of (the first call of each traced code after recording starts).
_limit = 0  # strings kept as they are up to this length
_opaque_texts: Any = None  # values._OPAQUE in safe mode, else None
_capture: Any = None  # the recorder's Capturer.value
_KEPT = frozenset((bool, float, type(None)))
_INT_LOW, _INT_HIGH = -(1 << 64), 1 << 64


def _capture_mode(names: tuple[str, ...] | None) -> int:
    """How an entry of argument ``names`` captures values, with the active
    recorder's settings (read here: once per code and thread)."""
    global _limit, _opaque_texts, _capture
    recorder = hotpath._recorder
    if recorder is None:
        return _GENERIC
    capturer = recorder.capturer
    if capturer.mode == "none":
        return _OFF
    _limit, _capture = capturer.limit, capturer.value
    _opaque_texts = _OPAQUE if capturer.mode == "safe" else None
    hides = capturer.redactor.hides
    for name in (*(names or ()), "retval"):
        if type(name) is not str or len(name) > MAX_NAME_CHARS or hides(name):
            return _GENERIC
    return _INLINE


def _entry_of(code: CodeType) -> Entry | None:
    """Slow path: the thread's entry for ``code`` (``None``: not traced),
    cached in the thread's routes under the code's id (ints are no route
    key), so that a ``__repr__`` that capture calls, which runs with routes
    of its own, finds none and its events are dropped and counted."""
    target = _targets.get(id(code))
    if target is None:
        return None
    key, name, names, retval, suspendable = target
    writer = hotpath._route(key)
    append, reserve = writer
    routes = getattr(_local, "routes", None)
    how = _capture_mode(names)
    if routes is None or writer is hotpath._NOWHERE:  # not recording, or inside a __repr__
        return (append, reserve, [], name, names, how, retval, suspendable, None)
    calls = routes.get(None)
    if calls is None:
        calls = routes[None] = []
    entry = (append, reserve, calls, name, names, how, retval, suspendable, _epoch)
    if len(routes) < 65536:
        routes[id(code)] = entry
    return entry


def _entry_fields(names: tuple[str, ...], how: int, frame: Any) -> Any:
    if how == _OFF:
        return {}
    values = frame.f_locals
    if how == _INLINE:
        # capture()'s result, spelled inline for what most arguments are:
        # plain scalars kept as they are, objects shown by class name alone
        # (values._OPAQUE); anything else through the Capturer.
        fields = {}
        texts = _opaque_texts
        try:  # at PY_START every argument is bound: one lookup each
            for name in names:
                value = values[name]
                kind = type(value)
                if kind is int:
                    if _INT_LOW < value < _INT_HIGH:
                        fields[name] = value
                        continue
                elif kind is str:
                    if len(value) <= _limit and "=" not in value and "@" not in value:
                        fields[name] = value
                        continue
                elif kind in _KEPT:
                    fields[name] = value
                    continue
                elif texts is not None:
                    known = texts.get(id(kind))
                    if known is not None and known[0]() is kind:
                        fields[name] = known[1]
                        continue
                fields[name] = _capture(value)
        except KeyError:
            fields = hotpath.plain({n: values[n] for n in names if n in values})
    else:
        try:
            fields = hotpath.plain({n: values[n] for n in names})
        except KeyError:
            fields = hotpath.plain({n: values[n] for n in names if n in values})
    if type(values) is dict and getrefcount(values) <= _FRAME_AND_OURS:
        # Python 3.12: f_locals is a snapshot dict that the frame keeps until
        # it ends, so it would hold every argument that long, past a ``del``
        # or a rebinding (a generator's for its whole life). Emptied when no
        # one else holds it: reading f_locals or locals() again fills it anew.
        # (3.13's f_locals is a proxy that keeps nothing.)
        values.clear()
    return fields


def _on_start(code: CodeType, offset: int) -> Any:
    # One lookup in the thread's routes finds the writer, the stack of
    # entry times (plain calls nest) and the target together.
    try:
        append, reserve, calls, name, names, how, _retval, suspendable, epoch = _local.routes[
            id(code)
        ]
        if epoch is not _epoch:
            raise KeyError
    except (AttributeError, KeyError):
        entry = _entry_of(code)
        if entry is None:
            return monitoring.DISABLE
        append, reserve, calls, name, names, how, _retval, suspendable, epoch = entry
    fields = None if names is None else _entry_fields(names, how, _getframe(1))
    t0 = monotonic_ns()
    append((reserve(), t0, name, fields, ENTRY))
    if suspendable:
        _suspendables[id(_getframe(1))] = t0
    else:
        calls.append(t0)
    return None


def _on_return(code: CodeType, offset: int, retval: object) -> Any:
    try:
        append, reserve, calls, name, _names, how, wants_retval, suspendable, epoch = _local.routes[
            id(code)
        ]
        if epoch is not _epoch:
            raise KeyError
    except (AttributeError, KeyError):
        entry = _entry_of(code)
        if entry is None:
            return monitoring.DISABLE
        append, reserve, calls, name, _names, how, wants_retval, suspendable, epoch = entry
    if suspendable:
        t0 = _suspendables.pop(id(_getframe(1)), None)
        if t0 is None:  # started before recording did
            return None
    elif calls:
        t0 = calls.pop()
    else:  # entered before recording started
        return None
    if not wants_retval:
        append((reserve(), monotonic_ns(), name, t0, EXIT))
        return None
    if how == _INLINE:  # the return value captured as _entry_fields does
        kind = type(retval)
        if kind is int:
            if not _INT_LOW < retval < _INT_HIGH:  # type: ignore[operator]
                retval = _capture(retval)
        elif kind is str:
            if len(retval) > _limit or "=" in retval or "@" in retval:  # type: ignore[arg-type, operator]
                retval = _capture(retval)
        elif kind not in _KEPT:
            texts = _opaque_texts
            known = None if texts is None else texts.get(id(kind))
            retval = known[1] if known is not None and known[0]() is kind else _capture(retval)
        ts = monotonic_ns()
        append((reserve(), ts, name, {"duration_ns": ts - t0, "retval": retval}, EXIT))
    elif how == _OFF:  # values off: the duration alone
        ts = monotonic_ns()
        append((reserve(), ts, name, {"duration_ns": ts - t0}, EXIT))
    else:
        extra = hotpath.plain({"retval": retval})
        ts = monotonic_ns()
        append((reserve(), ts, name, {"duration_ns": ts - t0, **extra}, EXIT))
    return None


def _on_unwind(code: CodeType, offset: int, exc: BaseException) -> None:
    target = _targets.get(id(code))  # global event: every frame that raises out
    if target is None:
        return
    key, name, _names, _retval, suspendable = target
    if suspendable:
        t0 = _suspendables.pop(id(_getframe(1)), None)
        if t0 is None:
            return
    else:
        try:
            t0 = _local.routes[None].pop()
        except (AttributeError, KeyError, IndexError):
            return
    append, reserve = _writer(key)
    extra = error_fields(exc)
    ts = monotonic_ns()
    append((reserve(), ts, name, {"duration_ns": ts - t0, **extra}, EXIT))


def _on_yield(code: CodeType, offset: int, value: object) -> Any:
    try:
        append, reserve, _calls, name, _names, _how, _retval, _susp, epoch = _local.routes[id(code)]
        if epoch is not _epoch:
            raise KeyError
    except (AttributeError, KeyError):
        entry = _entry_of(code)
        if entry is None:
            return monitoring.DISABLE
        append, reserve, _calls, name, _names, _how, _retval, _susp, epoch = entry
    t0 = _suspendables.get(id(_getframe(1)))
    if t0 is not None:
        append((reserve(), monotonic_ns(), name, t0, SUSPEND))
    return None


def _on_resume(code: CodeType, offset: int) -> Any:
    try:
        append, reserve, _calls, name, _names, _how, _retval, _susp, epoch = _local.routes[id(code)]
        if epoch is not _epoch:
            raise KeyError
    except (AttributeError, KeyError):
        entry = _entry_of(code)
        if entry is None:
            return monitoring.DISABLE
        append, reserve, _calls, name, _names, _how, _retval, _susp, epoch = entry
    t0 = _suspendables.get(id(_getframe(1)))
    if t0 is not None:
        append((reserve(), monotonic_ns(), name, t0, RESUME))
    return None


def _on_throw(code: CodeType, offset: int, exc: BaseException) -> None:
    target = _targets.get(id(code))  # global event: a generator resumed by throw()
    if target is not None:
        t0 = _suspendables.get(id(_getframe(1)))
        if t0 is not None:
            append, reserve = _writer(target[0])
            append((reserve(), monotonic_ns(), target[1], t0, RESUME))


def _on_handled(code: CodeType, offset: int, exc: BaseException) -> None:
    target = _targets.get(id(code))  # global event: every exception caught anywhere
    if target is None:
        return
    tb = exc.__traceback__
    where = f"{code.co_filename}:?"
    if tb is not None:
        while tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
    append, reserve = _writer("exception.handled")
    fields = {
        "type": type_name(type(exc)),
        "message": exception_message(exc),
        "where": where,
        "function": target[1],
    }
    append((reserve(), monotonic_ns(), "exception.handled", fields))


def _events() -> tuple[int, int, int]:
    """(plain code's local events, suspendable code's local events, global events)."""
    ev = monitoring.events
    plain = ev.PY_START | ev.PY_RETURN
    return (
        plain,
        plain | ev.PY_YIELD | ev.PY_RESUME,
        ev.PY_UNWIND | ev.PY_THROW | ev.EXCEPTION_HANDLED,
    )


class SysmonEngine:
    """The sysmon engine (see the module docstring)."""

    name = "sysmon"

    def __init__(self, wrapt_engine: Any):
        self._wrapt = wrapt_engine
        #: The tool id held while recording, else ``None``.
        self.tool_id: int | None = None
        #: False once a start found no free tool id: new code goes to wrapt.
        self.usable = True

    # -- registration -----------------------------------------------------------

    def trace(self, func: Any, options: TraceOptions) -> Any:
        code = code_of(func)
        if code is None:  # C function, builtin, callable object: monitoring cannot see it
            return self._wrapt.trace(func, options)
        self._register(code, options)
        return func

    def patch(
        self, parent: Any, attribute: str, original: Any, options: TraceOptions
    ) -> Undo | None:
        code = code_of(original)
        if code is None:
            return self._wrapt.patch(parent, attribute, original, options)  # type: ignore[no-any-return]
        self._register(code, options)
        done = False

        def undo() -> None:
            nonlocal done
            if not done:
                done = True
                self._unregister(code, options)

        return undo

    def _register(self, code: CodeType, options: TraceOptions) -> None:
        with _lock:
            _code, registered = _registrations.setdefault(id(code), (code, []))
            registered.append(options)
            if len(registered) == 1:
                _new_epoch()
                _targets[id(code)] = _target_of(code, options)
                note_source(options.name, code)
                self._switch(code, on=True)

    def _unregister(self, code: CodeType, options: TraceOptions) -> None:
        with _lock:
            _code, registered = _registrations.get(id(code), (code, []))
            if options not in registered:
                return
            first = registered[0]
            registered.remove(options)
            if not registered:
                _new_epoch()
                del _registrations[id(code)]
                del _targets[id(code)]
                self._switch(code, on=False)
            elif first is options:  # the next registration is in force now
                _new_epoch()
                _targets[id(code)] = _target_of(code, registered[0])

    def _switch(self, code: CodeType, *, on: bool) -> None:
        tool = self.tool_id
        if tool is None:
            return
        plain, suspendable, _ = _events()
        events = (suspendable if code.co_flags & _SUSPENDABLE else plain) if on else 0
        monitoring.set_local_events(tool, code, events)

    def traced_codes(self) -> int:
        """How many code objects are registered now."""
        return len(_targets)

    # -- recording on and off ---------------------------------------------------

    def start(self) -> None:
        global _local
        with _lock:
            _local = hotpath._local
            _suspendables.clear()
            if self.tool_id is not None:
                return
            tool = free_tool_id()
            if tool is None:
                self.usable = False
                if _targets:
                    warnings.warn(
                        "ringtrace: every sys.monitoring tool id ringtrace may take "
                        f"({', '.join(map(str, TOOL_IDS))}) is held by another tool: "
                        f"the {len(_targets)} functions traced by the sysmon engine are not "
                        "recorded, and what is traced from now on uses the wrapt engine",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                return
            monitoring.use_tool_id(tool, TOOL_NAME)
            self.tool_id = tool
            ev = monitoring.events
            register = monitoring.register_callback
            register(tool, ev.PY_START, _on_start)
            register(tool, ev.PY_RETURN, _on_return)
            register(tool, ev.PY_YIELD, _on_yield)
            register(tool, ev.PY_RESUME, _on_resume)
            register(tool, ev.PY_UNWIND, _on_unwind)
            register(tool, ev.PY_THROW, _on_throw)
            register(tool, ev.EXCEPTION_HANDLED, _on_handled)
            monitoring.set_events(tool, _events()[2])
            for code, _options in _registrations.values():
                self._switch(code, on=True)

    def stop(self) -> None:
        with _lock:
            tool = self.tool_id
            if tool is None:
                return
            self.tool_id = None
            for code, _options in _registrations.values():
                monitoring.set_local_events(tool, code, 0)
            monitoring.set_events(tool, 0)
            for event in (
                "PY_START",
                "PY_RETURN",
                "PY_YIELD",
                "PY_RESUME",
                "PY_UNWIND",
                "PY_THROW",
                "EXCEPTION_HANDLED",
            ):
                monitoring.register_callback(tool, getattr(monitoring.events, event), None)
            monitoring.free_tool_id(tool)
            _suspendables.clear()
