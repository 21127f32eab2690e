"""Streams in shared memory: how a child process's events outlive it.

A child process of a recording session (see :mod:`instrument.childstart`)
writes each event twice: into its in-process ring, as any process does, and
into a file-backed ``mmap`` ring in the session directory, one file per
stream (a thread on a channel), as LTTng keeps its buffers in shared memory.
The page cache holds what the child wrote, so the parent reads it while the
child runs (without stopping it), after it ended, and after it was killed
(SIGKILL, a segfault, ``os._exit``): only a write the child was in the
middle of is lost, and it is counted.

The file: a header page (magic, then the stream's identity as JSON), then
``slots`` fixed-size slots, a power of two. A slot holds ``(position: int64,
length: uint32, payload)``; the payload is ``marshal`` of the record without
its position (plain data only: fields that marshal refuses are captured with
:func:`instrument.values.capture_fields` first; a payload too big for a slot
keeps its name and kind and says so in its fields). The record at position
``p`` goes to slot ``p % slots``. Writing is LTTng's reserve/commit made
visible to another process: the slot's position is cleared (open), the
payload written, then the position stored (commit). A reader that copies a
slot whose position is not the one it expects there, before and after its
copy, has met a write in progress or a later lap: it skips the slot's
sub-buffer whole and counts it, as the in-process reader does.

Memory: a child stream's ring is the channel's capacity capped at
``MAX_SLOTS`` slots of ``SLOT_SIZE`` bytes (2 MiB per stream by default).
"""

from __future__ import annotations

import json
import marshal
import mmap
import os
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .channel import Channel
from .stream import Record, Stream, Writer

MAGIC = b"RTRCSHM1"
HEADER_SIZE = 4096
SLOT_SIZE = 512
MAX_SLOTS = 4096
_SLOT_HEAD = struct.Struct("<qI")  # position, payload length
_POS = struct.Struct("<q")
_ROOM = SLOT_SIZE - _SLOT_HEAD.size
_dumps = marshal.dumps


def slots_for(channel: Channel) -> int:
    """Slots of a child stream of ``channel`` (a power of two)."""
    return min(channel.capacity, MAX_SLOTS)


