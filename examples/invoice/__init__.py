"""A small invoicing package: the total of an order, with a coupon and tax.

Example (a) of the README: the public function is one line of calls into
private helpers (``invoice._helpers``), and one of them, deep down, returns
a wrong value. The failing test only sees a wrong total; the failure view
shows every helper's arguments and return value.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _helpers


@dataclass(frozen=True)
class Line:
    """One order line: a product, its unit price in cents, a quantity."""

    sku: str
    unit_cents: int
    qty: int = 1


def invoice_total(lines: list[Line], *, country: str, coupon: str | None = None) -> int:
    """The amount to pay in cents: lines, minus the coupon, plus tax."""
    subtotal = _helpers.subtotal(lines)
    discounted = _helpers.apply_coupon(subtotal, coupon)
    return _helpers.with_tax(discounted, country)


__all__ = ["Line", "invoice_total"]
