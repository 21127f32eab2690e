"""Example (a): a wrong value returned deep inside a private helper.

``invoice`` is traced whole, as ``--ringtrace-instrument=invoice`` does (the
marker below does it for this module only, so that the README's demo
command stays ``python -m pytest --ringtrace examples/``).
``test_coupon_takes_its_percentage_off`` fails on purpose: the total is
wrong, and only the failure view shows which helper returned what.
"""

from __future__ import annotations

import invoice
import pytest
from invoice import Line

pytestmark = pytest.mark.ringtrace(instrument=["invoice"])

CART = [Line("lamp", 4_000), Line("bulb", 500, qty=4), Line("cable", 1_000, qty=2)]


def test_total_without_coupon():
    assert invoice.invoice_total(CART, country="FR") == 9_600  # 8,000 + 20 % tax


def test_coupon_takes_its_percentage_off():
    # SPRING15: 15 % off 8,000 is 6,800; plus 20 % tax: 8,160.
    assert invoice.invoice_total(CART, country="FR", coupon="SPRING15") == 8_160
