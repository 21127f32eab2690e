"""Context fields: what is recorded about the circumstances of each event.

Static context (thread id and name, process id) belongs to a stream and is
stored once, when the stream is created. Dynamic context (the asyncio task,
a :class:`contextvars.ContextVar`, any user callable) is evaluated for each
event, only on channels that list it in ``Channel.contexts``.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Mapping

#: Context names stored once per stream.
STATIC_CONTEXTS = frozenset({"thread", "pid"})

Provider = Callable[[], object]

_get_running_loop = asyncio._get_running_loop


def _task_name() -> object:
    if _get_running_loop() is None:
        return None
    task = asyncio.current_task()
    return None if task is None else task.get_name()


_providers: dict[str, Provider] = {"task": _task_name}
_lock = threading.Lock()


def register_context(name: str, provider: Provider | contextvars.ContextVar[object]) -> None:
    """Make a dynamic context field available to channels under ``name``.

    ``provider`` is a callable taking no argument, or a ``ContextVar`` whose
    current value (``None`` when unset) is recorded. Register before
    :func:`instrument.start` with a channel that lists ``name``.
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
        _providers[name] = provider


def unregister_context(name: str) -> None:
    """Remove a context provider added with :func:`register_context`."""
    with _lock:
        if name == "task" or _providers.pop(name, None) is None:
            raise KeyError(f"no registered context named {name!r}")


def available_contexts() -> frozenset[str]:
    """Every context name a channel may list."""
    return STATIC_CONTEXTS | frozenset(_providers)


def dynamic_providers(names: tuple[str, ...]) -> tuple[tuple[str, Provider], ...]:
    """The (name, provider) pairs for the dynamic context names in ``names``.

    Raises ``ValueError`` naming the unknown ones, so a typo in a channel's
    ``contexts`` is reported at ``start()``, not silently ignored.
    """
    unknown = [n for n in names if n not in STATIC_CONTEXTS and n not in _providers]
    if unknown:
        known = ", ".join(sorted(available_contexts()))
        raise ValueError(f"unknown context field(s) {', '.join(unknown)}; known: {known}")
    return tuple((n, _providers[n]) for n in names if n not in STATIC_CONTEXTS)


def evaluate(providers: tuple[tuple[str, Provider], ...]) -> tuple[object, ...]:
    """Call each provider; a provider that raises records its error text."""
    values = []
    for _name, provider in providers:
        try:
            values.append(provider())
        except Exception as exc:  # a broken provider must not break the program
            values.append(f"<context error {type(exc).__name__}: {exc}>")
    return tuple(values)


def static_context(thread: threading.Thread, pid: int) -> Mapping[str, object]:
    """The context stored once per stream."""
    return {"pid": pid, "thread_id": thread.ident, "thread_name": thread.name}
