"""instrument: a flight recorder for Python programs.

Record events into per-thread ring buffers and read them back as snapshots,
in the style of LTTng's snapshot mode::

    import instrument

    instrument.start()

    @instrument.trace
    def handle(order_id): ...

    instrument.event("cache.miss", key="user:42")
    snap = instrument.snapshot()
    for ev in snap.events[-10:]:
        print(ev.timestamp, ev.thread_name, ev.name, ev.fields)

Nothing is recorded before :func:`start` (or ``RINGTRACE=1`` in the
environment). :func:`engine` says which tracing engine is in use.

PYTEST_DONT_REWRITE: installed (not editable) with the pytest plugin, this
package is marked for assertion rewriting like the plugin's; it has no
assertions for pytest, and without this marker every pytest session that
starts after it was imported (nested sessions, ``RINGTRACE=1``) would warn
that it cannot be rewritten, an error under ``-W error``.
"""

from .channel import Channel
from .context import register_context, unregister_context
from .control import (
    active_recorder,
    consume,
    recording,
    snapshot,
    start,
    start_from_environment,
    stop,
)
from .engines import engine
from .hotpath import event
from .logbridge import record_logging, stop_logging
from .model import Event, Snapshot, SnapshotFileError, StreamInfo
from .patching import Patch, patch, patch_module, patched, unpatch
from .recorder import Recorder
from .tracing import span, trace
from .triggers import Triggers, dump, dump_off, dump_on

__all__ = [
    "Channel",
    "Event",
    "Patch",
    "Recorder",
    "Snapshot",
    "SnapshotFileError",
    "StreamInfo",
    "Triggers",
    "active_recorder",
    "consume",
    "dump",
    "dump_off",
    "dump_on",
    "engine",
    "event",
    "patch",
    "patch_module",
    "patched",
    "record_logging",
    "recording",
    "register_context",
    "snapshot",
    "span",
    "start",
    "stop",
    "stop_logging",
    "trace",
    "unpatch",
    "unregister_context",
]

start_from_environment()
