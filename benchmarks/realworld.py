"""Real-world validation: third-party projects' own test suites, plain and traced.

Each suite is a pinned source distribution whose tests ship in the sdist,
chosen for a style of code that tracers tend to break:

- attrs: class machinery (generated ``__init__``/``__eq__``, slotted classes,
  descriptors, metaclass-free class rewriting, ``__set_name__``);
- toolz: a package that re-exports its functions (``toolz.map`` ...
  ``toolz.curried``), curries them and inspects their signatures;
- jinja2: keeps functions in registries (filters, tests) and rewrites
  tracebacks so that template lines appear in them;
- more-itertools: hundreds of plain functions and generators.

For each, the script downloads the sdist (``pip download --no-binary :all:
--no-deps NAME==VERSION``), unpacks it and runs its suite with the Python
given (default: this one) without the recorder and with ``--ringtrace
--ringtrace-instrument=<package>``, interleaved, several times. It prints the
number of tests and their outcomes, every test whose outcome differs
(there must be none), how many functions were traced, and the CPU-time
ratio traced/plain (median of each), measured on the suites' own processes.

Usage (needs PyPI; the Python given must have pytest, pytest-ringtrace and
each suite's test dependencies: hypothesis for attrs, MarkupSafe for
jinja2)::

    python benchmarks/realworld.py [--python PYTHON] [--repeats 3]
        [--suite attrs --suite jinja2 ...] [--workdir DIR]

Exits non-zero if any test's outcome differs, or a suite did not run. Too
slow for CI; ``tests/test_realworld_harness.py`` runs the comparison on a
tiny local package.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Suite:
    """One project's test suite, as its sdist ships it."""

    project: str
    version: str
    package: str  # what --ringtrace-instrument traces
    style: str
    tests: tuple[str, ...] = ("tests",)
    source: str = "."  # the directory on PYTHONPATH that holds ``package``
    pytest_args: tuple[str, ...] = ()
    #: (test id, file, assertion, broken assertion): break it, and check that
    #: the failure's snapshot holds the package's own events
    broken: tuple[str, str, str, str] | None = None


SUITES = [
    Suite(
        "attrs",
        "24.2.0",
        "attr",
        "class machinery",
        source="src",
        # test_packaging reads the installed distribution's metadata: the
        # sdist is not installed, so it fails alike plain and traced.
    ),
    Suite("toolz", "1.0.0", "toolz", "re-exported, curried functions", tests=("toolz/tests",)),
    Suite("jinja2", "3.1.4", "jinja2", "registries, rewritten tracebacks", source="src"),
    Suite(
        "more-itertools",
        "10.5.0",
        "more_itertools",
        "plain functions and generators",
        broken=(
            "tests/test_more.py::ChunkedTests::test_even",
            "tests/test_more.py",
            "list(mi.chunked('ABCDEF', 3)), [['A', 'B', 'C'], ['D', 'E', 'F']]",
            "list(mi.chunked('ABCDEF', 3)), [['A', 'B'], ['C']]",
        ),
    ),
]


@dataclass
class Run:
    """One run of a suite: per-test outcomes, CPU seconds, traced count."""

    outcomes: dict[str, str]
    cpu: float
    output: str


@dataclass
class Comparison:
    """A suite run plain and traced ``repeats`` times each."""

    name: str
    plain: dict[str, str]
    traced: dict[str, str]
    plain_cpu: list[float] = field(default_factory=list)
    traced_cpu: list[float] = field(default_factory=list)
    instrumented: str = ""

    @property
    def differing(self) -> list[str]:
        ids = self.plain.keys() | self.traced.keys()
        return sorted(t for t in ids if self.plain.get(t) != self.traced.get(t))

    @property
    def counts(self) -> dict[str, int]:
        values = list(self.plain.values())
        return {k: values.count(k) for k in ("passed", "failure", "error", "skipped")}

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.traced_cpu) / statistics.median(self.plain_cpu)

    def report(self) -> list[str]:
        diff = self.differing
        lines = [
            f"{self.name}: {len(self.plain)} tests {self.counts}",
            f"  outcomes that differ traced vs plain: {len(diff)}"
            + (
                ": "
                + ", ".join(f"{t} ({self.plain.get(t)} -> {self.traced.get(t)})" for t in diff[:8])
                if diff
                else ""
            ),
            f"  {self.instrumented or 'instrumented: (no header line)'}",
            f"  CPU: plain median {statistics.median(self.plain_cpu):.2f} s, traced median "
            f"{statistics.median(self.traced_cpu):.2f} s, ratio {self.cpu_ratio:.2f}x",
        ]
        return lines


def fetch(suite: Suite, workdir: Path, python: str) -> Path:
    """The unpacked source distribution, downloaded once into ``workdir``."""
    for tree in workdir.glob(f"{suite.project}-{suite.version}"):
        if tree.is_dir():
            return tree
    spec = f"{suite.project}=={suite.version}"
    download = [python, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*download, spec, "-d", str(workdir)], check=True)
    archives = [
        p
        for p in workdir.glob("*.tar.gz")
        if p.name.lower().replace("_", "-").startswith(f"{suite.project}-{suite.version}".lower())
    ]
    if not archives:
        raise SystemExit(f"pip download {spec} left no sdist in {workdir}")
    with tarfile.open(archives[0]) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / archives[0].name.removesuffix(".tar.gz")


