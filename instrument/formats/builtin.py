"""The built-in formats, registered through the same hook as any plugin."""

from __future__ import annotations

from ..plugins import hookimpl
from . import Format, ctf, html, json_format, perfetto


@hookimpl
def ringtrace_formats() -> list[Format]:
    formats: list[Format] = []
    formats.extend(json_format.FORMATS)
    formats.extend(perfetto.FORMATS)
    formats.extend(html.FORMATS)
    formats.extend(ctf.FORMATS)
    # Each built-in format module defines FORMATS (a list of Format).
    return formats
