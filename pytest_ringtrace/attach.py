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


def timeline_frame(title: str, document: str, path: Path) -> str:
    """An iframe holding the timeline ``document``, as tall as its lanes need
    (up to a screen): estimated here, set exactly by the page's own script
    (``data-ringtrace-fit``), not a fixed height with half of it empty."""
    from instrument.formats.html import frame_height

    try:
        height = frame_height(path)
    except (OSError, ValueError, KeyError, TypeError, IndexError):  # an estimate only
        height = 400
    return (
        f'<iframe title="{html.escape(title)} timeline" data-ringtrace-fit '
        f'style="width:100%;height:{height}px;border:1px solid #ccc" '
        f'srcdoc="{html.escape(document, quote=True)}"></iframe>'
    )


def attach_html(
    config: pytest.Config,
    report: pytest.TestReport,
    paths: Mapping[str, Path],
    title: str,
    text: str,
    *,
    redacting: bool = True,
) -> None:
    """Add pytest-html extras: the section text, the timeline, links to the files.

    Does nothing unless an HTML report is being written (``--html``);
    pytest-html is imported only then. pytest-html writes its report
    readable by everyone (0644), unlike our 0600 files: with redaction off
    (``redacting`` false), nothing of the snapshot is embedded, only links.
    """
    htmlpath = getattr(config.option, "htmlpath", None)
    if not htmlpath:
        return
    from pytest_html import extras

    entries = [extras.text(text, name=title)] if redacting else []
    timeline = paths.get("html") if redacting else None
    if timeline is not None and timeline.is_file() and timeline.stat().st_size <= MAX_EMBED_BYTES:
        document = timeline.read_text(encoding="utf-8")
        entries.append(extras.html(timeline_frame(title, document, timeline)))
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


#: junit_family values whose schema allows ``<properties>`` in a test case.
_FAMILIES_WITH_TESTCASE_PROPERTIES = ("xunit1", "legacy")


def junit_path(config: pytest.Config, path: Path | str) -> str:
    """``path`` as JUnit XML names it: absolute, or relative to the rootdir
    (``--ringtrace-junit-paths=rootdir``: GitLab resolves attachments against
    the project directory)."""
    from .state import SETTINGS

    settings = config.stash.get(SETTINGS, None)
    if settings is not None and settings.junit_paths == "rootdir":
        try:
            return Path(os.path.relpath(path, config.rootpath)).as_posix()
        except ValueError:  # another drive on Windows
            return str(path)
    return str(path)


def attach_junit(
    config: pytest.Config,
    item: pytest.Item,
    report: pytest.TestReport,
    paths: Mapping[str, Path],
) -> None:
    """Name the snapshot files in JUnit XML, keeping it valid for its ``junit_family``.

    - ``[[ATTACHMENT|path]]`` lines in the test case's system-out (Jenkins
      junit-attachments, GitLab, Azure pick them up), when ``junit_logging``
      writes system-out;
    - a ``ringtrace_<format>`` property per file only for families whose
      schema allows test-case properties (xunit1, legacy): the default,
      xunit2, does not. Without either, the controller adds test-suite
      properties instead (:func:`add_suite_properties`), which xunit2 allows.

    junitxml writes properties and system-out from the teardown report,
    which is built from the item: for a setup or call snapshot the item gets
    them; a teardown report already exists, so it gets them itself.
    """
    if not getattr(config.option, "xmlpath", None) or not paths:
        return
    if config.getini("junit_family") in _FAMILIES_WITH_TESTCASE_PROPERTIES:
        properties = [(f"ringtrace_{fmt}", junit_path(config, p)) for fmt, p in paths.items()]
        report.user_properties.extend(properties)
        if report.when != "teardown":
            item.user_properties.extend(properties)
    if config.getini("junit_logging") not in _JUNIT_CAPTURES_STDOUT:
        return
    text = "".join(f"[[ATTACHMENT|{junit_path(config, p)}]]\n" for p in paths.values())
    if report.when == "teardown":
        report.sections.append(("Captured stdout teardown", text))
        return
    item.add_report_section(report.when, "stdout", text)
    if not config.getini("junit_log_passing_tests"):
        # junitxml then writes system-out from this very report
        report.sections.append((f"Captured stdout {report.when}", text))


def add_suite_properties(config: pytest.Config, nodeid: str, info: Mapping[str, object]) -> None:
    """On the process writing the XML: ``ringtrace:<test id>:<phase>:<format>``
    test-suite properties, where a test case can name its files no other
    valid way (xunit2 without system-out)."""
    if config.getini("junit_family") in _FAMILIES_WITH_TESTCASE_PROPERTIES:
        return
    if config.getini("junit_logging") in _JUNIT_CAPTURES_STDOUT:
        return
    try:
        from _pytest.junitxml import xml_key  # what record_testsuite_property uses
    except ImportError:
        return
    xml = config.stash.get(xml_key, None)
    paths = info.get("paths")
    if xml is None or not isinstance(paths, dict):
        return
    for fmt, path in paths.items():
        xml.add_global_property(
            f"ringtrace:{nodeid}:{info.get('phase')}:{fmt}", junit_path(config, path)
        )
