"""Child processes record too: every start method, a pool, a subprocess, a
child killed by SIGKILL, one still running at the failure, and one that
recorded nothing; the snapshot groups their events by process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from instrument import Snapshot

#: The code the children run, traced.
WORKER = """
import os
import signal
import time

import instrument


@instrument.trace(fields=["n"])
def crunch(n):
    instrument.event("child.step", n=n, pid=os.getpid())
    return n * 2


def record_then(n, what, ready=None):
    crunch(n)
    instrument.event("child.last", n=n, what=what)
    if ready is not None:
        ready.set()
    if what == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "exit":
        os._exit(3)
    if what == "wait":
        time.sleep(60)


def untraced(n):
    return n + 1
"""

TESTS = """
import multiprocessing as mp
import os
import signal
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

import worker


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_start_method(method):
    p = mp.get_context(method).Process(target=worker.record_then, args=(7, method))
    p.start()
    p.join()
    assert p.exitcode == 0
    assert False, f"child {p.pid} ran"


def test_sigkilled_during_the_test():
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=worker.record_then, args=(9, "wait", ready))
    p.start()
    assert ready.wait(60)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    assert p.exitcode == -signal.SIGKILL
    assert False, f"child {p.pid} killed"


def test_kills_itself():
    p = mp.get_context("fork").Process(target=worker.record_then, args=(8, "sigkill"))
    p.start()
    p.join()
    assert False, f"child {p.pid} exit {p.exitcode}"


@pytest.fixture
def running():
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=worker.record_then, args=(5, "wait", ready))
    p.start()
    assert ready.wait(60)
    yield p
    p.kill()
    p.join()


def test_child_still_running(running):
    assert False, f"child {running.pid} still running"


def test_subprocess_child():
    code = "import worker; worker.record_then(4, 'exit')"
    done = subprocess.run([sys.executable, "-c", code], check=False)
    assert done.returncode == 3
    assert False, "subprocess ran"


def test_pool():
    import instrument

    instrument.event("parent.mark")  # the parent records too
    with ProcessPoolExecutor(2) as pool:
        assert list(pool.map(worker.crunch, [1, 2, 3])) == [2, 4, 6]
    assert False, "pool ran"


def test_untraced_child():
    p = mp.get_context("spawn").Process(target=worker.untraced, args=(1,))
    p.start()
    p.join()
    assert False, f"child {p.pid} ran untraced code"


def test_no_child_passes():
    pass
