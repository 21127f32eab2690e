"""The example plugin (examples/plugin_example), installed for real.

It is built and installed with pip into a throwaway virtual environment
that sees this environment's packages (pytest-ringtrace included) but into
which nothing else is installed. Programs run in that environment then show
the plugin was discovered through the ``ringtrace`` entry-point group alone:
its context field is recorded, its sink copies every snapshot file, and its
``csv`` format is offered by the registry, ``ringtrace convert --to`` and
``--ringtrace-formats``. A distribution whose entry point fails to import is
named in a warning and the others still load.

The example is built offline with this environment's setuptools when it can
build wheels unaided (setuptools >= 70.1, in the ``test`` extra); otherwise
pip fetches a build backend from the package index, as it would for a user.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugin_example"


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RINGTRACE", "PYTEST"))}
    full_env.pop("PYTHONPATH", None)
    full_env.update(env)
    return subprocess.run(
        args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300, check=False
    )


def _venv_python(venv: Path) -> Path:
    scripts = venv / ("Scripts" if os.name == "nt" else "bin")
    return scripts / ("python.exe" if os.name == "nt" else "python")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python, site-packages) of a fresh venv with the example installed.

    The venv sees this interpreter's site directories through a ``.pth``
    file (``--system-site-packages`` would show the base interpreter's,
    which under tox lacks pytest-ringtrace), so only the example is new.
    """
    root = tmp_path_factory.mktemp("plugin-venv")
    src = root / "src"
    shutil.copytree(
        EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], root)
    assert made.returncode == 0, made.stderr
    python = _venv_python(root / "venv")
    where = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], root
    )
    purelib = Path(where.stdout.strip())
    parents = [*site.getsitepackages(), site.getusersitepackages()]
    (purelib / "_parent_environment.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in parents if os.path.isdir(d))
    )
    # Build with this environment's setuptools, offline, when it can build a
    # wheel by itself; else let pip fetch a build backend, as a user's pip would.
    offline = ["--no-build-isolation", "--no-index"] if _can_build_wheels() else []
    installed = _run(
        [str(python), "-m", "pip", "install", "--no-deps", *offline,
         "--disable-pip-version-check", "-q", str(src)],
        root,
    )  # fmt: skip
    assert installed.returncode == 0, (
        f"pip could not install the example plugin:\n{installed.stdout}\n{installed.stderr}"
    )
    return python, purelib


def _can_build_wheels() -> bool:
    """Whether setuptools here builds wheels unaided (>= 70.1, or with ``wheel``)."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


DISCOVER = """
import json, sys
from pathlib import Path

assert "ringtrace_request_id" not in sys.modules
import instrument
from instrument import plugins
from instrument.formats import format_names, format_plugin, write_snapshot

