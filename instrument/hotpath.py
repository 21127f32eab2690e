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

Values are captured when recorded (:mod:`instrument.values`): a record
never refers to a program object. Fields that are all plain already (exact
``None``, ``bool``, ``float``, ``int`` of up to 64 bits, short ``str`` with
nothing to redact, under names already checked) are kept as they are; the
test is written out inline for the same reason as the write, and anything
else goes to :func:`instrument.values.capture_fields`.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable
from time import monotonic_ns
from typing import TYPE_CHECKING, Any

from .stream import ENTRY, EXIT, Record, Writer, placeholder_reserve
from .values import Capturer, capture_fields, exception_message, type_name

if TYPE_CHECKING:
    from .recorder import Recorder

_recorder: Recorder | None = None
_local = threading.local()

_NAME_RE = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")

# What the inline value test reads, set from the active recorder's Capturer.
_OTHER_PLAIN: frozenset[type] = frozenset()  # kept as they are (empty: "none" mode)
_safe_names: set[str] | frozenset[str] = frozenset()  # names known not to be redacted
_max_chars = 0  # strings kept as they are up to this length
_values_off = False  # the "none" mode
_INT_LOW, _INT_HIGH = -(1 << 64), 1 << 64


def activate(recorder: Recorder | None) -> None:
    """Point the hot path at ``recorder`` (``None`` stops recording).

    A fresh ``threading.local`` drops every thread's cached routes at once.
    The recorder keeps its own: a thread-local that is freed ends each
    thread's streams (see ``Recorder.attach_thread``), which must happen
    when a thread ends, not when recording stops.
    """
    global _recorder, _local, _OTHER_PLAIN, _safe_names, _max_chars, _values_off
    _local = threading.local()
    if recorder is not None:
        recorder.local = _local
        capturer: Capturer = recorder.capturer
        none = capturer.mode == "none"
        _values_off = none
        _OTHER_PLAIN = frozenset((float, bool, type(None)))
        # none mode: no name is known, so every field goes to capture_fields
        _safe_names = frozenset() if none else capturer.safe_names
        _max_chars = capturer.limit
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
    if local.__dict__.get("in_repr"):
        # Recorded from inside a __repr__ that capture called: dropped, and
        # counted, never recursed into (see instrument.values).
        end = local.__dict__.get("end")
        recorder.drop_nested(name, end.streams if end is not None else {})
        return _NOWHERE
    target = recorder.route(key, name, local.end.streams)
    if len(routes) < 65536:  # bound the cache if names are generated
        routes[key] = target
    return target


def event(name: str, /, **fields: Any) -> None:
    """Record a point event ``name`` with ``fields`` on this thread's stream.

    Costs one dict lookup, a look at each value's type and three C calls
    when recording, a global check when not. Values are captured now (see
    :mod:`instrument.values`): the record never refers to a program object.
    """
    if _recorder is None:
        return
    try:
        append, reserve = _local.routes[name]
    except (AttributeError, KeyError, TypeError):
        append, reserve = _route(check_name(name))  # checked: a tuple is a channel key
    # plain()'s check, spelled inline: a call would cost as much as the write.
    for value in fields.values():
        kind = type(value)
        if kind is int:
            if _INT_LOW < value < _INT_HIGH:
                continue
        elif kind is str:
            if len(value) <= _max_chars and "=" not in value and "@" not in value:
                continue
        elif kind in _OTHER_PLAIN:
            continue
        fields = capture_fields(fields)
        break
    else:
        if not _safe_names.issuperset(fields):
            fields = capture_fields(fields)
    # Reserve, then commit: a signal handler that records in between takes
    # the next position and commits first; readers put records back in
    # position order (see instrument.stream).
    append((reserve(), monotonic_ns(), name, fields))


_EXIT_NAMES = frozenset(("duration_ns", "exception"))


def plain(fields: Any) -> Any:
    """``fields`` (a dict, an exit's entry timestamp, or ``None``) as a
    record may keep them: dicts are captured unless already plain. With
    values off, an exit keeps only its duration and exception type."""
    if type(fields) is not dict or not fields:
        return fields
    if _values_off:
        return {k: v for k, v in fields.items() if k in _EXIT_NAMES and type(v) in (int, str)}
    for value in fields.values():
        kind = type(value)
        if kind is int:
            if _INT_LOW < value < _INT_HIGH:
                continue
        elif kind is str:
            if len(value) <= _max_chars and "=" not in value and "@" not in value:
                continue
        elif kind in _OTHER_PLAIN:
            continue
        return capture_fields(fields)
    if not _safe_names.issuperset(fields):
        return capture_fields(fields)
    return fields


def emit(key: Any, kind: str, name: str, fields: Any) -> int:
    """Record one event of ``kind`` and return its timestamp (0 when off).

    For the paths that run less often than a plain call: spans, generators,
    coroutines, exits by exception. ``fields`` are captured unless plain.
    """
    if _recorder is None:
        return 0
    try:
        append, reserve = _local.routes[key]
    except (AttributeError, KeyError):
        append, reserve = _route(key)
    if fields:
        fields = plain(fields)
    ts = monotonic_ns()
    append((reserve(), ts, name, fields, kind))
    return ts


def emit_captured(key: Any, kind: str, name: str, fields: Any) -> int:
    """:func:`emit` for fields made by :mod:`instrument.values` (captured
    already): the traced-call paths, which would otherwise check them twice."""
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
Finish = Callable[[Any], "dict[str, Any]"]


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
        t0 = emit_captured(key, ENTRY, name, fields)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            emit_exit(key, name, t0, error_fields(exc))
            raise
        emit_exit(key, name, t0, None if finish is None else finish(result))
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
            emit_exit(key, name, t0, error_fields(exc))
            raise
        append((reserve(), monotonic_ns(), name, t0, EXIT))
        return result

    return wrapper


def emit_exit(key: Any, name: str, t0: int, extra: dict[str, Any] | None) -> None:
    """Record the exit of a span or call entered at ``t0`` (0: no entry was
    recorded, nothing to do), with ``extra`` fields (a return value, an
    exception).

    ``duration_ns`` is measured to the exit's own timestamp, so that
    ``timestamp - duration_ns`` is exactly the entry's: the pairing identity
    (see :mod:`instrument.stream`).
    """
    if _recorder is None or not t0:
        return
    try:
        append, reserve = _local.routes[key]
    except (AttributeError, KeyError):
        append, reserve = _route(key)
    ts = monotonic_ns()
    append((reserve(), ts, name, t0 if extra is None else {"duration_ns": ts - t0, **extra}, EXIT))


def error_fields(exc: BaseException) -> dict[str, Any]:
    """Exit fields for a call that ended with ``exc``: its type and message,
    captured (see :func:`instrument.values.exception_message`)."""
    fields: dict[str, Any] = {"exception": type_name(type(exc))}
    message = exception_message(exc)  # captured (see instrument.values)
    if message is not None:
        fields["message"] = message
    return fields


def str_safely(exc: BaseException) -> str:
    """The message of ``exc`` as records keep it (``""`` when values are off)."""
    return exception_message(exc) or ""
