"""The kit's extension points: plugins registered in code.

A plugin adds a context field, a format and a sink through the
``ringtrace_*`` hooks; the format is then usable from ``write_snapshot``,
``ringtrace convert --to`` and ``--ringtrace-formats``. A plugin that raises
(or returns garbage) is named in a warning and never breaks recording, a
snapshot, or a test outcome. (The installed, entry-point case is
tests/test_plugin_entrypoint.py.)
"""

from __future__ import annotations

import contextvars
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import instrument
from instrument import Channel, Recorder, Snapshot, plugins
from instrument.formats import (
    Format,
    FormatError,
    format_names,
    format_plugin,
    get_format,
    write_snapshot,
)
from instrument.plugins import PluginWarning, hookimpl

AddPlugin = Callable[..., types.SimpleNamespace]


@pytest.fixture
def add_plugin() -> Iterator[AddPlugin]:
    """``add_plugin(name, hook=function, ...)`` registers a plugin made of
    those hook functions; every plugin added is unregistered afterwards."""
    added: list[str] = []

    def add(name: str, **hooks: Callable[..., Any]) -> types.SimpleNamespace:
        plugin = types.SimpleNamespace(**{hook: hookimpl(fn) for hook, fn in hooks.items()})
        added.append(plugins.register(plugin, name=name))
        return plugin

    yield add
    for name in added:
        if name in plugins.plugin_names():
            plugins.unregister(name=name)


def write_lines(snapshot: Snapshot, out: BinaryIO) -> None:
    """A tiny format: one line per event, ``name context``."""
    for ev in snapshot.events:
        out.write(f"{ev.name} {sorted(ev.context.items())}\n".encode())


def lines_format(name: str = "lines") -> Format:
    return Format(name, f".{name}.txt", write_lines, description="event names, one a line")


def record(start_recording: Callable[..., Recorder], *channels: Channel) -> Snapshot:
    """Record three events and return a snapshot of them."""
    rec = start_recording(*channels)
    for i in range(3):
        instrument.event("step", i=i)
    return instrument.snapshot(recorder=rec)


tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)


# -- a plugin registered in code ------------------------------------------------


def test_context_from_a_plugin_is_recorded_with_each_event(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder]
) -> None:
    add_plugin("tenants", ringtrace_contexts=lambda: {"tenant": tenant.get})
    assert "tenant" in instrument.context.available_contexts()
    start_recording(Channel(contexts=("thread", "tenant")))
    instrument.event("outside")
    token = tenant.set("acme")
    try:
        instrument.event("inside")
    finally:
        tenant.reset(token)
    by_name = {ev.name: ev for ev in instrument.snapshot().events}
    assert by_name["inside"].context["tenant"] == "acme"
    assert by_name["outside"].context["tenant"] is None


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_each_context_of_a_channel_gets_its_own_providers_value(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder], count: int
) -> None:
    names = [f"ctx{i}" for i in range(count)]
    add_plugin("many", ringtrace_contexts=lambda: {n: (lambda n=n: f"value of {n}") for n in names})
    start_recording(Channel(contexts=("thread", *names)))
    instrument.event("e")
    (ev,) = instrument.snapshot().events
    assert {k: v for k, v in ev.context.items() if k.startswith("ctx")} == {
        n: f"value of {n}" for n in names
    }


def test_a_context_plugin_no_channel_uses_leaves_the_plain_write_path(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder]
) -> None:
    add_plugin("tenants", ringtrace_contexts=lambda: {"tenant": tenant.get})
    rec = start_recording()  # the default channel lists no dynamic context
    instrument.event("plain", x=1)
    (stream,) = rec.streams()
    # the writer pair of the plain path: the stream's ring and position counter
    append, reserve = instrument.hotpath._local.routes["plain"]
    assert append.__self__ is stream.ring and reserve.__self__ is stream.counter
    (record,) = stream.ring
    assert len(record) == 4  # a point event: no kind, no dynamic-context tuple


