"""Snapshots outside pytest: instrument.dump and the dump_on triggers.

Each trigger is checked for the file it writes (read back, with its
metadata) and for handing over to the hook it replaced. Process-ending
cases (an unhandled exception in the main thread, exit, SIGTERM, SIGUSR1 with
its default action) run in a subprocess.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

import instrument
from instrument import Snapshot

_SIGNALS = [signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM]


@pytest.fixture(autouse=True)
def _clean_hooks() -> Iterator[None]:
    """Restore every hook a test may touch, and stop the recorder."""
    saved_sys = sys.excepthook
    saved_threading = threading.excepthook
    saved_signals = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    try:
        yield
    finally:
        instrument.dump_off()
        if instrument.recording():
            instrument.stop()
        sys.excepthook = saved_sys
        threading.excepthook = saved_threading
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)


@pytest.fixture
def recording() -> Iterator[None]:
    instrument.start()
    try:
        yield
    finally:
        if instrument.recording():
            instrument.stop()


def _raised(exc: BaseException) -> tuple[type[BaseException], BaseException, TracebackType]:
    try:
        raise exc
    except BaseException as caught:
        assert caught.__traceback__ is not None
        return type(caught), caught, caught.__traceback__


def _files(directory: Path, trigger: str) -> list[Path]:
    return sorted(directory.glob(f"ringtrace-*-{trigger}*.json"))


def _run(script: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- dump ----------------------------------------------------------------------


def test_dump_writes_a_snapshot_that_reads_back(tmp_path: Path, recording: None) -> None:
    instrument.event("order.placed", order_id=7)
    with instrument.span("charge", amount=12.5):
        instrument.event("card.ok")
    path = instrument.dump(tmp_path / "now.json", metadata={"why": "asked"})
    assert path == tmp_path / "now.json"
    snap = Snapshot.load(path)
    names = [(ev.kind, ev.name) for ev in snap.events]
    assert names == [
        ("event", "order.placed"),
        ("entry", "charge"),
        ("event", "card.ok"),
        ("exit", "charge"),
    ]
    assert snap.events[0].fields == {"order_id": 7}
    assert snap.metadata["why"] == "asked"
    assert snap.pid == os.getpid()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_dump_adds_the_suffix_only_when_missing(tmp_path: Path, recording: None) -> None:
    instrument.event("x")
    assert instrument.dump(tmp_path / "plain") == tmp_path / "plain.json"
    assert instrument.dump(str(tmp_path / "given.json")) == tmp_path / "given.json"
    assert (tmp_path / "plain.json").is_file() and (tmp_path / "given.json").is_file()


def test_dump_reads_a_stopped_recorder(tmp_path: Path) -> None:
    instrument.start()
    instrument.event("before.stop")
    rec = instrument.stop()
    path = instrument.dump(tmp_path / "late", recorder=rec)
    assert [ev.name for ev in Snapshot.load(path).events] == ["before.stop"]


def test_dump_without_recording_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not recording"):
        instrument.dump(tmp_path / "x.json")
    assert list(tmp_path.iterdir()) == []


def test_dump_unknown_format_is_refused(tmp_path: Path, recording: None) -> None:
    with pytest.raises(ValueError, match="unknown snapshot format 'nope'"):
        instrument.dump(tmp_path / "x", format="nope")
    assert list(tmp_path.iterdir()) == []


# -- exceptions ----------------------------------------------------------------


def test_excepthook_writes_and_chains(tmp_path: Path, recording: None) -> None:
    seen: list[tuple[Any, ...]] = []
    sys.excepthook = lambda *args: seen.append(args)
    instrument.event("before.crash", step=3)
    instrument.dump_on(exception=True, directory=tmp_path)
    exc_info = _raised(KeyError("missing"))
    sys.excepthook(*exc_info)

    assert seen == [exc_info]  # the previous hook ran, with the same exception
    (path,) = _files(tmp_path, "exception")
    assert f"ringtrace-{os.getpid()}-" in path.name
    snap = Snapshot.load(path)
    assert snap.metadata["trigger"] == "exception"
    assert snap.metadata["exception"]["type"] == "KeyError"
    assert "missing" in snap.metadata["exception"]["message"]
    assert "KeyError" in snap.metadata["exception"]["traceback"]
    assert [ev.name for ev in snap.events] == ["before.crash"]


def test_threading_excepthook_writes_and_chains(tmp_path: Path, recording: None) -> None:
    seen: list[str] = []
    threading.excepthook = lambda args: seen.append(f"{args.exc_type.__name__} {args.thread.name}")
    instrument.dump_on(exception=True, directory=tmp_path)

    def crash() -> None:
        instrument.event("worker.step", n=1)
        raise ValueError("worker broke")

    t = threading.Thread(target=crash, name="worker-7")
    t.start()
    t.join()

    assert seen == ["ValueError worker-7"]
    (path,) = _files(tmp_path, "exception")
    snap = Snapshot.load(path)
    assert snap.metadata["thread"] == "worker-7"
    assert snap.metadata["exception"]["type"] == "ValueError"
    assert [(ev.name, ev.thread_name) for ev in snap.events] == [("worker.step", "worker-7")]


def test_systemexit_in_a_thread_writes_nothing(tmp_path: Path, recording: None) -> None:
    seen: list[type[BaseException]] = []
    threading.excepthook = lambda args: seen.append(args.exc_type)
    instrument.dump_on(exception=True, directory=tmp_path)
    t = threading.Thread(target=sys.exit)
    t.start()
    t.join()
    assert seen == [SystemExit]
    assert list(tmp_path.iterdir()) == []


def test_unhandled_exception_in_a_process(tmp_path: Path) -> None:
    proc = _run(
        """
        import instrument
        instrument.start()
        instrument.dump_on(exception=True, directory="snaps")
        instrument.event("last.words", n=42)
        raise RuntimeError("fell over")
        """,
        tmp_path,
    )
    assert proc.returncode == 1
    # the default hook still printed the traceback
    assert "RuntimeError: fell over" in proc.stderr
    assert "Traceback" in proc.stderr
    (path,) = _files(tmp_path / "snaps", "exception")
    snap = Snapshot.load(path)
    assert snap.metadata["exception"]["message"] == "fell over"
    assert [(ev.name, ev.fields) for ev in snap.events] == [("last.words", {"n": 42})]


def test_a_trigger_that_cannot_write_warns_and_still_chains(
    tmp_path: Path, recording: None, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    seen: list[tuple[Any, ...]] = []
    sys.excepthook = lambda *args: seen.append(args)
    instrument.dump_on(exception=True, directory=blocker)
    # (a file there already is refused by dump_on: it appears later)
    blocker.write_text("a file where the directory should be")
    instrument.event("x")
    exc_info = _raised(ValueError("original"))
    sys.excepthook(*exc_info)  # must not raise
    assert seen == [exc_info]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("ringtrace: exception trigger could not write a json snapshot")
    assert str(blocker) in err[0]


def test_a_trigger_without_recording_notes_it_and_chains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[Any, ...]] = []
    sys.excepthook = lambda *args: seen.append(args)
    instrument.dump_on(exception=True, directory=tmp_path)
    exc_info = _raised(ValueError("x"))
    sys.excepthook(*exc_info)
    assert seen == [exc_info]
    assert list(tmp_path.iterdir()) == []
    assert "not recording, no snapshot written" in capsys.readouterr().err


def test_two_triggers_in_one_instant_get_two_files(tmp_path: Path, recording: None) -> None:
    trig = instrument.dump_on(exception=False, directory=tmp_path)
    instrument.event("x")
    paths = [p for _ in range(5) for p in trig.fire("manual", {})]
    assert len(set(paths)) == 5
    assert all(p.is_file() for p in paths)


# -- installing and removing ---------------------------------------------------


def test_remove_restores_the_previous_hooks(recording: None, tmp_path: Path) -> None:
    def prev_sys(*args: Any) -> None:
        pass

    def prev_thread(args: Any) -> None:
        pass

    def prev_sig(signum: int, frame: Any) -> None:
        pass

    sys.excepthook = prev_sys
    threading.excepthook = prev_thread
    signal.signal(signal.SIGUSR1, prev_sig)
    trig = instrument.dump_on(exception=True, signal=signal.SIGUSR1, directory=tmp_path)
    assert sys.excepthook is not prev_sys
    assert threading.excepthook is not prev_thread
    assert signal.getsignal(signal.SIGUSR1) is not prev_sig
    assert instrument.triggers.installed() is trig

    instrument.dump_off()
    assert sys.excepthook is prev_sys
    assert threading.excepthook is prev_thread
    assert signal.getsignal(signal.SIGUSR1) is prev_sig
    assert instrument.triggers.installed() is None
    trig.remove()  # idempotent


def test_a_hook_installed_over_ours_keeps_working_after_removal(
    tmp_path: Path, recording: None
) -> None:
    seen: list[str] = []
    sys.excepthook = lambda *args: seen.append("original")
    trig = instrument.dump_on(exception=True, directory=tmp_path)
    ours = sys.excepthook

    def later(*args: Any) -> None:  # another library wraps ours
        seen.append("later")
        ours(*args)

    sys.excepthook = later
    trig.remove()
    assert sys.excepthook is later  # not ours to take away
    sys.excepthook(*_raised(ValueError()))
    assert seen == ["later", "original"]
    assert list(tmp_path.iterdir()) == []  # ours is now a pass-through


def test_dump_on_again_replaces_the_triggers(tmp_path: Path, recording: None) -> None:
    original = sys.excepthook
    first = instrument.dump_on(exception=True, directory=tmp_path / "a")
    second = instrument.dump_on(exception=True, directory=tmp_path / "b")
    assert not first.active and second.active
    instrument.event("x")
    sys.excepthook(*_raised(ValueError()))  # chains to the original, not to `first`
    assert not (tmp_path / "a").exists()
    assert len(_files(tmp_path / "b", "exception")) == 1
    instrument.dump_off()
    assert sys.excepthook is original


def test_dump_on_checks_its_arguments_before_installing() -> None:
    before = sys.excepthook
    with pytest.raises(ValueError, match="unknown snapshot format 'nope'"):
        instrument.dump_on(formats=("json", "nope"))
    with pytest.raises(ValueError, match="at least one format"):
        instrument.dump_on(formats=())
    with pytest.raises(TypeError, match="signal number"):
        instrument.dump_on(signal=[1.5])  # type: ignore[list-item]
    assert sys.excepthook is before
    assert instrument.triggers.installed() is None


def test_signal_triggers_need_the_main_thread(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    before_sys, before_sig = sys.excepthook, signal.getsignal(signal.SIGUSR1)

    def install() -> None:
        try:
            instrument.dump_on(signal=signal.SIGUSR1, directory=tmp_path)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=install)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    assert "main thread" in str(errors[0])
    assert sys.excepthook is before_sys
    assert signal.getsignal(signal.SIGUSR1) == before_sig


# -- signals -------------------------------------------------------------------

needs_main_thread = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="Python signal handlers run in the main thread only",
)


@needs_main_thread
def test_sigusr1_writes_and_chains(tmp_path: Path, recording: None) -> None:
    calls: list[int] = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    trig = instrument.dump_on(exception=False, signal=signal.SIGUSR1, directory=tmp_path)
    instrument.event("serving", requests=10)
    os.kill(os.getpid(), signal.SIGUSR1)
    assert trig.flush(timeout=30)
    assert calls == [signal.SIGUSR1]
    (path,) = _files(tmp_path, "signal")
    snap = Snapshot.load(path)
    assert snap.metadata == {"trigger": "signal", "signal": "SIGUSR1"}
    assert [ev.name for ev in snap.events] == ["serving"]


@needs_main_thread
def test_ignored_signal_still_dumps(tmp_path: Path, recording: None) -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    trig = instrument.dump_on(exception=False, signal=[signal.SIGUSR2], directory=tmp_path)
    instrument.event("x")
    os.kill(os.getpid(), signal.SIGUSR2)
    assert trig.flush(timeout=30)
    assert len(_files(tmp_path, "signal")) == 1
    trig.remove()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN


def test_sigusr1_with_default_action_dumps_and_lives_on(tmp_path: Path) -> None:
    proc = _run(
        """
        import os, signal, instrument
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        instrument.start()
        trig = instrument.dump_on(exception=False, signal=signal.SIGUSR1)
        instrument.event("alive")
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGUSR1)
        assert trig.flush(timeout=30)
        print("still here")
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "still here"
    assert len(_files(tmp_path, "signal")) == 2


