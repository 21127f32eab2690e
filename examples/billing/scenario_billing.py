"""The invoicing job's test. It fails on purpose; only the worker processes'
events say why. Not collected by ``pytest examples/`` (its name does not
start with ``test_``): run it by name::

    python -m pytest --ringtrace examples/billing/scenario_billing.py
"""

from __future__ import annotations

from billing import Line, configure, invoice_total


def test_invoice_total_includes_tax() -> None:
    configure(tax_rate=0.2)
    lines = [Line("lamp", 2, 25.0), Line("desk", 1, 150.0), Line("chair", 4, 40.0)]
    assert invoice_total(lines) == 444.0  # (50 + 150 + 160) * 1.2
