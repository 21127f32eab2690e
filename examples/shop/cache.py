"""A small thread-safe read-through cache with a time-to-live."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import instrument

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Values loaded by ``loader`` on a miss and kept for ``ttl`` seconds."""

    def __init__(self, loader: Callable[[K], V], ttl: float = 30.0):
        self._loader = loader
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            instrument.event("cache.hit", key=key)
            return entry[1]
        instrument.event("cache.miss", key=key)
        value = self._loader(key)
        with self._lock:
            self._entries[key] = (now + self._ttl, value)
        return value

    def invalidate(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)
        instrument.event("cache.invalidate", key=key)