def test_sigterm_dumps_then_ends_the_process_as_before(tmp_path: Path) -> None:
    proc = _run(
        """
        import os, signal, instrument
        instrument.start()
        instrument.dump_on(exception=False, signal=signal.SIGTERM)
        instrument.event("shutting.down")
        os.kill(os.getpid(), signal.SIGTERM)
        print("not reached")
        """,
        tmp_path,
    )
    assert proc.returncode == -signal.SIGTERM
    assert "not reached" not in proc.stdout
    (path,) = _files(tmp_path, "signal")
    snap = Snapshot.load(path)
    assert snap.metadata["signal"] == "SIGTERM"
    assert [ev.name for ev in snap.events] == ["shutting.down"]


def test_a_forked_child_dumps_its_own_snapshot(tmp_path: Path) -> None:
    proc = _run(
        """
        import os, signal, sys, instrument
        instrument.start()
        trig = instrument.dump_on(exception=False, signal=signal.SIGUSR1, directory="snaps")
        pid = os.fork()
        if pid == 0:
            instrument.event("in.child")
            os.kill(os.getpid(), signal.SIGUSR1)
            ok = instrument.triggers.installed().flush(timeout=30)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        instrument.event("in.parent")
        print(pid, os.waitstatus_to_exitcode(status))
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    child, code = map(int, proc.stdout.split())
    assert code == 0
    (path,) = _files(tmp_path / "snaps", "signal")  # the parent did not dump
    assert path.name.startswith(f"ringtrace-{child}-")
    assert [ev.name for ev in Snapshot.load(path).events] == ["in.child"]


# -- exit ----------------------------------------------------------------------


def test_exit_trigger_writes_at_interpreter_exit(tmp_path: Path) -> None:
    proc = _run(
        """
        import instrument
        instrument.start()
        instrument.dump_on(exception=False, exit=True, formats=("json",))
        instrument.event("done", items=3)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (path,) = _files(tmp_path, "exit")
    snap = Snapshot.load(path)
    assert snap.metadata == {"trigger": "exit"}
    assert [(ev.name, ev.fields) for ev in snap.events] == [("done", {"items": 3})]


def test_exit_trigger_removed_writes_nothing(tmp_path: Path) -> None:
    proc = _run(
        """
        import instrument
        instrument.start()
        instrument.dump_on(exception=False, exit=True)
        instrument.event("done")
        instrument.dump_off()
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_exit_without_recording_is_quiet(tmp_path: Path) -> None:
    proc = _run(
        """
        import instrument
        instrument.start()
        instrument.dump_on(exception=False, exit=True)
        instrument.stop()
        """,
        tmp_path,
    )
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert list(tmp_path.iterdir()) == []
