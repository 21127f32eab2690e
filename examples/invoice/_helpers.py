"""Private helpers of :mod:`invoice`. One of them has a bug, on purpose."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Line

TAX_PERCENT = {"FR": 20, "DE": 19, "LU": 17}


def subtotal(lines: list[Line]) -> int:
    return sum(_line_cents(line) for line in lines)


def _line_cents(line: Line) -> int:
    return line.unit_cents * line.qty


def apply_coupon(cents: int, coupon: str | None) -> int:
    if coupon is None:
        return cents
    return cents - _percent_of(cents, _coupon_percent(coupon))


def _coupon_percent(coupon: str) -> int:
    # The bug: one digit only, so "SPRING15" gives 1 (%), not 15.
    found = re.search(r"\d", coupon)
    return int(found.group()) if found else 0


def with_tax(cents: int, country: str) -> int:
    return cents + _percent_of(cents, TAX_PERCENT[country])


def _percent_of(cents: int, percent: int) -> int:
    return cents * percent // 100
