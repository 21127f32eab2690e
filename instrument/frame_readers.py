"""Which functions read the call stack: the wrapt engine leaves them untraced.

The wrapt engine calls a traced function from a Python frame of its own, so
code that looks at its caller's frame sees that frame instead: a factory
that takes a new class's ``__module__`` from ``sys._getframe(1)`` (as
``collections.namedtuple`` does), ``inspect.stack()``, a
``warnings.warn(..., stacklevel=2)`` that blames the caller. ``patch_module``
(and so ``--ringtrace-instrument``) leaves such functions untraced, found by
reading their code objects (and the code nested in them: closures, lambdas,
comprehensions), never by running them.

What counts as reading frames: a name among :data:`FRAME_NAMES` used in the
code (``sys._getframe``, ``inspect.currentframe``, ``frame.f_back``...), a
``stacklevel`` keyword argument, or a global name bound to one of the stack
functions of :mod:`inspect` and :mod:`traceback` (``from inspect import
stack``). A function that hands its caller's frame depth to a helper in a
way none of these show (``warnings.warn(msg, Warning, 2)``) is not found.
"""

from __future__ import annotations

import inspect
import sys
import traceback
from types import CodeType
from typing import Any

#: Attribute and global names whose use means the code reads frames.
FRAME_NAMES = frozenset(
    {
        "_getframe",
        "currentframe",
        "f_back",
        "getouterframes",
        "extract_stack",
        "format_stack",
        "print_stack",
        "walk_stack",
        "stacklevel",
    }
)

#: The functions whose result depends on the caller's frames, found through
#: a global name whatever it is called.
_FRAME_FUNCTIONS: tuple[Any, ...] = (
    sys._getframe,
    inspect.currentframe,
    inspect.stack,
    inspect.getouterframes,
    traceback.extract_stack,
    traceback.format_stack,
    traceback.print_stack,
    traceback.walk_stack,
)


def _codes(code: CodeType) -> list[CodeType]:
    """``code`` and every code object nested in it."""
    found, todo = [], [code]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(c for c in current.co_consts if isinstance(c, CodeType))
    return found


def _names_frames(code: CodeType, namespace: dict[str, Any]) -> bool:
    names = set(code.co_names)
    if names & FRAME_NAMES or ("stack" in names and "inspect" in names):
        return True
    for const in code.co_consts:  # keyword-argument names of calls (3.10, 3.11)
        if isinstance(const, tuple) and "stacklevel" in const:
            return True
    for name in names:
        value = namespace.get(name)
        if value is not None and any(value is f for f in _FRAME_FUNCTIONS):
            return True
    return False


def reads_frames(func: Any) -> bool:
    """Whether the code of ``func`` (a function, or a classmethod or
    staticmethod around one) reads the call stack."""
    if isinstance(func, (classmethod, staticmethod)):
        func = func.__func__
    code = getattr(func, "__code__", None)
    if not isinstance(code, CodeType):
        return False
    namespace = getattr(func, "__globals__", None)
    if not isinstance(namespace, dict):
        namespace = {}
    return any(_names_frames(c, namespace) for c in _codes(code))
