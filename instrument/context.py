"""Context fields: what is recorded about the circumstances of each event.

Static context (thread id and name, process id) belongs to a stream and is
stored once, when the stream is created. Dynamic context (the asyncio task,
a :class:`contextvars.ContextVar`, any user callable) is evaluated for each
event, only on channels that list it in ``Channel.contexts``.

The asyncio task is also recorded without being listed, on every channel,
by the threads running an event loop, and only by them: a thread's writers
are chosen when it first records a name (see ``Recorder.route``), with the
task context if a loop runs on the thread then; and when a loop starts or
stops on a thread, that thread's choices are forgotten and made again
(:func:`watch_loops` wraps ``asyncio.events._set_running_loop``, which
asyncio's loops call as they start and stop). A thread without a loop
keeps the plain writers: no cost at all. A loop that does not call it
(uvloop) is seen only by names first recorded while it runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from . import plugins
from .plugins import hookimpl

#: Context names stored once per stream.
STATIC_CONTEXTS = frozenset({"thread", "pid"})

Provider = Callable[[], object]


def _task_name() -> object:
    # No task can run before asyncio is imported: importing it here would
    # cost every program a third of the kit's import time for nothing.
    asyncio = sys.modules.get("asyncio")
    if asyncio is None or asyncio._get_running_loop() is None:
        return None
    task = asyncio.current_task()
    return None if task is None else task.get_name()


def loop_running() -> bool:
    """Whether an asyncio event loop runs on the calling thread."""
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and asyncio._get_running_loop() is not None


#: The task provider used where a loop runs and the channel does not list it.
AUTO_TASK: tuple[str, Provider] = ("task", _task_name)

_loop_callbacks: list[Callable[[], None]] = []
_watching = False
_watch_lock = threading.RLock()  # re-entrant: a signal handler may record while it is held


def watch_loops(callback: Callable[[], None]) -> None:
    """Call ``callback`` on the thread where an asyncio loop starts or stops.

    Installs, once and only when asyncio is imported, a wrapper around
    ``asyncio.events._set_running_loop`` that calls the original, then the
    callbacks (never raising). Until asyncio is imported it does nothing:
    call it again later (the recorder does, from its slow path, which a
    signal handler may re-enter: once installed this takes no lock).
    """
    if _watching and callback in _loop_callbacks:
        return
    events: Any = sys.modules.get("asyncio.events")
    if events is None:
        return
    with _watch_lock:
        if callback not in _loop_callbacks:
            _loop_callbacks.append(callback)
        if not _install_needed():
            return
        original = events._set_running_loop

        def _set_running_loop(loop: object) -> None:
            original(loop)
            for call in tuple(_loop_callbacks):
                with contextlib.suppress(Exception):  # never break a loop's start
                    call()

        _set_running_loop.__wrapped__ = original  # type: ignore[attr-defined]
        _set_running_loop.__doc__ = original.__doc__
        events._set_running_loop = _set_running_loop
        _set_watching()


def _install_needed() -> bool:
    return not _watching


def _set_watching() -> None:
    global _watching
    _watching = True


_registered: dict[str, Provider] = {}
_lock = threading.Lock()
_offered: dict[str, tuple[str, Provider]] | None = None  # from plugins, cached


def _new_lock_after_fork() -> None:
    # A thread that held the lock when another thread forked does not exist
    # in the child: the child would wait for it forever.
    global _lock, _watch_lock
    _lock = threading.Lock()
    _watch_lock = threading.RLock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


def _forget_offered() -> None:
    global _offered
    _offered = None


plugins.on_change(_forget_offered)


@hookimpl
def ringtrace_contexts() -> dict[str, Provider]:
    """The built-in dynamic context, offered through the plugin hook."""
    return {"task": _task_name}


def register_context(name: str, provider: Provider | contextvars.ContextVar[object]) -> None:
    """Make a dynamic context field available to channels under ``name``.

    ``provider`` is a callable taking no argument, or a ``ContextVar`` whose
    current value (``None`` when unset) is recorded. Register before
    :func:`instrument.start` with a channel that lists ``name``. (A package
    can offer contexts without code at import: the ``ringtrace_contexts``
    plugin hook, see :mod:`instrument.plugins`.)
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"context name must be an identifier, got {name!r}")
    if name in STATIC_CONTEXTS:
        raise ValueError(f"context name {name!r} is built in and cannot be replaced")
    if isinstance(provider, contextvars.ContextVar):
        var = provider

        def provider() -> object:
            return var.get(None)

    elif not callable(provider):
        raise TypeError(f"context provider for {name!r} must be callable or a ContextVar")
    with _lock:
        _registered[name] = provider


