"""Tests of the example shop. One of them fails on purpose.

``test_last_item_is_sold_once`` exposes the race in ``Inventory.reserve``:
run ``pytest --ringtrace examples/`` and read the ``ringtrace call``
section under its failure: both workers read a stock level of 1 before
either wrote 0, so both orders were confirmed for the one lamp left.
"""

from __future__ import annotations

import threading

import pytest
from shop import Order


def test_single_order_is_confirmed(make_service):
    service = make_service({"lamp": 3})
    result = service.submit(Order(1, "ann", "lamp")).result(timeout=5)
    assert result.status == "confirmed"
    assert service.inventory.available("lamp") == 2


def test_order_beyond_stock_is_rejected(make_service):
    service = make_service({"lamp": 1})
    result = service.submit(Order(1, "ann", "lamp", qty=2)).result(timeout=5)
    assert (result.status, result.reason) == ("rejected", "out of stock: lamp: 1 left, 2 wanted")


def test_fraud_rejection_keeps_the_stock(make_service):
    service = make_service({"lamp": 1}, fraud_check=lambda order: order.customer != "mallory")
    result = service.submit(Order(1, "mallory", "lamp")).result(timeout=5)
    assert result.status == "rejected"
    assert result.reason.startswith("fraud")
    assert service.inventory.available("lamp") == 1


def test_second_read_hits_the_cache(make_service, ringtrace):
    service = make_service({"lamp": 3})
    ringtrace.clear()
    assert service.inventory.available("lamp") == 3
    assert service.inventory.available("lamp") == 3
    assert [ev.name for ev in ringtrace.select("cache.*")] == ["cache.miss", "cache.hit"]


def test_orders_for_different_items_run_on_both_workers(make_service, ringtrace):
    both_inside = threading.Barrier(2, timeout=5)

    def slow_fraud_check(order):
        both_inside.wait()  # returns only when the two orders are checked at once
        return True

    service = make_service({"lamp": 1, "desk": 1}, fraud_check=slow_fraud_check)
    futures = [service.submit(Order(1, "ann", "lamp")), service.submit(Order(2, "bob", "desk"))]
    assert [f.result(timeout=5).status for f in futures] == ["confirmed", "confirmed"]
    checks = ringtrace.select("fraud.check", kind="entry", thread="order-worker-*")
    assert len({ev.thread_name for ev in checks}) == 2


@pytest.mark.ringtrace(tail=30)
def test_last_item_is_sold_once(make_service):
    """Two customers race for the last lamp: exactly one may get it.

    Fails on purpose: ``Inventory.reserve`` checks the level, runs the fraud
    check, then writes ``level - qty`` back, without a lock across the three
    steps. A fraud check that takes a while (here: until both orders are in
    it, which makes the interleaving certain) lets both workers pass the
    check with the same level of 1.
    """
    both_inside = threading.Barrier(2, timeout=5)

    def slow_fraud_check(order):
        both_inside.wait()
        return True

    service = make_service({"lamp": 1}, fraud_check=slow_fraud_check)
    futures = [service.submit(Order(1, "ann", "lamp")), service.submit(Order(2, "bob", "lamp"))]
    statuses = sorted(f.result(timeout=5).status for f in futures)
    assert statuses == ["confirmed", "rejected"]
