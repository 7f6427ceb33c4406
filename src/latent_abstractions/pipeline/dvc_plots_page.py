"""The page `dvc plots show` fills in, with Vega, Vega-Lite and Vega-Embed inlined, so
that `dvc_plots/index.html` draws its charts on a machine without internet (DVC's own
page loads them from a CDN and draws nothing offline).

`python -m latent_abstractions.pipeline.dvc_plots_page` (run by `make install`) writes it to
`.dvc/offline-plots.html`, which `.dvc/config` names as `plots.html_template`.
"""

from __future__ import annotations

from pathlib import Path

import vl_convert

PAGE = Path(".dvc/offline-plots.html")
VEGA_LITE = "v5.20"  # DVC's plot templates are Vega-Lite 5 specifications

TEMPLATE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC plots</title>
<script type="text/javascript">
{bundle}
</script>
<style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def page() -> str:
    """The template: DVC replaces ``{plot_divs}`` (and ``{refresh_tag}``) with its charts.
    It has no ``{scripts}`` slot, so DVC's CDN script tags are left out."""
    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)  # assigns window.vegaEmbed, vega, vegaLite
    return TEMPLATE.format(bundle=bundle.replace("</script", "<\\/script"))


def write(target: Path = PAGE) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page())


if __name__ == "__main__":
    write()
    print(f"wrote {PAGE}")