def unregister_context(name: str) -> None:
    """Remove a context provider added with :func:`register_context`."""
    with _lock:
        if _registered.pop(name, None) is None:
            raise KeyError(f"no context named {name!r} was registered with register_context")


def _from_plugins() -> dict[str, tuple[str, Provider]]:
    """Providers offered through ``ringtrace_contexts``, checked, first claim wins."""
    global _offered
    found = _offered
    if found is None:
        found = {}
        for plugin_name, offered in plugins.call_each("ringtrace_contexts"):
            if offered is None:
                continue
            if not isinstance(offered, Mapping):
                kind = type(offered).__name__
                plugins.warn(
                    plugin_name, TypeError(f"ringtrace_contexts must return a dict, got {kind}")
                )
                continue
            for name, provider in offered.items():
                problem = _bad_provider(name, provider)
                if problem is None and name in found:
                    problem = f"context {name!r} is already provided by {found[name][0]!r}"
                if problem is not None:
                    plugins.warn(plugin_name, ValueError(problem), where="ringtrace_contexts")
                else:
                    found[name] = (plugin_name, provider)
        _offered = found
    return found


def _bad_provider(name: object, provider: object) -> str | None:
    if not isinstance(name, str) or not name.isidentifier():
        return f"context name must be an identifier, got {name!r}"
    if name in STATIC_CONTEXTS:
        return f"context name {name!r} is built in and cannot be replaced"
    if not callable(provider):
        return f"context provider for {name!r} is not callable: {provider!r}"
    return None


def _providers() -> dict[str, tuple[str, Provider]]:
    """Every dynamic provider by context name, with the plugin offering it.

    A provider given to :func:`register_context` wins over a plugin's.
    """
    found = dict(_from_plugins())
    with _lock:
        for name, provider in _registered.items():
            found[name] = ("register_context", provider)
    return found


def available_contexts() -> frozenset[str]:
    """Every context name a channel may list."""
    return STATIC_CONTEXTS | frozenset(_providers())


def dynamic_providers(names: tuple[str, ...]) -> tuple[tuple[str, Provider], ...]:
    """The (name, provider) pairs for the dynamic context names in ``names``.

    Raises ``ValueError`` naming the unknown ones, so a typo in a channel's
    ``contexts`` is reported at ``start()``, not silently ignored. Each
    provider is wrapped so that one that raises records its error text and
    is reported once per :func:`instrument.start`, by plugin name, in a
    warning.
    """
    if all(n in STATIC_CONTEXTS for n in names):
        return ()  # plugins are not even loaded for channels without dynamic context
    known = _providers()
    unknown = [n for n in names if n not in STATIC_CONTEXTS and n not in known]
    if unknown:
        listing = ", ".join(sorted(STATIC_CONTEXTS | set(known)))
        raise ValueError(f"unknown context field(s) {', '.join(unknown)}; known: {listing}")
    return tuple((n, _guarded(n, *known[n])) for n in names if n not in STATIC_CONTEXTS)


def _guarded(name: str, plugin_name: str, provider: Provider) -> Provider:
    warned = False

    def guarded() -> object:
        nonlocal warned
        try:
            return provider()
        except Exception as exc:  # a broken provider must not break the program
            if not warned:
                warned = True
                # Even with warnings turned into errors, never raise here.
                with contextlib.suppress(Exception):
                    plugins.warn(plugin_name, exc, where=f"context provider {name!r}")
            return f"<context error {type(exc).__name__}: {plugins.text_of(exc)}>"

    return guarded


def evaluate(providers: tuple[tuple[str, Provider], ...]) -> tuple[object, ...]:
    """The current value of each dynamic context (providers never raise).

    Runs for every event of a channel with dynamic context: the usual one
    or two providers are called without building a generator.
    """
    n = len(providers)
    if n == 1:
        return (providers[0][1](),)
    if n == 2:
        return (providers[0][1](), providers[1][1]())
    return tuple([provider() for _name, provider in providers])


def capture(
    providers: tuple[tuple[str, Provider], ...], values: tuple[object, ...]
) -> tuple[object, ...]:
    """Context ``values`` as records keep them: captured, and redacted by
    context name (see :mod:`instrument.values`)."""
    from . import hotpath
    from .values import REDACTED
    from .values import capture as capture_value

    recorder = hotpath.active()
    hides = recorder.redactor.hides if recorder is not None else None
    return tuple(
        REDACTED if hides is not None and hides(name) else capture_value(value)
        for (name, _provider), value in zip(providers, values, strict=True)
    )


def static_context(thread: threading.Thread, pid: int) -> Mapping[str, object]:
    """The context stored once per stream."""
    return {"pid": pid, "thread_id": thread.ident, "thread_name": thread.name}
