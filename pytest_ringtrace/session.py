"""The plugin object registered for a session run with ``--ringtrace``.

It owns the recorder's life cycle, opens each test's window (the start of
its setup, per attempt), applies the test's marker, and runs the failure ->
snapshot flow: a failed setup, call or teardown (or a strict XPASS, or an
xfail with ``--ringtrace-xfail``, or any test marked ``always=True``) is
snapshotted, written to files, and attached to its report as a terminal
section, plain-data attributes, pytest-html extras and JUnit properties.
Passing tests cost two clock reads and a few attribute checks.

Every step that can fail is caught and reported as a
:class:`~pytest_ringtrace.warning.PytestRingtraceWarning`: the plugin never
changes a test's outcome.
"""

from __future__ import annotations

import bisect
import dataclasses
import sys
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pytest

import instrument
from instrument import Channel, Event, Snapshot, StreamInfo
from instrument.values import capture_fields
from instrument.view.render import Style, printable
from instrument.view.tree import FAILURE

from .artifacts import ArtifactWriter, SessionDirectory, file_stem, safe_test_id, worker_id
from .attach import add_suite_properties, attach_html, attach_junit
from .children import ChildProcesses
from .marker import TestOptions, read_marker
from .options import Settings
from .recording import SessionRecording
from .report import Filters, section_text, section_title, summary
from .state import TEST, TestState
from .warning import contained, describe, warn

#: Snapshots listed by name in the terminal summary; the rest are counted.
SUMMARY_LINES = 20
#: The key of ``workerinput`` naming the session directory workers share.
WORKERINPUT_DIR = "ringtrace_session_dir"


