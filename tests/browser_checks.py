"""Opening an HTML file in a real browser (Debian's Chromium, driven by Playwright) and
reading what a reader would meet: images that do not decode, internal links without a
target, and errors on the console or thrown by the page."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright's own browsers are never downloaded
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]
INSTALL = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium"
# The lock workflow/scripts/local_slurm.py takes too: parallel test workers install in turn.
APT_LOCK = "/tmp/apt-get.lock"
INSTALL_TIMEOUT_S = 900
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

# Every <img>, once each has been given the chance to decode.
IMAGES_JS = """async () => {
    const images = Array.from(document.images);
    await Promise.all(images.map(image => image.decode().catch(() => null)));
    return images.map(image => ({src: image.getAttribute('src') || '', alt: image.alt,
                                 ok: image.complete && image.naturalWidth > 0}));
}"""
# Every href="#..." and whether its target exists ("#" and "#top": the top of the document).
LINKS_JS = """() => Array.from(document.querySelectorAll('a[href^="#"]'), link => {
    const href = link.getAttribute('href');
    const id = decodeURIComponent(href.slice(1));
    const ok = id === '' || id.toLowerCase() === 'top' || document.getElementById(id) !== null
               || document.getElementsByName(id).length > 0;
    return {href, ok};
})"""

# How many of the given chart containers hold an svg or canvas once drawing has had up
# to 5 s (Vega-Embed replaces a container's script with the chart).
CHARTS_JS = """async (ids) => {
    const drawn = () => ids.filter(id => document.getElementById(id)?.querySelector('svg, canvas')).length;
    for (let tries = 0; tries < 100 && drawn() < ids.length; tries++) {
        await new Promise(resolve => setTimeout(resolve, 50));
    }
    return drawn();
}"""
CHART_CALL = re.compile(r"vegaEmbed\('#([^']+)'")  # DVC's page: one call per chart container


@dataclasses.dataclass
class PageCheck:
    """What the browser met on one page."""

    images: int
    broken_images: list[str]
    links: int
    broken_links: list[str]
    errors: list[str]  # console messages of type error, then errors thrown by the page
    charts: int = 0  # Vega-Embed charts on the page
    drawn_charts: int = 0

    def problems(self) -> list[str]:
        undrawn = self.charts - self.drawn_charts
        return (
            [f"{undrawn} of {self.charts} charts not drawn"] * (undrawn > 0)
            + [f"image does not decode: {name}" for name in self.broken_images]
            + [f"link without a target: {href}" for href in self.broken_links]
            + [f"console error: {text}" for text in self.errors]
        )


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing ({INSTALL}, as root)"
    return None


def require_chromium(install: bool = False) -> None:
    """Skip the calling test, with one reason, when the browser cannot run; with
    ``install``, first install Debian's chromium when it is missing and this machine can."""
    if install and not CHROMIUM.is_file() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["flock", APT_LOCK, "sh", "-c", INSTALL], capture_output=True, timeout=INSTALL_TIMEOUT_S)
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)


def _shortened(image: dict) -> str:
    return image["alt"] or (image["src"][:60] + ("…" if len(image["src"]) > 60 else ""))


def check_page(html_file: Path, screenshot: Path | None = None) -> PageCheck:
    """Open ``html_file`` in Chromium and check its images, internal links and console;
    with ``screenshot``, save a full-page PNG there."""
    from playwright.sync_api import sync_playwright

    errors, thrown = [], []
    charts = CHART_CALL.findall(Path(html_file).read_text())
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: thrown.append(str(error)))
            page.goto(Path(html_file).resolve().as_uri(), wait_until="load")
            images, links = page.evaluate(IMAGES_JS), page.evaluate(LINKS_JS)
            drawn = page.evaluate(CHARTS_JS, charts)
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return PageCheck(
        images=len(images),
        broken_images=[_shortened(i) for i in images if not i["ok"]],
        links=len(links),
        broken_links=[link["href"] for link in links if not link["ok"]],
        errors=errors + thrown,
        charts=len(charts),
        drawn_charts=drawn,
    )
