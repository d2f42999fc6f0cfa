"""Check the `dvc plots show` page offline in headless Chromium, and save a screenshot of it.

    python -m tools.plots_page [--screenshot docs/plots_show.png] [--html-template PATH] [--colors 256]

renders the workspace's plots with `dvc plots show -o <temporary folder>` (the template DVC is
configured with, `make plots-page`'s when npm built it, else DVC's default page; --html-template
overrides), opens the page in headless Chromium with every host name unresolvable (no CDN can
answer), and checks that

- every image plot DVC lists (`dvc plots show --json`) appears exactly once as an <img>, and loads;
- every vega chart is drawn: its container holds a vega canvas or SVG with pixels painted.

It prints the counts, saves a full-page screenshot when asked, and exits 1 when a check fails.
Rerun it after `dvc repro` to see the new figures. Chromium is /usr/bin/chromium (`apt-get install
-y chromium`) unless $CHROMIUM names another.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

VIRTUAL_TIME_MS = 20_000  # virtual time Chromium gives the page to load and draw before it is read
WIDTH = 1280  # the screenshot's width when the page is narrower

# Run once the page has loaded: mark what was drawn on the DOM, which --dump-dom then prints.
# A vega container is the element vegaEmbed was called on (CHART_IDS: their ids, as the page's
# source names them; vegaEmbed replaces the container's script by the chart); its "marks" element is
# vega's canvas (or SVG); a canvas counts as drawn when some pixel is not transparent.
PROBE = """
<script>
window.addEventListener("load", () => setTimeout(() => {
  for (const id of CHART_IDS) {
    const div = document.getElementById(id);
    if (!div) continue;
    div.setAttribute("data-probe-vega", "1");
    let painted = 0;
    for (const marks of div.querySelectorAll(".marks")) {
      if (marks.tagName.toLowerCase() === "canvas" && marks.width > 0 && marks.height > 0) {
        const px = marks.getContext("2d").getImageData(0, 0, marks.width, marks.height).data;
        for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) painted++;
      } else if (marks.tagName.toLowerCase() === "svg") {
        painted += marks.querySelectorAll("path, line, rect, text").length;
      }
    }
    div.setAttribute("data-probe-painted", String(painted));
  }
  for (const img of document.images) img.setAttribute("data-probe-loaded", img.complete && img.naturalWidth > "
                                                      "0 ? "1" : "0");
  const root = document.documentElement;
  root.setAttribute("data-probe-height", String(root.scrollHeight));
  root.setAttribute("data-probe-width", String(root.scrollWidth));
}, 3000));
</script>
"""


@dataclass
class Page:
    """What the dumped DOM holds: <img> sources, vega containers and what they painted, page size."""

    images: Counter = field(default_factory=Counter)
    images_not_loaded: list[str] = field(default_factory=list)
    charts: dict[str, int] = field(default_factory=dict)  # vega container id -> painted pixels/marks
    external_scripts: list[str] = field(default_factory=list)
    height: int = 0
    width: int = 0


class _DomReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.page.images[a.get("src", "")] += 1
            if a.get("data-probe-loaded") != "1":
                self.page.images_not_loaded.append(a.get("src", ""))
        elif tag == "div" and a.get("data-probe-vega") == "1":
            self.page.charts[a.get("id", "")] = int(a.get("data-probe-painted", "0"))
        elif tag == "script" and a.get("src"):
            self.page.external_scripts.append(a["src"])
        elif tag == "html":
            self.page.height = int(a.get("data-probe-height", "0"))
            self.page.width = int(a.get("data-probe-width", "0"))


def chromium_command(user_data_dir: Path) -> list[str]:
    """Headless Chromium with no network: every host name resolves to nothing, so no CDN answers."""
    exe = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={user_data_dir}",
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
    ]


def dvc_plots(out: Path, html_template: str | None) -> tuple[list[str], int]:
    """Render the page into `out`; return the image plots DVC lists (their paths in the workspace)
    and the number of vega charts it lists."""
    template = ["--html-template", html_template] if html_template else []
    subprocess.run(["dvc", "plots", "show", "-o", str(out), *template], check=True, stdout=subprocess.DEVNULL)
    listing = subprocess.run(
        ["dvc", "plots", "show", "--json", "-o", str(out / "json")], check=True, capture_output=True, text=True
    )
    data = json.loads(listing.stdout)["data"]
    images = sorted(name for name, entries in data.items() if any(e.get("type") == "image" for e in entries))
    return images, sum(any(e.get("type") == "vega" for e in entries) for entries in data.values())


def chart_ids(html: str) -> list[str]:
    """The ids of the containers the page calls vegaEmbed on (dvc_render's VegaRenderer.DIV)."""
    return re.findall(r"""vegaEmbed\(\s*['"]#([^'"]+)['"]""", html)


def read_page(page: Path, tmp: Path) -> Page:
    """Open `page` (with the probe appended) in Chromium and read what its DOM says after loading."""
    probe = page.with_name("probe_" + page.name)
    html = page.read_text(encoding="utf8")
    script = PROBE.replace("CHART_IDS", json.dumps(chart_ids(html)))
    end = html.rfind("</body>")  # the last one: vega-embed's code holds the string "</body>" too
    probe.write_text(html[:end] + script + html[end:] if end >= 0 else html + script, encoding="utf8")
    cmd = chromium_command(tmp / "profile-dump") + ["--dump-dom", probe.as_uri()]
    dom = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300).stdout
    reader = _DomReader()
    reader.feed(dom)
    return reader.page


