"""The report cannot be turned against its reader: every text it embeds from an artifact is
escaped, it opens no path named inside an artifact, and the page allows no script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from latent_abstractions.core.errors import InputError
from latent_abstractions.stages import report

HOSTILE = "<script>alert(1)</script>"


def png_with(path: Path, provenance: str | None, caption: str = "") -> str:
    info = PngImagePlugin.PngInfo()
    if provenance is not None:
        info.add_text("provenance", provenance)
    info.add_text("caption", caption)
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    return str(path)


def test_hostile_provenance_and_names_are_escaped_and_no_named_path_is_opened(tmp_path):
    provenance = {
        "inputs": {"/dev/zero": HOSTILE, f"data/{HOSTILE}.parquet": "'><img src=x onerror=alert(2)>"},
        "code_sha256": HOSTILE,
        "params_sha256": "\"'><svg onload=alert(3)>",
        "git_commit": HOSTILE,
        "git_dirty": True,
    }
    png = png_with(tmp_path / "x'><script>alert(4)<.png", json.dumps(provenance), caption=HOSTILE)
    section = report.figure_section(png, declared=set())  # /dev/zero would never end if read
    for active in ("<script", "<img src=x", "<svg", "alert(4)<"):
        assert active not in section
    assert "&lt;script&gt;" in section and "&#x27;&gt;&lt;img src=x" in section  # quotes cannot close an attribute
    assert "not a declared output: not read" in section


@pytest.mark.parametrize("provenance", [None, "{not json", "[1, 2]", json.dumps({"inputs": [1]})])
def test_a_figure_without_readable_provenance_is_one_line_naming_it(tmp_path, provenance):
    png = png_with(tmp_path / "figure.png", provenance)
    with pytest.raises(InputError, match="figure.png has no readable provenance"):
        report.figure_section(png, declared=set())


def test_the_page_policy_allows_no_script_and_only_its_own_style():
    policy = report.content_security_policy()
    assert "default-src 'none'" in policy and "script-src" not in policy and "unsafe" not in policy
    assert "style-src 'sha256-" in policy and "img-src data:" in policy
