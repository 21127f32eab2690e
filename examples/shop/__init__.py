"""shop: a small order service, the example application of pytest-ringtrace.

Orders are taken by a pool of worker threads (:mod:`shop.service`), which
reserve stock (:mod:`shop.inventory`, read through a cache,
:mod:`shop.cache`), run a fraud check and take payment. Everything is
instrumented with the :mod:`instrument` kit, so ``pytest --ringtrace``
shows what every thread did when a test fails.
"""

from .cache import TTLCache
from .inventory import Inventory, OutOfStock
from .service import Order, OrderResult, OrderService

__all__ = ["Inventory", "Order", "OrderResult", "OrderService", "OutOfStock", "TTLCache"]
