"""Screenshot a suite's HTML report with headless Chromium, as the README's docs/report.png is made.

Usage: python scripts/report_screenshot.py [REPORT] [OUT] [--size WIDTH,HEIGHT]
  REPORT  a report folder (reports/<suite>/) or its report.html; default reports/demo
  OUT     the PNG to write; default docs/report.png

`make screenshot` runs it on the demo's report after `make demo`, so the README's picture is the page the demo
produces, not a drawing of an older one. The page loads nothing from the network (it is self-contained); host
resolution is switched off anyway, so a screenshot never depends on a connection.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SIZE = "1000,2400"  # wide as a laptop's browser window, tall enough for the tables and the cross-arch heat map


def screenshot(page: Path, out: Path, size: str = SIZE) -> None:
    """Render `page` at `size` (WIDTH,HEIGHT pixels) into the PNG `out`."""
    exe = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if exe is None:
        raise SystemExit(f"error: none of {', '.join(BROWSERS)} is installed (apt-get install chromium).")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                           "--host-resolver-rules=MAP * ~NOTFOUND", f"--window-size={size}",
                           f"--screenshot={out.resolve()}", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"error: {exe} could not screenshot {page}:\n{done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", nargs="?", default="reports/demo", type=Path,
                        help="a report folder or its report.html (default: reports/demo)")
    parser.add_argument("out", nargs="?", default="docs/report.png", type=Path, help="default: docs/report.png")
    parser.add_argument("--size", default=SIZE, help=f"window WIDTH,HEIGHT in pixels (default: {SIZE})")
    args = parser.parse_args(argv)
    page = args.report / "report.html" if args.report.is_dir() else args.report
    if not page.is_file():
        raise SystemExit(f"error: no report at {page}: run `bench report SUITE` first (the demo's: `make demo`).")
    screenshot(page, args.out, args.size)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
