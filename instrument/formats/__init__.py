"""Snapshot formats: a registry fed by plugins, and a safe way to write files.

Every format, built-in or third-party, is a :class:`Format` returned by a
``ringtrace_formats`` hook (see :mod:`instrument.plugins`). Files are written
atomically (a temporary name, then a rename) and readable only by their owner;
after each write the ``ringtrace_snapshot_written`` sinks are called.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .. import plugins
from ..model import Snapshot


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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(
                "format name must be letters, digits, '_', '-' or '.' "
                f"(it is typed on command lines), got {self.name!r}"
            )
        if not isinstance(self.suffix, str) or "/" in self.suffix or os.sep in self.suffix:
            raise ValueError(
                f"format {self.name!r}: suffix must be a file suffix, got {self.suffix!r}"
            )
        if not callable(self.write):
            raise TypeError(f"format {self.name!r}: write must be callable, got {self.write!r}")
        if self.read is not None and not callable(self.read):
            raise TypeError(f"format {self.name!r}: read must be callable or None")


class FormatError(RuntimeError):
    """A format's writer raised; the message names the format and its plugin.

    The original exception is the ``__cause__``. No file is left behind.
    """


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_cache: dict[str, Format] | None = None
_owners: dict[str, str] = {}  # format name -> the plugin that provides it


def _invalidate() -> None:
    global _cache
    _cache = None


plugins.on_change(_invalidate)


def formats() -> dict[str, Format]:
    """Every registered format by name (built-ins first).

    A name is kept by the first plugin that offers it; a later plugin
    offering it again, or offering something that is not a :class:`Format`,
    is named in a :class:`~instrument.plugins.PluginWarning`.
    """
    global _cache
    if _cache is None:
        found: dict[str, Format] = {}
        owners: dict[str, str] = {}
        for plugin_name, result in plugins.call_each("ringtrace_formats"):
            if result is None:
                continue
            if not isinstance(result, (list, tuple)):
                problem = f"ringtrace_formats must return a list, got {type(result).__name__}"
                plugins.warn(plugin_name, TypeError(problem))
                continue
            for fmt in result:
                if not isinstance(fmt, Format):
                    plugins.warn(plugin_name, TypeError(f"not a Format: {fmt!r}"))
                elif fmt.name in found:
                    problem = f"format {fmt.name!r} is already provided by {owners[fmt.name]!r}"
                    plugins.warn(plugin_name, ValueError(problem), where="ringtrace_formats")
                else:
                    found[fmt.name] = fmt
                    owners[fmt.name] = plugin_name
        _owners.clear()
        _owners.update(owners)
        _cache = found
    return _cache


def format_plugin(name: str) -> str:
    """The name of the plugin that provides format ``name``."""
    get_format(name)
    return _owners[name]


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
    An unknown ``fmt`` is a ``ValueError`` listing the known ones; a writer
    that raises is a :class:`FormatError` naming the format and its plugin.
    Then each ``ringtrace_snapshot_written`` sink is called; one that raises
    is named in a warning and the written file is still returned.
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
            _run_writer(format_, snapshot, tmp)
            os.rename(tmp, dest)
        else:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                _run_writer(format_, snapshot, out)
            os.replace(tmp, dest)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    plugins.call_each("ringtrace_snapshot_written", snapshot=snapshot, path=dest, format=fmt)
    return dest


def _run_writer(format_: Format, snapshot: Snapshot, out: Any) -> None:
    try:
        format_.write(snapshot, out)
    except Exception as exc:
        owner = _owners.get(format_.name, "?")
        raise FormatError(
            f"format {format_.name!r} (ringtrace plugin {owner!r}) failed to write the "
            f"snapshot: {type(exc).__name__}: {plugins.text_of(exc)}"
        ) from exc


def open_for_reading(path: Path) -> IO[bytes]:
    """``path`` opened in binary mode, gzip-decompressed if it is gzip."""
    import gzip

    with path.open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    if compressed:
        return gzip.open(path, "rb")  # type: ignore[return-value]  # owns the file
    return path.open("rb")
