"""An example ringtrace plugin: one of each extension point.

* a **context provider**: ``request_id``, read from a ``ContextVar`` your
  web framework (or your test) sets at the start of each request;
* a **sink**: every snapshot file written is copied into the folder named by
  the ``RINGTRACE_COPY_DIR`` environment variable (unset: does nothing);
* a **format**: ``csv``, one row per event, for a spreadsheet.

Installed (``pip install .`` beside this file's pyproject.toml) the kit finds
it through the ``ringtrace`` entry-point group. Without installing, register
it in code: ``instrument.plugins.register(ringtrace_request_id)``.

Use the context by naming it in a channel::

    import instrument
    from ringtrace_request_id import request_id

    instrument.start([instrument.Channel(contexts=("thread", "request_id"))])
    token = request_id.set("req-42")      # at the start of a request
    instrument.event("order.created", order=7)
    request_id.reset(token)               # at its end

Each hook is a plain function marked with ``@hookimpl``; implement only the
ones you need. If one raises, ringtrace names this plugin in a warning and
goes on: recording, the snapshot and the test outcome are never affected.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import IO

from instrument.formats import Format
from instrument.model import Snapshot
from instrument.plugins import hookimpl

#: The current request's id; ``None`` outside a request.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


@hookimpl
def ringtrace_contexts() -> dict[str, Callable[[], object]]:
    # The provider runs for every event of a channel that lists
    # "request_id": ContextVar.get is a C call, about as cheap as it gets.
    return {"request_id": request_id.get}


@hookimpl
def ringtrace_snapshot_written(path: Path) -> None:
    # A sink may take any of the hook's arguments: snapshot, path, format.
    folder = os.environ.get("RINGTRACE_COPY_DIR")
    if not folder:
        return
    dest = Path(folder) / path.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():  # a directory format (CTF)
        shutil.copytree(path, dest, dirs_exist_ok=True)
    else:
        shutil.copy2(path, dest)


COLUMNS = ("timestamp_ns", "thread", "channel", "kind", "name", "request_id", "fields")


def write_csv(snapshot: Snapshot, out: IO[bytes]) -> None:
    """One row per event; ``fields`` as JSON. ``out`` is a binary file."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    rows = csv.writer(text)
    rows.writerow(COLUMNS)
    for ev in snapshot.events:
        rows.writerow(
            (
                ev.timestamp,
                ev.thread_name,
                ev.channel,
                ev.kind,
                ev.name,
                ev.context.get("request_id", ""),
                json.dumps(ev.fields, sort_keys=True, default=repr),
            )
        )
    text.flush()
    text.detach()  # leave ``out`` open: the kit closes it


@hookimpl
def ringtrace_formats() -> list[Format]:
    return [Format("csv", ".csv", write_csv, description="one row per event (spreadsheets)")]
