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
:func:`register` adds one in code. The built-in contexts and formats register
through the same hooks, first, so a name they claim cannot be taken over
silently. A plugin that raises is named in a :class:`PluginWarning` and
skipped: it never breaks recording, a snapshot, or a test outcome.

This is the kit's own plugin manager, separate from pytest's: the pytest
plugin's ``pytest_ringtrace_*`` hooks are pytest hooks (see its docs).
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from .formats import Format
    from .model import Snapshot

PROJECT = "ringtrace"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class PluginWarning(UserWarning):
    """A ringtrace plugin raised or returned something unusable; it is named."""


class Hooks:
    """The hook specifications of the kit."""

    @hookspec
    def ringtrace_contexts(self) -> dict[str, Callable[[], object]]:  # type: ignore[empty-body]
        """Context providers to make available, by context name.

        A provider takes no argument and returns the value recorded with each
        event of a channel listing that name. It runs on the hot path: keep
        it cheap, and never let it record events itself.
        """

    @hookspec
    def ringtrace_formats(self) -> list[Format]:  # type: ignore[empty-body]
        """Snapshot formats this plugin can write."""

    @hookspec
    def ringtrace_snapshot_written(self, snapshot: Snapshot, path: Path, format: str) -> None:
        """A snapshot was written to ``path`` in ``format`` (a sink)."""


_manager: pluggy.PluginManager | None = None
_lock = threading.RLock()
_listeners: list[Callable[[], None]] = []


def _new_lock_after_fork() -> None:
    # A thread that held the lock when another thread forked does not exist
    # in the child: the child would wait for it forever.
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


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
            _load_entry_points(pm)
        return _manager


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    """Register every ``ringtrace`` entry point; a broken one is warned about.

    Done here rather than with ``pm.load_setuptools_entrypoints``, which stops
    at the first entry point that fails to import.
    """
    try:
        found = importlib.metadata.entry_points(group=PROJECT)
    except Exception as exc:  # a broken distribution's metadata
        warn("entry points", exc)
        return
    for ep in found:
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            continue  # the same distribution seen twice on sys.path
        label = f"{ep.name} = {ep.value}"
        try:
            plugin = ep.load()
            if not pm.is_registered(plugin):  # it may have registered itself
                _checked_register(pm, plugin, ep.name)
        except Exception as exc:
            warn(label, exc, where="loading the entry point")


def _checked_register(pm: pluggy.PluginManager, plugin: object, name: str | None) -> str:
    """``pm.register`` that refuses a hook name we do not define (a typo) and
    hook wrappers (the kit calls each implementation on its own)."""
    try:
        registered = pm.register(plugin, name=name)
    except Exception:
        if pm.is_registered(plugin):  # pluggy leaves a half-registered plugin behind
            pm.unregister(plugin)
        raise
    if registered is None:
        raise ValueError(f"ringtrace plugin {name!r} is blocked")
    for caller in pm.get_hookcallers(plugin) or ():
        bad = None
        if not caller.has_spec():
            known = ", ".join(sorted(n for n in dir(Hooks) if n.startswith("ringtrace_")))
            bad = f"unknown hook {caller.name!r}; ringtrace hooks are: {known}"
        elif any(
            i.plugin is plugin and (i.wrapper or i.hookwrapper) for i in caller.get_hookimpls()
        ):
            bad = f"hook {caller.name!r}: wrappers are not supported on ringtrace hooks"
        if bad:
            pm.unregister(plugin)
            raise ValueError(f"ringtrace plugin {registered!r}: {bad}")
    return registered


def register(plugin: object, name: str | None = None) -> str:
    """Register ``plugin`` (a module or object with ``@hookimpl`` functions).

    Returns the name it is registered under. Registering a plugin that is
    already registered (by an entry point, or an earlier call) does nothing
    and returns its existing name. Raises ``ValueError`` if another plugin
    holds ``name``, or if the plugin defines an unknown ``ringtrace_*`` hook.
    Contexts added this way are seen by the next :func:`instrument.start`.
    """
    with _lock:
        pm = manager()
        existing = pm.get_name(plugin)
        if existing is not None:
            return existing
        if name is not None and pm.has_plugin(name):
            raise ValueError(f"another ringtrace plugin is registered as {name!r}")
        try:
            registered = _checked_register(pm, plugin, name)
        except pluggy.PluginValidationError as exc:
            detail = " ".join(str(exc).split())
            raise ValueError(f"ringtrace plugin {name or plugin!r} is invalid: {detail}") from exc
        _changed()
    return registered


def unregister(plugin: object = None, name: str | None = None) -> None:
    """Remove a registered plugin, given by object or by name.

    Raises ``ValueError`` if no such plugin is registered.
    """
    with _lock:
        pm = manager()
        if name is None:
            if plugin is None:
                raise TypeError("unregister() needs the plugin or its name")
            name = pm.get_name(plugin)
        if name is None or not pm.has_plugin(name):
            raise ValueError(f"no ringtrace plugin {name or plugin!r} is registered")
        pm.unregister(name=name)
        _changed()


def plugin_names() -> list[str]:
    """Names of every registered plugin, built-ins included."""
    return [name for name, _plugin in manager().list_name_plugin()]


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever plugins are registered or unregistered."""
    _listeners.append(listener)


def _changed() -> None:
    for listener in _listeners:
        listener()


def warn(plugin_name: str, exc: BaseException, where: str = "") -> None:
    """Report that plugin ``plugin_name`` raised ``exc`` (``where``: in what)."""
    place = f" in {where}" if where else ""
    warnings.warn(
        f"ringtrace plugin {plugin_name!r} raised {type(exc).__name__}{place}: {text_of(exc)}",
        PluginWarning,
        stacklevel=3,
    )


def text_of(exc: BaseException) -> str:
    """``str(exc)``, or a note saying it raised: plugin exceptions are foreign objects."""
    try:
        return str(exc)
    except Exception as inner:
        return f"<str() raised {type(inner).__name__}>"


def call_each(hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call every implementation of a hook on its own.

    Unlike ``pm.hook.name(...)``, one raising implementation does not stop
    the others: it is reported by name and skipped. The order is
    registration order (built-ins, then entry points, then :func:`register`),
    with ``tryfirst`` implementations before and ``trylast`` ones after.
    Returns ``(plugin name, result)`` for each implementation that returned.
    """
    pm = manager()
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    impls = (
        [i for i in impls if i.tryfirst]
        + [i for i in impls if not (i.tryfirst or i.trylast)]
        + [i for i in impls if i.trylast]
    )
    results: list[tuple[str, Any]] = []
    for impl in impls:
        if impl.wrapper or impl.hookwrapper:
            continue
        name = impl.plugin_name
        try:
            results.append((name, impl.function(*[kwargs[a] for a in impl.argnames])))
        except Exception as exc:
            warn(name, exc, where=hook_name)
    return results