def test_an_unregistered_context_is_an_unknown_context_again(add_plugin: AddPlugin) -> None:
    add_plugin("tenants", ringtrace_contexts=lambda: {"tenant": tenant.get})
    assert "tenant" in instrument.context.available_contexts()
    plugins.unregister(name="tenants")
    assert "tenant" not in instrument.context.available_contexts()
    with pytest.raises(ValueError, match=r"unknown context field\(s\) tenant; known: .*task"):
        instrument.start([Channel(contexts=("thread", "tenant"))])


def test_format_from_a_plugin_is_written_by_write_snapshot(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    snap = record(start_recording)
    assert "lines" not in format_names()
    add_plugin("lines-plugin", ringtrace_formats=lambda: [lines_format()])
    assert "lines" in format_names()
    assert format_plugin("lines") == "lines-plugin"
    path = write_snapshot(snap, tmp_path / "snap", "lines")
    assert path == tmp_path / "snap.lines.txt"
    assert path.read_text().splitlines() == [f"step {sorted(ev.context.items())}" for ev in snap]
    assert path.stat().st_mode & 0o077 == 0  # owner-only, like every snapshot file
    plugins.unregister(name="lines-plugin")
    assert "lines" not in format_names()
    with pytest.raises(ValueError, match="unknown snapshot format 'lines'"):
        write_snapshot(snap, tmp_path / "again", "lines")


def test_sink_receives_each_snapshot_written(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    snap = record(start_recording)
    seen: list[tuple[Snapshot, Path, str, bool]] = []
    add_plugin(
        "sink",
        ringtrace_formats=lambda: [lines_format("a"), lines_format("b")],
        ringtrace_snapshot_written=lambda snapshot, path, format: seen.append(
            (snapshot, path, format, path.exists())
        ),
    )
    first = write_snapshot(snap, tmp_path / "one", "a")
    second = write_snapshot(snap, tmp_path / "two", "b")
    assert [(s, p, f, e) for s, p, f, e in seen] == [
        (snap, first, "a", True),
        (snap, second, "b", True),
    ]


def test_a_sink_may_take_only_the_arguments_it_needs(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    snap = record(start_recording)
    paths: list[Path] = []
    add_plugin(
        "path-sink",
        ringtrace_formats=lambda: [lines_format()],
        ringtrace_snapshot_written=lambda path: paths.append(path),
    )
    assert paths == [write_snapshot(snap, tmp_path / "s", "lines")]


def test_registering_the_same_plugin_twice_registers_it_once(
    start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    calls: list[Path] = []
    module = types.ModuleType("twice_plugin")
    module.ringtrace_formats = hookimpl(lambda: [lines_format()])  # type: ignore[attr-defined]
    module.ringtrace_snapshot_written = hookimpl(lambda path: calls.append(path))  # type: ignore[attr-defined]
    try:
        assert plugins.register(module) == "twice_plugin"
        assert plugins.register(module) == "twice_plugin"
        assert plugins.register(module, name="other-name") == "twice_plugin"
        assert plugins.plugin_names().count("twice_plugin") == 1
        write_snapshot(record(start_recording), tmp_path / "s", "lines")
        assert len(calls) == 1
    finally:
        plugins.unregister(module)
    assert "twice_plugin" not in plugins.plugin_names()


def test_a_name_already_taken_is_refused(add_plugin: AddPlugin) -> None:
    add_plugin("taken", ringtrace_formats=lambda: [])
    with pytest.raises(ValueError, match="another ringtrace plugin is registered as 'taken'"):
        plugins.register(types.SimpleNamespace(), name="taken")


def test_a_misspelt_hook_is_refused_at_register(add_plugin: AddPlugin) -> None:
    plugin = types.SimpleNamespace(ringtrace_format=hookimpl(lambda: [lines_format()]))
    with pytest.raises(ValueError, match=r"unknown hook 'ringtrace_format'.*ringtrace_formats"):
        plugins.register(plugin, name="typo")
    assert "typo" not in plugins.plugin_names()


def test_a_hook_with_an_argument_the_spec_lacks_is_refused() -> None:
    plugin = types.SimpleNamespace(ringtrace_snapshot_written=hookimpl(lambda path, extra: None))
    with pytest.raises(ValueError, match=r"'bad-args' is invalid.*extra"):
        plugins.register(plugin, name="bad-args")
    assert "bad-args" not in plugins.plugin_names()


def test_unregistering_an_unknown_plugin_is_an_error() -> None:
    with pytest.raises(ValueError, match="no ringtrace plugin 'nobody' is registered"):
        plugins.unregister(name="nobody")
    with pytest.raises(ValueError, match="is registered"):
        plugins.unregister(types.SimpleNamespace())


def test_builtins_register_through_the_same_hooks() -> None:
    names = plugins.plugin_names()
    assert names[:2] == ["ringtrace.contexts", "ringtrace.formats"]
    assert "task" in instrument.context.available_contexts()
    for fmt in format_names():
        assert format_plugin(fmt) == "ringtrace.formats"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "two words"}, "format name must be"),
        ({"name": "a,b"}, "format name must be"),
        ({"name": "a+b"}, "format name must be"),
        ({"name": ""}, "format name must be"),
        ({"suffix": "dir/x"}, "suffix must be a file suffix"),
        ({"write": "not callable"}, "write must be callable"),
    ],
)
def test_a_bad_format_is_refused_where_it_is_made(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"name": "ok", "suffix": ".ok", "write": write_lines}
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        Format(**args)


