"""The ``ringtrace`` command: look at, convert and measure snapshot files.

::

    ringtrace show SNAPSHOT [--thread T] [--event GLOB] [--since T] [--until T] [--tail N]
    ringtrace convert SNAPSHOT --to FORMAT [-o OUT]
    ringtrace stats SNAPSHOT [--top N]

Snapshots are read with :meth:`instrument.Snapshot.load` (our JSON, plain or
gzip). Exit status: 0 done, 1 bad input (missing, truncated or foreign
file; unwritable output), 2 bad usage. Every error is one line on stderr,
never a traceback.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from instrument.formats import format_names, formats, get_format, write_snapshot
from instrument.model import Event, Snapshot

from . import render, stats, tree

PROG = "ringtrace"

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A problem to report as one line, with an exit status."""

    def __init__(self, message: str, status: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{self.prog}: {message} (see '{self.prog} --help')", EXIT_USAGE)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# -- reading -----------------------------------------------------------------


def load(path: str) -> Snapshot:
    """The snapshot in ``path``, or a :class:`CommandError` saying why not."""
    try:
        return Snapshot.load(path)
    except ValueError as exc:  # SnapshotFileError: "<path>: <problem>", one line
        problem = getattr(exc, "problem", None) or _one_line(exc)
        raise CommandError(f"{path}: {problem}") from None
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror or _one_line(exc)}") from None
    except (EOFError, RecursionError) as exc:
        raise CommandError(f"{path}: unreadable snapshot ({type(exc).__name__})") from None
    except Exception as exc:  # a reader bug must still not print a traceback
        raise CommandError(
            f"{path}: cannot read snapshot ({type(exc).__name__}: {_one_line(exc)})"
        ) from None


# -- output ------------------------------------------------------------------