def screenshot(page: Path, out: Path, width: int, height: int, tmp: Path, colors: int) -> None:
    """The whole page as a PNG `width` x `height`; with `colors` > 0, as a palette of that many
    colours (a tenth of the size in git, the figures still legible)."""
    shot = tmp / "screenshot.png"
    cmd = chromium_command(tmp / "profile-shot") + [
        f"--window-size={width},{height}",
        f"--screenshot={shot}",
        page.as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    from PIL import Image

    with Image.open(shot) as im:
        im = im.convert("RGB")
        if colors:
            im = im.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        im.save(out, format="PNG", optimize=True)


def check(expected_images: list[str], expected_charts: int, page: Page) -> list[str]:
    """Problems with the page, none when every image appears once and every chart is drawn."""
    problems = []
    by_source = {Path(src).name: n for src, n in page.images.items()}
    for name in expected_images:
        n = by_source.get("workspace_" + name.replace("/", "_"), 0)  # DVC's name for it under static/
        if n != 1:
            problems.append(f"{name}: {n} <img> on the page, not 1")
    problems += [f"{src}: not loaded" for src in page.images_not_loaded]
    if len(page.images) != len(expected_images):
        problems.append(
            f"{len(page.images)} image sources on the page, {len(expected_images)} image plots in DVC's list"
        )
    if len(page.charts) != expected_charts:
        problems.append(f"{len(page.charts)} vega charts on the page, {expected_charts} in DVC's list")
    problems += [f"vega chart {cid}: nothing drawn" for cid, painted in page.charts.items() if painted == 0]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, help="save a full-page PNG screenshot here")
    parser.add_argument("--colors", type=int, default=256, help="palette size of the screenshot; 0: full colour")
    parser.add_argument("--html-template", help="the page template (default: DVC's configured one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="plots_page_") as t:
        tmp = Path(t)
        expected, expected_charts = dvc_plots(tmp / "page", args.html_template)
        index = tmp / "page" / "index.html"
        page = read_page(index, tmp)
        problems = check(expected, expected_charts, page)
        drawn = sum(painted > 0 for painted in page.charts.values())
        print(
            f"images: {sum(page.images.values())} <img> for {len(page.images)} sources "
            f"({len(expected)} image plots listed by DVC, {sum(n == 1 for n in page.images.values())} shown "
            f"exactly once)"
        )
        print(f"vega charts: {drawn} of {len(page.charts)} drawn offline ({expected_charts} listed by DVC)")
        print(
            f"external scripts: {len(page.external_scripts)}"
            + (f" ({', '.join(page.external_scripts)})" if page.external_scripts else "")
        )
        if args.screenshot:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot(index, args.screenshot, max(WIDTH, page.width), max(page.height, 600), tmp, args.colors)
            print(f"screenshot: {args.screenshot} ({max(WIDTH, page.width)}x{max(page.height, 600)})")
    for problem in problems:
        print("FAIL:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
