"""The browser checks the report test relies on (tests/browser_checks.py; the report of a
whole pipeline run is opened in test_pipeline.py), on small hand-made pages: a clean one
passes, and every kind of fault is found and named."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from browser_checks import check_page, require_chromium


@pytest.fixture(autouse=True)
def chromium():
    require_chromium()


def png_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), "teal").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def page(tmp_path, body: str):
    path = tmp_path / "page.html"
    path.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title></head><body>{body}</body></html>"
    )
    return path


# A heading whose id needs escaping in its link, a link to the top, and a figure linked by id.
CLEAN = (
    "<h2 id='a b'>A</h2><a href='#a%20b'>to A</a> <a href='#'>top</a>"
    "<figure id='f'><img src='{}' alt='fig'></figure><a href='#f'>to the figure</a>"
)


def test_a_clean_page_passes_and_its_screenshot_is_kept(tmp_path):
    result = check_page(page(tmp_path, CLEAN.format(png_uri())), screenshot=tmp_path / "shot.png")
    assert result.problems() == []
    assert (result.images, result.links) == (1, 3)
    with Image.open(tmp_path / "shot.png") as shot:
        assert shot.width > 0 and shot.height > 0


def test_broken_images_dangling_links_and_errors_are_all_named(tmp_path):
    body = (
        CLEAN.format(png_uri())
        + "<img src='data:image/png;base64,AAAA' alt='corrupt'><img src='missing.png' alt='absent'>"
        + "<a href='#nowhere'>dangling</a>"
        + "<script>console.error('logged on purpose'); throw new Error('thrown on purpose');</script>"
    )
    result = check_page(page(tmp_path, body))
    assert result.broken_images == ["corrupt", "absent"]
    assert result.broken_links == ["#nowhere"]
    assert any("logged on purpose" in error for error in result.errors)
    assert any("thrown on purpose" in error for error in result.errors)
    assert any(problem.startswith("console error") for problem in result.problems())