class RingtracePlugin:
    """Hooks of an active ringtrace session (see the module docstring)."""

    def __init__(self, config: pytest.Config, settings: Settings):
        self.config = config
        self.settings = settings
        self.worker = worker_id(config)
        workerinput = getattr(config, "workerinput", None)
        shared = workerinput.get(WORKERINPUT_DIR) if isinstance(workerinput, dict) else None
        self.session_dir = SessionDirectory(
            settings.directory, settings.retention, Path(shared) if shared else None
        )
        self.writer = ArtifactWriter(self.session_dir)
        # The engine is chosen before test modules are imported (their
        # @trace decorators use it), and put back when the session ends.
        self._engine_before: str | None = None
        if settings.engine is not None:
            self._engine_before = instrument.engines.use(settings.engine)
        self.channels = self._channels()
        self.recording: SessionRecording | None = None
        self.children: ChildProcesses | None = None
        self.written: list[tuple[str, dict[str, Any]]] = []

    def _channels(self) -> list[Channel]:
        custom = self.config.hook.pytest_ringtrace_channels(config=self.config)
        if custom is None:
            try:
                return [
                    Channel(
                        subbuf_size=self.settings.subbuf_size,
                        num_subbuf=self.settings.num_subbuf,
                    )
                ]
            except ValueError as exc:
                raise pytest.UsageError(f"ringtrace channel: {exc}") from None
        channels = list(custom)
        if not channels or not all(isinstance(c, Channel) for c in channels):
            raise pytest.UsageError(
                "pytest_ringtrace_channels must return a non-empty list of instrument.Channel, "
                f"got {custom!r}"
            )
        return channels

    # -- the session ------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.config.pluginmanager.has_plugin("dsession"):
            return  # the pytest-xdist controller runs no test: its workers record
        self.recording = SessionRecording(
            self.channels,
            self.settings.max_dead_streams,
            values=self.settings.values,
            redact=self.settings.redact,
        )
        self.recording.start(self.settings.instrument)
        if self.settings.log_level is not None:
            instrument.record_logging(self.settings.log_level)
        try:
            self.children = ChildProcesses(self.channels, self.settings)
        except Exception as exc:
            warn(f"child processes will not record: {describe(exc)}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.children is not None:
            self.children.close()
            self.children = None
        if self.recording is not None:
            if self.settings.log_level is not None:
                instrument.stop_logging()
            for package in self.settings.instrument:
                if package not in sys.modules:  # (pytest-xdist forwards it from workers)
                    warn(
                        f"--ringtrace-instrument: package {package!r} was never imported: "
                        "nothing of it was traced (misspelt, or not importable here?)"
                    )
            self.recording.stop()
        if self.worker is None:  # the controller or a plain session; workers share it
            self.session_dir.remove_if_empty()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist controller: every worker writes into this session's directory."""
        try:
            node.workerinput[WORKERINPUT_DIR] = str(self.session_dir.path)
        except Exception as exc:
            warn(f"cannot create the session's snapshot directory: {describe(exc)}")

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """pytest-xdist controller: a worker died in ``crashitem``; show the
        snapshot it wrote before a ``thread``-method timeout ended it."""
        try:
            self._attach_timeout_files(crashitem, report)
        except Exception as exc:
            warn(f"{crashitem}: cannot find the timeout snapshot: {describe(exc)}")

    def _attach_timeout_files(self, nodeid: str, report: pytest.TestReport) -> None:
        directory = self.session_dir.created
        if directory is None:
            return
        prefix = f"{safe_test_id(nodeid)}--timeout--"
        found = sorted(p for p in directory.iterdir() if p.name.startswith(prefix))
        if not found:
            return
        report.sections.append(
            (
                section_title("timeout"),
                "snapshot written before pytest-timeout (thread method) ended the worker:\n"
                + "".join(f"  {printable(self.shown(path))}\n" for path in found),
            )
        )
        report.ringtrace = {  # type: ignore[attr-defined]
            "phase": "timeout",
            "attempt": 1,
            "worker": None,
            "outcome": "timeout",
            "paths": {path.suffix.lstrip(".") or path.name: str(path) for path in found},
        }

    def shown(self, path: Path) -> str:
        """``path`` as the terminal shows it: relative to the invocation directory
        when it is under it, else absolute."""
        return shown_path(path, self.config.invocation_params.dir)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.settings.engine is not None:
            instrument.engines.use(self._engine_before)

    def pytest_report_header(self, config: pytest.Config) -> str:
        s = self.settings
        rings = (
            f"{s.subbuf_size}x{s.num_subbuf} events per thread"
            if len(self.channels) == 1
            else f"{len(self.channels)} channels"
        )
        return (
            f"ringtrace: engine {instrument.engine()}, window {s.window}, rings {rings}, "
            f"formats {','.join(s.formats)}, dir {s.directory}"
        )

    def pytest_report_collectionfinish(self, config: pytest.Config) -> list[str]:
        # After collection, not in the header: the packages traced whole are
        # patched as their modules are imported, which collecting does.
        return [] if self.recording is None else self.recording.instrumented()

    # -- one test -----------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # A plain first implementation, not a wrapper: the window opens before
        # any fixture runs, and a passing test pays no generator for it.
        if self.recording is not None:
            try:
                self._start_attempt(item)
            except Exception as exc:
                warn(f"{item.nodeid}: cannot prepare recording: {describe(exc)}")

    def _start_attempt(self, item: pytest.Item) -> None:
        assert self.recording is not None
        state = item.stash.get(TEST, None)
        if state is None:
            options, problems = read_marker(item)
            for problem in problems:
                warn(f"{item.nodeid}: @pytest.mark.ringtrace: {problem}")
            state = item.stash[TEST] = TestState(options)
        state.attempt += 1
        state.phase_starts = {}
        self.recording.ensure()
        options = state.options
        if options.resizes:
            self._resize(item, state)
        for target in options.patch:
            try:
                state.patches.append(instrument.patch(target))
            except Exception as exc:
                warn(f"{item.nodeid}: cannot patch {target!r}: {describe(exc)}")
        for package in options.instrument:
            # as --ringtrace-instrument: private modules and helpers too
            state.patches.append(instrument.patch_module(package, exclude=()))
        if self.children is not None and (state.options.window or self.settings.window) == "test":
            self.children.prune()
        state.since = time.monotonic_ns()

    def _resize(self, item: pytest.Item, state: TestState) -> None:
        assert self.recording is not None
        options = state.options
        try:
            channels = [
                dataclasses.replace(
                    chan,
                    subbuf_size=options.subbuf_size or chan.subbuf_size,
                    num_subbuf=options.num_subbuf or chan.num_subbuf,
                )
                for chan in self.channels
            ]
        except ValueError as exc:
            warn(f"{item.nodeid}: @pytest.mark.ringtrace ring size: {exc}")
            return
        if self.recording.resize(channels):
            state.resized = True
        else:
            warn(
                f"{item.nodeid}: @pytest.mark.ringtrace ring size ignored: the recorder was "
                "started outside ringtrace and is not ours to restart"
            )

    def _end_attempt(self, item: pytest.Item, state: TestState) -> None:
        for handle in reversed(state.patches):
            try:
                handle.unpatch()
            except Exception as exc:
                warn(f"{item.nodeid}: cannot undo the marker's patch {handle!r}: {describe(exc)}")
        state.patches.clear()
        if state.resized and self.recording is not None:
            state.resized = False
            self.recording.restore()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        failure_ns = time.monotonic_ns()
        report = yield
        state = item.stash.get(TEST, None)
        if state is None or self.recording is None:
            return report
        state.phase_starts[report.when] = call.start  # wall clock, converted if needed
        if self._wanted(report, state.options):
            # The report is built: whatever the snapshot raises (BaseExceptions
            # included), the outcome stays and the session goes on.
            with contained(f"{item.nodeid}: snapshot at {report.when} failed"):
                self._attach(item, report, call, state, failure_ns)
        if report.when == "teardown":
            with contained(f"{item.nodeid}: cannot undo the test's ringtrace marker"):
                self._end_attempt(item, state)
        return report

    def _wanted(self, report: pytest.TestReport, options: TestOptions) -> bool:
        outcome = report.outcome
        if outcome == "passed":  # the common case first: it must cost nothing
            return options.always and report.when == "call"
        if outcome == "failed":
            return True  # setup/call/teardown errors and strict XPASS
        if not hasattr(report, "wasxfail"):
            return False  # skipped
        return options.xfail if options.xfail is not None else self.settings.xfail

    def take(
        self,
        item: pytest.Item,
        state: TestState,
        *,
        phase: str,
        outcome: str,
        failure_ns: int,
        extra: dict[str, Any] | None = None,
        failure: dict[str, Any] | None = None,
    ) -> tuple[Snapshot, dict[str, int], dict[str, Path], list[str]] | None:
        """Snapshot the test's window, describe it in metadata, write its files.

        ``failure_ns`` becomes the snapshot's time origin; ``failure`` (the
        fields of a ``test.failure`` event) is placed in the snapshot at that
        time on the calling thread (see :func:`add_failure_event`). Returns
        the snapshot, its counts, the files by format and the problems met,
        or ``None`` when there is no recorder to read.
        """
        recorder = self.recording.current() if self.recording is not None else None
        if recorder is None:
            warn(f"{item.nodeid}: nothing to snapshot: no recorder")
            return None
        options = state.options
        window = options.window or self.settings.window
        since = state.since if window == "test" else None
        snapshot = instrument.snapshot(since=since, recorder=recorder)
        if self.children is not None:
            try:
                self.children.merge(snapshot, since, recorder)
            except Exception as exc:
                warn(f"{item.nodeid}: cannot read child processes' events: {describe(exc)}")
        idle = _prune_idle_streams(snapshot) if since is not None else []
        snapshot.origin_ns = failure_ns
        counts = summary(snapshot)  # what was recorded: the failure event is not counted
        if failure is not None:
            add_failure_event(snapshot, failure_ns, failure, idle)
        snapshot.metadata.update(
            {
                "test_id": item.nodeid,
                "phase": phase,
                "attempt": state.attempt,
                "worker": self.worker,
                "outcome": outcome,
                "window": window,
                "failure_ns": failure_ns,
                **_phase_starts(state.phase_starts),
                "idle_streams_left_out": len(idle),
                **(extra or {}),
            }
        )
        paths: dict[str, Path] = {}
        problems: list[str] = []
        if snapshot.events:
            stem = file_stem(item.nodeid, phase, state.attempt, self.worker)
            formats = options.formats or self.settings.formats
            paths, problems = self.writer.write(snapshot, stem, formats)
        for problem in problems:
            warn(f"{item.nodeid}: {problem}")
        return snapshot, counts, paths, problems

    def _attach(
        self,
        item: pytest.Item,
        report: pytest.TestReport,
        call: pytest.CallInfo[None],
        state: TestState,
        failure_ns: int,
    ) -> None:
        outcome = "xfailed" if report.skipped else report.outcome
        taken = self.take(
            item,
            state,
            phase=report.when,
            outcome=outcome,
            failure_ns=_monotonic_of(call.stop, failure_ns),
            extra={"exception": _exception_text(call, report)},
            failure=_failure_fields(call),
        )
        if taken is None:
            return
        snapshot, counts, paths, problems = taken
        tail = state.options.tail if state.options.tail is not None else self.settings.tail
        shown = {fmt: str(path) for fmt, path in paths.items()}
        relative = {fmt: self.shown(path) for fmt, path in paths.items()}
        title = section_title(report.when)
        settings = self.settings
        text = section_text(
            snapshot,
            counts=counts,
            paths=relative,
            tail=tail,
            problems=problems,
            style=self.style(),
            view=settings.view,
            phase=report.when,
            filters=Filters(settings.threads, settings.events),
        )
        report.sections.append((title, text))
        report.ringtrace = {  # type: ignore[attr-defined]
            "phase": report.when,
            "attempt": state.attempt,
            "worker": self.worker,
            "outcome": outcome,
            "window": snapshot.metadata["window"],
            "paths": shown,
            **counts,
        }
        try:
            recorder = self.recording.current() if self.recording is not None else None
            redacting = recorder is None or bool(recorder.redactor.patterns)
            attach_html(self.config, report, paths, title, text, redacting=redacting)
        except Exception as exc:
            warn(f"{item.nodeid}: cannot attach the snapshot to pytest-html: {describe(exc)}")
        try:
            attach_junit(self.config, item, report, paths)
        except Exception as exc:
            warn(f"{item.nodeid}: cannot attach the snapshot to JUnit XML: {describe(exc)}")
        self.announce(snapshot, item, report, paths)

    def announce(
        self,
        snapshot: Snapshot,
        item: pytest.Item,
        report: pytest.TestReport | None,
        paths: dict[str, Path],
    ) -> None:
        """Call ``pytest_ringtrace_snapshot``; a raising implementation is a warning."""
        try:
            self.config.hook.pytest_ringtrace_snapshot(
                snapshot=snapshot, item=item, report=report, paths=paths
            )
        except Exception as exc:
            warn(f"{item.nodeid}: a pytest_ringtrace_snapshot hook raised {describe(exc)}")

    # -- the summary (on the pytest-xdist controller too) -------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        info = getattr(report, "ringtrace", None)
        if isinstance(info, dict):
            self.written.append((report.nodeid, info))
            if self.worker is None:
                try:
                    add_suite_properties(self.config, report.nodeid, info)
                except Exception as exc:
                    warn(f"{report.nodeid}: cannot name the snapshot in JUnit XML: {describe(exc)}")

    def style(self) -> Style:
        """Colour exactly when pytest colours its own output (``--color``, a terminal)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        color = bool(getattr(getattr(reporter, "_tw", None), "hasmarkup", False))
        return Style(color=color)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.written:
            return
        count = len(self.written)
        plural = "s" if count != 1 else ""
        directory = self.session_dir.created
        where_all = self.shown(directory) if directory is not None else self.settings.directory
        terminalreporter.write_sep(
            "-", printable(f"ringtrace: {count} snapshot{plural} in {where_all}")
        )
        for nodeid, info in self.written[:SUMMARY_LINES]:
            paths = info.get("paths") or {}
            files = " ".join(_file_name(p, directory) for p in paths.values())
            where = files or "no file: nothing was recorded"
            attempt = f", attempt {info.get('attempt')}" if info.get("attempt", 1) != 1 else ""
            terminalreporter.write_line(
                printable(f"{nodeid} [{info.get('phase')}{attempt}]: {where}")
            )
        if count > SUMMARY_LINES:
            terminalreporter.write_line(f"... and {count - SUMMARY_LINES} more")


def shown_path(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` when it lies under it, else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path(start).resolve()))
    except ValueError:
        return str(path)


def _file_name(path: str, directory: Path | None) -> str:
    """A summary entry: the file's name within the session directory, else its path."""
    if directory is not None and Path(path).parent == directory:
        return Path(path).name
    return path


def _prune_idle_streams(snapshot: Snapshot) -> list[StreamInfo]:
    """Leave out streams with no event in the test window and no loss.

    They belong to threads idle during the test, mostly threads of earlier
    tests that have ended; listing them would show empty lanes. A stream
    with a gap or dropped events stays, so no loss is hidden. Returns the
    streams left out.
    """
    kept: list[StreamInfo] = []
    left_out: list[StreamInfo] = []
    for stream in snapshot.streams:
        busy = stream.last_position is not None or stream.gaps or stream.dropped
        (kept if busy else left_out).append(stream)
    snapshot.streams = kept
    return left_out


def _monotonic_of(wall: float, now_ns: int) -> int:
    """The monotonic time of ``wall`` (``time.time()`` seconds, as pytest's
    ``CallInfo`` records), read against the clocks now; never after
    ``now_ns``."""
    offset = time.time_ns() - time.monotonic_ns()
    return min(int(wall * 1e9) - offset, now_ns)


def _phase_starts(starts: dict[str, float]) -> dict[str, int]:
    """Metadata ``<phase>_start_ns``: when each phase of the attempt began
    (monotonic), so that views keep setup and teardown apart from the call."""
    now = time.monotonic_ns()
    return {f"{phase}_start_ns": _monotonic_of(wall, now) for phase, wall in starts.items()}


def _failure_fields(call: pytest.CallInfo[None]) -> dict[str, Any] | None:
    """The fields of the ``test.failure`` event: the exception's type, its
    message and where it was raised (the innermost frame of its traceback)."""
    excinfo = call.excinfo
    if excinfo is None:
        return None
    tb = excinfo.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    try:
        message = str(excinfo.value)
    except Exception:
        message = "<str() raised>"
    return {
        "type": excinfo.typename,
        "message": message[:500],
        "where": f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}",
    }


