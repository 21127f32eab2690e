"""Pricing, run in the worker processes."""

from __future__ import annotations

from typing import Any

import instrument

_config: dict[str, Any] = {"tax_rate": 0.0, "source": "module default"}


def configure(tax_rate: float) -> None:
    """Set the tax rate for this run."""
    _config.update(tax_rate=tax_rate, source="configure()")


@instrument.trace(fields=["batch_id"])
def price_batch(batch_id: int, lines: list[tuple[str, int, float]]) -> float:
    """The total of one batch of (sku, quantity, unit price) lines, taxed."""
    rate = _config["tax_rate"]
    instrument.event("pricing.config", batch_id=batch_id, tax_rate=rate, source=_config["source"])
    total = round(sum(qty * unit for _, qty, unit in lines) * (1 + rate), 2)
    instrument.event("batch.priced", batch_id=batch_id, lines=len(lines), total=total)
    return total