# Naming the context in a channel is all it takes: the plugin is found
# through its entry point, not imported here.
instrument.start([instrument.Channel(contexts=("thread", "request_id"))])
module = sys.modules["ringtrace_request_id"]
token = module.request_id.set("req-42")
instrument.event("order.created", order=7)
module.request_id.reset(token)
instrument.event("idle")
snap = instrument.snapshot()
instrument.stop()
out = Path(sys.argv[1])
print(json.dumps({
    "plugins": plugins.plugin_names(),
    "formats": format_names(),
    "csv_plugin": format_plugin("csv"),
    "module": module.__file__,
    "registered_again_as": plugins.register(module),  # harmless: already in by its entry point
    "plugins_after": plugins.plugin_names(),
    "request_ids": {ev.name: ev.context["request_id"] for ev in snap.events},
    "csv": str(write_snapshot(snap, out / "snap", "csv")),
    "json": str(write_snapshot(snap, out / "snap", "json")),
}))
"""


def test_entry_point_plugin_adds_context_format_and_sink(
    venv: tuple[Path, Path], tmp_path: Path
) -> None:
    python, purelib = venv
    copies = tmp_path / "copies"
    (tmp_path / "out").mkdir()
    done = _run(
        [str(python), "-c", DISCOVER, str(tmp_path / "out")],
        tmp_path,
        RINGTRACE_COPY_DIR=str(copies),
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr
    found = json.loads(done.stdout)
    assert "request_id" in found["plugins"]
    assert found["registered_again_as"] == "request_id"
    assert found["plugins_after"] == found["plugins"]
    assert Path(found["module"]).parent == purelib  # the installed copy, not the source
    assert "csv" in found["formats"] and found["csv_plugin"] == "request_id"
    assert found["request_ids"] == {"order.created": "req-42", "idle": None}

    with Path(found["csv"]).open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["name"], r["request_id"], json.loads(r["fields"])) for r in rows] == [
        ("order.created", "req-42", {"order": 7}),
        ("idle", "", {}),
    ]
    # The sink copied each snapshot file written, in every format.
    for written in (Path(found["csv"]), Path(found["json"])):
        assert (copies / written.name).read_bytes() == written.read_bytes()


def test_entry_point_format_is_a_choice_of_ringtrace_convert(
    venv: tuple[Path, Path], tmp_path: Path
) -> None:
    python, _ = venv
    helped = _run([str(python), "-m", "pytest_ringtrace", "convert", "--help"], tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "csv" in helped.stdout
    (tmp_path / "out").mkdir()
    made = _run([str(python), "-c", DISCOVER, str(tmp_path / "out")], tmp_path)
    assert made.returncode == 0, made.stderr
    source = Path(json.loads(made.stdout)["json"])
    converted = _run(
        [str(python), "-m", "pytest_ringtrace", "convert", str(source), "--to", "csv",
         "-o", str(tmp_path / "converted.csv")],
        tmp_path,
    )  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    with (tmp_path / "converted.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["name"], r["request_id"]) for r in rows] == [
        ("order.created", "req-42"),
        ("idle", ""),
    ]


def test_entry_point_format_and_sink_in_a_pytest_run(
    venv: tuple[Path, Path], tmp_path: Path
) -> None:
    python, _ = venv
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import instrument

            def pytest_ringtrace_channels(config):
                return [instrument.Channel(contexts=("thread", "request_id"))]
            """
        )
    )
    (tmp_path / "test_orders.py").write_text(
        textwrap.dedent(
            """
            import instrument
            from ringtrace_request_id import request_id

            def test_ok():
                instrument.event("fine")

            def test_refund():
                request_id.set("req-9")
                instrument.event("refund.start", amount=3)
                assert False, "refund failed"
            """
        )
    )
    copies = tmp_path / "copies"
    ran = _run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
         "-p", "no:benchmark", "--ringtrace",
         "--ringtrace-formats=json,csv", "--ringtrace-dir=snapshots", "test_orders.py"],
        tmp_path,
        RINGTRACE_COPY_DIR=str(copies),
    )  # fmt: skip
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "1 failed, 1 passed" in ran.stdout
    assert "ringtrace plugin" not in ran.stdout  # no plugin warning
    (written,) = sorted((tmp_path / "snapshots").glob("session-*/*.csv"))
    assert "test_refund" in written.name
    with written.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert ("refund.start", "req-9") in [(r["name"], r["request_id"]) for r in rows]
    assert sorted(p.name for p in copies.iterdir()) == sorted(
        p.name
        for p in (tmp_path / "snapshots").glob("session-*/*")
        if p.suffix in (".json", ".csv")
    )


def test_an_entry_point_that_fails_to_import_is_named_and_the_others_load(
    venv: tuple[Path, Path], tmp_path: Path
) -> None:
    python, _ = venv
    broken = tmp_path / "broken-site"
    dist_info = broken / "broken_ringtrace_plugin-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-ringtrace-plugin\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text("[ringtrace]\nbroken = broken_ringtrace_plugin\n")
    (broken / "broken_ringtrace_plugin.py").write_text(
        "raise ImportError('needs a package that is not installed')\n"
    )
    script = textwrap.dedent(
        """
        import json, warnings
        from instrument import plugins
        from instrument.formats import format_names

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = plugins.plugin_names()
        print(json.dumps({
            "plugins": names,
            "formats": format_names(),
            "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
        }))
        """
    )
    done = _run([str(python), "-c", script], tmp_path, PYTHONPATH=str(broken))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["warnings"] == [
        "PluginWarning: ringtrace plugin 'broken = broken_ringtrace_plugin' raised ImportError "
        "in loading the entry point: needs a package that is not installed"
    ]
    assert "request_id" in found["plugins"] and "broken" not in found["plugins"]
    assert "csv" in found["formats"]
