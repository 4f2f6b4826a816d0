"""Make the README's screenshots from the demo outputs: ``docs/report.png`` and ``docs/map.png``.

Run after ``make demo`` (or ``make screenshots``, which does both)::

    .venv/bin/python docs/make_screenshots.py [RUN_DIR]

``RUN_DIR`` is a folder ``sitewatch detect`` wrote (default ``demo_output/hamhung-feb11-plant``).
The report is that folder's ``report.html`` (made with ``sitewatch report`` when absent); the map
is the notebook map (:func:`sitewatch.webmap.change_map`) of the same two images, read from the
folder's ``summary.json``. Both are rendered by headless Chromium (``chromium``,
``chromium-browser`` or ``google-chrome`` on PATH), kept off the network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
# what the report screenshot shows: the title, the interactive panel and the table of changes
REPORT_ONLY = (
    "section:not(#viewer):not(#changes),footer,.note{display:none}svg.panel{max-width:760px}body{margin-top:.5em}"
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("error: no Chromium on PATH (apt-get install chromium)")


def screenshot(page: Path, png: Path, size: str, profile: Path) -> None:
    """A headless Chromium screenshot of ``page``, with no network."""
    subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={size}",
            "--virtual-time-budget=4000",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    shrink(png)


def shrink(png: Path, colours: int = 256) -> None:
    """Re-save a screenshot with a palette of ``colours``: a few hundred kB instead of over a MB."""
    from PIL import Image

    Image.open(png).convert("RGB").quantize(colours, dither=Image.Dither.NONE).save(png, optimize=True)


def main(run_dir: Path) -> None:
    from sitewatch.pipeline import detect
    from sitewatch.report.html import write_report
    from sitewatch.webmap import change_map

    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    report = run_dir / "report.html"
    if not report.exists():
        write_report(run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trimmed = tmp / "report.html"
        trimmed.write_text(report.read_text(encoding="utf-8").replace("</style>", REPORT_ONLY + "</style>"))
        screenshot(trimmed, DOCS / "report.png", "1100,1500", tmp / "profile")
        result = detect(summary["inputs"]["before"], summary["inputs"]["after"], summary["inputs"]["aoi"])
        page = tmp / "map.html"
        change_map(result).save(str(page))
        screenshot(page, DOCS / "map.png", "1100,750", tmp / "profile")
    print(f"{DOCS / 'report.png'}\n{DOCS / 'map.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo_output/hamhung-feb11-plant"))
