"""The order service: a queue of orders and a pool of worker threads."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import instrument

from .inventory import Inventory, OutOfStock


@dataclass(frozen=True)
class Order:
    order_id: int
    customer: str
    sku: str
    qty: int = 1


@dataclass(frozen=True)
class OrderResult:
    order_id: int
    status: str  # "confirmed" or "rejected"
    reason: str = ""


FraudCheck = Callable[[Order], bool]
Payment = Callable[[Order], None]


def no_fraud(order: Order) -> bool:
    return True


def free_payment(order: Order) -> None:
    return None


class OrderService:
    """Takes orders on worker threads named ``order-worker-N``."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        workers: int = 2,
        fraud_check: FraudCheck = no_fraud,
        payment: Payment = free_payment,
    ):
        self.inventory = inventory
        self.fraud_check = fraud_check
        self.payment = payment
        self._queue: queue.Queue[tuple[Order, Future[OrderResult]] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._run, name=f"order-worker-{n}", daemon=True)
            for n in range(1, workers + 1)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, order: Order) -> Future[OrderResult]:
        future: Future[OrderResult] = Future()
        instrument.event("order.submitted", order_id=order.order_id, sku=order.sku)
        self._queue.put((order, future))
        return future

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            order, future = job
            try:
                future.set_result(self.process(order))
            except BaseException as exc:
                future.set_exception(exc)

    @instrument.trace
    def process(self, order: Order) -> OrderResult:
        instrument.event("order.taken", order_id=order.order_id, sku=order.sku, qty=order.qty)
        fraud_ok: list[bool] = []

        def check_fraud() -> None:
            with instrument.span("fraud.check", order_id=order.order_id):
                fraud_ok.append(self.fraud_check(order))
            if not fraud_ok[-1]:
                raise OutOfStock("not committed: fraud check failed")

        try:
            self.inventory.reserve(order.sku, order.qty, before_commit=check_fraud)
        except OutOfStock as exc:
            reason = "fraud" if fraud_ok and not fraud_ok[-1] else "out of stock"
            instrument.event("order.rejected", order_id=order.order_id, reason=reason)
            return OrderResult(order.order_id, "rejected", f"{reason}: {exc}")
        self.payment(order)
        instrument.event("order.confirmed", order_id=order.order_id, sku=order.sku)
        return OrderResult(order.order_id, "confirmed")
