"""The logging bridge's cost per log record, against ``logging`` itself.

Subjects, per record (``logger.warning("order %s: %d items", id, n)``):

* ``logging``: the record through one ``StreamHandler`` writing the
  formatted line into a ``StringIO`` (what a program pays for a log line);
* ``logging + bridge``: the same, with ``instrument.record_logging()`` on and
  a recorder running: the bridge's handler records a ``log`` event too;
* ``warnings``: ``warnings.warn`` shown (filter ``always``) into a list by
  ``catch_warnings(record=True)``, without and with the bridge.

Each subject is interleaved round after round with its baseline; the
minimum per record over the rounds is compared (CPU time of the thread).
Only ratios carry to another machine.

Usage::

    python benchmarks/bench_logbridge.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import logging
import time
import warnings
from collections.abc import Callable

import instrument

UNROLL = 10


def _per_op(fn: Callable[[], None], n: int) -> float:
    start = time.thread_time_ns()
    for _ in range(n // UNROLL):
        fn()
        fn()
        fn()
        fn()
        fn()
        fn()
        fn()
        fn()
        fn()
        fn()
    return (time.thread_time_ns() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, n = (5, 20_000) if args.quick else (15, 50_000)

    logger = logging.getLogger("bench.app")
    logger.setLevel(logging.DEBUG)
    logger.propagate = True
    root = logging.getLogger()
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)

    def log_once() -> None:
        logger.warning("order %s: %d items", "A-17", 3)

    def warn_once() -> None:
        warnings.warn("old api", DeprecationWarning, stacklevel=1)

    results: dict[str, list[float]] = {k: [] for k in ("log", "log+bridge", "warn", "warn+bridge")}
    instrument.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(rounds):
                sink.seek(0)
                sink.truncate()
                caught.clear()
                instrument.stop_logging()
                results["log"].append(_per_op(log_once, n))
                results["warn"].append(_per_op(warn_once, n))
                instrument.record_logging()
                results["log+bridge"].append(_per_op(log_once, n))
                results["warn+bridge"].append(_per_op(warn_once, n))
                instrument.stop_logging()
                instrument.stop()
                instrument.start()  # fresh rings each round
    finally:
        instrument.stop_logging()
        instrument.stop()
        root.removeHandler(handler)

    best = {k: min(v) for k, v in results.items()}
    print(f"per record, minimum of {rounds} rounds x {n:,} (thread CPU time):")
    for key, value in best.items():
        print(f"  {key:<12} {value:8.0f} ns   (median {sorted(results[key])[rounds // 2]:.0f} ns)")
    for what in ("log", "warn"):
        added = best[f"{what}+bridge"] - best[what]
        print(
            f"{what}: bridge adds {added:.0f} ns per record = "
            f"{best[f'{what}+bridge'] / best[what]:.2f}x the cost of {what} alone"
        )


if __name__ == "__main__":
    main()