def subbuf_for(channel: Channel) -> int:
    """Slots per sub-buffer of a child stream of ``channel``."""
    return min(channel.subbuf_size, slots_for(channel) // 2)


def _plain_record(rest: tuple[Any, ...]) -> tuple[Any, ...]:
    """``rest`` (a record without its position) with plain-data fields and
    context, for a record that ``marshal`` refused."""
    from .values import capture, capture_fields

    out = list(rest)
    if len(out) > 2 and isinstance(out[2], Mapping):
        out[2] = capture_fields(out[2])
    elif len(out) > 2 and out[2] is not None and type(out[2]) is not int:
        out[2] = {"value": capture(out[2])}
    if len(out) > 4:
        out[4] = tuple(capture(v) for v in out[4])
    return tuple(out)


def _shrunk(rest: tuple[Any, ...], size: int) -> tuple[Any, ...]:
    """``rest`` whose payload (``size`` bytes) does not fit a slot: the name
    and kind are kept, the fields say what was left out."""
    out = list(rest)
    if len(out) > 2:
        out[2] = {
            "ringtrace.truncated": f"fields of {size} bytes do not fit a {SLOT_SIZE}-byte slot"
        }
    if len(out) > 4:
        out[4] = tuple(None for _ in out[4])
    return tuple(out)


class SharedStream(Stream):
    """A stream that also writes each record to a file-backed shared ring."""

    __slots__ = ("mask", "mm", "path")

    def __init__(
        self,
        channel: Channel,
        thread: threading.Thread,
        static: Mapping[str, object],
        directory: str,
    ):
        super().__init__(channel, thread, static)
        slots = slots_for(channel)
        self.mask = slots - 1
        native = getattr(thread, "native_id", None) or threading.get_native_id()
        pid = os.getpid()
        self.path = os.path.join(directory, f"stream-{pid}-{native}-{channel.name}.ring")
        header = json.dumps(
            {
                "pid": pid,
                "thread_id": native,
                "thread_name": thread.name,
                "channel": channel.name,
                "slots": slots,
                "subbuf_size": subbuf_for(channel),
                "slot_size": SLOT_SIZE,
            }
        ).encode()
        size = HEADER_SIZE + slots * SLOT_SIZE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
            self.mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.mm[: len(MAGIC) + 4 + len(header)] = MAGIC + struct.pack("<I", len(header)) + header

    def writer(self) -> Writer:
        return self.append_shared, self.counter.__next__

    def write(self, record: Record) -> None:
        self.append_shared((next(self.counter), *record[1:]))

    def append_shared(self, record: Record) -> None:
        # The in-process ring first (this process's own snapshots read it),
        # then the shared slot: open it, write the payload, commit.
        self.ring.append(record)
        rest = record[1:]
        try:
            payload = _dumps(rest)
        except ValueError:  # a field marshal does not take: capture it now
            payload = _dumps(_plain_record(rest))
        if len(payload) > _ROOM:
            payload = _dumps(_shrunk(rest, len(payload)))
        pos = record[0]
        mm = self.mm
        off = HEADER_SIZE + (pos & self.mask) * SLOT_SIZE
        _POS.pack_into(mm, off, 0)  # open
        end = off + _SLOT_HEAD.size + len(payload)
        mm[off + _SLOT_HEAD.size : end] = payload
        _SLOT_HEAD.pack_into(mm, off, pos + 1, len(payload))  # commit


# -- reading, in the parent ----------------------------------------------------------


@dataclass
class SharedRead:
    """What one read of a shared stream file found."""

    header: dict[str, Any]
    records: list[tuple[int, tuple[Any, ...]]] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    produced: int = 0
    begin: int = 0


class SharedFileError(ValueError):
    """A file in the session directory that is not a readable shared stream."""


def read_header(data: bytes) -> dict[str, Any]:
    if data[: len(MAGIC)] != MAGIC:
        raise SharedFileError("not a ringtrace shared stream")
    (length,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if length > HEADER_SIZE - start:
        raise SharedFileError("corrupt header")
    header: dict[str, Any] = json.loads(data[start : start + length])
    slots = header.get("slots")
    if not isinstance(slots, int) or slots <= 0 or slots & (slots - 1):
        raise SharedFileError("corrupt header")
    if len(data) < HEADER_SIZE + slots * SLOT_SIZE:
        raise SharedFileError("truncated")
    return header


def _slot_positions(data: bytes, slots: int) -> list[int]:
    """The position committed in each slot; -1 for a slot open or never used."""
    return [_POS.unpack_from(data, HEADER_SIZE + i * SLOT_SIZE)[0] - 1 for i in range(slots)]


def read_shared(path: str, since: int | None = None) -> SharedRead:
    """Read a shared stream file without stopping its writer.

    Copies the file, then reads the slot positions again: a slot whose
    position changed between the two (written meanwhile) or that is open
    (a write in progress, or the writer died in it) makes its sub-buffer a
    gap, counted, never half-read.
    """
    with open(path, "rb") as f:
        data = f.read()
    header = read_header(data)
    slots: int = header["slots"]
    size = max(int(header.get("subbuf_size") or 1), 1)
    first = _slot_positions(data, slots)
    with open(path, "rb") as f:
        again = _slot_positions(f.read(), slots)
    produced = max(max(first), max(again)) + 1
    if produced <= 0:
        return SharedRead(header)
    filled_to = -(-produced // size) * size
    oldest = max(filled_to - slots, 0)
    result = SharedRead(header, produced=produced, begin=oldest)
    subbuf = oldest - oldest % size
    while subbuf < produced:
        lo, hi = max(subbuf, oldest), min(subbuf + size, produced)
        batch: list[tuple[int, tuple[Any, ...]]] = []
        for pos in range(lo, hi):
            slot = pos % slots
            if first[slot] != pos or again[slot] != pos:
                batch = []
                break
            off = HEADER_SIZE + slot * SLOT_SIZE
            _, length = _SLOT_HEAD.unpack_from(data, off)
            try:
                rest = marshal.loads(data[off + _SLOT_HEAD.size : off + _SLOT_HEAD.size + length])
            except (ValueError, EOFError, TypeError):
                batch = []
                break
            batch.append((pos, rest))
        if len(batch) == hi - lo:
            if since is None or not batch or batch[-1][1][0] >= since or result.records:
                result.records.extend(batch)
        else:
            result.gaps.append((subbuf, subbuf + size))
        subbuf += size
    return result
