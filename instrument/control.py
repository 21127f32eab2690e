"""Starting and stopping the process-wide recorder, and reading it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator

from . import engines, hotpath
from .channel import Channel
from .model import Event, Snapshot, StreamInfo
from .reading import consume as _consume
from .reading import take_snapshot
from .recorder import Recorder
from .values import DEFAULT_MAX_FIELD_CHARS

_lock = threading.Lock()


def start(
    channels: Iterable[Channel] | None = None,
    *,
    max_dead_streams: int = 64,
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
    redact: Iterable[str] | bool = True,
    engine: str | None = None,
    values: str = "safe",
) -> Recorder:
    """Start recording, process-wide, into fresh rings.

    ``channels`` defaults to one overwrite-mode channel named ``default``
    taking every event. ``max_dead_streams`` caps the streams of ended
    threads kept readable; ``max_field_chars`` caps each field value as
    recorded; ``redact`` is ``True`` (hide credential-like names, URL
    user-info and credentials in query strings, at any depth), ``False``, or
    the list of name fragments to hide; ``values`` is how other objects are
    recorded: ``"safe"`` (runs no program code), ``"repr"`` (their own
    ``__repr__``, bounded and guarded) or ``"none"`` (no values recorded).
    ``engine`` (``auto``, ``sysmon`` or ``wrapt``) picks the tracing engine
    for what is traced from then on (see :mod:`instrument.engines`; best set
    before anything is traced, or with ``RINGTRACE_ENGINE``). Raises
    ``RuntimeError`` if already started: call :func:`stop` first.
    """
    if engine is not None:
        engines.check_engine_name(engine)
    with _lock:
        if hotpath.active() is not None:
            raise RuntimeError("instrument is already recording; call instrument.stop() first")
        recorder = Recorder(
            channels,
            max_dead_streams=max_dead_streams,
            max_field_chars=max_field_chars,
            redact=redact,
            values=values,
        )
        if engine is not None:
            engines.use(engine)
        hotpath.activate(recorder)
        engines.started()
        return recorder


def stop() -> Recorder:
    """Stop recording. Returns the stopped recorder, still readable.

    Raises ``RuntimeError`` if not recording.
    """
    with _lock:
        recorder = hotpath.active()
        if recorder is None:
            raise RuntimeError("instrument is not recording; call instrument.start() first")
        hotpath.activate(None)
        engines.stopped()
        return recorder


def recording() -> bool:
    """Whether events are being recorded now."""
    return hotpath.active() is not None


def active_recorder() -> Recorder | None:
    """The recorder in use, or ``None`` when not recording."""
    return hotpath.active()


def _require(given: Recorder | None) -> Recorder:
    rec = given if given is not None else hotpath.active()
    if rec is None:
        raise RuntimeError("instrument is not recording; call instrument.start() first")
    return rec


def snapshot(since: int | None = None, *, recorder: Recorder | None = None) -> Snapshot:
    """Read every stream into a :class:`Snapshot`, without stopping writers.

    ``since`` (monotonic ns, as ``time.monotonic_ns()``) keeps only events at
    or after it. ``recorder`` reads a stopped recorder instead of the active one.
    """
    if since is not None and (isinstance(since, bool) or not isinstance(since, int)):
        raise TypeError(
            f"since must be a monotonic timestamp in nanoseconds (an int, as from "
            f"time.monotonic_ns()), got {type(since).__name__} {since!r}"
        )
    return take_snapshot(_require(recorder), since)


def consume(
    *, flush: bool = False, recorder: Recorder | None = None
) -> Iterator[tuple[StreamInfo, list[Event]]]:
    """Drain discard-mode channels sub-buffer by sub-buffer (see reading.consume)."""
    return _consume(_require(recorder), flush=flush)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it: it is gone
    recorder = hotpath.active()
    if recorder is not None:
        recorder.after_fork()
        hotpath.activate(recorder)
        engines.started()


os.register_at_fork(after_in_child=_after_fork_in_child)


#: Spellings of an environment switch, compared without case or spaces.
TRUE_WORDS = ("1", "true", "t", "yes", "y", "on", "enable", "enabled")
FALSE_WORDS = ("", "0", "false", "f", "no", "n", "off", "disable", "disabled")


def environment_switch(name: str) -> bool:
    """The environment variable ``name`` read as on or off (unset is off).

    Any other value is a ``ValueError`` naming the variable and the
    spellings accepted: a typo must not silently leave recording off.
    """
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(
        f"{name}={raw!r}: expected one of {', '.join(TRUE_WORDS)} to turn it on, or "
        f"{', '.join(w for w in FALSE_WORDS if w)} (or unset) to leave it off"
    )


def start_from_environment() -> None:
    """``RINGTRACE=1`` (or true, yes, on, y, enable) starts recording at import;
    a value that is neither on nor off is a ``ValueError``."""
    if environment_switch("RINGTRACE") and hotpath.active() is None:
        start()
