"""Writing a big snapshot in every registered format: time and peak memory.

A real recording (several threads; traced calls, spans and point events with
fields) of ``--events`` events (default 1,000,000) is written once in each
format that ``instrument.formats.format_names()`` lists, so formats added by
plugins or other modules are measured too, and once by a baseline: the
stdlib's one-shot ``json.dumps`` of every event (C encoder, the whole
document built in memory as one string, then written: the way a
non-streaming writer works).

Each measurement runs in a child process forked after the snapshot is built,
so one writer's garbage or peak does not count against the next:

* ``time``: wall-clock seconds of one ``write_snapshot`` call (no tracing);
* ``tracemalloc``: peak Python allocations during a second call, beyond
  what was allocated before it (the snapshot itself is not counted);
* ``read s``: for a format that reads back (``json``, ``json.gz``), the
  time to load the file; the loaded snapshot is compared with the one
  written and a mismatch is printed;
* ``rss``: growth of the process's peak resident set (``ru_maxrss``) during
  the timed call, the peak reset first where Linux allows it
  (``/proc/self/clear_refs``), so memory allocated outside Python (zlib,
  C buffers) shows too.

Ratios are against the baseline in the same run: times and memory on another
machine differ, the ratios carry over. Usage::

    python benchmarks/bench_formats.py                 # 1,000,000 events
    python benchmarks/bench_formats.py --events 100000 # quicker
    python benchmarks/bench_formats.py --formats json perfetto --no-tracemalloc
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
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
from instrument.formats import format_names, get_format, write_snapshot

BASELINE = "baseline: json.dumps"


def record(n_events: int, threads: int = 4) -> Snapshot:
    """A snapshot of about ``n_events`` events from ``threads`` threads."""
    per_thread = max(n_events // threads, 1)
    ring = 1 << max(per_thread.bit_length(), 12)  # every event fits: no overwrite
    subbuf = 4096
    instrument.start([Channel("bench", subbuf_size=subbuf, num_subbuf=max(ring // subbuf, 2))])

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


def baseline_write(snap: Snapshot, base: Path) -> Path:
    """The non-streaming way: one json.dump of every event, built whole."""
    path = Path(f"{base}.baseline.json")
    document = json.dumps({"events": snap.events}, separators=(",", ":"))
    with path.open("w") as out:
        out.write(document)
    return path


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident set to the current one
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def measure(
    write: Callable[[Path], Path],
    workdir: Path,
    use_tracemalloc: bool,
    read: Callable[[Path], Snapshot] | None = None,
    snap: Snapshot | None = None,
) -> dict[str, Any]:
    """Time, rss growth and tracemalloc peak of ``write``, in this process;
    with ``read``, also the time to read the file back and whether it equals
    ``snap``."""
    gc.collect()
    reset = _reset_peak_rss()
    rss_before = _maxrss_bytes()
    start = time.perf_counter()
    path = write(workdir / "snap")
    seconds = time.perf_counter() - start
    rss = _maxrss_bytes() - rss_before
    size = _size(path)
    read_seconds = equal = None
    if read is not None:
        start = time.perf_counter()
        loaded = read(path)
        read_seconds = time.perf_counter() - start
        equal = loaded == snap
        del loaded
    _remove(path)
    peak = None
    if use_tracemalloc:
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            path = write(workdir / "snap")
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        _remove(path)
    return {
        "seconds": seconds,
        "rss": rss,
        "rss_reset": reset,
        "peak": peak,
        "size": size,
        "read_seconds": read_seconds,
        "equal": equal,
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


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the snapshot")
    parser.add_argument("--formats", nargs="*", help="formats to measure (default: all)")
    parser.add_argument(
        "--no-tracemalloc", action="store_true", help="skip the (slow) tracemalloc pass"
    )
    args = parser.parse_args(argv)

    names = args.formats or format_names()
    t0 = time.perf_counter()
    snap = record(args.events)
    print(
        f"snapshot: {len(snap.events):,} events, {len(snap.streams)} streams, "
        f"recorded and read in {time.perf_counter() - t0:.1f} s; "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    rows: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="ringtrace-bench-") as tmp:
        workdir = Path(tmp)
        jobs: list[tuple[str, Callable[[Path], Path], Callable[[Path], Snapshot] | None]] = [
            (BASELINE, lambda base: baseline_write(snap, base), None)
        ]
        jobs += [
            (name, lambda base, name=name: write_snapshot(snap, base, name), get_format(name).read)
            for name in names
        ]
        for label, write, read in jobs:
            result = in_child(
                lambda write=write, read=read: measure(
                    write, workdir, not args.no_tracemalloc, read, snap
                )
            )
            rows.append((label, result))
            print(f"  measured {label}", file=sys.stderr)

    base = dict(rows)[BASELINE]
    header = (
        f"{'format':<20}{'time s':>9}{'x base':>8}{'ns/event':>10}"
        f"{'tracemalloc MB':>16}{'x base':>8}{'rss MB':>9}{'x base':>8}{'file MB':>10}"
        f"{'read s':>8}"
    )
    print()
    print(header)
    print("-" * len(header))
    n = max(len(snap.events), 1)
    for label, r in rows:
        if "error" in r:
            print(f"{label:<20}failed: {r['error']}")
            continue
        peak_ratio = (
            f"{r['peak'] / base['peak']:.2f}" if r["peak"] is not None and base.get("peak") else "-"
        )
        rss_ratio = f"{r['rss'] / base['rss']:.2f}" if base.get("rss") else "-"
        read_s = "-" if r["read_seconds"] is None else f"{r['read_seconds']:.2f}"
        print(
            f"{label:<20}{r['seconds']:>9.2f}{r['seconds'] / base['seconds']:>8.2f}"
            f"{r['seconds'] / n * 1e9:>10,.0f}{_mb(r['peak']):>16}{peak_ratio:>8}"
            f"{_mb(r['rss']):>9}{rss_ratio:>8}{_mb(r['size']):>10}{read_s:>8}"
        )
        if r["equal"] is False:
            print(f"{'':<20}!! read back NOT equal to the snapshot written")
    if not base.get("rss_reset"):
        print("(rss: peak not resettable here; growth beyond the earlier peak only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
