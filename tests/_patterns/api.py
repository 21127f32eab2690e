"""Functions that look at their caller, warn, raise; some are re-exported."""

import inspect
import logging
import sys
import warnings
from collections import namedtuple

log = logging.getLogger(__name__)


def double(x):
    """Re-exported by the package: ``_patterns.double is _patterns.api.double``."""
    return 2 * x


def fail(x):
    raise ValueError(f"bad value {x}")


def fail_through(x):
    return fail(x) + 1


def caller_module():
    """Reads its own caller's frame (left untraced by the wrapt engine)."""
    return sys._getframe(1).f_globals["__name__"]


def caller_function():
    return inspect.stack()[1].function


def caller_of_caller():
    """Reads frames through a private helper: two levels up is our caller."""
    return _name_two_levels_up()


def _name_two_levels_up():
    return sys._getframe(2).f_code.co_name


def make_sentinel(name):
    """A sentinel class in the caller's module, as sentinel factories make."""
    module = sys._getframe(1).f_globals["__name__"]
    return type(name, (), {"__module__": module, "__repr__": lambda self: f"<{name}>"})


def record_type(name, fields):
    """A namedtuple in the caller's module, found through a private helper."""
    return _namedtuple_for_caller(name, fields)


def _namedtuple_for_caller(name, fields):
    return namedtuple(name, fields, module=sys._getframe(2).f_globals["__name__"])


def old_api():
    warnings.warn("old_api is deprecated", DeprecationWarning, stacklevel=2)
    return 1


def old_api_through():
    _deprecated("old_api_through")
    return 2


def _deprecated(what):
    warnings.warn(f"{what} is deprecated", DeprecationWarning, stacklevel=3)


def log_failure(x):
    try:
        fail(x)
    except ValueError:
        log.exception("failed on %s", x)