# -- plugins that raise or return garbage ----------------------------------------


def boom(*args: object, **kwargs: object) -> Any:
    raise RuntimeError("plugin bug")


def test_raising_ringtrace_contexts_is_named_and_recording_goes_on(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder]
) -> None:
    add_plugin("tenants", ringtrace_contexts=lambda: {"tenant": tenant.get})
    add_plugin("broken-contexts", ringtrace_contexts=boom)
    with pytest.warns(PluginWarning, match=r"'broken-contexts' raised RuntimeError.*plugin bug"):
        rec = start_recording(Channel(contexts=("thread", "tenant", "task")))
    instrument.event("still.recorded")
    assert [ev.name for ev in instrument.snapshot(recorder=rec)] == ["still.recorded"]


def test_raising_provider_records_its_error_and_warns_once(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder]
) -> None:
    add_plugin("flaky", ringtrace_contexts=lambda: {"flaky": boom})
    start_recording(Channel(contexts=("thread", "flaky")))
    with pytest.warns(PluginWarning) as caught:
        instrument.event("one", n=1)
        instrument.event("two", n=2)
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert messages == [
        "ringtrace plugin 'flaky' raised RuntimeError in context provider 'flaky': plugin bug"
    ]
    events = instrument.snapshot().events
    assert [(ev.name, ev.fields) for ev in events] == [("one", {"n": 1}), ("two", {"n": 2})]
    assert {ev.context["flaky"] for ev in events} == {"<context error RuntimeError: plugin bug>"}


