"""Snapshot formats: a registry fed by plugins, and a safe way to write files.

Every format, built-in or third-party, is a :class:`Format` returned by a
``ringtrace_formats`` hook (see :mod:`instrument.plugins`). Files are written
atomically (a temporary name, then a rename) and readable only by their owner;
after each write the ``ringtrace_snapshot_written`` sinks are called.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import io
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
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
    make_private_dirs(dest.parent)
    remove_stale_temporaries(dest.parent)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        if format_.directory:
            if dest.exists():
                raise FileExistsError(f"{dest} already exists")
            tmp.mkdir(mode=0o700)
            _run_writer(format_, snapshot, tmp)
            os.rename(tmp, dest)
        else:
            with create_private_file(tmp) as out:
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


_shared: ContextVar[dict[str, Any] | None] = ContextVar("ringtrace_shared_work", default=None)


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    """Writers called inside share what they compute from a snapshot.

    For writing one snapshot in several formats (a failure's ``json`` and
    ``html``): its JSON document is encoded once, and the HTML timeline
    embeds the same bytes. The snapshot must not change inside (the
    ``ringtrace_snapshot_written`` sinks get it read-only).
    """
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


def shared_memo() -> dict[str, Any] | None:
    """The work shared inside :func:`sharing` (by the writers), else ``None``."""
    return _shared.get()


def create_private_file(path: str | os.PathLike[str]) -> IO[bytes]:
    """``path``, a new file (never an existing one) readable only by its
    owner, opened for writing bytes. Use it in a ``with``: a failed write
    then still closes it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, readable only by their
    owner (0700, whatever the umask); existing ones are left as they are. A
    path that exists and is not a directory is a ``NotADirectoryError``."""
    missing: list[Path] = []
    at = directory
    while not at.is_dir():
        if os.path.lexists(at):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(at))
        missing.append(at)
        if at.parent == at:
            break
        at = at.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if not path.is_dir():
                raise
            continue
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask, never widened


#: A temporary file (or CTF directory) of :func:`write_snapshot` older than
#: this is left over by a writer that was killed: the next write into the
#: same directory removes it. No snapshot takes nearly this long to write.
STALE_TEMPORARY_SECONDS = 3600

_TEMPORARY = re.compile(r"^\..+\.\d+-[0-9a-f]{8}\.tmp$")


def remove_stale_temporaries(directory: Path) -> None:
    """Remove the temporary files and directories a killed writer left in
    ``directory``, once older than :data:`STALE_TEMPORARY_SECONDS`."""
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not _TEMPORARY.match(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if info.st_mtime >= cutoff:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            continue  # gone already, or not ours to remove


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused, as ``take_snapshot`` pauses it.

    A writer allocates objects for every event and frees none of them until
    it is done: the collector would run over and over, over every object of
    the snapshot, for nothing. The process's other threads lose nothing by a
    short delay of cycle collection.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _run_writer(format_: Format, snapshot: Snapshot, out: Any) -> None:
    try:
        format_.write(snapshot, out)
    except OSError:
        raise  # the file could not be written (out of space...): not the format's fault
    except Exception as exc:
        owner = _owners.get(format_.name, "?")
        raise FormatError(
            f"format {format_.name!r} (ringtrace plugin {owner!r}) failed to write the "
            f"snapshot: {type(exc).__name__}: {plugins.text_of(exc)}"
        ) from exc


#: No snapshot file is read past this many bytes (decompressed): a limit on
#: the memory a reader can be made to use. A 1,000,000-event JSON snapshot
#: is about 150 MB.
MAX_READ_BYTES = 1 << 30

#: A ``.json.gz`` may inflate to at most this many times its size (snapshot
#: JSON compresses about 10 to 1), or to ``MIN_INFLATE_BYTES``: a gzip bomb
#: is refused early instead of filling memory.
MAX_INFLATE_RATIO = 50
MIN_INFLATE_BYTES = 64 << 20


class ReadLimitError(OSError):
    """A snapshot file refused before it is read: not a regular file, or
    more bytes (decompressed) than the reading limits allow."""

    def __init__(self, problem: str):
        super().__init__(errno.EFBIG, problem)


_KINDS_OF_FILE = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _size_text(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


class _BoundedReader(io.RawIOBase):
    """Reads ``inner`` and raises :class:`ReadLimitError` past ``limit`` bytes."""

    def __init__(self, inner: Any, limit: int, why: str, fileobj: Any = None, size: int = 0):
        self._inner = inner
        self._left = limit
        self._why = why
        self._size = size  # bytes expected: read in one piece, with no copy
        self.fileobj = fileobj  # the gzip stream's file (closed with this one)

    def readable(self) -> bool:
        return True

    def _take(self, size: int) -> bytes:
        data = self._inner.read(min(size, self._left + 1))
        if len(data) > self._left:
            raise ReadLimitError(self._why)
        self._left -= len(data)
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._take(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            return self._take(size)
        return self.readall()

    def readall(self) -> bytes:
        parts: list[bytes] = []
        if self._size:
            whole = self._take(self._size + 1)
            if len(whole) <= self._size:
                more = self._take(1)  # at the end: a small probe, no large buffer
                if not more:
                    return whole  # the common case: the file as its size said
                whole += more
            parts.append(whole)
        while True:
            data = self._take(1 << 22)
            if not data:
                return b"".join(parts)
            parts.append(data)

    def close(self) -> None:
        try:
            self._inner.close()
            if self.fileobj is not None:
                self.fileobj.close()
        finally:
            super().close()


def _check_kind(mode: int) -> None:
    for test, kind in _KINDS_OF_FILE:
        if test(mode):
            if kind == "a directory":
                raise IsADirectoryError(errno.EISDIR, "is a directory")
            raise ReadLimitError(f"{kind}, not a regular file: not read")
    if not stat.S_ISREG(mode):
        raise ReadLimitError("not a regular file: not read")


def open_for_reading(path: Path) -> IO[bytes]:
    """``path`` opened in binary mode, gzip-decompressed if it is gzip.

    Only a regular file is opened (a FIFO would block, ``/dev/zero`` never
    ends: each is a :class:`ReadLimitError`, an ``OSError``, as is a file
    larger than :data:`MAX_READ_BYTES` or a gzip stream that inflates past
    :data:`MAX_INFLATE_RATIO` times its size, at least
    :data:`MIN_INFLATE_BYTES`). Reading past a limit raises it too.
    """
    import gzip

    _check_kind(os.stat(path).st_mode)  # a socket cannot even be opened
    # O_NONBLOCK: opening a FIFO (put in place since) must not wait for a writer.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        _check_kind(info.st_mode)
        if info.st_size > MAX_READ_BYTES:
            raise ReadLimitError(
                f"{_size_text(info.st_size)}, larger than the reading limit of "
                f"{_size_text(MAX_READ_BYTES)}"
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        raw = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    try:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
    except BaseException:
        raw.close()
        raise
    limit = MAX_READ_BYTES
    why = f"larger than the reading limit of {_size_text(MAX_READ_BYTES)}"
    if not compressed:
        return _BoundedReader(raw, limit, why, size=info.st_size)  # type: ignore[return-value]
    inflate = max(MIN_INFLATE_BYTES, MAX_INFLATE_RATIO * info.st_size)
    if inflate < limit:
        limit = inflate
        why = (
            f"gzip data inflating past {_size_text(inflate)} ({MAX_INFLATE_RATIO} times "
            "its size; a gzip bomb?): not read"
        )
    return _BoundedReader(gzip.GzipFile(fileobj=raw, mode="rb"), limit, why, raw)  # type: ignore[return-value]
