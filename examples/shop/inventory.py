"""Stock levels per SKU, read through a cache.

``reserve`` has the concurrency bug the example test exposes: it reads the
stock level, does other work, then writes the decremented level back,
without holding a lock across the three steps. Two orders for the last item
taken by two workers at once can both see it in stock.
"""

from __future__ import annotations

import threading

import instrument

from .cache import TTLCache


class OutOfStock(Exception):
    """Not enough stock left for an order."""


class Inventory:
    """The stock of each SKU (the store) and a cache in front of it."""

    def __init__(self, stock: dict[str, int]):
        self._store = dict(stock)
        self._store_lock = threading.Lock()
        self._cache: TTLCache[str, int] = TTLCache(self._load)

    def _load(self, sku: str) -> int:
        with self._store_lock:
            return self._store.get(sku, 0)

    def available(self, sku: str) -> int:
        return self._cache.get(sku)

    @instrument.trace(fields=["sku", "qty"])
    def reserve(self, sku: str, qty: int, before_commit: object = None) -> None:
        """Take ``qty`` of ``sku`` off the stock, or raise OutOfStock.

        ``before_commit`` (a callable) runs between the check and the write:
        the service runs its fraud check there, so a reservation is only
        committed for an order that passed it.
        """
        level = self.available(sku)
        instrument.event("inventory.checked", sku=sku, level=level, qty=qty)
        if level < qty:
            raise OutOfStock(f"{sku}: {level} left, {qty} wanted")
        if callable(before_commit):
            before_commit()
        # BUG: the level read above may be stale by now (another worker may
        # have reserved in between); the check and the write need one lock.
        with self._store_lock:
            self._store[sku] = level - qty
        self._cache.invalidate(sku)
        instrument.event("inventory.committed", sku=sku, level=level - qty)

    @instrument.trace(fields=["sku", "qty"])
    def restock(self, sku: str, qty: int) -> None:
        with self._store_lock:
            self._store[sku] = self._store.get(sku, 0) + qty
        self._cache.invalidate(sku)
