"""Command-line options and ini settings of the plugin, read into :class:`Settings`.

Every option has an ini equivalent (readable from ``[tool.pytest.ini_options]``);
the command line wins. Values are checked once, at configure time, and a bad
one is a :class:`pytest.UsageError` naming the option, where it came from and
what is expected, so a typo never silently falls back to a default.

This module is imported by every pytest run that has the plugin installed:
it imports nothing from :mod:`instrument` until the plugin is turned on or a
value needs the kit's limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

Window = Literal["test", "session"]
JunitPaths = Literal["absolute", "rootdir"]

DEFAULT_DIR = ".ringtrace"
DEFAULT_TAIL = 20
DEFAULT_SUBBUF_SIZE = 4096
DEFAULT_NUM_SUBBUF = 16
DEFAULT_MAX_DEAD_STREAMS = 64
DEFAULT_FORMATS = ("json", "html")
DEFAULT_RETENTION = 3

#: ini options declared as ``int`` show as such in ``--help`` (pytest >= 8.4;
#: older pytest reads them as strings, which :func:`read_settings` accepts).
_PYTEST = tuple(int(part) for part in re.findall(r"\d+", pytest.__version__)[:2])
_INT: Any = "int" if _PYTEST >= (8, 4) else None

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_PACKAGE_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def add_options(parser: pytest.Parser) -> None:
    """Register the ``--ringtrace*`` options and their ini equivalents."""
    group = parser.getgroup("ringtrace", "flight recorder: snapshot the trace rings on failure")
    group.addoption(
        "--ringtrace",
        action="store_true",
        default=None,
        help="Record traced events into per-thread rings; snapshot them when a test fails. "
        "(ini: ringtrace = true)",
    )
    group.addoption(
        "--ringtrace-dir",
        metavar="DIR",
        default=None,
        help=f"Where snapshot files are written (default: {DEFAULT_DIR}/ under the rootdir; "
        "ini: ringtrace_dir).",
    )
    group.addoption(
        "--ringtrace-tail",
        metavar="N",
        default=None,
        help=f"Events shown in the terminal per snapshot (default: {DEFAULT_TAIL}; "
        "0 shows only the header; ini: ringtrace_tail).",
    )
    group.addoption(
        "--ringtrace-instrument",
        metavar="PKG",
        action="append",
        default=None,
        help="Trace every function and method of package PKG (repeatable; "
        "ini: ringtrace_instrument, one package per line).",
    )
    group.addoption(
        "--ringtrace-window",
        metavar="test|session",
        default=None,
        help="test (default): a snapshot holds the events from the start of the test's setup; "
        "session: everything the rings still hold (ini: ringtrace_window).",
    )
    group.addoption(
        "--ringtrace-subbuf-size",
        metavar="EVENTS",
        default=None,
        help=f"Events per sub-buffer, a power of two (default: {DEFAULT_SUBBUF_SIZE}; "
        "ini: ringtrace_subbuf_size).",
    )
    group.addoption(
        "--ringtrace-num-subbuf",
        metavar="N",
        default=None,
        help=f"Sub-buffers per thread ring, a power of two (default: {DEFAULT_NUM_SUBBUF}; "
        "ini: ringtrace_num_subbuf).",
    )
    group.addoption(
        "--ringtrace-max-dead-streams",
        metavar="N",
        default=None,
        help=f"Rings of ended threads kept readable (default: {DEFAULT_MAX_DEAD_STREAMS}; "
        "ini: ringtrace_max_dead_streams).",
    )
    group.addoption(
        "--ringtrace-formats",
        metavar="FMT[,FMT]",
        action="append",
        default=None,
        help=f"Snapshot files written per failure (default: {','.join(DEFAULT_FORMATS)}; "
        "ini: ringtrace_formats).",
    )
    group.addoption(
        "--ringtrace-junit-paths",
        metavar="absolute|rootdir",
        default=None,
        help="How JUnit XML names snapshot files: absolute (default; Jenkins) or relative to "
        "the rootdir (GitLab resolves attachments against the project directory) "
        "(ini: ringtrace_junit_paths).",
    )
    group.addoption(
        "--ringtrace-view",
        metavar="tree|flat",
        default=None,
        help="The terminal section: tree (default), the calls leading to the failure, "
        "or flat, the last --ringtrace-tail events (ini: ringtrace_view).",
    )
    group.addoption(
        "--ringtrace-thread",
        metavar="NAME",
        action="append",
        default=None,
        help="Show only threads matching NAME (a name, glob or id; repeatable), "
        "as ringtrace show --thread.",
    )
    group.addoption(
        "--ringtrace-event",
        metavar="GLOB",
        action="append",
        default=None,
        help="Show only events whose name matches GLOB (repeatable), as ringtrace show --event.",
    )
    group.addoption(
        "--ringtrace-xfail",
        action="store_true",
        default=None,
        help="Also snapshot expected failures (xfail) (ini: ringtrace_xfail = true).",
    )
    group.addoption(
        "--ringtrace-log-level",
        metavar="LEVEL|off",
        default=None,
        help="logging records of LEVEL and above that reach the root logger's handlers, and "
        "shown warnings, are recorded as events (default: DEBUG; off: neither; "
        "ini: ringtrace_log_level).",
    )
    group.addoption(
        "--ringtrace-values",
        metavar="safe|repr|none",
        default=None,
        help="How recorded objects become data: safe (default: type, length, fields; runs no "
        "code of the program), repr (their own __repr__, bounded and guarded), none (no values "
        "recorded) (ini: ringtrace_values).",
    )
    group.addoption(
        "--ringtrace-redact",
        metavar="NAME[,NAME]",
        action="append",
        default=None,
        help="Name fragments whose values are redacted, in fields, nested keys, headers, URLs "
        "and traced arguments; replaces the credential-like defaults ('default' names them, "
        "'off' turns redaction off) (ini: ringtrace_redact).",
    )
    group.addoption(
        "--ringtrace-engine",
        metavar="auto|sysmon|wrapt",
        default=None,
        help="The tracing engine: sysmon (sys.monitoring, Python 3.12+, changes no object), "
        "wrapt (wrappers), or auto (default: sysmon where it can run; env RINGTRACE_ENGINE; "
        "ini: ringtrace_engine).",
    )
    parser.addini("ringtrace", "Turn the flight recorder on (like --ringtrace).", type="bool")
    parser.addini("ringtrace_values", "safe, repr or none (default: safe).")
    parser.addini("ringtrace_redact", "Redacted name fragments, 'default' or 'off'.", type="args")
    parser.addini("ringtrace_engine", "Tracing engine: auto, sysmon or wrapt (auto).")
    parser.addini("ringtrace_dir", f"Snapshot directory (default: {DEFAULT_DIR}).")
    parser.addini(
        "ringtrace_tail", f"Events shown per snapshot (default: {DEFAULT_TAIL}).", _INT, None
    )
    parser.addini("ringtrace_instrument", "Packages traced whole, one per line.", type="linelist")
    parser.addini("ringtrace_window", "test or session (default: test).")
    parser.addini(
        "ringtrace_subbuf_size", f"Events per sub-buffer ({DEFAULT_SUBBUF_SIZE}).", _INT, None
    )
    parser.addini(
        "ringtrace_num_subbuf", f"Sub-buffers per ring ({DEFAULT_NUM_SUBBUF}).", _INT, None
    )
    parser.addini(
        "ringtrace_max_dead_streams",
        f"Rings of ended threads kept ({DEFAULT_MAX_DEAD_STREAMS}).",
        _INT,
        None,
    )
    parser.addini(
        "ringtrace_retention_count",
        "Sessions whose snapshot directories are kept, this one included "
        f"(default: {DEFAULT_RETENTION}; like tmp_path_retention_count).",
        _INT,
        None,
    )
    parser.addini(
        "ringtrace_junit_paths", "absolute or rootdir: snapshot paths in JUnit XML (absolute)."
    )
    parser.addini(
        "ringtrace_formats", f"Snapshot formats ({' '.join(DEFAULT_FORMATS)}).", type="args"
    )
    parser.addini("ringtrace_view", "tree or flat (default: tree).")
    parser.addini("ringtrace_xfail", "Also snapshot expected failures.", type="bool")
    parser.addini("ringtrace_log_level", "Log records recorded: a level, or off (DEBUG).")


@dataclass(frozen=True)
class Settings:
    """The plugin's configuration for one session, checked."""

    enabled: bool = False
    directory: Path = Path(DEFAULT_DIR)
    tail: int = DEFAULT_TAIL
    instrument: tuple[str, ...] = ()
    window: Window = "test"
    subbuf_size: int = DEFAULT_SUBBUF_SIZE
    num_subbuf: int = DEFAULT_NUM_SUBBUF
    max_dead_streams: int = DEFAULT_MAX_DEAD_STREAMS
    formats: tuple[str, ...] = DEFAULT_FORMATS
    formats_given: bool = False
    formats_where: str = "--ringtrace-formats"
    xfail: bool = False
    log_level: str | None = "DEBUG"  # None: the logging bridge is off
    retention: int = DEFAULT_RETENTION
    junit_paths: JunitPaths = "absolute"
    view: str = "tree"
    threads: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    values: str = "safe"
    redact: tuple[str, ...] | bool = True
    engine: str | None = None  # None: RINGTRACE_ENGINE, else auto

    def start_options(self) -> dict[str, object]:
        """The keyword arguments of ``instrument.start`` these settings give."""
        return {
            "max_dead_streams": self.max_dead_streams,
            "values": self.values,
            "redact": self.redact,
        }