def test_raising_provider_never_raises_into_the_program_even_with_warnings_as_errors(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder]
) -> None:
    add_plugin("flaky", ringtrace_contexts=lambda: {"flaky": boom})
    start_recording(Channel(contexts=("thread", "flaky")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        instrument.event("recorded")  # must not raise PluginWarning into the caller
    assert [ev.name for ev in instrument.snapshot().events] == ["recorded"]


@pytest.mark.parametrize(
    ("offered", "match"),
    [
        (["tenant"], "must return a dict, got list"),
        ({"thread": tenant.get}, "'thread' is built in"),
        ({"two words": tenant.get}, "must be an identifier"),
        ({"tenant": "not callable"}, "is not callable"),
    ],
)
def test_garbage_from_ringtrace_contexts_is_named_and_skipped(
    add_plugin: AddPlugin,
    start_recording: Callable[..., Recorder],
    offered: object,
    match: str,
) -> None:
    add_plugin("garbage-contexts", ringtrace_contexts=lambda: offered)
    with pytest.warns(PluginWarning, match=f"'garbage-contexts'.*{match}"):
        known = instrument.context.available_contexts()
    assert "task" in known
    rec = start_recording(Channel(contexts=("thread", "task")))
    instrument.event("fine")
    assert [ev.name for ev in instrument.snapshot(recorder=rec)] == ["fine"]


def test_a_context_name_taken_by_an_earlier_plugin_keeps_its_first_provider(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder]
) -> None:
    add_plugin("first", ringtrace_contexts=lambda: {"tenant": lambda: "first"})
    add_plugin("second", ringtrace_contexts=lambda: {"tenant": lambda: "second"})
    with pytest.warns(PluginWarning, match="'second'.*'tenant' is already provided by 'first'"):
        start_recording(Channel(contexts=("thread", "tenant")))
    instrument.event("e")
    assert instrument.snapshot().events[0].context["tenant"] == "first"


def test_raising_ringtrace_formats_is_named_and_other_formats_stay(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    builtin = format_names()
    add_plugin("lines-plugin", ringtrace_formats=lambda: [lines_format()])
    add_plugin("broken-formats", ringtrace_formats=boom)
    with pytest.warns(PluginWarning, match="'broken-formats' raised RuntimeError"):
        names = format_names()
    assert names == [*builtin, "lines"]
    assert write_snapshot(record(start_recording), tmp_path / "s", "lines").exists()


@pytest.mark.parametrize(
    ("returned", "match"),
    [
        (42, "must return a list, got int"),
        ("lines", "must return a list, got str"),
        ([object()], "not a Format"),
        ([lines_format("taken")], "'taken' is already provided by 'lines-plugin'"),
    ],
)
def test_garbage_from_ringtrace_formats_is_named_and_skipped(
    add_plugin: AddPlugin, returned: object, match: str
) -> None:
    add_plugin("lines-plugin", ringtrace_formats=lambda: [lines_format(), lines_format("taken")])
    add_plugin("garbage-formats", ringtrace_formats=lambda: returned)
    with pytest.warns(PluginWarning, match=f"'garbage-formats'.*{match}"):
        names = format_names()
    assert {"lines", "taken"} <= set(names)
    assert format_plugin("taken") == "lines-plugin"


def test_a_plugin_cannot_take_over_a_builtin_format_name(add_plugin: AddPlugin) -> None:
    builtin = format_names()
    if not builtin:
        pytest.fail("no built-in format is registered")
    name = builtin[0]
    original = get_format(name)
    add_plugin("usurper", ringtrace_formats=lambda: [Format(name, ".x", write_lines)])
    with pytest.warns(PluginWarning, match=f"'usurper'.*'{name}' is already provided by"):
        assert get_format(name) is original


def test_raising_sink_leaves_the_written_file_and_is_named(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    snap = record(start_recording)
    later: list[Path] = []
    add_plugin("lines-plugin", ringtrace_formats=lambda: [lines_format()])
    add_plugin("broken-sink", ringtrace_snapshot_written=boom)
    add_plugin("good-sink", ringtrace_snapshot_written=lambda path: later.append(path))
    with pytest.warns(
        PluginWarning,
        match="'broken-sink' raised RuntimeError in ringtrace_snapshot_written: plugin bug",
    ):
        path = write_snapshot(snap, tmp_path / "s", "lines")
    assert path.read_text().count("step") == 3
    assert later == [path]  # the sink after the broken one still ran


def test_raising_writer_is_a_format_error_naming_format_and_plugin(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    snap = record(start_recording)
    sunk: list[Path] = []
    add_plugin("broken-writer", ringtrace_formats=lambda: [Format("broken", ".broken", boom)])
    add_plugin("sink", ringtrace_snapshot_written=lambda path: sunk.append(path))
    with pytest.raises(FormatError) as info:
        write_snapshot(snap, tmp_path / "s", "broken")
    assert str(info.value) == (
        "format 'broken' (ringtrace plugin 'broken-writer') failed to write the snapshot: "
        "RuntimeError: plugin bug"
    )
    assert isinstance(info.value.__cause__, RuntimeError)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    assert sunk == []


def test_raising_directory_writer_leaves_no_directory(
    add_plugin: AddPlugin, start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    def half_written(snapshot: Snapshot, directory: Path) -> None:
        (directory / "part").write_text("x")
        raise RuntimeError("broken")

    fmt = Format("dir-broken", ".d", half_written, directory=True)
    add_plugin("dir-writer", ringtrace_formats=lambda: [fmt])
    with pytest.raises(FormatError, match="'dir-broken' \\(ringtrace plugin 'dir-writer'\\)"):
        write_snapshot(record(start_recording), tmp_path / "s", "dir-broken")
    assert list(tmp_path.iterdir()) == []


# -- the same plugins in a pytest run (--ringtrace-formats) ---------------------

FAILING_AND_PASSING = """
import instrument

def test_passes():
    instrument.event("fine")

def test_fails():
    instrument.event("about.to.fail", n=1)
    assert False, "boom"
"""


def run_ringtrace(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run the failing and the passing test with ``--ringtrace`` (in this process,
    so the plugins registered here are seen; other pytest plugins left out)."""
    pytester.makepyfile(test_subject=FAILING_AND_PASSING)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        return pytester.runpytest(
            "-p", "pytest_ringtrace.plugin", "-p", "no:cacheprovider", "--ringtrace",
            "--ringtrace-dir=snapshots", *args,
        )  # fmt: skip


def test_plugin_format_and_sink_in_a_pytest_run(
    add_plugin: AddPlugin, pytester: pytest.Pytester
) -> None:
    sunk: list[tuple[str, Path, list[str]]] = []
    add_plugin(
        "lines-plugin",
        ringtrace_formats=lambda: [lines_format()],
        ringtrace_snapshot_written=lambda snapshot, path, format: sunk.append(
            (format, path, [ev.name for ev in snapshot])
        ),
    )
    result = run_ringtrace(pytester, "--ringtrace-formats=json,lines")
    result.assert_outcomes(passed=1, failed=1)
    (written,) = (pytester.path / "snapshots").glob("session-*/*.lines.txt")
    assert "test_fails" in written.name
    assert "about.to.fail" in written.read_text()
    assert [(fmt, path.name) for fmt, path, _ in sunk] == [
        ("json", written.name.replace(".lines.txt", ".json")),
        ("lines", written.name),
    ]
    assert all("about.to.fail" in names for _, _, names in sunk)


def test_ringtrace_formats_choices_come_from_the_registry(
    add_plugin: AddPlugin, pytester: pytest.Pytester
) -> None:
    add_plugin("lines-plugin", ringtrace_formats=lambda: [lines_format()])
    result = run_ringtrace(pytester, "--ringtrace-formats=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown snapshot format*'nope'*lines*"])


CONTEXT_CHANNEL = """
import instrument

def pytest_ringtrace_channels(config):
    return [instrument.Channel(contexts=("thread", "flaky"))]
"""


@pytest.mark.parametrize(
    ("hooks", "formats", "named"),
    [
        ({"ringtrace_contexts": lambda: {"flaky": boom}}, "json", "in context provider 'flaky'"),
        ({"ringtrace_snapshot_written": boom}, "json", "in ringtrace_snapshot_written"),
        (
            {"ringtrace_formats": lambda: [Format("broken", ".broken", boom)]},
            "json,broken",
            "format 'broken' (ringtrace plugin 'broken-plugin') failed",
        ),
    ],
    ids=["provider", "sink", "writer"],
)
def test_a_raising_plugin_leaves_the_pytest_outcome_and_snapshot_and_is_named(
    add_plugin: AddPlugin,
    pytester: pytest.Pytester,
    hooks: dict[str, Callable[..., Any]],
    formats: str,
    named: str,
) -> None:
    add_plugin("broken-plugin", **hooks)
    if "ringtrace_contexts" in hooks:
        pytester.makeconftest(CONTEXT_CHANNEL)
    result = run_ringtrace(pytester, f"--ringtrace-formats={formats}")
    result.assert_outcomes(passed=1, failed=1, warnings=1)
    assert "'broken-plugin'" in result.stdout.str() and named in result.stdout.str()
    (written,) = (pytester.path / "snapshots").glob("session-*/*.json")
    assert "test_fails" in written.name and "about.to.fail" in written.read_text()


# Hooks that run while pytest starts (the registry is read when the options
# are checked, contexts when recording starts): a plugin registered in a
# conftest.py, in a pytest of its own.
BROKEN_AT_START = """
import types
import instrument
from instrument import plugins
from instrument.plugins import hookimpl

def boom():
    raise RuntimeError("plugin bug")

broken = types.SimpleNamespace({hook}=hookimpl(boom))
tenants = types.SimpleNamespace(ringtrace_contexts=hookimpl(lambda: {{"tenant": lambda: "acme"}}))
plugins.register(broken, name="broken-plugin")
plugins.register(tenants, name="tenants")

def pytest_ringtrace_channels(config):
    return [instrument.Channel(contexts=("thread", "tenant"))]
"""


@pytest.mark.parametrize("hook", ["ringtrace_formats", "ringtrace_contexts"])
def test_a_plugin_raising_while_pytest_starts_leaves_the_outcome_and_is_named(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, hook: str
) -> None:
    pytester.makeconftest(BROKEN_AT_START.format(hook=hook))
    pytester.makepyfile(test_subject=FAILING_AND_PASSING)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # a quicker start
    result = pytester.runpytest_subprocess(
        "-p", "pytest_ringtrace.plugin", "-p", "no:cacheprovider", "--ringtrace",
        "--ringtrace-dir=snapshots", "--ringtrace-formats=json",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert f"ringtrace plugin 'broken-plugin' raised RuntimeError in {hook}: plugin bug" in output
    (written,) = (pytester.path / "snapshots").glob("session-*/*.json")
    text = written.read_text()
    assert "about.to.fail" in text and "acme" in text  # the other plugin's context


# -- the same plugins from `ringtrace convert --to` ----------------------------


@pytest.fixture
def snapshot_file(start_recording: Callable[..., Recorder], tmp_path: Path) -> Path:
    """A snapshot in our JSON format, as the pytest plugin leaves them."""
    return write_snapshot(record(start_recording), tmp_path / "snap", "json")


def test_plugin_format_is_a_choice_of_ringtrace_convert(
    add_plugin: AddPlugin,
    snapshot_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from instrument.view.cli import main

    assert main(["convert", str(snapshot_file), "--to", "lines"]) == 2  # not registered yet
    assert "invalid choice: 'lines'" in capsys.readouterr().err
    sunk: list[str] = []
    add_plugin(
        "lines-plugin",
        ringtrace_formats=lambda: [lines_format()],
        ringtrace_snapshot_written=lambda format: sunk.append(format),
    )
    assert main(["convert", "--help"]) == 0
    assert "lines: event names, one a line" in " ".join(capsys.readouterr().out.split())
    status = main(["convert", str(snapshot_file), "--to", "lines", "-o", str(tmp_path / "out")])
    assert status == 0, capsys.readouterr().err
    out = tmp_path / "out.lines.txt"
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text().count("step") == 3
    assert sunk == ["lines"]


def test_ringtrace_convert_to_a_raising_format_fails_with_one_line_naming_the_plugin(
    add_plugin: AddPlugin,
    snapshot_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from instrument.view.cli import main

    add_plugin("broken-writer", ringtrace_formats=lambda: [Format("broken", ".broken", boom)])
    status = main(["convert", str(snapshot_file), "--to", "broken", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "format 'broken' (ringtrace plugin 'broken-writer') failed" in err
    assert "RuntimeError: plugin bug" in err
    assert not list(tmp_path.glob("o*"))
