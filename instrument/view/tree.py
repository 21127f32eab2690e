"""The failure view: the calls that led to a failure, as an indented tree.

A flat list of the last events answers "what happened last", which is
usually cleanup. This view answers "what led to the failure": the calls of
the failing thread (each asyncio task apart), one line per call with its
entry and exit folded together (arguments, return value or exception,
duration), nested as they ran; the failure marked where it happened; the
other threads' calls that overlapped; events of other test phases (setup,
teardown) apart. It fits a line budget and says what it left out.

Pieces:

* :func:`build_lanes` pairs entries and exits into :class:`Call` trees, one
  forest per lane (a thread, or an asyncio task on a thread: entries and
  exits of interleaved tasks pair within their task).
* :class:`FailureView` renders them; ``ringtrace show --tree`` and the pytest
  plugin's terminal section both use it.

Times are relative to :attr:`Snapshot.origin` (the failure in pytest).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from instrument.model import SUSPENDED, Activity, Event, Snapshot, activity, span_start

from .render import describe_fields, format_duration, format_ran, format_value, printable

#: The event the pytest plugin records for the failing test's own exception.
FAILURE = "test.failure"
#: An exception raised and caught inside traced code.
HANDLED = "exception.handled"

#: Runs of this many similar siblings or more are collapsed.
RUN = 4
#: Exit fields shown in their own way, not as ``key=value``.
_EXIT_KEYS = frozenset({"duration_ns", "retval", "exception", "message"})
_HIDDEN_CONTEXT = frozenset({"pid", "thread_id", "thread_name", "task"})

LaneKey = tuple[int, str, str | None]  # thread id, thread name, task


@dataclass(eq=False, slots=True)
class Call:
    """One traced call or span: its entry and exit events (either may be
    missing: older than the rings, or still running), what ran inside, and
    its suspensions and resumptions (``marks``: ``(timestamp, kind)``, for
    a generator or coroutine)."""

    name: str
    entry: Event | None = None
    exit: Event | None = None
    children: list[Node] = field(default_factory=list)
    marks: list[tuple[int, str]] = field(default_factory=list)

    def activity(self, taken_at: int) -> Activity | None:
        """When it ran and when it waited (``None`` if it never suspended;
        see :func:`instrument.model.activity`); a call still open ends at
        ``taken_at``, the snapshot."""
        if not self.marks:
            return None
        start = self.start
        end = self.end if self.end is not None else max(taken_at, start)
        return activity(start, end, self.marks, self.entry is not None)

    @property
    def start(self) -> int:
        """Entry time, or the exit time minus the recorded duration."""
        if self.entry is not None:
            return self.entry.timestamp
        assert self.exit is not None
        duration = self.exit.fields.get("duration_ns")
        ts = self.exit.timestamp
        return ts - duration if isinstance(duration, int) and duration >= 0 else ts

    @property
    def end(self) -> int | None:
        """Exit time; ``None`` while still running at the snapshot."""
        return None if self.exit is None else self.exit.timestamp

    @property
    def raised(self) -> bool:
        """Whether the call ended with an exception."""
        return self.exit is not None and self.exit.fields.get("exception") is not None

    def calls(self) -> int:
        """Calls nested inside this one, at any depth."""
        return sum(1 + c.calls() for c in self.children if isinstance(c, Call))

    def notable(self) -> bool:
        """Whether it raised, or holds the failure, a swallowed exception or a raise."""
        if self.raised:
            return True
        for child in self.children:
            if isinstance(child, Call):
                if child.notable():
                    return True
            elif child.name in (FAILURE, HANDLED):
                return True
        return False


Node = Call | Event


def start_of(node: Node) -> int:
    """When a node began."""
    return node.start if isinstance(node, Call) else node.timestamp


def lane_of(ev: Event) -> LaneKey:
    """The lane of an event: its thread, and its asyncio task if any."""
    task = ev.context.get("task") if ev.context else None
    return (ev.thread_id, ev.thread_name, task if isinstance(task, str) else None)


def build_lanes(events: Iterable[Event]) -> dict[LaneKey, list[Node]]:
    """Entries and exits paired into call trees, per lane, in time order.

    An exit closes the open call of its name on its lane that it belongs to
    (by its entry timestamp, see ``instrument.model.span_start``); calls
    opened inside it whose exits are missing are closed with it (shown
    without an exit). An exit whose entry is not in the snapshot becomes a
    call without an entry, started ``duration_ns`` before its exit.
    Suspensions and resumptions go to their call's ``marks``.
    """
    roots: dict[LaneKey, list[Node]] = {}
    stacks: dict[LaneKey, list[Call]] = {}
    # Runs of events on one lane are the rule: the lane's forest and stack
    # are looked up again only when the lane changes (a ring of 64k events
    # is paired in one pass, for every failure shown).
    lane: LaneKey | None = None
    forest: list[Node] = []
    stack: list[Call] = []
    marks: dict[tuple[str, int], list[tuple[int, str]]] = {}
    for ev in events:
        key = lane_of(ev)
        if key != lane:
            lane = key
            forest = roots.setdefault(key, [])
            stack = stacks.setdefault(key, [])
        kind = ev.kind
        if kind == "entry":
            call = Call(ev.name, entry=ev)
            (stack[-1].children if stack else forest).append(call)
            stack.append(call)
        elif kind == "exit":
            # its own entry: the same name, begun duration_ns before it
            # (instrument.model.span_start), not merely the innermost
            start = span_start(ev)
            name = ev.name
            found = -1
            for i in range(len(stack) - 1, -1, -1):
                entry = stack[i].entry
                if stack[i].name == name and (
                    start is None or entry is None or entry.timestamp == start
                ):
                    found = i
                    break
            if found >= 0:
                stack[found].exit = ev
                if start is None:  # calls opened inside it lost their exits
                    del stack[found:]
                else:  # others still open (interleaved coroutines) stay open
                    del stack[found]
            else:
                (stack[-1].children if stack else forest).append(Call(name, exit=ev))
        elif kind == "suspend" or kind == "resume":
            # a coroutine's pauses: they tell when its call ran, not a line of their own
            start = span_start(ev)
            if start is not None:
                marks.setdefault((ev.name, start), []).append((ev.timestamp, kind))
        else:
            (stack[-1].children if stack else forest).append(ev)
    if marks:  # only a ring with suspensions pays for this walk
        todo: list[Node] = [node for nodes in roots.values() for node in nodes]
        while todo:
            node = todo.pop()
            if isinstance(node, Call):
                held = marks.get((node.name, node.start))
                if held:
                    node.marks = held
                todo += node.children
    return roots


def _shorten(where: str) -> str:
    """A ``path[:line]`` relative to the working directory when it is below it."""
    try:
        rel = os.path.relpath(where)
    except ValueError:
        return where
    return where if rel.startswith("..") else rel


def failure_text(fields: dict[str, object]) -> str:
    """``>>> FAILURE at file:line: Type: first line of the message``."""
    where = f" at {_shorten(str(fields.get('where')))}:" if fields.get("where") else ""
    message = str(fields.get("message") or "").strip()
    first = message.splitlines()[0] if message else ""
    more = " …" if "\n" in message else ""
    kind = fields.get("type")
    body = f"{kind}: {first}{more}" if first else f"{kind}"
    return printable(f">>> FAILURE{where} {body}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


@dataclass
class Filters:
    """The thread and name filters of ``ringtrace show``: globs over thread
    names (or thread ids) and over event names."""

    threads: Sequence[str] = ()
    names: Sequence[str] = ()

    def thread_ok(self, thread_id: int, name: str) -> bool:
        return not self.threads or any(
            (spec.isdigit() and int(spec) == thread_id) or fnmatch.fnmatchcase(name, spec)
            for spec in self.threads
        )

    def name_ok(self, name: str) -> bool:
        return not self.names or any(fnmatch.fnmatchcase(name, g) for g in self.names)


class _TooLong(Exception):
    """A bounded render made more lines than its budget (see ``FailureView.fit``)."""


class FailureView:
    """Renders a snapshot as the failure view (see the module docstring).

    ``phases`` maps a test phase (``setup``, ``call``, ``teardown``) to the
    monotonic time it started; ``phase`` is the phase that failed: its
    events make the tree, the other phases' events are summed up apart.
    ``budget`` is the number of lines to aim for; ``width`` the longest line.
    """

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        budget: int = 40,
        width: int = 160,
        phases: dict[str, int] | None = None,
        phase: str | None = None,
        filters: Filters | None = None,
        sources: bool = True,
    ):
        self.snapshot = snapshot
        self.origin = snapshot.origin
        self.budget = max(budget, 8)
        self.width = max(width, 60)
        self.phases = dict(sorted((phases or {}).items(), key=lambda kv: kv[1]))
        self.phase = phase
        self.filters = filters or Filters()
        self.sources = snapshot.sources if sources else {}
        self.left_out: list[str] = []
        #: Lines :meth:`render` may still make (``None``: no bound): a
        #: render that cannot fit stops at once instead of making every line.
        self._room: int | None = None
        from .processes import stream_pids

        self.pids = stream_pids(snapshot)  # child processes' threads: [pid] name

    # -- text of one node ------------------------------------------------------

    def time(self, ts: int) -> str:
        return f"{(ts - self.origin) / 1e6:+.3f} ms".rjust(12)

    def call_text(self, call: Call, room: int | None = None, more: str = "") -> str:
        """One call as text: ``name(args) -> value  [duration]`` (``more``
        appended). Within ``room`` characters the arguments are cut first,
        so that the return value or exception and the duration stay."""
        name = printable(call.name)
        tail = self.exit_text(call) + more
        if call.entry is None:
            return f"{name}(?){tail}"
        args = ", ".join(f"{printable(k)}={format_value(v)}" for k, v in call.entry.fields.items())
        if room is not None:
            args = _cut(args, max(room - len(name) - 2 - len(tail), 12))
        return f"{name}({args}){tail}"

    def exit_text(self, call: Call) -> str:
        """What follows a call's arguments: its return value or exception,
        other exit fields, its duration."""
        ex = call.exit
        act = call.activity(self.snapshot.taken_at)
        if ex is None:
            if act is not None and act.stretches[-1][2] == SUSPENDED:
                return "  … no exit: suspended at the snapshot" + self.ran_text(call, act)
            return "  … no exit: still running at the snapshot" + self.ran_text(call, act)
        fields = ex.fields
        text = ""
        if fields.get("exception") is not None:
            message = fields.get("message")
            exc = printable(str(fields["exception"]))
            text += f"  !! raised {exc}: {format_value(message)}" if message else f"  !! {exc}"
        elif "retval" in fields:
            text += f" -> {_cut(format_value(fields['retval']), 60)}"
        extra = [
            f"{printable(k)}={format_value(v)}" for k, v in fields.items() if k not in _EXIT_KEYS
        ]
        if extra:
            text += "  " + " ".join(extra)
        duration = fields.get("duration_ns")
        if isinstance(duration, int):
            text += f"  [{format_duration(duration)}]"
        text += self.ran_text(call, act)
        if call.entry is None:
            text += "  (entry older than the snapshot)"
        return text

    def ran_text(self, call: Call, act: Activity | None) -> str:
        """``  (ran X of Y, suspended N times)`` for a call that suspended."""
        if act is None:
            return ""
        wall = act.stretches[-1][1] - act.stretches[0][0]
        return f"  ({format_ran(act.ran_ns, wall, act.suspensions, act.unknown_ns)})"

    def event_text(self, ev: Event) -> str:
        f = ev.fields
        if ev.name == FAILURE:
            return failure_text(f)
        if ev.name == HANDLED:
            where = f" at {printable(_shorten(str(f.get('where'))))}" if f.get("where") else ""
            func = f" in {printable(str(f.get('function')))}" if f.get("function") else ""
            return (
                f"!! swallowed {printable(str(f.get('type')))}: "
                f"{format_value(f.get('message'))}{where}{func}"
            )
        if ev.name in ("log", "warning"):  # the logging bridge's events, as log lines
            return f"* {printable(ev.name)} {describe_fields(ev)}"
        detail = " ".join(f"{printable(k)}={format_value(v)}" for k, v in f.items())
        ctx = " ".join(
            f"[{printable(k)}={format_value(v)}]"
            for k, v in ev.context.items()
            if k not in _HIDDEN_CONTEXT and v is not None
        )
        return " ".join(p for p in (f"* {printable(ev.name)}", detail, ctx) if p)

    def line(self, ts: int, depth: int, text: str, name: str | None = None) -> str:
        if self._room is not None:
            self._room -= 1
            if self._room < 0:
                raise _TooLong
        head = f"{self.time(ts)}  {'  ' * depth}"
        body = _cut(text, self.width - len(head))
        where = self.sources.get(name) if name else None
        if where:
            tail = f"  @ {printable(_shorten(where))}"
            if len(head) + len(body) + len(tail) <= self.width:
                body += tail
        return head + body

    # -- trees -----------------------------------------------------------------

    def render(self, nodes: Sequence[Node], depth: int, max_depth: int) -> list[str]:
        """Lines for ``nodes`` at ``depth``: runs of similar siblings collapsed,
        calls below ``max_depth`` folded unless notable."""
        out: list[str] = []
        i = 0
        while i < len(nodes):
            node = nodes[i]
            j = i + 1
            kind = type(node)
            while j < len(nodes) and type(nodes[j]) is kind and nodes[j].name == node.name:
                j += 1
            run = nodes[i:j]
            if len(run) >= RUN and node.name not in (FAILURE, HANDLED):
                out.extend(self.one(run[0], depth, max_depth))
                hidden: list[Node] = []
                for middle in run[1:-1]:
                    if isinstance(middle, Call) and middle.notable():
                        out.extend(self.summary(hidden, depth))
                        hidden = []
                        out.extend(self.one(middle, depth, max_depth))
                    else:
                        hidden.append(middle)
                out.extend(self.summary(hidden, depth))
                out.extend(self.one(run[-1], depth, max_depth))
            else:
                for item in run:
                    out.extend(self.one(item, depth, max_depth))
            i = j
        return out

    def summary(self, hidden: list[Node], depth: int) -> list[str]:
        if not hidden:
            return []
        first = hidden[0]
        name = printable(first.name)
        if isinstance(first, Call):
            durations = [
                d
                for c in hidden
                if isinstance(c, Call) and c.exit is not None
                for d in [c.exit.fields.get("duration_ns")]
                if isinstance(d, int)
            ]
            spread = (
                f" ({format_duration(min(durations))} to {format_duration(max(durations))} each)"
                if durations
                else ""
            )
            what = f"… {len(hidden):,} more calls to {name}{spread}"
        else:
            what = f"… {len(hidden):,} more {name} events"
        return [self.line(start_of(first), depth, what)]

    def one(self, node: Node, depth: int, max_depth: int) -> list[str]:
        if not isinstance(node, Call):
            return [self.line(node.timestamp, depth, self.event_text(node))]
        inner = node.children
        expand = bool(inner) and (depth < max_depth or node.notable())
        more = ""
        if inner and not expand:
            n = node.calls()
            more = f"  (+{n:,} calls inside)" if n else f"  (+{len(inner):,} events inside)"
        room = self.width - len(self.time(node.start)) - 2 - 2 * depth
        text = self.call_text(node, room, more)
        lines = [self.line(node.start, depth, text, node.name)]
        if expand:
            lines.extend(self.render(inner, depth + 1, max_depth))
        return lines

    def fit(self, roots: Sequence[Node], budget: int, what: str) -> list[str]:
        """The roots' lines within ``budget``: deep calls folded first, then
        the earliest roots left out (and said so)."""
        # Each try stops at the budget's line, so a ring of 64k calls costs
        # a few budgets of lines, not one line per call per depth tried.
        max_depth = _depth(roots)
        while True:
            lines = self._within(roots, max_depth, budget)
            if lines is not None:
                return lines
            if max_depth == 0:
                break
            max_depth -= 1
        kept: list[list[str]] = []
        used = 1
        for root in reversed(roots):
            if kept:
                chunk = self._within([root], max_depth, budget - used)
                if chunk is None:
                    break
            else:  # the latest root is shown, its last lines if need be
                chunk = self.render([root], 0, max_depth)[-(budget - 1) :]
            kept.append(chunk)
            used += len(chunk)
        left = len(roots) - len(kept)
        out: list[str] = []
        if left:
            out.append(f"{'':12}  … {left:,} earlier {what} left out")
        for chunk in reversed(kept):
            out.extend(chunk)
        return out

    def _within(self, roots: Sequence[Node], max_depth: int, budget: int) -> list[str] | None:
        """The roots' lines down to ``max_depth``, or ``None`` past ``budget``."""
        self._room = budget
        try:
            return self.render(roots, 0, max_depth)
        except _TooLong:
            return None
        finally:
            self._room = None

    # -- the whole view ----------------------------------------------------------

    def phase_of(self, ts: int) -> str | None:
        found = None
        for name, start in self.phases.items():
            if ts >= start:
                found = name
        return found

    def lines(self) -> list[str]:
        snap = self.snapshot
        flt = self.filters
        failure = next((ev for ev in reversed(snap.events) if ev.name == FAILURE), None)
        events = (
            [
                ev
                for ev in snap.events
                if ev.name == FAILURE
                or (flt.thread_ok(ev.thread_id, ev.thread_name) and flt.name_ok(ev.name))
            ]
            if flt.threads or flt.names
            else list(snap.events)
        )
        shown_phase = self.phase
        apart: dict[str, list[Event]] = {}
        if self.phases and shown_phase is not None:
            mine = []
            for ev in events:
                p = self.phase_of(ev.timestamp)
                if p is None or p == shown_phase or ev.name == FAILURE:
                    mine.append(ev)
                else:
                    apart.setdefault(p, []).append(ev)
            events = mine
        after = [ev for ev in events if ev.timestamp > self.origin and ev.name != FAILURE]
        before = [ev for ev in events if ev.timestamp <= self.origin or ev.name == FAILURE]
        lanes = build_lanes(before)
        if failure is not None:
            thread = (failure.thread_id, failure.thread_name)
        elif before:
            thread = (before[-1].thread_id, before[-1].thread_name)
        else:
            thread = None
        mine_keys = [k for k in lanes if thread is not None and k[:2] == thread]
        mine_keys.sort(key=lambda k: (k[2] is not None, k[2] or ""))
        others = [k for k in lanes if k not in mine_keys]
        out: list[str] = []
        budget = self.budget - 2 * len(apart) - (1 if after else 0)
        own_share = budget if not others else max(budget * 3 // 5, 8)
        # The failing call: the root call of the failing thread that was open
        # at the failure. Other threads are shown while it ran; without one
        # (the test's own code is not traced), over the whole window.
        window_start = -(1 << 62)
        for key in mine_keys:
            roots = lanes[key]
            if not roots:
                continue
            label = _lane_label(key, self.pids)
            failing = failure is not None and key[2] is None
            out.append(f"{label}{' (failing)' if failing else ''}:")
            share = max(own_share // max(len(mine_keys), 1) - 1, 4)
            out.extend(self.fit(roots, share, f"calls on {label}"))
            if failing:
                for root in roots:
                    if isinstance(root, Call) and failure is not None and _holds(root, failure):
                        window_start = root.start
        left = max(self.budget - len(out) - 2 * len(apart) - (1 if after else 0), 6)
        overlapping = []
        for key in others:
            roots = [r for r in lanes[key] if _end_of(r) >= window_start]
            if roots:
                overlapping.append((key, roots))
        for n, (key, roots) in enumerate(overlapping):
            share = max(left // (len(overlapping) - n) - 1, 3)
            label = _lane_label(key, self.pids)
            during = "the failing call" if window_start > -(1 << 62) else "the test"
            out.append(f"{label} (during {during}):")
            chunk = self.fit(roots, share, f"calls on {label}")
            out.extend(chunk)
            left -= len(chunk) + 1
        hidden_lanes = len(others) - len(overlapping)
        if hidden_lanes:
            self.left_out.append(
                f"{hidden_lanes} other thread(s)/task(s) whose events ended before the failing call"
            )
        for name, evs in apart.items():
            out.append(f"{name} (apart from the {shown_phase}): {_describe_events(evs)}")
        if after:
            out.append(f"after the failure: {_describe_events(after)}")
        return out


def _holds(call: Call, ev: Event) -> bool:
    """Whether ``ev`` is inside ``call``'s tree."""
    return any(
        child is ev or (isinstance(child, Call) and _holds(child, ev)) for child in call.children
    )


def _depth(nodes: Sequence[Node]) -> int:
    """How deep calls nest in ``nodes`` (0: no call has anything inside)."""
    deepest = 0
    todo: list[tuple[Sequence[Node], int]] = [(nodes, 1)]
    while todo:  # one pass over the nodes, without a Python call per node
        level, depth = todo.pop()
        for node in level:
            if type(node) is Call and node.children:
                deepest = max(deepest, depth)
                todo.append((node.children, depth + 1))
    return deepest


def _end_of(node: Node) -> int:
    if isinstance(node, Call):
        end = node.end
        return end if end is not None else 1 << 62
    return node.timestamp


def _lane_label(key: LaneKey, pids: dict[int, int] | None = None) -> str:
    tid, name, task = key
    pid = (pids or {}).get(tid)
    label = printable(name if pid is None else f"[{pid}] {name}")
    return f"{label} task {printable(task)}" if task else label


def _describe_events(events: Sequence[Event]) -> str:
    """``N events on K threads: the most frequent names``, one line."""
    threads = {(ev.thread_id, ev.thread_name) for ev in events}
    counts: dict[str, int] = {}
    for ev in events:
        if ev.kind != "exit":
            counts[ev.name] = counts.get(ev.name, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    names = ", ".join(f"{printable(n)} x{c}" if c > 1 else printable(n) for n, c in top)
    more = "…" if len(counts) > 3 else ""
    return (
        f"{len(events):,} event{'s' if len(events) != 1 else ''} on {len(threads)} "
        f"thread{'s' if len(threads) != 1 else ''} ({names}{more})"
    )


def failure_tree(
    snapshot: Snapshot,
    *,
    budget: int = 40,
    width: int = 160,
    phases: dict[str, int] | None = None,
    phase: str | None = None,
    filters: Filters | None = None,
) -> list[str]:
    """The failure view of ``snapshot`` as lines (see :class:`FailureView`)."""
    view = FailureView(
        snapshot, budget=budget, width=width, phases=phases, phase=phase, filters=filters
    )
    lines = view.lines()
    return lines + [f"left out: {note}" for note in view.left_out]