"""


@pytest.fixture(scope="module")
def inner(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One inner ``pytest --ringtrace`` session over TESTS, in a subprocess:
    its snapshots by test name, and its output."""
    root = tmp_path_factory.mktemp("children")
    (root / "worker.py").write_text(WORKER)
    (root / "test_inner.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RINGTRACE"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "--ringtrace",
            "--ringtrace-formats=json,perfetto,ctf,html",
            "--ringtrace-tail=40",
            "-q",
            "test_inner.py",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    snaps = {}
    for path in (root / ".ringtrace").rglob("*.json"):
        if path.name.endswith(".perfetto.json"):
            continue
        snap = Snapshot.load(path)
        snaps[snap.metadata["test_id"].split("::")[1]] = snap
    return {"root": root, "out": done.stdout, "err": done.stderr, "snaps": snaps}


def _child(snap: Snapshot) -> int:
    """The pid of the child named in the test's assertion message."""
    text = snap.metadata["exception"]
    return int(text.split("child ")[1].split()[0])


def _child_events(snap: Snapshot, pid: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [(ev.kind, ev.name, ev.fields) for ev in snap.events if ev.context.get("pid") == pid]


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_each_start_method_records_in_the_child(inner: dict[str, Any], method: str) -> None:
    snap = inner["snaps"][f"test_start_method[{method}]"]
    pid = _child(snap)
    events = _child_events(snap, pid)
    assert [(kind, name) for kind, name, _ in events] == [
        ("entry", "worker.crunch"),
        ("event", "child.step"),
        ("exit", "worker.crunch"),
        ("event", "child.last"),
    ]
    assert events[1][2] == {"n": 7, "pid": pid}
    assert events[3][2] == {"n": 7, "what": method}
    (proc,) = [p for p in snap.metadata["processes"] if p["pid"] == pid]
    assert proc["ppid"] == snap.pid if method != "forkserver" else proc["ppid"] != snap.pid
    assert proc["alive"] is False and proc["events"] == 4
    assert proc["how"] == ("fork" if method in ("fork", "forkserver") else "exec")
    streams = [s for s in snap.streams if s.context.get("pid") == pid]
    assert len(streams) == 1 and streams[0].context["command"]
    # The parent's own events are still there, in the same time order.
    stamps = [ev.timestamp for ev in snap.events]
    assert stamps == sorted(stamps)


def test_a_child_killed_by_sigkill_during_the_test_keeps_its_events(inner: dict[str, Any]) -> None:
    snap = inner["snaps"]["test_sigkilled_during_the_test"]
    pid = _child(snap)
    names = [name for _, name, _ in _child_events(snap, pid)]
    assert names[-1] == "child.last" and "child.step" in names
    (proc,) = [p for p in snap.metadata["processes"] if p["pid"] == pid]
    assert proc["alive"] is False


def test_a_child_that_kills_itself_keeps_its_events(inner: dict[str, Any]) -> None:
    snap = inner["snaps"]["test_kills_itself"]
    assert "exit -9" in snap.metadata["exception"]
    names = [name for _, name, _ in _child_events(snap, _child(snap))]
    assert names[-1] == "child.last"


def test_a_child_still_running_contributes_without_being_stopped(inner: dict[str, Any]) -> None:
    snap = inner["snaps"]["test_child_still_running"]
    pid = _child(snap)
    assert [name for _, name, _ in _child_events(snap, pid)][-1] == "child.last"
    (proc,) = [p for p in snap.metadata["processes"] if p["pid"] == pid]
    assert proc["alive"] is True  # read while it ran; the fixture stopped it later


def test_a_subprocess_child_that_ends_with_os_exit(inner: dict[str, Any]) -> None:
    snap = inner["snaps"]["test_subprocess_child"]
    procs = snap.metadata["processes"]
    (proc,) = [p for p in procs if p["events"]]
    assert "-c" in proc["command"] and "worker.record_then(4" in proc["command"]
    fields = [f for _, name, f in _child_events(snap, proc["pid"]) if name == "child.last"]
    assert fields == [{"n": 4, "what": "exit"}]


def test_a_process_pool(inner: dict[str, Any]) -> None:
    snap = inner["snaps"]["test_pool"]
    steps = [ev for ev in snap.events if ev.name == "child.step"]
    assert sorted(ev.fields["n"] for ev in steps) == [1, 2, 3]
    assert all(ev.context["pid"] == ev.fields["pid"] != snap.pid for ev in steps)
    workers = {p["pid"] for p in snap.metadata["processes"]}
    assert {ev.fields["pid"] for ev in steps} <= workers


def test_the_empty_snapshot_hint_names_children_that_recorded_nothing(
    inner: dict[str, Any],
) -> None:
    snap = inner["snaps"]["test_untraced_child"]
    assert all(ev.name == "test.failure" for ev in snap.events)
    assert [p["pid"] for p in snap.metadata["processes"]] == [_child(snap)]
    section = inner["out"].split("_ test_untraced_child _")[1].split("\n_")[0]
    pid = section.split("AssertionError: child ")[1].split()[0]
    assert "0 events from 0 threads" in section
    assert f"1 child process ran in this window (pid {pid}) and recorded nothing" in section


def test_the_terminal_section_groups_events_by_process(inner: dict[str, Any]) -> None:
    out = inner["out"]
    section = out.split("_ test_pool _")[1].split("short test summary")[0]
    assert "child processes in this window:" in section
    snap = inner["snaps"]["test_pool"]
    for proc in snap.metadata["processes"]:
        if proc["events"]:
            assert f"pid {proc['pid']}" in section


def test_no_files_are_left_for_a_session(inner: dict[str, Any]) -> None:
    # The session directory goes with the session; only snapshots remain.
    assert "passed" in inner["out"].splitlines()[-1]
    assert not [line for line in inner["err"].splitlines() if "does not record" in line]


def test_every_format_carries_the_process(inner: dict[str, Any]) -> None:
    snap = inner["snaps"]["test_pool"]
    child_pids = {ev.context.get("pid") for ev in snap.events} - {snap.pid, None}
    assert child_pids
    root = Path(inner["root"], ".ringtrace")
    (perfetto,) = root.rglob("test_inner.py__test_pool*.perfetto.json")
    doc = json.loads(perfetto.read_text())
    trace_pids = {e["pid"] for e in doc["traceEvents"] if e.get("ph") in ("B", "E", "i", "X")}
    assert child_pids <= trace_pids
    names = {
        e["pid"]: e["args"]["name"]
        for e in doc["traceEvents"]
        if e.get("ph") == "M" and e["name"] == "process_name"
    }
    assert all("worker" in names[pid] or "python" in names[pid] for pid in child_pids)
    (html,) = root.rglob("test_inner.py__test_pool*.html")
    from instrument.formats.html import read_data  # the lanes the page builds

    processes = " ".join(str(lane.get("process")) for lane in read_data(html)["lanes"])
    for pid in child_pids:
        assert f"pid {pid}" in processes


def test_under_xdist_workers_are_not_children_and_record_their_own(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "test_x.py").write_text(
        "import multiprocessing as mp\n"
        "import os\n"
        "import worker\n\n"
        "def test_one():\n"
        "    p = mp.get_context('spawn').Process(target=worker.record_then, args=(1, 'x'))\n"
        "    p.start(); p.join()\n"
        "    assert False, f'child {p.pid} of worker {os.getpid()}'\n\n"
        "def test_two():\n"
        "    worker.crunch(2)\n"
        "    assert False, f'worker {os.getpid()}'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RINGTRACE"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            "--ringtrace",
            "--ringtrace-formats=json",
            "-q",
            "test_x.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert "2 failed" in done.stdout, done.stdout + done.stderr
    snaps = {}
    for path in (tmp_path / ".ringtrace").rglob("*.json"):
        snap = Snapshot.load(path)
        snaps[snap.metadata["test_id"].split("::")[1]] = snap
    one = snaps["test_one"]
    pid = _child(one)
    worker_pid = int(one.metadata["exception"].split("of worker ")[1].split()[0])
    assert one.pid == worker_pid != pid
    assert [p["pid"] for p in one.metadata["processes"]] == [pid]
    assert [ev.name for ev in one.events if ev.context.get("pid") == pid][-1] == "child.last"
    two = snaps["test_two"]
    assert not two.metadata["processes"]  # no worker is anyone's child
    assert {ev.thread_id for ev in two.events} <= {t for t, _ in two.threads}
    assert all(ev.context.get("pid", two.pid) == two.pid for ev in two.events)


def test_ringtrace_show_groups_by_process(
    inner: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from instrument.view import cli

    root = Path(inner["root"], ".ringtrace")
    (path,) = [p for p in root.rglob("test_inner.py__test_pool*.json") if "perfetto" not in p.name]
    assert cli.main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    snap = inner["snaps"]["test_pool"]
    assert "child processes in this window:" in out
    for ev in snap.events:
        if ev.name == "child.step":
            assert f"[{ev.fields['pid']}] MainThread" in out


def test_ctf_names_the_child_process(inner: dict[str, Any]) -> None:
    import shutil

    babeltrace = shutil.which("babeltrace2")
    if babeltrace is None:
        pytest.skip("babeltrace2 is not installed")
    root = Path(inner["root"], ".ringtrace")
    (ctf,) = root.rglob("test_inner.py__test_pool*.ctf")
    out = subprocess.run([babeltrace, str(ctf)], capture_output=True, text=True, check=True).stdout
    snap = inner["snaps"]["test_pool"]
    pids = {ev.fields["pid"] for ev in snap.events if ev.name == "child.step"}
    for pid in pids:
        assert f"MainThread [pid {pid}: " in out


def test_the_billing_example_is_explained_by_its_workers_events(tmp_path: Path) -> None:
    repo = Path(__file__).parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RINGTRACE"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--ringtrace",
            f"--ringtrace-dir={tmp_path}",
            "--ringtrace-formats=json",
            "examples/billing/scenario_billing.py",
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert "AssertionError: assert 360.0 == 444.0" in done.stdout, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    config = [line for line in lines if "pricing.config" in line and "batch_id=" in line]
    assert len(config) == 2
    assert all("tax_rate=0.0 source='module default'" in line for line in config)
    assert any("] MainThread" in line for line in lines)  # a worker, by pid
    assert any("invoice.totalled" in line and "total=360.0" in line for line in lines)