class _Source:
    """Reads one setting from the command line, else the ini file, and names
    the place it came from in error messages."""

    def __init__(self, config: pytest.Config):
        self.config = config

    def get(self, dest: str | None, ini: str) -> tuple[object, str]:
        value = self.config.getoption(dest) if dest is not None else None
        if value is not None:
            where = "--" + str(dest).replace("_", "-")
            given = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) and not v.strip() for v in given):
                raise pytest.UsageError(f"{where}: expected a value, got an empty one")
            return value, where
        where = f"ini option {ini}"
        try:
            return self.config.getini(ini), where
        except (ValueError, TypeError, pytest.UsageError) as exc:
            # a typed (int) ini value pytest could not convert
            raise pytest.UsageError(f"{where}: expected a whole number ({exc})") from None


def _int(value: object, where: str, low: int, high: int, what: str = "a whole number") -> int:
    try:
        number = int(str(value).strip(), 10)
    except ValueError:
        raise pytest.UsageError(f"{where}: expected {what}, got {value!r}") from None
    if not low <= number <= high:
        raise pytest.UsageError(f"{where}: expected {what} between {low} and {high}, got {number}")
    return number


def _power_of_two(value: object, where: str, low: int, high: int) -> int:
    number = _int(value, where, low, high, "a power of two")
    if number & (number - 1):
        raise pytest.UsageError(
            f"{where}: expected a power of two between {low} and {high}, got {number}"
        )
    return number


