"""Helpers for the pytest plugin's tests (tests/test_plugin_*.py).

A tiny instrumented application is written into each pytester directory;
runs use small rings and JSON files only, so every inner session is fast.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

# Imported here so that in-process inner sessions find them already loaded:
# pytester drops modules first imported during an inner run, and importing
# them again (with assertion rewriting) would cost each run.
import pytest_ringtrace.session
import pytest_ringtrace.timeout  # noqa: F401
from instrument import Snapshot

#: An instrumented module for inner test sessions: a traced function that
#: records a point event, and a way to run it on a named thread.
APP = """
import threading

import instrument


@instrument.trace(fields=["n"])
def step(n, note=""):
    instrument.event("app.tick", n=n, note=note, password="hunter2")
    return n


def on_thread(name, n):
    thread = threading.Thread(target=step, args=(n,), name=name)
    thread.start()
    thread.join()
"""

#: Options for fast inner runs: small rings, one format, no cache, and no
#: hypothesis plugin (it would import hypothesis afresh in every inner run).
FAST = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "--ringtrace-subbuf-size=64",
    "--ringtrace-num-subbuf=4",
    "--ringtrace-formats=json",
)

#: A conftest that records, on the controller side, what each report
#: carries: the ``ringtrace`` attribute and the section titles.
REPORT_LOG = """
import json

IS_WORKER = False

def pytest_configure(config):
    global IS_WORKER
    IS_WORKER = hasattr(config, "workerinput")

def pytest_runtest_logreport(report):
    if IS_WORKER:
        return
    with open("reports.jsonl", "a") as out:
        out.write(json.dumps({
            "nodeid": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "ringtrace": getattr(report, "ringtrace", None),
            "sections": [title for title, _ in report.sections],
        }) + "\\n")
"""


def make_app(pytester: pytest.Pytester, conftest: str = "") -> None:
    """Write the application module (and a conftest) into the test directory."""
    pytester.makepyfile(app=APP)
    pytester.makeconftest(REPORT_LOG + conftest)


def reports(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    """The reports the REPORT_LOG conftest saw, in order."""
    path = pytester.path / "reports.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def snapshots_of(pytester: pytest.Pytester, report: dict[str, Any]) -> Path:
    """The JSON snapshot a report attribute points to."""
    info = report["ringtrace"]
    assert info is not None, report
    return Path(info["paths"]["json"])


def artifact_files(pytester: pytest.Pytester, directory: str = ".ringtrace") -> list[Path]:
    """Every snapshot file written under the directory, session by session
    (``session-NNNNNN/``), by name."""
    root = pytester.path / directory
    if not root.exists():
        return []
    return sorted(
        p
        for session in root.glob("session-*")
        for p in session.iterdir()
        if not p.name.startswith(".")
    )


def make_venv(where: Path) -> tuple[Path, Path]:
    """(python, site-packages) of a new venv that also sees this environment's
    packages through a ``.pth`` file (``--system-site-packages`` would show
    the base interpreter's, which under tox lacks our dependencies); pip is
    this environment's, so nothing is downloaded."""
    import os
    import site
    import subprocess
    import sys

    made = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    python = where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    found = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    purelib = Path(found.stdout.strip())
    parents = [*site.getsitepackages(), site.getusersitepackages()]
    (purelib / "_parent_environment.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in parents if os.path.isdir(d))
    )
    return python, purelib


def load(path: Path) -> Snapshot:
    """A snapshot file read back."""
    return Snapshot.load(path)


def section(output: str, title: str) -> str:
    """The text of the terminal section ``---- title ----`` in ``output``."""
    lines = output.splitlines()
    separator = re.compile(r"^([-=_])\1* .* \1+$")
    for i, line in enumerate(lines):
        if line.strip("-").strip() == title and line.startswith("-"):
            body = []
            for text in lines[i + 1 :]:
                if separator.match(text) or text.startswith("____"):
                    break
                body.append(text)
            return "\n".join(body)
    raise AssertionError(f"no section {title!r} in output:\n{output}")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
