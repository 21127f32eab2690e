"""A package that uses, on purpose, the patterns a tracer must not disturb.

``test_transparency_patterns`` imports it fresh, plain and traced whole
(``instrument.patch_module("_patterns")``, what ``--ringtrace-instrument``
does), and compares what the tests observe. Each module holds one family:
``api`` (caller frames, warnings, tracebacks, re-exports), ``registry``
(functions kept in dicts, pickling by reference), ``dispatch``
(``functools.singledispatch``), ``shapes`` (class machinery), ``flows``
(generators, coroutines and async generators, argument lifetimes).
"""

import warnings

from . import dispatch, flows, registry, shapes
from .api import double, fail_through

__all__ = ["dispatch", "double", "fail_through", "flows", "registry", "shapes"]


def __getattr__(name):  # a module __getattr__: lazy and deprecated names
    if name == "lazy_double":
        from .api import double

        return double
    if name == "OLD_LIMIT":
        warnings.warn("OLD_LIMIT is deprecated", DeprecationWarning, stacklevel=2)
        return 10
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
