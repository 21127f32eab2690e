"""Splitting an invoice into batches priced by worker processes."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple

import instrument

from . import pricing


class Line(NamedTuple):
    sku: str
    qty: int
    unit: float


@instrument.trace
def invoice_total(lines: list[Line], batch_size: int = 2, workers: int = 2) -> float:
    """The invoice's taxed total, its batches priced in parallel."""
    batches = [lines[i : i + batch_size] for i in range(0, len(lines), batch_size)]
    instrument.event("invoice.split", lines=len(lines), batches=len(batches))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        totals = list(pool.map(pricing.price_batch, range(len(batches)), batches))
    total = round(sum(totals), 2)
    instrument.event("invoice.totalled", batches=len(batches), total=total)
    return total