def outcomes(junit: Path) -> dict[str, str]:
    """Test id -> passed / failed / error / skipped, from a JUnit XML file.

    A test reported twice (a failure in the call and an error in teardown)
    keeps every outcome it got, joined with ``+``.
    """
    result: dict[str, str] = {}
    for case in ET.parse(junit).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        kind = "+".join(kinds) if kinds else "passed"
        result[test_id] = kind if test_id not in result else f"{result[test_id]}+{kind}"
    return result


def run_suite(tree: Path, suite: Suite, python: str, junit: Path, extra: list[str]) -> Run:
    """Run the suite in ``tree`` with ``python``; outcomes and CPU seconds."""
    env = dict(os.environ)
    source = str((tree / suite.source).resolve())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    env.pop("RINGTRACE", None)
    command = [python, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    command += [*suite.pytest_args, *suite.tests, *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if not junit.exists():
        raise RuntimeError(f"{suite.project}: pytest wrote no report\n{done.stdout[-3000:]}")
    return Run(outcomes(junit), cpu, done.stdout)


def compare(tree: Path, suite: Suite, python: str, repeats: int, scratch: Path) -> Comparison:
    """Run ``suite`` plain and traced, interleaved ``repeats`` times."""
    traced_args = [
        "--ringtrace",
        f"--ringtrace-instrument={suite.package}",
        f"--ringtrace-dir={scratch / 'snapshots'}",
        "--ringtrace-formats=json",
    ]
    name = f"{suite.project} {suite.version} ({suite.style})"
    result = Comparison(name, {}, {})
    for i in range(repeats):  # interleaved: the machine's load hits both alike
        plain = run_suite(tree, suite, python, scratch / f"plain{i}.xml", [])
        traced = run_suite(tree, suite, python, scratch / f"traced{i}.xml", traced_args)
        result.plain_cpu.append(plain.cpu)
        result.traced_cpu.append(traced.cpu)
        if i == 0:
            result.plain, result.traced = plain.outcomes, traced.outcomes
            header = re.search(r"^ringtrace: instrument .*$", traced.output, re.MULTILINE)
            result.instrumented = header.group(0) if header else ""
        else:  # a test that differs in any run differs
            for test_id, kind in plain.outcomes.items():
                if result.plain.get(test_id) != kind:
                    result.plain[test_id] = f"{result.plain.get(test_id)}|{kind}"
            for test_id, kind in traced.outcomes.items():
                if result.traced.get(test_id) != kind:
                    result.traced[test_id] = f"{result.traced.get(test_id)}|{kind}"
    return result


def check_broken(tree: Path, suite: Suite, python: str, scratch: Path) -> bool:
    """Break one assertion; the failing test's snapshot must hold events of
    the package's own functions."""
    assert suite.broken is not None
    test_id, rel, good, bad = suite.broken
    broken = scratch / "broken"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(tree, broken)
    path = broken / rel
    text = path.read_text()
    if good not in text:
        print(f"  broken assertion: cannot find {good!r} in {rel}")
        return False
    path.write_text(text.replace(good, bad, 1))
    snapshots = scratch / "broken-snapshots"
    shutil.rmtree(snapshots, ignore_errors=True)
    only = Suite(**{**suite.__dict__, "tests": (test_id,)})
    run_suite(
        broken,
        only,
        python,
        scratch / "broken.xml",
        [
            "--ringtrace",
            f"--ringtrace-instrument={suite.package}",
            f"--ringtrace-dir={snapshots}",
            "--ringtrace-formats=json",
        ],
    )
    import instrument

    files = sorted(snapshots.rglob("*.json"))
    if not files:
        print(f"  broken assertion: no snapshot written under {snapshots}")
        return False
    snap = instrument.Snapshot.load(files[0])
    ours = sorted({e.name for e in snap.events if e.name.startswith(suite.package + ".")})
    print(
        f"  broken assertion ({test_id}): {len(snap.events)} events, "
        f"from {suite.package}: {ours[:4]}"
    )
    return bool(ours)


def engine_of(python: str) -> str:
    """Which tracing engine ``python`` runs instrument with."""
    probe = (
        "import instrument\n"
        "e = getattr(instrument, 'engine', None)\n"
        "print(e() if callable(e) else e or 'wrapt')\n"
    )
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    return done.stdout.strip() or f"unknown ({done.stderr.strip()[-200:]})"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--suite",
        action="append",
        choices=[s.project for s in SUITES],
        help="run only these (repeatable); default: all",
    )
    args = parser.parse_args()
    if os.sep in args.python:  # a path: the suites run from their own directories
        args.python = os.path.abspath(args.python)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ringtrace-realworld-"))
    workdir.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in SUITES if not args.suite or s.project in args.suite]
    version = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"Python {version} ({args.python}), engine {engine_of(args.python)}, "
        f"{args.repeats} runs each"
    )
    ok = True
    for suite in chosen:
        tree = fetch(suite, workdir, args.python)
        scratch = workdir / f"runs-{suite.project}"
        scratch.mkdir(exist_ok=True)
        try:
            result = compare(tree, suite, args.python, args.repeats, scratch)
        except RuntimeError as exc:
            print(f"{suite.project}: did not run: {exc}")
            ok = False
            continue
        print("\n".join(result.report()), flush=True)
        ok = ok and not result.differing and bool(result.plain)
        if suite.broken is not None:
            ok = check_broken(tree, suite, args.python, scratch) and ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
