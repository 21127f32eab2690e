"""Make the README's pictures: the HTML timelines of the examples' failures.

Runs an example test that fails on purpose with ``--ringtrace``, opens the
timeline the plugin wrote in headless Chromium, clicks what explains the
failure (its card opens below the lanes), and saves the screenshot::

    python docs/make_timeline_figure.py [--example shop|invoice|settings|all]

* ``shop`` (docs/timeline.png): two workers sell the last lamp twice
  (examples/test_shop.py); the later of the two stock checks is clicked: it
  read the same level of 1 as the other.
* ``invoice`` (docs/invoice_timeline.png): a private helper returns a wrong
  value (examples/test_invoice.py); the helper's span is clicked.
* ``settings`` (docs/settings_timeline.png): a library swallows an
  exception (examples/test_settings.py); the swallowed exception (or the
  call that raised it) is clicked.

Needs Chromium (Debian package ``chromium``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from instrument.formats.html import read_data

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1400, 680)
#: Per example: the test that fails, the picture, and the names to click,
#: the first one present in the snapshot (events, else spans).
EXAMPLES = {
    "shop": (
        "test_shop.py::test_last_item_is_sold_once",
        "timeline.png",
        ["inventory.checked"],
    ),
    "invoice": (
        "test_invoice.py::test_coupon_takes_its_percentage_off",
        "invoice_timeline.png",
        [
            "invoice._helpers._coupon_percent",
            "invoice._helpers.apply_coupon",
            "invoice.invoice_total",
        ],
    ),
    "settings": (
        "test_settings.py::test_timeout_is_read",
        "settings_timeline.png",
        ["exception.handled", "confkit.loading.convert"],
    ),
}

# Runs in the page once it is drawn: click the later of the two stock checks
# (its fields open below the lanes: it read the level of 1 that the other
# worker had read and was about to use), as a reader would.
PROBE = """
<script>
(function () {
  window.ringtraceTimeline.zoomTo(%d, %d);  // the test's events, not its setup
  var p = window.ringtraceTimeline.%s(%d), main = document.getElementById("main");
  var at = {clientX: p.x, clientY: p.y, bubbles: true, button: 0};
  main.dispatchEvent(new MouseEvent("mousedown", at));
  main.dispatchEvent(new MouseEvent("mouseup", at));
})();
</script>
"""


def record(workdir: Path, test: str) -> Path:
    """Run the failing example test; return the timeline the plugin wrote."""
    snapshots = workdir / "snapshots"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--ringtrace",
            f"--ringtrace-dir={snapshots}",
            "--ringtrace-formats=json,html",
            "-p",
            "no:cacheprovider",
            "-q",
            test,
        ],
        cwd=ROOT / "examples",
        check=False,  # the test fails on purpose
        capture_output=True,
    )
    pages = sorted(snapshots.rglob("*.html"))  # in the session's own directory
    if not pages:
        raise SystemExit(f"the example test wrote no timeline in {snapshots}")
    return pages[0]


def probe_page(page: Path, wanted: list[str]) -> Path:
    """A copy of ``page`` that opens the details of the first of ``wanted``
    found: the last point event of that name, else the span that raised (or
    the last one) of that name."""
    data = read_data(page)
    names = data["names"]
    for name in wanted:
        events = [
            i
            for i, ev in enumerate(data["events"])
            if names[ev[2]] == name and data["kinds"][ev[1]] == "event"
        ]
        if len(events) >= (2 if name == "inventory.checked" else 1):
            what, index = "eventPoint", events[-1]
            break
        spans = [i for i, sp in enumerate(data["spans"]) if names[sp[7]] == name]
        if spans:
            raised = [i for i in spans if data["spans"][i][6] & 4]  # ERROR
            what, index = "spanPoint", (raised or spans)[-1]
            break
    else:
        raise SystemExit(f"the snapshot holds none of {wanted}")
    out = page.with_name("figure.html")
    text = page.read_text("utf-8")
    times = [ev[0] for ev in data["events"]]
    first, last = min(times), max(max(times), 0)
    margin = max((last - first) // 20, 1000)
    probe = PROBE % (first - margin, last + margin, what, index)
    out.write_text(text.replace("</body>", probe + "</body>"), "utf-8")
    return out


def screenshot(page: Path, png: Path, workdir: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={workdir / 'profile'}",
            f"--screenshot={png}",
            f"--window-size={SIZE[0]},{SIZE[1]}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", choices=[*EXAMPLES, "all"], default="all")
    args = parser.parse_args()
    chosen = list(EXAMPLES) if args.example == "all" else [args.example]
    for example in chosen:
        test, picture, wanted = EXAMPLES[example]
        out = ROOT / "docs" / picture
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            page = record(workdir, test)
            screenshot(probe_page(page, wanted), out, workdir)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
