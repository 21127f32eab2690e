"""Module-level functions and classes, traced and not, for test_transparency.

Pickle finds a function by its module and qualified name, so what it
pickles must live at module level of an importable module: here. Each traced
object has an untraced twin of the same shape to compare against.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import instrument


def add(a: int, b: int = 2, *rest: int, scale: int = 1, **extra: Any) -> int:
    """Add numbers (the untraced twin)."""
    return (a + b + sum(rest)) * scale + len(extra)


@instrument.trace
def traced_add(a: int, b: int = 2, *rest: int, scale: int = 1, **extra: Any) -> int:
    """Add numbers (traced)."""
    return (a + b + sum(rest)) * scale + len(extra)


@instrument.trace(name="targets.fielded", fields="*", retval=True)
def traced_fielded(a: int, b: int = 2, *rest: int, scale: int = 1, **extra: Any) -> int:
    """Add numbers (traced, capturing arguments and the return value)."""
    return (a + b + sum(rest)) * scale + len(extra)


@instrument.trace
def traced_countdown(n: int) -> Iterator[int]:
    """Yield n, n-1, ..., 1 (a traced generator function)."""
    while n > 0:
        yield n
        n -= 1


@instrument.trace
async def traced_double(x: int) -> int:
    """Return 2x (a traced coroutine function)."""
    return 2 * x


@instrument.trace
async def traced_agen(n: int) -> AsyncIterator[int]:
    """Yield 0..n-1 (a traced async generator function)."""
    for i in range(n):
        yield i


class Account:
    """A class whose methods are traced, in every descriptor form."""

    rate = 2

    def __init__(self, balance: int) -> None:
        self.balance = balance

    @instrument.trace
    def deposit(self, amount: int) -> int:
        """Add ``amount``; return the new balance."""
        self.balance += amount
        return self.balance

    @instrument.trace
    @classmethod
    def with_rate(cls, amount: int) -> int:
        """``amount`` times the class's rate."""
        return amount * cls.rate

    @instrument.trace
    @staticmethod
    def fee(amount: int) -> int:
        """A fixed fee on ``amount``."""
        return amount // 10

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Account) and other.balance == self.balance

    def __hash__(self) -> int:
        return hash(self.balance)


class Plain:
    """Account's untraced twin."""

    rate = 2

    def __init__(self, balance: int) -> None:
        self.balance = balance

    def deposit(self, amount: int) -> int:
        """Add ``amount``; return the new balance."""
        self.balance += amount
        return self.balance

    @classmethod
    def with_rate(cls, amount: int) -> int:
        """``amount`` times the class's rate."""
        return amount * cls.rate

    @staticmethod
    def fee(amount: int) -> int:
        """A fixed fee on ``amount``."""
        return amount // 10