def _split(values: object) -> list[str]:
    """``["json,html", "ctf"]`` or ``"json html"`` as ``["json", "html", "ctf"]``."""
    items = [values] if isinstance(values, str) else list(values or [])  # type: ignore[call-overload]
    out: list[str] = []
    for item in items:
        out.extend(part for part in re.split(r"[,\s]+", str(item)) if part)
    return out


def read_settings(config: pytest.Config) -> Settings:
    """Every ringtrace setting, from the command line or the ini file, checked.

    Raises :class:`pytest.UsageError` on the first bad value. Snapshot
    formats are checked against the registry only when the plugin is on, and
    by :func:`check_formats`, since that imports every format plugin.
    """
    source = _Source(config)
    enabled = bool(config.getoption("ringtrace") or config.getini("ringtrace"))
    xfail = bool(config.getoption("ringtrace_xfail") or config.getini("ringtrace_xfail"))

    raw_dir, _where = source.get("ringtrace_dir", "ringtrace_dir")
    if config.getoption("ringtrace_dir") is not None:
        directory = Path(config.invocation_params.dir, str(raw_dir))
    elif raw_dir:
        directory = Path(config.rootpath, str(raw_dir))
    else:
        directory = Path(config.rootpath, DEFAULT_DIR)
    if directory.exists() and not directory.is_dir():
        raise pytest.UsageError(f"{_where}: {directory} exists and is not a directory")

    def number(dest: str, default: int, low: int, high: int) -> int:
        value, where = source.get(dest, dest)
        return default if value in (None, "") else _int(value, where, low, high)

    def ring_size(dest: str, default: int) -> int:
        value, where = source.get(dest, dest)
        if value in (None, ""):
            return default
        from instrument import channel

        if dest == "ringtrace_subbuf_size":
            low, high = channel.MIN_SUBBUF_SIZE, channel.MAX_SUBBUF_SIZE
        else:
            low, high = channel.MIN_NUM_SUBBUF, channel.MAX_NUM_SUBBUF
        return _power_of_two(value, where, low, high)

    tail = number("ringtrace_tail", DEFAULT_TAIL, 0, 100_000)
    subbuf = ring_size("ringtrace_subbuf_size", DEFAULT_SUBBUF_SIZE)
    nsub = ring_size("ringtrace_num_subbuf", DEFAULT_NUM_SUBBUF)
    if (subbuf, nsub) != (DEFAULT_SUBBUF_SIZE, DEFAULT_NUM_SUBBUF):
        from instrument.channel import MAX_CAPACITY

        if subbuf * nsub > MAX_CAPACITY:
            raise pytest.UsageError(
                f"ring size: sub-buffer size x number of sub-buffers = {subbuf} x {nsub} = "
                f"{subbuf * nsub} events per ring, above the limit of {MAX_CAPACITY}"
            )
    dead = number("ringtrace_max_dead_streams", DEFAULT_MAX_DEAD_STREAMS, 0, 1_000_000)
    value, where = source.get(None, "ringtrace_retention_count")
    retention = DEFAULT_RETENTION if value in (None, "") else _int(value, where, 1, 1_000_000)

    value, where = source.get("ringtrace_junit_paths", "ringtrace_junit_paths")
    junit_paths = str(value or "absolute").strip()
    if junit_paths not in ("absolute", "rootdir"):
        raise pytest.UsageError(f"{where}: expected 'absolute' or 'rootdir', got {junit_paths!r}")

    value, where = source.get("ringtrace_window", "ringtrace_window")
    window = str(value or "test").strip()
    if window not in ("test", "session"):
        raise pytest.UsageError(f"{where}: expected 'test' or 'session', got {window!r}")

    value, where = source.get("ringtrace_instrument", "ringtrace_instrument")
    packages = tuple(_split(value))
    if packages:
        from instrument.patching import KIT_PACKAGES
    for package in packages:
        if not _PACKAGE_RE.match(package):
            raise pytest.UsageError(
                f"{where}: expected a dotted package name such as 'myapp.orders', got {package!r}"
            )
        if package.split(".", 1)[0] in KIT_PACKAGES:
            raise pytest.UsageError(
                f"{where}: {package!r} is part of the recorder (it runs on "
                f"{', '.join(KIT_PACKAGES)}) and cannot trace itself"
            )

    value, where = source.get("ringtrace_formats", "ringtrace_formats")
    formats = tuple(dict.fromkeys(_split(value)))  # unique, in the order given
    if value and not formats:
        raise pytest.UsageError(f"{where}: name at least one snapshot format")

    level_value, level_where = source.get("ringtrace_log_level", "ringtrace_log_level")
    log_level: str | None = str(level_value or "DEBUG").strip().upper()
    if log_level == "OFF":
        log_level = None
    elif log_level not in _LOG_LEVELS:
        raise pytest.UsageError(
            f"{level_where}: expected one of {', '.join(_LOG_LEVELS)} or off, got {level_value!r}"
        )
    view_value, view_where = source.get("ringtrace_view", "ringtrace_view")
    view = str(view_value or "tree").strip()
    if view not in ("tree", "flat"):
        raise pytest.UsageError(f"{view_where}: expected 'tree' or 'flat', got {view!r}")

    raw_values, values_where = source.get("ringtrace_values", "ringtrace_values")
    values = str(raw_values or "safe").strip()
    if values not in ("safe", "repr", "none"):
        raise pytest.UsageError(
            f"{values_where}: expected 'safe', 'repr' or 'none', got {values!r}"
        )
    raw_redact, redact_where = source.get("ringtrace_redact", "ringtrace_redact")
    redact = _redaction(_split(raw_redact), redact_where)

    engine_value, engine_where = source.get("ringtrace_engine", "ringtrace_engine")
    engine = str(engine_value).strip().lower() if engine_value not in (None, "") else None
    if engine is not None and engine not in ("auto", "sysmon", "wrapt"):
        raise pytest.UsageError(
            f"{engine_where}: expected auto, sysmon or wrapt, got {engine_value!r}"
        )

    return Settings(
        view=view,
        threads=tuple(config.getoption("ringtrace_thread") or ()),
        events=tuple(config.getoption("ringtrace_event") or ()),
        values=values,
        redact=redact,
        enabled=enabled,
        directory=directory,
        tail=tail,
        instrument=packages,
        window=window,  # type: ignore[arg-type]
        subbuf_size=subbuf,
        num_subbuf=nsub,
        max_dead_streams=dead,
        formats=formats or DEFAULT_FORMATS,
        formats_given=bool(formats),
        formats_where=where,
        xfail=xfail,
        log_level=log_level,
        retention=retention,
        junit_paths=junit_paths,  # type: ignore[arg-type]
        engine=engine,
    )


def _redaction(names: list[str], where: str) -> tuple[str, ...] | bool:
    """``--ringtrace-redact`` values as ``instrument.start(redact=...)`` takes them."""
    if not names:
        return True
    if "off" in names:
        if len(names) > 1:
            raise pytest.UsageError(f"{where}: 'off' cannot be combined with names, got {names}")
        return False
    from instrument.values import DEFAULT_REDACT

    out: list[str] = []
    for name in names:
        out.extend(DEFAULT_REDACT if name == "default" else [name])
    return tuple(dict.fromkeys(out))


def check_formats(settings: Settings) -> None:
    """A usage error if a format named by the user is not registered."""
    if not settings.formats_given:
        return  # the defaults are checked when written: a missing one is a warning
    from instrument.formats import format_names

    known = format_names()
    unknown = [f for f in settings.formats if f not in known]
    if unknown:
        raise pytest.UsageError(
            f"{settings.formats_where}: unknown snapshot format(s) "
            f"{', '.join(map(repr, unknown))}; known: {', '.join(known) or '(none registered)'}"
        )
