"""Attaching a snapshot to the outputs other plugins write: pytest-html, JUnit XML.

Everything put on a report is plain data (str, int, list, dict), because
pytest-xdist serializes worker reports for the controller and aborts the run
on anything else.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path

import pytest

#: The HTML timeline is embedded in a pytest-html report up to this size; a
#: bigger one is linked only, so the report stays loadable.
MAX_EMBED_BYTES = 4 * 1024 * 1024

_JUNIT_CAPTURES_STDOUT = ("system-out", "out-err", "all")


def attach_html(
    config: pytest.Config,
    report: pytest.TestReport,
    paths: Mapping[str, Path],
    title: str,
    text: str,
) -> None:
    """Add pytest-html extras: the section text, the timeline, links to the files.

    Does nothing unless an HTML report is being written (``--html``);
    pytest-html is imported only then.
    """
    htmlpath = getattr(config.option, "htmlpath", None)
    if not htmlpath:
        return
    from pytest_html import extras

    entries = [extras.text(text, name=title)]
    timeline = paths.get("html")
    if timeline is not None and timeline.is_file() and timeline.stat().st_size <= MAX_EMBED_BYTES:
        document = timeline.read_text(encoding="utf-8")
        entries.append(
            extras.html(
                f'<iframe title="{html.escape(title)} timeline" '
                'style="width:100%;height:520px;border:1px solid #ccc" '
                f'srcdoc="{html.escape(document, quote=True)}"></iframe>'
            )
        )
    report_dir = Path(config.invocation_params.dir, htmlpath).resolve().parent
    for fmt, path in paths.items():
        entries.append(extras.url(_link(path, report_dir), name=f"{title} ({fmt})"))
    existing = getattr(report, "extras", None)
    if isinstance(existing, list):
        existing.extend(entries)
    else:
        report.extras = entries  # type: ignore[attr-defined]


def _link(path: Path, report_dir: Path) -> str:
    """``path`` relative to the HTML report (so the pair can be moved together)."""
    try:
        return Path(os.path.relpath(path, report_dir)).as_posix()
    except ValueError:  # another drive on Windows
        return path.as_uri()


def attach_junit(
    config: pytest.Config,
    item: pytest.Item,
    report: pytest.TestReport,
    paths: Mapping[str, Path],
) -> None:
    """A ``ringtrace_<format>`` property per file, and ``[[ATTACHMENT|path]]`` lines.

    junitxml writes properties and system-out from the teardown report,
    which is built from the item: for a setup or call snapshot the item gets
    them; a teardown report already exists, so it gets them itself. The
    attachment lines (picked up by Jenkins, GitLab, Azure) are added only
    when ``junit_logging`` writes system-out.
    """
    if not getattr(config.option, "xmlpath", None) or not paths:
        return
    properties = [(f"ringtrace_{fmt}", str(path)) for fmt, path in paths.items()]
    report.user_properties.extend(properties)
    if report.when != "teardown":
        item.user_properties.extend(properties)
    if config.getini("junit_logging") not in _JUNIT_CAPTURES_STDOUT:
        return
    text = "".join(f"[[ATTACHMENT|{path}]]\n" for path in paths.values())
    if report.when == "teardown":
        report.sections.append(("Captured stdout teardown", text))
        return
    item.add_report_section(report.when, "stdout", text)
    if not config.getini("junit_log_passing_tests"):
        # junitxml then writes system-out from this very report
        report.sections.append((f"Captured stdout {report.when}", text))
