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

    python benchmarks/bench_plugin.py            # 11 interleaved pairs, 5 failures
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


# Code runs as installed code does, from bytecode caches: an environment that
# sets PYTHONDONTWRITEBYTECODE (some CI images and sandboxes do) would
# recompile the kit on every run and charge that to the plugin.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(root: Path, extra: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one pytest process over the suite."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=CHILD_ENV)
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
        variants: dict[str, list[str]] = {"without": [], "with": ["--ringtrace"]}
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
        t0, c0 = time.perf_counter(), time.process_time()
        report = yield
        if call.when == "call":
            TIMES.append((time.perf_counter() - t0, time.process_time() - c0))
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
from pytest_ringtrace.artifacts import ArtifactWriter, SessionDirectory
from pytest_ringtrace.report import section_text, summary

repeats = int(sys.argv[1])
instrument.start()
since = time.monotonic_ns()
fill(65_536)
times = {}
events = 0


def timed(name, func, *args):
    w, c = time.perf_counter(), time.process_time()
    result = func(*args)
    times.setdefault(name, []).append(time.perf_counter() - w)
    times.setdefault(name + "_cpu", []).append(time.process_time() - c)
    return result


def section(snap):
    return section_text(snap, counts=summary(snap), failure_ns=time.monotonic_ns(),
                        paths={"json": "x"}, tail=20)


with tempfile.TemporaryDirectory() as tmp:
    writer = ArtifactWriter(SessionDirectory(Path(tmp), keep=1))
    for i in range(repeats):
        snap = timed("snapshot", instrument.snapshot, since)
        timed("section", section, snap)
        # each format alone, then both in one call, as the plugin writes them
        # (the html page embeds the json file's encoding)
        for name, formats in (("json", ["json"]), ("html", ["html"]), ("files", ["json", "html"])):
            paths, problems = timed(name, writer.write, snap, f"part{i}", formats)
            assert not problems, problems
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
            samples = json.loads((root / "times.json").read_text())
            results[f"makereport_{name}_ms"] = statistics.median(s[0] for s in samples) * 1e3
            results[f"makereport_{name}_cpu_ms"] = statistics.median(s[1] for s in samples) * 1e3
        files = sorted((root / ".ringtrace").glob("session-*/*.json"))
        if len(files) != 2 * failures:
            raise SystemExit(f"expected {2 * failures} json snapshots, found {len(files)}")
    for name in ("json", "json_html"):
        for unit in ("ms", "cpu_ms"):
            results[f"attach_{name}_{unit}"] = (
                results[f"makereport_{name}_{unit}"] - results[f"makereport_without_{unit}"]
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--failures", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500 tests, 3 pairs, 3 failures")
    parser.add_argument("--only", choices=["passing", "failure"], help="run one part only")
    args = parser.parse_args()
    if args.quick:
        args.tests, args.repeats, args.failures = 500, 3, 3
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")

    if args.only != "failure":
        report_passing(bench_passing(args.tests, args.repeats))
    if args.only != "passing":
        report_failure(bench_failure(args.failures), args.failures)


def report_passing(passing: dict[str, float]) -> None:
    print(
        f"\n{passing['tests']:,} passing tests, {passing['repeats']} interleaved pairs of runs"
        f"\n  without --ringtrace   median wall {passing['without_wall_s']:.3f} s"
        f"\n  with --ringtrace      median wall {passing['with_wall_s']:.3f} s"
        f"\n  wall ratio            {passing['wall_ratio']:.3f}   (target <= 1.03)"
        f"\n  per-pair wall ratio   {passing['pair_wall_ratio_median']:.3f} (median)"
        f"\n  best-of wall ratio    {passing['min_wall_ratio']:.3f}"
        f"\n  CPU time ratio        {passing['cpu_ratio']:.3f}"
    )


def report_failure(f: dict[str, float], failures: int) -> None:
    rows = [
        ("snapshot of the window", "part_snapshot"),
        ("terminal section (tail 20)", "part_section"),
        ("write json", "part_json"),
        ("write html timeline", "part_html"),
        ("write json + html (one call)", "part_files"),
        ("makereport without --ringtrace", "makereport_without"),
        ("snapshot + attach + json file", "attach_json"),
        ("snapshot + attach + json + html", "attach_json_html"),
    ]
    print(
        f"\none failure with a full ring ({int(f['part_events']):,} events in the window), "
        f"median of {failures}           wall ms    CPU ms"
    )
    for label, key in rows:
        print(f"  {label:<34} {f[key + '_ms']:8.1f}  {f[key + '_cpu_ms']:8.1f}")
    print(
        f"  snapshot + attach, no file        {f['part_snapshot_ms'] + f['part_section_ms']:8.1f}"
        f"  {f['part_snapshot_cpu_ms'] + f['part_section_cpu_ms']:8.1f}   (target <= 50 ms)"
    )


if __name__ == "__main__":
    main()
