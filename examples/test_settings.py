"""Example (b): an exception swallowed inside a library call.

``confkit.load`` forgives values it cannot convert: it catches the
``ValueError`` and keeps the default. ``test_timeout_is_read`` fails on
purpose, two steps later, on an assertion about the timeout; the failure
view shows the exception the library swallowed. ``confkit`` is traced whole
by the marker below (as ``--ringtrace-instrument=confkit``).
"""

from __future__ import annotations

import confkit
import pytest

pytestmark = pytest.mark.ringtrace(instrument=["confkit"])

CONFIG = """
host = db.internal
port = 5432
timeout_s = 30s
retries = 5
"""


def test_port_is_read():
    assert confkit.load(CONFIG).port == 5432


def client_deadline(settings, attempts):
    return settings.timeout_s * attempts


def test_timeout_is_read():
    settings = confkit.load(CONFIG)
    assert settings.retries == 5
    assert client_deadline(settings, settings.retries) == 150