def use_color(choice: str, stream: TextIO) -> bool:
    """Whether to colour output: ``always``, ``never``, or ``auto`` (a
    terminal, and ``NO_COLOR`` unset or empty)."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def _encoding_of(stream: TextIO) -> str:
    return getattr(stream, "encoding", None) or "utf-8"


def _can_encode(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def style_for(choice: str, stream: TextIO) -> render.Style:
    """The style for ``stream``: colour as chosen, Unicode markers if it can print them."""
    unicode = _can_encode("".join(render.MARKERS.values()) + "µ…", _encoding_of(stream))
    return render.Style(color=use_color(choice, stream), unicode=unicode)


def _writer(stream: TextIO) -> Callable[[str], None]:
    """A line writer that never fails on a character the stream cannot encode."""
    encoding = _encoding_of(stream)
    exact = _can_encode("\u2192\u00b5\u2026\U0001f600", encoding)

    def write(line: str) -> None:
        if not exact:
            line = line.encode(encoding, "backslashreplace").decode(encoding)
        stream.write(line + "\n")

    return write


# -- show --------------------------------------------------------------------

_DURATION = re.compile(r"^([-+]?)(\d+(?:\.\d*)?|\.\d+)\s*(s|ms|us|µs|ns)?$")
_SCALE = {"s": 1e9, "ms": 1e6, "us": 1e3, "µs": 1e3, "ns": 1.0, None: 1e9}


def parse_time(text: str, end: int) -> int:
    """A ``--since``/``--until`` value as a monotonic timestamp.

    ``@NS`` is an absolute monotonic timestamp in ns (as ``--clock
    monotonic`` prints); anything else is a time relative to ``end`` (the
    snapshot's origin: the failure, or the moment it was taken): seconds, or
    with a unit ``s``, ``ms``, ``us``, ``ns``; before the origin unsigned or
    with a minus (as relative times are printed), after it with a plus.
    """
    if not isinstance(text, str) or not text.strip():  # argparse gives [] for "--since=--"
        raise ValueError("a time is needed: seconds before the origin (e.g. 2.5) or @NS")
    text = text.strip()
    if text.startswith("@"):
        digits = text[1:].strip()
        if not digits.isdigit():
            raise ValueError(f"{text!r}: an absolute time is @ and whole nanoseconds")
        return int(digits)
    m = _DURATION.match(text)
    if not m:
        raise ValueError(
            f"{text!r}: expected seconds before the origin (e.g. 2.5, 300ms, +1ms) or @NS"
        )
    offset = round(float(m.group(2)) * _SCALE[m.group(3)])
    return end + offset if m.group(1) == "+" else end - offset


def _thread_matcher(specs: Sequence[str], snapshot: Snapshot) -> Callable[[int, str], bool]:
    """A test for ``--thread`` values: an id, a name, or a glob over names
    (or over the labels ``show`` prints, ``name[id]`` where names repeat).
    A value that matches no thread of the snapshot is a usage error."""
    labels = render.thread_labels(snapshot)

    def matches(spec: str, tid: int, name: str) -> bool:
        if spec.isdigit() and int(spec) == tid:
            return True
        return fnmatch.fnmatchcase(name, spec) or fnmatch.fnmatchcase(labels.get(tid, name), spec)

    names = dict(snapshot.threads)
    for ev in snapshot.events:
        names.setdefault(ev.thread_id, ev.thread_name)
    for spec in specs:
        if not any(matches(spec, tid, name) for tid, name in names.items()):
            listing = ", ".join(f"{name} ({tid})" for tid, name in labels.items()) or "none"
            raise CommandError(
                f"--thread {spec!r} matches no thread; threads: {listing}", EXIT_USAGE
            )
    return lambda tid, name: any(matches(spec, tid, name) for spec in specs)


def select(args: argparse.Namespace, snapshot: Snapshot) -> list[Event]:
    """The events ``show`` prints, after every filter."""
    events: Iterable[Event] = snapshot.events
    end = snapshot.origin
    if args.thread:
        thread_ok = _thread_matcher(args.thread, snapshot)
        events = [ev for ev in events if thread_ok(ev.thread_id, ev.thread_name)]
    if args.event:
        globs = args.event
        events = [ev for ev in events if any(fnmatch.fnmatchcase(ev.name, g) for g in globs)]
    bounds: dict[str, int | None] = {}
    for option in ("since", "until"):
        value = getattr(args, option)
        try:
            bounds[option] = parse_time(value, end) if value is not None else None
        except ValueError as exc:
            raise CommandError(f"{PROG} show: --{option}: {exc}", EXIT_USAGE) from None
    since, until = bounds["since"], bounds["until"]
    if since is not None:
        events = [ev for ev in events if ev.timestamp >= since]
    if until is not None:
        events = [ev for ev in events if ev.timestamp <= until]
    chosen = list(events)
    if args.tail is not None:
        chosen = chosen[-args.tail :] if args.tail else []
    return chosen


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    snapshot = load(args.file)
    if args.tree:
        return _show_tree(args, snapshot, out)
    chosen = select(args, snapshot)
    style = style_for(args.color, out)
    write = _writer(out)
    tl = render.Timeline(snapshot, style=style, clock=args.clock)
    gaps: list[render.Gap] = []
    if chosen:
        threads = {ev.thread_id for ev in chosen}
        lo, hi = chosen[0].timestamp, chosen[-1].timestamp
        gaps = [
            g
            for g in render.find_gaps(snapshot)
            if g.thread_id in threads and lo <= g.timestamp <= hi
        ]
    if not args.no_header:
        for line in render.summary(snapshot, source=args.file, style=style):
            write(line)
        count = render.format_count
        shown = f"{count(len(chosen))} of {count(len(snapshot))} events shown"
        write(f"{shown}; {tl.time_legend()}")
        write("")
    for line in tl.lines(chosen, gaps):
        write(line)
    return EXIT_OK


def _show_tree(args: argparse.Namespace, snapshot: Snapshot, out: TextIO) -> int:
    """``show --tree``: the failure view (the calls leading to the origin)."""
    if args.thread:
        _thread_matcher(args.thread, snapshot)  # a value matching nothing is an error
    write = _writer(out)
    style = style_for(args.color, out)
    if not args.no_header:
        for line in render.summary(snapshot, source=args.file, style=style):
            write(line)
        write("calls leading to the origin; time: ms relative to the origin")
        write("")
    phases = {
        key[: -len("_start_ns")]: value
        for key, value in snapshot.metadata.items()
        if isinstance(key, str) and key.endswith("_start_ns") and type(value) is int
    }
    phase = snapshot.metadata.get("phase")
    for line in tree.failure_tree(
        snapshot,
        budget=args.lines,
        phases=phases,
        phase=phase if isinstance(phase, str) else None,
        filters=tree.Filters(args.thread or (), args.event or ()),
    ):
        write(line)
    return EXIT_OK


# -- convert -----------------------------------------------------------------


def _strip_known_suffix(path: str) -> str:
    suffixes = {f.suffix for f in formats().values() if f.suffix} | {".json", ".json.gz", ".gz"}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if path.endswith(suffix) and len(path) > len(suffix):
            return path[: -len(suffix)]
    return path


def cmd_convert(args: argparse.Namespace, out: TextIO) -> int:
    fmt = get_format(args.to)
    snapshot = load(args.file)
    if args.output == "-":
        if fmt.directory:
            raise CommandError(f"{PROG} convert: {fmt.name} writes a directory; give -o DIR", 2)
        try:
            fmt.write(snapshot, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            raise
        except Exception as exc:
            raise CommandError(_write_failure(fmt.name, "stdout", exc)) from None
        return EXIT_OK
    if args.output is not None:
        target = args.output
        base = target[: -len(fmt.suffix)] if fmt.suffix and target.endswith(fmt.suffix) else target
    else:
        base = _strip_known_suffix(args.file)
    dest = Path(base + fmt.suffix)
    if dest.exists() and dest.resolve() == Path(args.file).resolve():
        raise CommandError(f"{PROG} convert: {dest} is the input file; choose another with -o", 2)
    try:
        written = write_snapshot(snapshot, base, fmt.name)
    except Exception as exc:
        raise CommandError(_write_failure(fmt.name, str(dest), exc)) from None
    out.write(f"{written}\n")
    return EXIT_OK


def _write_failure(fmt: str, dest: str, exc: BaseException) -> str:
    if isinstance(exc, FileExistsError):
        return f"cannot write {dest}: it already exists"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot write {dest}: {exc.strerror}"
    return f"writing {fmt} to {dest} failed: {type(exc).__name__}: {_one_line(exc)}"


# -- stats -------------------------------------------------------------------


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    snapshot = load(args.file)
    style = style_for(args.color, out)
    write = _writer(out)
    figures = stats.compute(snapshot, top=args.top)
    if not args.no_header:
        write(render.summary(snapshot, source=args.file, style=style)[0])
    for line in stats.render(figures, snapshot, style=style):
        write(line)
    return EXIT_OK


# -- parser ------------------------------------------------------------------


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-ringtrace")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The command's parser; format choices come from the format registry."""
    parser = _Parser(
        prog=PROG,
        description="Look at, convert and measure ringtrace snapshot files.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("file", metavar="FILE", help="a snapshot file (.json or .json.gz)")
        p.add_argument(
            "--color",
            "--colour",
            choices=("auto", "always", "never"),
            default="auto",
            help="colour the output (auto: when it is a terminal and NO_COLOR is unset)",
        )
        p.add_argument("--no-header", action="store_true", help="leave out the summary header")

    show = sub.add_parser(
        "show",
        help="print the timeline",
        description="Print the events of a snapshot, one line each, oldest first. "
        "Times are relative to the snapshot's origin (the failure, or the moment it was "
        "taken) unless --clock says otherwise.",
    )
    common(show)
    show.add_argument(
        "--thread",
        action="append",
        metavar="NAME_OR_ID",
        help="only this thread (name, glob or id); repeat for several",
    )
    show.add_argument(
        "--event",
        action="append",
        metavar="GLOB",
        help="only events whose name matches; repeatable",
    )
    show.add_argument(
        "--since",
        metavar="TIME",
        help="from TIME: seconds before the origin (2.5, 300ms, 40us; +1ms after it) "
        "or @NS (monotonic)",
    )
    show.add_argument("--until", metavar="TIME", help="up to TIME (same forms as --since)")
    show.add_argument("--tail", type=_non_negative, metavar="N", help="only the last N events")
    show.add_argument(
        "--tree",
        action="store_true",
        help="the failure view: the calls leading to the origin as a tree, one line per call",
    )
    show.add_argument(
        "--lines",
        type=_non_negative,
        default=40,
        metavar="N",
        help="with --tree: the number of lines to aim for (default 40)",
    )
    show.add_argument(
        "--clock",
        choices=("relative", "monotonic", "wall"),
        default="relative",
        help="time column: seconds relative to the origin (default), monotonic ns, or UTC",
    )
    show.set_defaults(run=cmd_show)

    names = format_names()
    described = "; ".join(
        f"{f.name}: {f.description}" if f.description else f.name for f in formats().values()
    )
    convert = sub.add_parser(
        "convert",
        help="write a snapshot in another format",
        description="Write a snapshot in another format. "
        f"Formats: {described or 'none registered'}.",
    )
    convert.add_argument("file", metavar="FILE", help="a snapshot file (.json or .json.gz)")
    convert.add_argument(
        "--to",
        required=True,
        choices=names,
        metavar="FORMAT",
        help=f"one of: {', '.join(names) or '(none registered)'}",
    )
    convert.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output path (the format's suffix is added if missing; - for stdout); "
        "default: FILE with the format's suffix",
    )
    convert.set_defaults(run=cmd_convert)

    st = sub.add_parser(
        "stats",
        help="counts, loss, frequent events, slowest spans",
        description="Per-thread counts and loss, the most frequent events and the slowest spans.",
    )
    common(st)
    st.add_argument(
        "--top",
        type=_non_negative,
        default=10,
        metavar="N",
        help="rows in the event and span tables (default 10)",
    )
    st.set_defaults(run=cmd_stats)
    return parser


def _join_negative_times(argv: Sequence[str]) -> list[str]:
    """``--since -300ms`` as ``--since=-300ms``: argparse takes ``-300ms`` for an option."""
    joined: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--since", "--until") and i + 1 < len(argv) and _DURATION.match(argv[i + 1]):
            joined.append(f"{arg}={argv[i + 1]}")
            i += 2
        else:
            joined.append(arg)
            i += 1
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0, 1 bad input, 2 bad usage)."""
    out = sys.stdout
    try:
        try:
            given = sys.argv[1:] if argv is None else argv
            args = build_parser().parse_args(_join_negative_times(given))
        except SystemExit as exc:  # --help and --version exit through argparse
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        status: int = args.run(args, out)
        out.flush()
        return status
    except CommandError as exc:
        message = _one_line(exc)
        if not message.startswith(f"{PROG}"):
            message = f"{PROG}: {message}"
        sys.stderr.write(message + "\n")
        return exc.status
    except BrokenPipeError:
        # the reader went away (``ringtrace show big.json | head``): stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug of ours: still one line, unless asked for more
        if os.environ.get("RINGTRACE_DEBUG"):
            raise
        sys.stderr.write(
            f"{PROG}: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(set RINGTRACE_DEBUG=1 for the traceback)\n"
        )
        return EXIT_BAD_INPUT
