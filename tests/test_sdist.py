"""The source distribution, built, unpacked and installed like a packager would.

The sdist is built from this tree with setuptools' PEP 517 backend, unpacked,
and installed (not editable) into a throwaway virtual environment that sees
this environment's packages (pytest, wrapt, pluggy, the test plugins) but
gets pytest-ringtrace only from the sdist. Then the unpacked tree's own test
suite is collected whole (0 errors: conftest.py and the helper modules are
shipped) and a representative part of it is run against the installed copy,
including the README demo that needs ``examples/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Run inside the unpacked sdist: the plugin's fixture, marker and warnings
#: tests (nested sessions, ``-W error``: an installed, not editable, package
#: behaves differently there) and the README demo (needs examples/).
SUBSET = [
    "tests/test_plugin_fixture.py",
    "tests/test_plugin_integrations.py::test_example_application_demo",
]


def _env() -> dict[str, str]:
    """This environment minus what would steer the inner runs (pytest, xdist, tox)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RINGTRACE", "PYTEST"))}
    env.pop("PYTHONPATH", None)
    return env


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist built from this tree."""
    out = tmp_path_factory.mktemp("sdist")
    built = _run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))",
            str(out),
        ],
        ROOT,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return out / built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def unpacked(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(where, filter="data")
        else:  # Python < 3.10.12: our own archive, trusted
            archive.extractall(where)
    (top,) = where.iterdir()
    return top


@pytest.fixture(scope="module")
def venv_python(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv's python with the sdist installed from the archive."""
    from plugin_helpers import make_venv

    root = tmp_path_factory.mktemp("sdist-venv")
    python, _purelib = make_venv(root / "venv")
    installed = _run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q", str(sdist)],
        root,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def test_sdist_ships_the_suite_and_what_it_needs(unpacked: Path):
    for folder in ("tests", "examples"):
        here = {
            p.relative_to(ROOT)
            for p in (ROOT / folder).rglob("*")
            if p.is_file()
            and p.suffix in (".py", ".toml", ".md")
            and "build" not in p.parts
            and not any(part.endswith(".egg-info") for part in p.parts)
        }
        shipped = {p.relative_to(unpacked) for p in (unpacked / folder).rglob("*") if p.is_file()}
        assert here - shipped == set(), f"missing from the sdist: {sorted(here - shipped)}"
    for name in ("LICENSE", "README.md", "tox.ini", "tests/conftest.py", "tests/plugin_helpers.py"):
        assert (unpacked / name).is_file(), name
    assert not list(unpacked.rglob("__pycache__"))
    assert "MIT License" in (unpacked / "LICENSE").read_text(encoding="utf-8")
    pkg_info = (unpacked / "PKG-INFO").read_text(encoding="utf-8")
    assert "License-Expression: MIT" in pkg_info.splitlines()
    assert "License-File: LICENSE" in pkg_info.splitlines()


def test_installed_from_the_sdist(venv_python: Path, tmp_path: Path):
    probe = _run(
        [
            str(venv_python),
            "-c",
            "import importlib.metadata as m, instrument, pytest_ringtrace, instrument.formats;"
            "d = m.distribution('pytest-ringtrace');"
            "print(instrument.__file__); print(pytest_ringtrace.__file__);"
            "print(d.metadata['License-Expression']);"
            "print(any(str(f).endswith('licenses/LICENSE') for f in d.files));"
            "print((d.locate_file('instrument/formats/timeline.html')).is_file())",
        ],
        tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    instrument_file, plugin_file, license_expr, has_license, has_data = probe.stdout.split()
    prefix = str(venv_python.parent.parent)
    assert instrument_file.startswith(prefix) and plugin_file.startswith(prefix)
    assert (license_expr, has_license, has_data) == ("MIT", "True", "True")


RUNNER = """\
import sys

import instrument
import pytest

# The installed copy, not the unpacked source (sys.path[0] is this file's folder).
assert instrument.__file__.startswith(sys.prefix), instrument.__file__
sys.exit(pytest.main(sys.argv[1:]))
"""


def test_the_unpacked_suite_collects_and_runs(venv_python: Path, unpacked: Path, tmp_path: Path):
    runner = tmp_path / "run_pytest.py"
    runner.write_text(RUNNER, encoding="utf-8")
    base = [str(venv_python), str(runner), "-p", "no:cacheprovider", "-q"]
    collected = _run([*base, "--collect-only"], unpacked)
    assert collected.returncode == 0, collected.stdout[-4000:] + collected.stderr[-4000:]
    last = collected.stdout.strip().splitlines()[-1]
    assert "error" not in last, last
    ours = _run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                ROOT)  # fmt: skip
    assert last.split()[0] == ours.stdout.strip().splitlines()[-1].split()[0], (last, ours.stdout)
    ran = _run([*base, *SUBSET], unpacked)
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr[-3000:]
    assert " passed" in ran.stdout.strip().splitlines()[-1]
    assert "failed" not in ran.stdout.strip().splitlines()[-1]
