"""Fixtures for the example application's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from shop import Inventory, OrderService


@pytest.fixture
def make_service() -> Iterator[Callable[..., OrderService]]:
    """Build an OrderService over a fresh inventory; closed after the test."""
    services: list[OrderService] = []

    def make(stock: dict[str, int], **options: Any) -> OrderService:
        service = OrderService(Inventory(stock), **options)
        services.append(service)
        return service

    yield make
    for service in services:
        service.close()
