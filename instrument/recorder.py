"""The recorder: channels, the registry of streams, and thread life cycles.

A process has at most one active recorder (``instrument.start``). It creates
a thread's streams on the thread's first event, notices when the thread ends
(its thread-local data is released), keeps the streams of ended threads
readable, and evicts the oldest of them beyond ``max_dead_streams``.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import monotonic_ns
from typing import Any

from . import context, hotpath
from .channel import Channel
from .hotpath import _NOWHERE
from .stream import EVENT, Record, Stream, Writer, placeholder_reserve
from .values import DEFAULT_MAX_FIELD_CHARS, DEFAULT_MODE, DEFAULT_REDACT, Capturer, Redactor


def _fragments(redact: object) -> list[str]:
    """``start(redact=...)`` as a list of name fragments; one string is one."""
    items: list[object] = (
        list(redact) if isinstance(redact, Iterable) and not isinstance(redact, str) else [redact]
    )
    fragments = [item for item in items if isinstance(item, str) and item]
    if len(fragments) != len(items):
        raise TypeError(
            f"redact must be True, False, or field-name fragments (non-empty strings), "
            f"got {redact!r}"
        )
    return fragments


class _ThreadEnd:
    """Kept in a thread's thread-local data; released when the thread ends."""

    __slots__ = ("__weakref__", "streams")

    def __init__(self) -> None:
        self.streams: dict[str, Stream] = {}


#: Bound at import: ``threading.current_thread`` itself may be patched (traced)
#: later, and calling the traced one here would route its own event, forever.
_current_thread = threading.current_thread

#: Per thread: whether a Route is evaluating context providers now.
_guard = threading.local()


class Route:
    """Where a thread writes a name that needs more than one plain stream.

    Several channels take the name, or a channel records dynamic context.
    Its writer pair is ``(self.append, placeholder_reserve)``: the hot path
    builds the record with a placeholder position, and :meth:`append` writes
    it to each stream at that stream's next position.
    """

    __slots__ = ("targets",)

    def __init__(self, targets: Sequence[tuple[Stream, tuple[tuple[str, context.Provider], ...]]]):
        self.targets = tuple(targets)

    def writer(self) -> Writer:
        """The ``(append, reserve)`` pair the hot path calls."""
        return self.append, placeholder_reserve

    def append(self, record: Record) -> None:
        # A provider that records an event (through any route of this thread)
        # lands here again: that event is written without dynamic context
        # instead of recursing, and the outer record is then retimed, so that
        # a stream's timestamps keep following its positions.
        guard = _guard
        if getattr(guard, "busy", False):
            guard.nested = True
            for stream, providers in self.targets:
                blank = (None,) * len(providers)
                stream.write(_with_context(record, blank) if providers else record)
            return
        guard.busy = True
        try:
            for stream, providers in self.targets:
                if providers:
                    guard.nested = False
                    values = context.capture(providers, context.evaluate(providers))
                    if guard.nested:
                        record = (record[0], monotonic_ns(), *record[2:])
                    stream.write(_with_context(record, values))
                else:
                    stream.write(record)
        finally:
            guard.busy = False


def _with_context(record: Record, values: tuple[object, ...]) -> Record:
    """``record`` with dynamic context: a point event gets its kind first, so
    that the context is always the sixth item."""
    if len(record) == 4:
        return (*record, EVENT, values)
    return (*record, values)


def _loop_changed() -> None:
    """An asyncio loop started or stopped on this thread: forget the
    thread's writers, so that they are chosen again, with or without the
    task context."""
    routes = getattr(hotpath._local, "routes", None)
    if routes:
        routes.clear()


