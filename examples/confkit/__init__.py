"""A small settings library: ``key = value`` text into typed settings.

Example (b) of the README: ``load`` forgives a value it cannot convert and
keeps the default instead, silently. The test only sees a wrong setting
later on; the failure view shows the exception that was raised and
swallowed inside the library call.
"""

from __future__ import annotations

from .loading import DEFAULTS, Settings, load

__all__ = ["DEFAULTS", "Settings", "load"]
