"""The pytest plugin's cost: on passing tests, and to snapshot one failure.

1. **Passing tests.** A generated suite of 2,000 passing tests (each calls an
   instrumented function: an entry, a point event and an exit) is run in a
   fresh ``python -m pytest`` process with and without ``--ringtrace``. Runs
   are interleaved (A B, B A, ...) so drift in machine load hits both alike;
   the figure is the ratio of median whole-process wall times (target <=
   1.03), with the ratio of the children's CPU time beside it (less
   sensitive to other processes on a loaded machine).

2. **One failure with a full ring.** A test fills the default ring (4096 x 16
   = 65,536 events) and fails. Timed in a fresh process:

   * the parts, called directly: the snapshot of the test window, the
     terminal section, writing each default format;
   * end to end: ``pytest_runtest_makereport`` of the failing call, measured
     by an outermost hook wrapper, with ``--ringtrace`` minus without it
     (target <= 50 ms for snapshot and attach; the files are reported by
     format, since formats are chosen by the user).

Usage::

    python benchmarks/bench_plugin.py            # 7 interleaved pairs, 5 failures
    python benchmarks/bench_plugin.py --quick    # 3 pairs, 500 tests
    python benchmarks/bench_plugin.py --tests 2000 --repeats 11
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

APP = """
import instrument


@instrument.trace
def work(n):
    instrument.event("work.step", n=n)
    return n
"""

PER_FILE = 100
RING = 4096 * 16  # the default channel: every event of the window fills it


def generate_suite(root: Path, tests: int) -> None:
    """``tests`` passing tests in files of 100, plus the instrumented app."""
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "app.py").write_text(APP)
    for start in range(0, tests, PER_FILE):
        body = ["from app import work", ""]
        for n in range(start, min(start + PER_FILE, tests)):
            body += [f"def test_{n}():", f"    assert work({n}) == {n}", ""]
        (root / f"test_gen_{start // PER_FILE:03d}.py").write_text("\n".join(body))


def run_once(root: Path, extra: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one pytest process over the suite."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"suite failed ({' '.join(cmd)}):\n{done.stdout[-2000:]}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def bench_passing(tests: int, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rt-bench-") as tmp:
        root = Path(tmp)
        generate_suite(root, tests)
        variants = {"without": [], "with": ["--ringtrace", "--ringtrace-formats=json"]}
        run_once(root, variants["without"])  # warm-up: bytecode caches
        run_once(root, variants["with"])
        walls: dict[str, list[float]] = {"without": [], "with": []}
        cpus: dict[str, list[float]] = {"without": [], "with": []}
        for i in range(repeats):
            order = ["without", "with"] if i % 2 == 0 else ["with", "without"]
            for name in order:
                wall, cpu = run_once(root, variants[name])
                walls[name].append(wall)
                cpus[name].append(cpu)
        if any((root / ".ringtrace").glob("*")):
            raise SystemExit("a passing suite wrote snapshot files")
    pair_ratios = [w / o for w, o in zip(walls["with"], walls["without"], strict=True)]
    return {
        "tests": tests,
        "repeats": repeats,
        "without_wall_s": statistics.median(walls["without"]),
        "with_wall_s": statistics.median(walls["with"]),
        "wall_ratio": statistics.median(walls["with"]) / statistics.median(walls["without"]),
        "pair_wall_ratio_median": statistics.median(pair_ratios),
        "min_wall_ratio": min(walls["with"]) / min(walls["without"]),
        "cpu_ratio": statistics.median(cpus["with"]) / statistics.median(cpus["without"]),
    }


FAILING = """
import pytest

from app import fill


@pytest.mark.parametrize("n", range({failures}))
def test_fails_with_a_full_ring(n):
    fill({events})
    assert False
"""

FILL_APP = """
import threading

import instrument


@instrument.trace
def handle(order_id, sku):
    instrument.event("cache.lookup", key=f"sku:{sku}", hit=order_id % 3 == 0)
    return order_id


def fill(events):
    # exactly ``events`` events: traced calls, then point events
    calls, rest = divmod(events, 3)
    for i in range(calls):
        handle(i, "lamp")
    for i in range(rest):
        instrument.event("tick", i=i)
"""

TIMER = """
import json
import time

import pytest

TIMES = []


class Timer:
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item, call):
        t0 = time.perf_counter()
        report = yield
        if call.when == "call":
            TIMES.append(time.perf_counter() - t0)
        return report


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    config.pluginmanager.register(Timer(), "bench-timer")  # after ringtrace: outermost


def pytest_unconfigure(config):
    with open("times.json", "w") as out:
        json.dump(TIMES, out)