class Recorder:
    """Owns the channels and every stream created from them."""

    def __init__(
        self,
        channels: Iterable[Channel] | None = None,
        *,
        max_dead_streams: int = 64,
        max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
        redact: Iterable[str] | bool = True,
        values: str = DEFAULT_MODE,
    ):
        chans = list(channels) if channels is not None else [Channel()]
        if not chans:
            raise ValueError("start() needs at least one channel")
        self.channels: dict[str, Channel] = {}
        for chan in chans:
            if not isinstance(chan, Channel):
                raise TypeError(f"channels must be instrument.Channel objects, got {chan!r}")
            if chan.name in self.channels:
                raise ValueError(f"two channels are named {chan.name!r}")
            self.channels[chan.name] = chan
        self._providers = {c.name: context.dynamic_providers(c.contexts) for c in chans}
        if isinstance(max_dead_streams, bool) or not isinstance(max_dead_streams, int):
            raise TypeError(f"max_dead_streams must be an int, got {max_dead_streams!r}")
        if max_dead_streams < 0:
            raise ValueError(f"max_dead_streams must be >= 0, got {max_dead_streams}")
        if isinstance(max_field_chars, bool) or not isinstance(max_field_chars, int):
            raise TypeError(f"max_field_chars must be an int, got {max_field_chars!r}")
        if max_field_chars < 16:
            raise ValueError(f"max_field_chars must be >= 16, got {max_field_chars}")
        self.max_dead_streams = max_dead_streams
        self.max_field_chars = max_field_chars
        if redact is True:
            self.redactor = Redactor(DEFAULT_REDACT)
        elif redact is False:
            self.redactor = Redactor(())
        else:
            self.redactor = Redactor(_fragments(redact))
        #: How program values become record data (see instrument.values).
        self.capturer = Capturer(max_field_chars, values, self.redactor)
        #: Events recorded from inside a __repr__ that capture called, dropped.
        self.dropped_nested = 0
        self.pid = os.getpid()
        self._lock = threading.RLock()
        self._streams: list[Stream] = []
        self._dead: deque[Stream] = deque()
        self._watch: set[weakref.ref[_ThreadEnd]] = set()
        self.evicted = 0
        self.local: Any = None  # the hot path's thread-local while this recorder is active
        #: Makes each new stream: ``Stream``, or in a child process of a
        #: recording session a stream that also writes to shared memory
        #: (``instrument.shared``).
        self.stream_factory: Callable[[Channel, threading.Thread, Mapping[str, object]], Stream] = (
            Stream
        )

    # -- called from the hot path's slow branch, in the writing thread --------

    def attach_thread(self, local: Any) -> None:
        """Give the calling thread a sentinel that tells us when it ends.

        A signal handler that records while this runs attaches the thread
        itself: whichever call sets the sentinel first registers it, once.
        """
        mine = _ThreadEnd()
        end = local.__dict__.setdefault("end", mine)
        if end is not mine:
            return
        streams = end.streams

        def ended(ref: weakref.ref[_ThreadEnd]) -> None:
            self._watch.discard(ref)
            for stream in streams.values():
                stream.alive = False
                self._dead.append(stream)

        self._watch.add(weakref.ref(end, ended))

    def route(self, key: Any, name: str, streams: dict[str, Stream]) -> Writer:
        """The writer pair the calling thread uses for ``key``.

        ``streams`` are the calling thread's streams by channel name.
        """
        if type(key) is tuple:
            chan = self.channels.get(key[0])
            if chan is None:
                # A mismatch between the code and this recorder's channels must
                # not break the traced code: say so once per thread and name.
                warnings.warn(
                    f"ringtrace: unknown channel {key[0]!r} for {name!r}, not recorded; "
                    f"channels: {', '.join(self.channels)}",
                    RuntimeWarning,
                    stacklevel=4,
                )
                return _NOWHERE
            chans = [chan]
        else:
            chans = [c for c in self.channels.values() if c.takes(name)]
        if not chans:
            return _NOWHERE
        targets = []
        # The asyncio task is recorded by threads running a loop, on every
        # channel (see instrument.context); the others keep plain writers.
        if "asyncio" in sys.modules:
            context.watch_loops(_loop_changed)
        task = context.loop_running()
        for chan in chans:
            stream = streams.get(chan.name)
            if stream is None:
                stream = self._new_stream(chan, streams)
            providers = self._providers[chan.name]
            if task and "task" not in chan.contexts:
                providers = (*providers, context.AUTO_TASK)
            targets.append((stream, providers))
        if len(targets) == 1 and not targets[0][1]:
            return targets[0][0].writer()
        return Route(targets).writer()

    def drop_nested(self, name: str, streams: dict[str, Stream]) -> None:
        """Count an event recorded from inside a ``__repr__`` called by
        capture, which is dropped: in the calling thread's streams that
        would have taken it (their ``dropped``), and in ``dropped_nested``."""
        self.dropped_nested += 1
        for chan in self.channels.values():
            stream = streams.get(chan.name)
            if stream is not None and chan.takes(name):
                stream.dropped += 1

    def _new_stream(self, chan: Channel, streams: dict[str, Stream]) -> Stream:
        """The calling thread's stream of ``chan``, created and registered.

        A signal handler may record in the middle of this, on this thread:
        it then finds the stream already in ``streams`` (never makes a
        second one), and the lock it may need for another channel's stream
        is re-entrant.
        """
        thread = _current_thread()
        fresh = self.stream_factory(chan, thread, context.static_context(thread, self.pid))
        stream = streams.setdefault(chan.name, fresh)
        if stream is fresh:
            with self._lock:
                self._evict()
                self._streams.append(stream)
        return stream

    def _evict(self) -> None:
        # Caller holds the lock. Oldest dead streams go first. A re-entrant
        # call (a signal handler's first event) may have evicted meanwhile.
        while len(self._dead) > self.max_dead_streams:
            try:
                stream = self._dead.popleft()
            except IndexError:
                break
            try:
                self._streams.remove(stream)
                self.evicted += 1
            except ValueError:
                pass

    # -- readers --------------------------------------------------------------

    def streams(self) -> list[Stream]:
        """Every stream still held, live and ended, in creation order."""
        with self._lock:
            self._evict()
            return list(self._streams)

    def after_fork(self) -> None:
        """In a forked child: forget the parent's streams, start fresh ones."""
        self._lock = threading.RLock()
        self._streams = []
        self._dead = deque()
        self._watch = set()
        self.pid = os.getpid()
        self.stream_factory = Stream  # a shared-memory factory was the parent's
