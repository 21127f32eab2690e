"""Everything that runs for every recorded event, kept in one module.

The shape of this module is dictated by speed: a CPython function call costs
as much as the whole write, so the write is spelled out inline in the places
that run most (``event``, the traced-call wrapper, ``emit``) instead of being
a helper, and it is made of C calls only. The state they read is
module-global for the same reason.

Finding the stream: each thread keeps a dict ``_local.routes`` from an event
name (or ``(channel, name)`` for an explicit channel) to a writer pair
``(append, reserve)``. A thread's first event of a name takes the slow path
(``_route``), which validates the name and asks the recorder. The common
case, one overwrite-mode channel without per-event context, is the bound
``append`` of the stream's ``deque(maxlen=capacity)`` and the bound
``__next__`` of its ``itertools.count()`` position counter: the write
``append((reserve(), timestamp, name, fields))`` reserves a position, then
commits the record that carries it, in C calls only, with no Python frame
and no Python-level position to read and store back. Measured against a
function appending one tuple to a deque: about 1.4x (1.55-1.75x for a
store into a slot list plus a Python-level position); what is left is
finding the thread's routes (the ``threading.local`` attribute and the dict
lookup, about 50 ns here) and reserving (the position int, about 35 ns).
Everything else (discard mode, several channels, dynamic context, a name no
channel takes) is a pair whose ``reserve`` returns a placeholder and whose
``append`` does the work (see ``Stream.writer`` and ``recorder.Route``).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable
from time import monotonic_ns
from typing import TYPE_CHECKING, Any

from .stream import ENTRY, EXIT, Record, Writer, placeholder_reserve

if TYPE_CHECKING:
    from .recorder import Recorder

_recorder: Recorder | None = None
_local = threading.local()

_NAME_RE = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")


def activate(recorder: Recorder | None) -> None:
    """Point the hot path at ``recorder`` (``None`` stops recording).

    A fresh ``threading.local`` drops every thread's cached routes at once.
    The recorder keeps its own: a thread-local that is freed ends each
    thread's streams (see ``Recorder.attach_thread``), which must happen
    when a thread ends, not when recording stops.
    """
    global _recorder, _local
    _local = threading.local()
    if recorder is not None:
        recorder.local = _local
    _recorder = recorder


def active() -> Recorder | None:
    """The recorder events go to now, if any."""
    return _recorder


def check_name(name: object) -> str:
    """``name`` if it is a valid event name, else a ``TypeError``/``ValueError``."""
    if not isinstance(name, str):
        raise TypeError(f"event name must be a str, got {type(name).__name__} {name!r}")
    if not _NAME_RE.match(name):
        raise ValueError(
            f"event name must be 1 to 256 printable characters without spaces, got {name!r}"
        )
    return name


#: The route of an event no channel takes: a deque that keeps nothing, so
#: writes go nowhere, uncounted (filtered out, not lost).
_NOWHERE_RING: deque[Record] = deque(maxlen=0)
_NOWHERE: Writer = (_NOWHERE_RING.append, placeholder_reserve)


def _route(key: Any) -> Writer:
    """Slow path: the writer pair this thread uses for ``key``."""
    recorder, local = _recorder, _local  # one pair, even if start/stop runs now
    if recorder is None:  # stopped between the caller's check and here
        return _NOWHERE
    try:
        routes = local.routes
    except AttributeError:
        recorder.attach_thread(local)  # first: a handler recording now needs it
        routes = local.routes = {}
    name = key[1] if type(key) is tuple else key
    check_name(name)
    target = recorder.route(key, name, local.end.streams)
    if len(routes) < 65536:  # bound the cache if names are generated
        routes[key] = target
    return target


def event(name: str, /, **fields: Any) -> None:
    """Record a point event ``name`` with ``fields`` on this thread's stream.

    Costs one dict lookup and three C calls when recording, a global check
    when not. Field values are kept as they are and converted to plain data
    when a snapshot reads them (see :mod:`instrument.values`).
    """
    if _recorder is None:
        return
    try:
        append, reserve = _local.routes[name]
    except (AttributeError, KeyError, TypeError):
        append, reserve = _route(check_name(name))  # checked: a tuple is a channel key
    # Reserve, then commit: a signal handler that records in between takes
    # the next position and commits first; readers put records back in
    # position order (see instrument.stream).
    append((reserve(), monotonic_ns(), name, fields))


def emit(key: Any, kind: str, name: str, fields: Any) -> int:
    """Record one event of ``kind`` and return its timestamp (0 when off).

    For the paths that run less often than a plain call: spans, generators,
    coroutines, exits by exception.
    """
    if _recorder is None:
        return 0
    try:
        append, reserve = _local.routes[key]
    except (AttributeError, KeyError):
        append, reserve = _route(key)
    ts = monotonic_ns()
    append((reserve(), ts, name, fields, kind))
    return ts


Capture = Callable[[Any, tuple[Any, ...], dict[str, Any]], "dict[str, Any] | None"]
Finish = Callable[[int, Any], "dict[str, Any] | int"]


def call_wrapper(key: Any, name: str, capture: Capture | None, finish: Finish | None) -> Any:
    """The wrapt wrapper of a traced plain function: an entry and an exit event.

    The exit record stores the entry timestamp instead of a fields dict; the
    reader turns it into ``duration_ns``. ``capture`` builds entry fields
    from the arguments, ``finish`` exit fields from the return value; without
    either (the common case) a leaner wrapper is returned.
    """
    if capture is None and finish is None:
        return _plain_call_wrapper(key, name)

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        __tracebackhide__ = True
        if _recorder is None:
            return wrapped(*args, **kwargs)
        fields = None if capture is None else capture(instance, args, kwargs)
        t0 = emit(key, ENTRY, name, fields)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            emit(key, EXIT, name, exit_error(t0, exc))
            raise
        emit(key, EXIT, name, t0 if finish is None else finish(t0, result))
        return result

    return wrapper


def _plain_call_wrapper(key: Any, name: str) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        __tracebackhide__ = True
        if _recorder is None:
            return wrapped(*args, **kwargs)
        try:
            append, reserve = _local.routes[key]
        except (AttributeError, KeyError):
            append, reserve = _route(key)
        t0 = monotonic_ns()
        append((reserve(), t0, name, None, ENTRY))
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            emit(key, EXIT, name, exit_error(t0, exc))
            raise
        append((reserve(), monotonic_ns(), name, t0, EXIT))
        return result

    return wrapper


def exit_error(t0: int, exc: BaseException) -> dict[str, Any]:
    """Exit fields for a call that ended with ``exc``."""
    return {
        "duration_ns": monotonic_ns() - t0,
        "exception": type(exc).__qualname__,
        "message": str_safely(exc),
    }


def str_safely(exc: BaseException) -> str:
    """``str(exc)``, or a note saying it raised: exceptions are user objects."""
    try:
        return str(exc)
    except Exception as inner:
        return f"<str() raised {type(inner).__name__}>"
