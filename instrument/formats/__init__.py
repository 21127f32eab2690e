"""Snapshot formats: a registry fed by plugins, and a safe way to write files.

Every format, built-in or third-party, is a :class:`Format` returned by a
``ringtrace_formats`` hook (see :mod:`instrument.plugins`). Files are written
atomically (a temporary name, then a rename) and readable only by their owner;
after each write the ``ringtrace_snapshot_written`` sinks are called.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .. import plugins
from ..snapshot import Snapshot


@dataclass(frozen=True)
class Format:
    """A way to write a snapshot.

    ``write(snapshot, out)`` gets a binary file opened for writing, or, for a
    ``directory`` format (CTF), the path of a new empty directory. ``read``
    loads a file of this format back into a Snapshot, where possible.
    """

    name: str
    suffix: str
    write: Callable[[Snapshot, Any], None]
    description: str = ""
    directory: bool = False
    read: Callable[[Path], Snapshot] | None = None


_cache: dict[str, Format] | None = None


def _invalidate() -> None:
    global _cache
    _cache = None


plugins.on_change(_invalidate)


def formats() -> dict[str, Format]:
    """Every registered format by name (built-ins first)."""
    global _cache
    if _cache is None:
        found: dict[str, Format] = {}
        for plugin_name, result in plugins.call_each("ringtrace_formats"):
            for fmt in result or ():
                if not isinstance(fmt, Format):
                    plugins.warn(plugin_name, TypeError(f"not a Format: {fmt!r}"))
                elif fmt.name not in found:
                    found[fmt.name] = fmt
        _cache = found
    return _cache


def format_names() -> list[str]:
    """Names of every registered format."""
    return list(formats())


def get_format(name: str) -> Format:
    """The format called ``name``, or a ``ValueError`` listing the known ones."""
    fmt = formats().get(name)
    if fmt is None:
        raise ValueError(f"unknown snapshot format {name!r}; known: {', '.join(formats())}")
    return fmt


def write_snapshot(snapshot: Snapshot, base: str | os.PathLike[str], fmt: str = "json") -> Path:
    """Write ``snapshot`` as ``base`` + the format's suffix; return that path.

    The file appears whole or not at all, with owner-only permissions. An
    existing file of that name is replaced; an existing directory is an error.
    """
    format_ = get_format(fmt)
    dest = Path(os.fspath(base) + format_.suffix)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        if format_.directory:
            if dest.exists():
                raise FileExistsError(f"{dest} already exists")
            tmp.mkdir(mode=0o700)
            format_.write(snapshot, tmp)
            os.rename(tmp, dest)
        else:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                format_.write(snapshot, out)
            os.replace(tmp, dest)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    plugins.call_each("ringtrace_snapshot_written", snapshot=snapshot, path=dest, format=fmt)
    return dest


def open_for_reading(path: Path) -> IO[bytes]:
    """``path`` opened in binary mode, gzip-decompressed if it is gzip."""
    import gzip

    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw
