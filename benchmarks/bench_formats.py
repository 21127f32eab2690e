"""Snapshot I/O against its floors: every writer, ``Snapshot.load``, one failure.

A real recording (four threads; traced calls, spans and point events with
fields) of ``--events`` events (default 1,000,000) is written in each
registered format (``instrument.formats.format_names()``, so formats added
by plugins are measured too), and each writer is timed against a **floor**
measured in the same process, alternately, best of ``--rounds`` (CPU time): the least
any writer of that format could cost in Python, the encoding done by a C
library on data already shaped for it, and the bytes written.

* ``json``: ``orjson`` (else ``msgspec``) encoding one dict per event with the
  event's nine members (built before the clock starts) and writing it.
* ``json.gz``: the same bytes, compressed at the writer's gzip level, written.
  Compression is most of both; a smaller document compresses faster.
* ``perfetto``: the same encoder on one Chrome trace-event dict per event
  (``ph``, ``ts``, ``pid``, ``tid``, ``name``, ``cat``, ``args``: what a viewer
  needs, prebuilt) and writing it.
* ``html``: the page carries every event's data: the JSON floor's encoding,
  escaped for a ``<script>`` block (``<``, ``>``, ``&``), written. Pairing
  entries with exits into spans is on top of it.
* ``ctf``: ``struct.pack_into`` of one record per event (event class id,
  timestamp, a 64-bit field) into a preallocated buffer, written. A strict
  floor: its columns are built before the clock starts and its records
  take 18 bytes, while a writer reads every event's tuple and fields,
  groups them by stream and event class, types each field and encodes the
  strings (the trace takes about 30 bytes an event).
* ``Snapshot.load``: ``json.load`` of the same file (the stdlib, as the
  issue's figure). Peak memory of the load is measured with ``tracemalloc``
  (Python allocations, a separate pass) against the file's size.

Then **one failure**: a snapshot of a full 65,536-event ring written as the
pytest plugin writes a failure's files (its ``ArtifactWriter``, in its default
formats, ``json`` and ``html``), median of ``--failure-rounds`` (target under
50 ms), against its floor: the C encoder encoding the same events once, as
the rows they are, and writing them.

Each measurement runs in a child process forked after the snapshot is built,
so one writer's garbage or peak does not count against the next. Ratios
carry across machines, times do not. ``RINGTRACE_PURE_PYTHON=1`` measures
the pure-Python path (no ``msgspec``). Usage::

    python benchmarks/bench_formats.py                 # 1,000,000 events
    python benchmarks/bench_formats.py --events 200000 # quicker
    python benchmarks/bench_formats.py --formats json ctf --rounds 5
"""

from __future__ import annotations

import argparse
import gc
import gzip
import importlib.util
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import instrument
from instrument import Channel, Snapshot
from instrument.formats import format_names, json_format, write_snapshot

RING = 65_536  # the default channel: 16 sub-buffers of 4096 events


def record(n_events: int, threads: int = 4, channel: Channel | None = None) -> Snapshot:
    """A snapshot of about ``n_events`` events from ``threads`` threads."""
    per_thread = max(n_events // threads, 1)
    if channel is None:
        ring = 1 << max(per_thread.bit_length(), 12)  # every event fits: no overwrite
        subbuf = 4096
        channel = Channel("bench", subbuf_size=subbuf, num_subbuf=max(ring // subbuf, 2))
    instrument.start([channel])

    @instrument.trace(fields=["order_id"])
    def handle(order_id: int) -> int:
        with instrument.span("db.query", table="orders", order_id=order_id):
            pass
        instrument.event("cache.miss", key=f"order:{order_id}", size=order_id % 977, hit=False)
        return order_id

    def work(count: int) -> None:
        # one handle() is 5 events: entry, span entry, span exit, event, exit
        for i in range(count // 5):
            handle(i)
        for i in range(count % 5):
            instrument.event("tick", i=i)

    try:
        workers = [
            threading.Thread(target=work, args=(per_thread,), name=f"worker-{i}")
            for i in range(threads - 1)
        ]
        for t in workers:
            t.start()
        work(n_events - per_thread * (threads - 1))
        for t in workers:
            t.join()
        snap = instrument.snapshot()
    finally:
        instrument.stop()
    snap.metadata = {"test": "benchmarks/bench_formats.py::record", "worker": "main"}
    return snap


# -- floors ------------------------------------------------------------------------


def _c_encoder() -> tuple[str, Callable[[Any], bytes]]:
    if importlib.util.find_spec("orjson"):
        import orjson

        return "orjson", orjson.dumps
    if importlib.util.find_spec("msgspec"):
        import msgspec

        return "msgspec", msgspec.json.Encoder().encode
    return "json (stdlib; install orjson for the real floor)", lambda v: json.dumps(
        v, separators=(",", ":")
    ).encode()


ENCODER_NAME, c_encode = _c_encoder()
_FIELDS = list(instrument.Event._fields)


def event_dicts(snap: Snapshot) -> list[dict[str, Any]]:
    return [dict(zip(_FIELDS, ev, strict=True)) for ev in snap.events]


def trace_dicts(snap: Snapshot) -> list[dict[str, Any]]:
    ph = {"entry": "B", "exit": "E", "event": "i"}
    tids: dict[tuple[int, str], int] = {}
    return [
        {
            "ph": ph[ev.kind],
            "ts": ev.timestamp / 1000,
            "pid": 1,
            "tid": tids.setdefault((ev.thread_id, ev.thread_name), len(tids) + 1),
            "name": ev.name,
            "cat": ev.channel,
            "args": ev.fields,
        }
        for ev in snap.events
    ]


def floor_json(data: list[dict[str, Any]], path: Path) -> None:
    with path.open("wb") as out:
        out.write(c_encode(data))


def floor_gzip(data: list[dict[str, Any]], path: Path) -> None:
    with path.open("wb") as out:
        out.write(gzip.compress(c_encode(data), json_format.GZIP_LEVEL, mtime=0))


def floor_html(data: list[dict[str, Any]], path: Path) -> None:
    text = c_encode(data)
    text = text.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    with path.open("wb") as out:
        out.write(text)


_RECORD = struct.Struct("<HQq")


def floor_ctf(columns: tuple[list[int], list[int], list[int]], path: Path) -> None:
    ids, stamps, values = columns
    buf = bytearray(_RECORD.size * len(ids))
    pack = _RECORD.pack_into
    offset = 0
    size = _RECORD.size
    for cid, ts, value in zip(ids, stamps, values, strict=True):
        pack(buf, offset, cid, ts, value)
        offset += size
    with path.open("wb") as out:
        out.write(buf)


def ctf_columns(snap: Snapshot) -> tuple[list[int], list[int], list[int]]:
    names: dict[str, int] = {}
    return (
        [names.setdefault(ev.name, len(names)) for ev in snap.events],
        [ev.timestamp for ev in snap.events],
        [ev.position for ev in snap.events],
    )


def floor_for(fmt: str, snap: Snapshot) -> tuple[str, Callable[[Path], None]] | None:
    """The floor of ``fmt``: its description and a function writing it to a path."""
    if fmt == "json":
        data = event_dicts(snap)
        return f"{ENCODER_NAME} of event dicts", lambda p: floor_json(data, p)
    if fmt == "json.gz":
        data = event_dicts(snap)
        return f"{ENCODER_NAME} of event dicts + gzip", lambda p: floor_gzip(data, p)
    if fmt == "perfetto":
        traced = trace_dicts(snap)
        return f"{ENCODER_NAME} of trace-event dicts", lambda p: floor_json(traced, p)
    if fmt == "html":
        data = event_dicts(snap)
        return f"{ENCODER_NAME} of event dicts, escaped", lambda p: floor_html(data, p)
    if fmt == "ctf":
        columns = ctf_columns(snap)
        return "struct.pack_into of the records", lambda p: floor_ctf(columns, p)
    return None


# -- measuring -----------------------------------------------------------------------


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _timed(func: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """CPU seconds (user + system) of ``func(*args)``, and its result: on a
    machine other processes share, far steadier than wall time, and these
    writers are single-threaded."""
    gc.collect()
    start = time.process_time()
    result = func(*args)
    return time.process_time() - start, result


def measure_writer(fmt: str, snap: Snapshot, workdir: Path, rounds: int) -> dict[str, Any]:
    """Best-of-``rounds`` seconds of the writer and of its floor, alternately."""
    floor = floor_for(fmt, snap)
    base = workdir / "snap"
    writer_s: list[float] = []
    floor_s: list[float] = []
    size = 0
    for _ in range(rounds):
        seconds, path = _timed(write_snapshot, snap, base, fmt)
        writer_s.append(seconds)
        size = _size(path)
        _remove(path)
        if floor is not None:
            target = workdir / "floor"
            floor_s.append(_timed(floor[1], target)[0])
            _remove(target)
    return {
        "seconds": min(writer_s),
        "floor": floor[0] if floor else None,
        "floor_seconds": min(floor_s) if floor_s else None,
        "size": size,
    }


def measure_load(snap: Snapshot, workdir: Path, rounds: int) -> dict[str, Any]:
    """``Snapshot.load`` against ``json.load`` of the same file, then the peak
    Python memory of each (tracemalloc, a separate pass)."""
    path = write_snapshot(snap, workdir / "load", "json")
    load_s: list[float] = []
    floor_s: list[float] = []
    every_s: list[float] = []
    equal = None

    def json_load() -> Any:
        with path.open("rb") as f:
            return json.load(f)

    for _ in range(rounds):
        floor_s.append(_timed(json_load)[0])
        seconds, loaded = _timed(Snapshot.load, path)
        load_s.append(seconds)
        every_s.append(_timed(lambda events: sum(1 for _ in events), loaded.events)[0])
        if equal is None:
            equal = loaded == snap
        del loaded
    peaks = {}
    for label, func in (("json.load", json_load), ("Snapshot.load", lambda: Snapshot.load(path))):
        gc.collect()
        tracemalloc.start()
        try:
            result = func()
            peaks[label] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        del result
    return {
        "seconds": min(load_s),
        "floor_seconds": min(floor_s),
        "iterate_seconds": min(every_s),
        "size": path.stat().st_size,
        "peak": peaks["Snapshot.load"],
        "floor_peak": peaks["json.load"],
        "equal": equal,
    }


def floor_failure(snap: Snapshot, path: Path) -> None:
    """The least a failure's files could cost: the same events encoded once by
    the C encoder, as the rows they are, and written."""
    with path.open("wb") as out:
        out.write(c_encode(snap.events))


def measure_failure(workdir: Path, rounds: int) -> dict[str, Any]:
    """A full 65,536-event ring (the default channel) written as a failure
    writes it: the plugin's ``ArtifactWriter`` in its default formats, against
    :func:`floor_failure`, alternately (median of each)."""
    from pytest_ringtrace.artifacts import ArtifactWriter, SessionDirectory
    from pytest_ringtrace.options import DEFAULT_FORMATS

    snap = record(RING, threads=1, channel=Channel())
    writer = ArtifactWriter(SessionDirectory(workdir / "files", keep=1))
    files: list[float] = []
    floor: list[float] = []
    for i in range(rounds):
        seconds, (paths, problems) = _timed(writer.write, snap, f"f{i}", DEFAULT_FORMATS)
        if problems:
            raise RuntimeError("; ".join(problems))
        files.append(seconds)
        for path in paths.values():
            _remove(path)
        target = workdir / "floor"
        floor.append(_timed(floor_failure, snap, target)[0])
        _remove(target)
    return {
        "events": len(snap.events),
        "formats": list(DEFAULT_FORMATS),
        "files": statistics.median(files),
        "floor": statistics.median(floor),
    }


def in_child(job: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``job`` in a forked child (POSIX) and return its result."""
    if not hasattr(os, "fork"):
        return job()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            result = job()
        except BaseException as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write_fd, "w") as out:
            json.dump(result, out)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    return json.loads(data) if data else {"error": "the child process died"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the snapshot")
    parser.add_argument("--formats", nargs="*", help="formats to measure (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per writer (best of)")
    parser.add_argument("--failure-rounds", type=int, default=7, help="rounds of the failure")
    parser.add_argument("--no-load", action="store_true", help="skip Snapshot.load")
    parser.add_argument("--no-failure", action="store_true", help="skip the 64k failure")
    args = parser.parse_args(argv)

    names = args.formats if args.formats is not None else format_names()
    t0 = time.perf_counter()
    snap = record(args.events)
    fast = "msgspec" if getattr(json_format, "fast_encode", None) else "none (pure Python)"
    print(
        f"snapshot: {len(snap.events):,} events, {len(snap.streams)} streams, "
        f"recorded and read in {time.perf_counter() - t0:.1f} s; "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        f"encoder extra: {fast}; floor encoder: {ENCODER_NAME}"
    )
    n = max(len(snap.events), 1)
    header = f"{'what':<16}{'s':>8}{'floor s':>9}{'x floor':>9}{'ns/event':>10}{'MB':>8}  floor"
    print()
    print(header)
    print("-" * (len(header) + 30))
    with tempfile.TemporaryDirectory(prefix="ringtrace-bench-") as tmp:
        workdir = Path(tmp)
        for name in names:
            r = in_child(lambda name=name: measure_writer(name, snap, workdir, args.rounds))
            if "error" in r:
                print(f"{name:<16}failed: {r['error']}")
                continue
            fs = r["floor_seconds"]
            ratio = f"{r['seconds'] / fs:.2f}" if fs else "-"
            print(
                f"{name:<16}{r['seconds']:>8.3f}{(fs or 0):>9.3f}{ratio:>9}"
                f"{r['seconds'] / n * 1e9:>10,.0f}{r['size'] / 1e6:>8.1f}  {r['floor'] or '-'}"
            )
        if not args.no_load:
            r = in_child(lambda: measure_load(snap, workdir, args.rounds))
            if "error" in r:
                print(f"{'Snapshot.load':<16}failed: {r['error']}")
            else:
                print(
                    f"{'Snapshot.load':<16}{r['seconds']:>8.3f}{r['floor_seconds']:>9.3f}"
                    f"{r['seconds'] / r['floor_seconds']:>9.2f}"
                    f"{r['seconds'] / n * 1e9:>10,.0f}{r['size'] / 1e6:>8.1f}  json.load"
                )
                print(
                    f"{'':<16}peak {r['peak'] / 1e6:,.0f} MB = {r['peak'] / r['size']:.2f}x the "
                    f"file (json.load: {r['floor_peak'] / 1e6:,.0f} MB = "
                    f"{r['floor_peak'] / r['size']:.2f}x), tracemalloc; iterating every event "
                    f"after it: {r['iterate_seconds']:.3f} s"
                )
                if r["equal"] is False:
                    print(f"{'':<16}!! read back NOT equal to the snapshot written")
    if not args.no_failure:
        with tempfile.TemporaryDirectory(prefix="ringtrace-bench-") as tmp:
            r = in_child(lambda: measure_failure(Path(tmp), args.failure_rounds))
        if "error" in r:
            print(f"failure: {r['error']}")
        else:
            print(
                f"\none failure, a full ring of {r['events']:,} events, median of "
                f"{args.failure_rounds}: its files ({' + '.join(r['formats'])}) written in "
                f"{r['files'] * 1e3:.1f} ms (target < 50 ms) = {r['files'] / r['floor']:.2f}x "
                f"the floor ({ENCODER_NAME} encoding the same events once and writing them: "
                f"{r['floor'] * 1e3:.1f} ms)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
