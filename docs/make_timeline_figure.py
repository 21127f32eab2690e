"""Make docs/timeline.png: the HTML timeline of the example shop's failure.

Runs the example test that fails on purpose (two workers sell the last lamp
twice, see examples/test_shop.py) with ``--ringtrace``, opens the timeline
the plugin wrote in headless Chromium, clicks the later of the two workers'
stock checks (its fields show it read the same level of 1 as the other),
and saves the screenshot::

    python docs/make_timeline_figure.py [--out docs/timeline.png]

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
TEST = "test_shop.py::test_last_item_is_sold_once"
SIZE = (1400, 620)

# Runs in the page once it is drawn: click the later of the two stock checks
# (its fields open below the lanes: it read the level of 1 that the other
# worker had read and was about to use), as a reader would.
PROBE = """
<script>
(function () {
  var p = window.ringtraceTimeline.eventPoint(%d), main = document.getElementById("main");
  var at = {clientX: p.x, clientY: p.y, bubbles: true, button: 0};
  main.dispatchEvent(new MouseEvent("mousedown", at));
  main.dispatchEvent(new MouseEvent("mouseup", at));
})();
</script>
"""


def record(workdir: Path) -> Path:
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
            TEST,
        ],
        cwd=ROOT / "examples",
        check=False,  # the test fails on purpose
        capture_output=True,
    )
    pages = sorted(snapshots.glob("*.html"))
    if not pages:
        raise SystemExit(f"the example test wrote no timeline in {snapshots}")
    return pages[0]


def probe_page(page: Path) -> Path:
    """A copy of ``page`` that opens the later stock check's details."""
    data = read_data(page)
    names = data["names"]
    checks = [i for i, ev in enumerate(data["events"]) if names[ev[2]] == "inventory.checked"]
    if len(checks) < 2:
        raise SystemExit("the snapshot does not hold the two workers' stock checks")
    out = page.with_name("figure.html")
    text = page.read_text("utf-8")
    out.write_text(text.replace("</body>", PROBE % checks[-1] + "</body>"), "utf-8")
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
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "timeline.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        page = record(workdir)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(probe_page(page), args.out.resolve(), workdir)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
