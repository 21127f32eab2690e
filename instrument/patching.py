"""Tracing code nobody decorated: patches on third-party functions.

``patch("pkg.mod:Class.method")`` hands the target to the tracing engine:
the sysmon engine registers its code object and changes no attribute, the
wrapt engine replaces the attribute with a traced wrapper. If ``pkg.mod`` is
not imported yet, a wrapt post-import hook does it when it is. Patching the
same target twice is a no-op, and :func:`unpatch` undoes exactly what was
done (the wrapt engine puts back what was there, or removes the attribute if
it was inherited), and cancels a hook that has not fired yet.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.machinery
import inspect
import os
import pkgutil
import re
import sys
import threading
import warnings
from collections.abc import Iterable, Sequence
from types import ModuleType, TracebackType
from typing import Any, TypeVar

import wrapt

from . import engines
from .engines import unwrap_descriptor
from .frame_readers import reads_frames
from .tracing import FieldSpec, default_name, trace_options

_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_lock = threading.RLock()
_active: dict[str, Patch] = {}


def _new_lock_after_fork() -> None:
    # A thread that held the lock when another thread forked does not exist
    # in the child: the child would wait for it forever.
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


_U = TypeVar("_U", bound="_Undoable")


class _Undoable:
    """A patch handle: ``unpatch()``, or leave a ``with`` block, to undo it."""

    def unpatch(self) -> None:
        raise NotImplementedError

    def __enter__(self: _U) -> _U:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unpatch()


class Patch(_Undoable):
    """One patched target; ``unpatch()`` or leaving a ``with`` block undoes it."""

    def __init__(self, target: str, options: dict[str, Any]):
        self.target = target
        self.module, self.path = target.split(":")
        self.options = options
        self.applied = False
        self.cancelled = False
        self._undo: engines.Undo | None = None
        self._hook: Any = None
        self._original: Any = None  # what the target named when applied

    def _apply(self, module: ModuleType) -> None:
        parent, attribute, original = wrapt.resolve_path(module, self.path)
        if not callable(unwrap_descriptor(original)):
            raise TypeError(f"patch target {self.target!r} is not callable: {original!r}")
        options = trace_options(original, **self.options)
        self._undo = engines.current().patch(parent, attribute, original, options)
        self.applied = self._undo is not None
        self._original = original

    def _on_import(self, module: ModuleType) -> None:
        with _lock:
            if self.cancelled or self.applied:
                return
            try:
                self._apply(module)
            except Exception as exc:  # cannot raise into the user's import
                if _active.get(self.target) is self:  # so that patch() may try again
                    del _active[self.target]
                warnings.warn(
                    f"ringtrace: cannot patch {self.target!r} on import: {exc}",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def unpatch(self) -> None:
        """Restore the original attribute, or cancel the pending import hook."""
        with _lock:
            if _active.get(self.target) is self:
                del _active[self.target]
            self.cancelled = True
            if self._hook is not None:
                _forget_hook(self.module, self._hook)
                self._hook = None
            if self.applied and self._undo is not None:
                self._undo()
                self._undo = None
                self.applied = False

    def __repr__(self) -> str:
        state = "applied" if self.applied else "cancelled" if self.cancelled else "pending"
        return f"<Patch {self.target} {state}>"


def _forget_hook(module: str, hook: Any) -> None:
    # wrapt has no public way to remove a post-import hook; the hook checks
    # ``cancelled`` anyway, this only keeps wrapt's table from growing. The
    # table is private (and absent from wrapt's stubs): look, never require.
    importer: Any = importlib.import_module("wrapt.importer")
    lock = getattr(importer, "_post_import_hooks_lock", None)
    table = getattr(importer, "_post_import_hooks", None)
    if lock is None or not isinstance(table, dict):
        return
    with lock:
        hooks = table.get(module)
        if hooks and hook in hooks:
            hooks.remove(hook)
            if not hooks:
                del table[module]


def patch(
    target: str,
    *,
    name: str | None = None,
    fields: FieldSpec = None,
    retval: bool = False,
    channel: str | None = None,
    values: bool = False,
) -> Patch:
    """Trace ``"pkg.mod:Class.method"`` (or ``"pkg.mod:function"``).

    Takes the options of :func:`instrument.trace`; ``values=True`` records
    every argument and the return value. If the module is not
    imported yet, the patch is applied when it is. Returns a :class:`Patch`,
    usable as a context manager for a scoped patch.
    """
    if not isinstance(target, str) or not _TARGET_RE.match(target):
        raise ValueError(
            f"patch target must look like 'package.module:Class.method', got {target!r}"
        )
    options = {
        "name": name,
        "fields": fields,
        "retval": retval,
        "channel": channel,
        "values": values,
    }
    with _lock:
        existing = _active.get(target)
        if existing is not None:
            return existing
        handle = Patch(target, options)
        module = sys.modules.get(handle.module)
        if module is not None:
            try:
                handle._apply(module)
            except AttributeError as exc:
                raise AttributeError(f"cannot patch {target!r}: {exc}") from None
        else:
            handle._hook = handle._on_import
            wrapt.register_post_import_hook(handle._hook, handle.module)
        _active[target] = handle
        return handle


def unpatch(target: str | Patch) -> None:
    """Undo :func:`patch` for ``target`` (a target string or a Patch)."""
    with _lock:
        handle = target if isinstance(target, Patch) else _active.get(target)
        if handle is None:
            raise KeyError(f"{target!r} is not patched")
        handle.unpatch()


def patched() -> list[str]:
    """The targets patched or waiting for their module, in patch order."""
    with _lock:
        return list(_active)


class ModulePatch(_Undoable):
    """Every patch :func:`patch_module` made; ``unpatch()`` undoes them all."""

    def __init__(
        self,
        package: str,
        include: Sequence[str],
        exclude: Sequence[str],
        values: bool | None = None,
    ):
        self.values = values
        self.package = package
        self.include = include
        self.exclude = exclude
        self.patches: list[Patch] = []
        #: ``module.qualname`` of the functions left untraced because their
        #: code reads frames (see :mod:`instrument.frame_readers`).
        self.frame_readers: set[str] = set()
        self.cancelled = False
        self._hooks: list[tuple[str, Any]] = []

    def traced(self) -> int:
        """How many distinct functions and methods are traced now."""
        return len({id(p._original) for p in self.patches if p.applied})

    def _wanted(self, qualified: str) -> bool:
        if not any(fnmatch.fnmatchcase(qualified, g) for g in self.include):
            return False
        return not any(fnmatch.fnmatchcase(qualified, g) for g in self.exclude)

    def _patch_module(self, module: ModuleType) -> None:
        with _lock:
            if self.cancelled:
                return
            wraps = engines.current().name == "wrapt"  # sysmon adds no frame
            # values by default on both engines: a snapshot without them
            # does not explain a failure (on wrapt they cost ~5x a bare traced call)
            values = True if self.values is None else self.values
            for target, obj in _callables_of(module, self.package):
                if not self._wanted(target.replace(":", ".")) or target in _active:
                    continue
                if wraps and reads_frames(obj):  # our frame would be the one it reads
                    self.frame_readers.add(default_name(obj))
                    continue
                try:
                    self.patches.append(patch(target, values=values))
                except Exception:  # an odd attribute must not stop the rest
                    continue

    def unpatch(self) -> None:
        with _lock:
            self.cancelled = True
            for module, hook in self._hooks:
                _forget_hook(module, hook)
            self._hooks.clear()
            for handle in reversed(self.patches):
                handle.unpatch()
            self.patches.clear()


_TRACED_DUNDERS = frozenset({"__init__", "__call__", "__enter__", "__exit__"})


def _callables_of(module: ModuleType, package: str) -> Iterable[tuple[str, Any]]:
    """Patch targets, and what they name, for the functions and methods of
    ``package`` in ``module``.

    Functions are taken wherever the package's modules expose them (a
    package often re-exports its functions); classes only where defined.
    """
    mod = module.__name__

    def ours(obj: Any) -> bool:
        owner = getattr(obj, "__module__", None) or ""
        return owner == package or owner.startswith(package + ".")

    for attr, obj in list(vars(module).items()):
        if attr.startswith("__"):
            continue
        if inspect.isfunction(obj) and ours(obj):
            yield f"{mod}:{attr}", obj
        elif inspect.isclass(obj) and getattr(obj, "__module__", None) == mod:
            for meth, member in list(vars(obj).items()):
                if meth.startswith("__") and meth not in _TRACED_DUNDERS:
                    continue
                if inspect.isfunction(unwrap_descriptor(member)):
                    yield f"{mod}:{attr}.{meth}", member


def _submodules(package: ModuleType) -> list[str]:
    """Names of every module under ``package``, found without importing them."""
    names: list[str] = []
    todo = [(list(getattr(package, "__path__", [])), package.__name__)]
    while todo:
        paths, prefix = todo.pop()
        for info in pkgutil.iter_modules(paths):
            if info.name == "__main__":
                continue
            full = f"{prefix}.{info.name}"
            names.append(full)
            finder = info.module_finder
            if info.ispkg and isinstance(finder, importlib.machinery.FileFinder):
                todo.append(([os.path.join(finder.path, info.name)], full))
    return names


#: Packages the recorder runs on: tracing them would record the recorder
#: recording itself, without end (RecursionError in the program).
KIT_PACKAGES = ("instrument", "pytest_ringtrace", "wrapt")


def check_not_kit(package: str) -> None:
    """A ``ValueError`` if ``package`` is (in) one the recorder itself runs on."""
    top = package.split(".", 1)[0]
    if top in KIT_PACKAGES:
        raise ValueError(
            f"cannot trace {package!r}: the recorder runs on {top!r} and would trace itself"
        )


def patch_module(
    package: str,
    *,
    include: Sequence[str] = ("*",),
    exclude: Sequence[str] = ("*._[!_]*",),
    values: bool | None = None,
) -> ModulePatch:
    """Trace every function and method defined in ``package`` and its modules.

    ``include``/``exclude`` are globs on ``module.qualname`` (private names
    are excluded by default; of the dunder methods, ``__init__``,
    ``__call__``, ``__enter__`` and ``__exit__`` are traced). Modules are
    never imported for this: those already imported are patched now, the
    others when they are imported. On the wrapt engine, functions whose
    code reads the call stack are left untraced (the wrapper's frame would
    be the one they read) and named in ``frame_readers`` of the returned
    group; the sysmon engine adds no frame and traces them. ``values``
    records every argument and the return value or exception (through
    :mod:`instrument.values`); on by default, ``values=False`` turns it off.
    """
    if not isinstance(package, str) or not re.match(r"^[A-Za-z_][\w.]*$", package):
        raise ValueError(f"patch_module takes a dotted package name, got {package!r}")
    check_not_kit(package)
    group = ModulePatch(package, tuple(include), tuple(exclude), values)

    def on_package(module: ModuleType) -> None:
        group._patch_module(module)
        for name in _submodules(module):
            hook = group._patch_module
            group._hooks.append((name, hook))
            wrapt.register_post_import_hook(hook, name)

    root = sys.modules.get(package)
    if root is None:
        group._hooks.append((package, on_package))
        wrapt.register_post_import_hook(on_package, package)
    else:
        on_package(root)
    return group