"""

PARTS = """
import json, statistics, sys, tempfile, time
from pathlib import Path

import instrument
from app import fill
from pytest_ringtrace.artifacts import ArtifactWriter
from pytest_ringtrace.report import section_text, summary

repeats = int(sys.argv[1])
instrument.start()
since = time.monotonic_ns()
fill(65_536)
times = {"snapshot": [], "section": [], "json": [], "html": []}
events = 0
with tempfile.TemporaryDirectory() as tmp:
    writer = ArtifactWriter(Path(tmp))
    for i in range(repeats):
        t0 = time.perf_counter()
        snap = instrument.snapshot(since=since)
        t1 = time.perf_counter()
        text = section_text(snap, counts=summary(snap), failure_ns=time.monotonic_ns(),
                            paths={"json": "x"}, tail=20)
        t2 = time.perf_counter()
        for fmt in ("json", "html"):
            t = time.perf_counter()
            paths, problems = writer.write(snap, f"part{i}", [fmt])
            assert not problems, problems
            times[fmt].append(time.perf_counter() - t)
        times["snapshot"].append(t1 - t0)
        times["section"].append(t2 - t1)
        events = len(snap.events)
instrument.stop()
print(json.dumps({"events": events, **{k: statistics.median(v) for k, v in times.items()}}))
"""


def bench_failure(failures: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="rt-bench-") as tmp:
        root = Path(tmp)
        (root / "pytest.ini").write_text("[pytest]\n")
        (root / "app.py").write_text(FILL_APP)
        (root / "conftest.py").write_text(TIMER)
        (root / "test_fail.py").write_text(
            textwrap.dedent(FAILING.format(failures=failures, events=RING))
        )
        (root / "parts.py").write_text(PARTS)
        parts = json.loads(
            subprocess.run(
                [sys.executable, "parts.py", str(failures)],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        results: dict[str, float] = {f"part_{k}_ms": v * 1e3 for k, v in parts.items()}
        results["part_events"] = parts["events"]
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        runs = {
            "without": [],
            "json": ["--ringtrace", "--ringtrace-formats=json"],
            "json_html": ["--ringtrace"],  # the default formats
        }
        for name, extra in runs.items():
            subprocess.run([*base, *extra], cwd=root, capture_output=True, text=True)
            results[f"makereport_{name}_ms"] = (
                statistics.median(json.loads((root / "times.json").read_text())) * 1e3
            )
        files = sorted((root / ".ringtrace").glob("*.json"))
        if len(files) != 2 * failures:
            raise SystemExit(f"expected {2 * failures} json snapshots, found {len(files)}")
    for name in ("json", "json_html"):
        results[f"attach_{name}_ms"] = (
            results[f"makereport_{name}_ms"] - results["makereport_without_ms"]
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--failures", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500 tests, 3 pairs, 3 failures")
    args = parser.parse_args()
    if args.quick:
        args.tests, args.repeats, args.failures = 500, 3, 3
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")

    passing = bench_passing(args.tests, args.repeats)
    print(
        f"\n{passing['tests']:,} passing tests, {passing['repeats']} interleaved pairs of runs"
        f"\n  without --ringtrace   median wall {passing['without_wall_s']:.3f} s"
        f"\n  with --ringtrace      median wall {passing['with_wall_s']:.3f} s"
        f"\n  wall ratio            {passing['wall_ratio']:.3f}   (target <= 1.03)"
        f"\n  per-pair wall ratio   {passing['pair_wall_ratio_median']:.3f} (median)"
        f"\n  best-of wall ratio    {passing['min_wall_ratio']:.3f}"
        f"\n  CPU time ratio        {passing['cpu_ratio']:.3f}"
    )

    failure = bench_failure(args.failures)
    print(
        f"\none failure with a full ring ({int(failure['part_events']):,} events in the window), "
        f"median of {args.failures}"
        f"\n  snapshot of the window         {failure['part_snapshot_ms']:7.1f} ms"
        f"\n  terminal section (tail 20)     {failure['part_section_ms']:7.1f} ms"
        f"\n  write json                     {failure['part_json_ms']:7.1f} ms"
        f"\n  write html timeline            {failure['part_html_ms']:7.1f} ms"
        f"\n  makereport without --ringtrace {failure['makereport_without_ms']:7.1f} ms"
        f"\n  snapshot + attach, json        {failure['attach_json_ms']:7.1f} ms   (target <= 50)"
        f"\n  snapshot + attach, json + html {failure['attach_json_html_ms']:7.1f} ms"
    )


if __name__ == "__main__":
    main()
