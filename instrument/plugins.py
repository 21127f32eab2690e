"""Extension points of the kit, through pluggy (the hook library pytest uses).

Three doors, each a hook any plugin may implement:

* ``ringtrace_contexts()`` returns ``{name: provider}``: context fields a
  channel may then list in ``Channel.contexts``;
* ``ringtrace_formats()`` returns a list of :class:`instrument.formats.Format`:
  snapshot formats for ``write_snapshot``, ``ringtrace convert --to`` and
  ``--ringtrace-formats``;
* ``ringtrace_snapshot_written(snapshot, path, format)``: a sink, called after
  each snapshot file is written (upload it, post it, copy it).

Third-party plugins are found through the entry-point group ``ringtrace``;
:func:`register` adds one in code. The built-in formats register through the
same hooks. A plugin that raises is named in a warning and skipped: it never
breaks recording, a snapshot, or a test outcome.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from .formats import Format
    from .snapshot import Snapshot

PROJECT = "ringtrace"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class PluginWarning(UserWarning):
    """A ringtrace plugin raised; the plugin is named in the message."""


class Hooks:
    """The hook specifications of the kit."""

    @hookspec
    def ringtrace_contexts(self) -> dict[str, Callable[[], object]]:  # type: ignore[empty-body]
        """Context providers to make available, by context name."""

    @hookspec
    def ringtrace_formats(self) -> list[Format]:  # type: ignore[empty-body]
        """Snapshot formats this plugin can write."""

    @hookspec
    def ringtrace_snapshot_written(self, snapshot: Snapshot, path: Path, format: str) -> None:
        """A snapshot was written to ``path`` in ``format``."""


_manager: pluggy.PluginManager | None = None
_lock = threading.RLock()
_listeners: list[Callable[[], None]] = []


def manager() -> pluggy.PluginManager:
    """The kit's plugin manager, created (built-ins and entry points loaded) once."""
    global _manager
    with _lock:
        if _manager is None:
            pm = pluggy.PluginManager(PROJECT)
            pm.add_hookspecs(Hooks)
            from . import context
            from .formats import builtin

            pm.register(context, name="ringtrace.contexts")
            pm.register(builtin, name="ringtrace.formats")
            _manager = pm
            try:
                pm.load_setuptools_entrypoints(PROJECT)
            except Exception as exc:  # a broken distribution must not stop us
                warn("entry point", exc)
        return _manager


def register(plugin: object, name: str | None = None) -> str:
    """Register ``plugin`` (a module or object with ``@hookimpl`` functions)."""
    with _lock:
        registered = manager().register(plugin, name=name)
        _changed()
    if registered is None:
        raise ValueError(f"plugin {name or plugin!r} is already registered or blocked")
    return registered


def unregister(plugin: object = None, name: str | None = None) -> None:
    """Remove a plugin added with :func:`register` (by object or name)."""
    with _lock:
        manager().unregister(plugin, name=name)
        _changed()


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever plugins are registered or unregistered."""
    _listeners.append(listener)


def _changed() -> None:
    for listener in _listeners:
        listener()


def warn(plugin_name: str, exc: BaseException) -> None:
    """Report that plugin ``plugin_name`` raised ``exc``."""
    warnings.warn(
        f"ringtrace plugin {plugin_name!r} raised {type(exc).__name__}: {exc}",
        PluginWarning,
        stacklevel=3,
    )


def call_each(hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call every implementation of a hook on its own, in pluggy's order.

    Unlike ``pm.hook.name(...)``, one raising implementation does not stop
    the others: it is reported by name and skipped. Returns
    ``(plugin name, result)`` for each implementation that returned.
    """
    pm = manager()
    caller = getattr(pm.hook, hook_name)
    results: list[tuple[str, Any]] = []
    for impl in reversed(caller.get_hookimpls()):  # pluggy calls last-registered first
        name = impl.plugin_name
        try:
            results.append((name, impl.function(*[kwargs[a] for a in impl.argnames])))
        except Exception as exc:
            warn(name, exc)
    return results
