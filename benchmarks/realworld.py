"""Real-world validation: a well-known project's own test suite, with and without ringtrace.

Takes the source distribution of more-itertools (pinned: its tests ship in the
sdist and exercise hundreds of plain functions and generators), and:

1. runs its suite without the recorder and with
   ``--ringtrace --ringtrace-instrument=more_itertools`` (every function and
   method of the package traced), interleaved, several times;
2. checks that every test has the same outcome in both runs (JUnit XML);
3. prints the whole-run wall-time ratio (median of the repeats);
4. breaks one assertion of the suite on purpose, runs it with the recorder,
   and checks that the failing test's snapshot holds events recorded from
   more_itertools' own functions.

Usage (needs PyPI for ``pip download``)::

    python benchmarks/realworld.py [--repeats 5] [--workdir DIR]

Exits non-zero if outcomes differ or the snapshot lacks the package's events.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

PROJECT = "more-itertools"
VERSION = "10.5.0"
PACKAGE = "more_itertools"
BROKEN_TEST = "tests/test_more.py::ChunkedTests::test_even"


def fetch(workdir: Path) -> Path:
    """The unpacked source distribution, downloaded once into ``workdir``."""
    tree = workdir / f"{PROJECT}-{VERSION}"
    if tree.is_dir():
        return tree
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{PROJECT}=={VERSION}",
            "-d",
            str(workdir),
        ],
        check=True,
    )
    (archive,) = workdir.glob(f"{PROJECT}-{VERSION}.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return tree


def run_suite(tree: Path, junit: Path, extra: list[str]) -> float:
    """Run the project's suite in ``tree``; return the wall time in seconds."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "tests",
        *extra,
    ]
    t0 = time.perf_counter()
    subprocess.run(command, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return time.perf_counter() - t0


def outcomes(junit: Path) -> dict[str, str]:
    """Test id -> passed / failed / error / skipped, from a JUnit XML file."""
    result = {}
    for case in ET.parse(junit).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        result[test_id] = kinds[0] if kinds else "passed"
    return result


def break_one_assertion(tree: Path) -> None:
    """Make ChunkedTests.test_even expect the wrong chunks."""
    path = tree / "tests" / "test_more.py"
    text = path.read_text()
    good = "list(mi.chunked('ABCDEF', 3)), [['A', 'B', 'C'], ['D', 'E', 'F']]"
    if good not in text:
        raise SystemExit(f"cannot find the assertion to break in {path}")
    path.write_text(text.replace(good, "list(mi.chunked('ABCDEF', 3)), [['A', 'B'], ['C']]", 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ringtrace-realworld-"))
    workdir.mkdir(parents=True, exist_ok=True)
    tree = fetch(workdir)
    traced = [
        "--ringtrace",
        f"--ringtrace-instrument={PACKAGE}",
        f"--ringtrace-dir={workdir / 'snapshots'}",
    ]

    plain_times, traced_times = [], []
    plain_junit, traced_junit = workdir / "plain.xml", workdir / "traced.xml"
    for _ in range(args.repeats):  # interleaved: the machine's load hits both alike
        plain_times.append(run_suite(tree, plain_junit, []))
        traced_times.append(run_suite(tree, traced_junit, traced))
    plain, with_ringtrace = outcomes(plain_junit), outcomes(traced_junit)
    differing = sorted(
        t for t in plain.keys() | with_ringtrace.keys() if plain.get(t) != with_ringtrace.get(t)
    )
    counts = {k: list(plain.values()).count(k) for k in ("passed", "failed", "error", "skipped")}
    ratio = statistics.median(traced_times) / statistics.median(plain_times)
    print(f"{PROJECT} {VERSION}: {len(plain)} tests {counts}")
    print(
        f"  same outcome with and without ringtrace: {not differing} "
        f"({len(differing)} differ{': ' + ', '.join(differing[:5]) if differing else ''})"
    )
    print(
        f"  wall time: plain median {statistics.median(plain_times):.2f} s, "
        f"--ringtrace --ringtrace-instrument={PACKAGE} median "
        f"{statistics.median(traced_times):.2f} s, ratio {ratio:.2f}x"
    )

    broken = workdir / "broken"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(tree, broken)
    break_one_assertion(broken)
    snapshots = workdir / "broken-snapshots"
    shutil.rmtree(snapshots, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            BROKEN_TEST,
            "--ringtrace",
            f"--ringtrace-instrument={PACKAGE}",
            f"--ringtrace-dir={snapshots}",
            "--ringtrace-formats=json",
        ],
        cwd=broken,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    import instrument

    files = sorted(snapshots.rglob("*.json"))
    if not files:
        print(f"  broken assertion: no snapshot written under {snapshots}")
        return 1
    snap = instrument.Snapshot.load(files[0])
    ours = [e for e in snap.events if e.name.startswith(PACKAGE + ".")]
    print(
        f"  broken assertion ({BROKEN_TEST}): snapshot {files[0].name}, "
        f"{len(snap.events)} events, {len(ours)} from {PACKAGE}: "
        f"{sorted({e.name for e in ours})[:4]}"
    )
    ok = not differing and bool(ours)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