def add_failure_event(
    snapshot: Snapshot,
    when_ns: int,
    fields: dict[str, Any],
    idle: Sequence[StreamInfo] = (),
) -> Event:
    """Place a ``test.failure`` event in ``snapshot`` and return it.

    The failing test's exception is an event like any other, so that every
    view (terminal, ``ringtrace show``, HTML, Perfetto, CTF) can place it.
    It is not written to the rings (a record there must carry the time it
    was written, and the failure happened earlier): the plugin adds it to
    the snapshot when it takes it, stamped with the failure's time (pytest's
    ``CallInfo.stop``, when the phase ended by the exception, converted to
    the monotonic clock) on the thread that ran the test (the thread calling
    this), in that thread's stream; its position is that of the stream's
    last event before it. Every format needs the event's stream: a stream of
    that thread left out as idle (``idle``) comes back, and a thread that
    recorded nothing gets an empty one.
    """
    thread = threading.current_thread()
    tid = thread.ident or 0
    stream = next((s for s in snapshot.streams if s.thread_id == tid), None)
    if stream is None:
        stream = next((s for s in idle if s.thread_id == tid), None)
        if stream is None:
            stream = _empty_stream(snapshot, thread)
        snapshot.streams.append(stream)
    channel = stream.channel
    name = stream.thread_name
    events = snapshot.events
    at = bisect.bisect_right(events, when_ns, key=lambda ev: ev.timestamp)
    position = next(
        (
            ev.position
            for ev in reversed(events[max(at - 4096, 0) : at])
            if ev.thread_id == tid and ev.channel == channel
        ),
        stream.first_position or 0,
    )
    event = Event(
        when_ns, FAILURE, "event", tid, name, capture_fields(fields), {}, channel, position
    )
    events.insert(at, event)
    return event


def _empty_stream(snapshot: Snapshot, thread: threading.Thread) -> StreamInfo:
    """A stream with no record for ``thread``, shaped like the snapshot's
    first stream (the default channel's when there is none)."""
    like = snapshot.streams[0] if snapshot.streams else None
    return StreamInfo(
        channel=like.channel if like else "default",
        thread_id=thread.ident or 0,
        thread_name=thread.name,
        alive=True,
        mode=like.mode if like else "overwrite",
        subbuf_size=like.subbuf_size if like else 4096,
        num_subbuf=like.num_subbuf if like else 16,
        produced=0,
    )


def _exception_text(call: pytest.CallInfo[None], report: pytest.TestReport) -> str | None:
    """``Type: message`` of what ended the phase, bounded, as plain text."""
    if call.excinfo is None:
        return "XPASS(strict)" if report.failed else None
    try:
        message = str(call.excinfo.value)
    except Exception:
        message = "<str() raised>"
    if len(message) > 500:
        message = message[:500] + "..."
    return f"{call.excinfo.typename}: {message}" if message else call.excinfo.typename
