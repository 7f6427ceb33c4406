"""One look for every figure, and one way to save it: PNG and SVG side by side, each
stamped with the provenance of what it shows and its caption (the PNG in text chunks,
the SVG in its <metadata> description and title), and no timestamps, so equal inputs
give equal bytes. A drawing function carries its caption (``captioned``), so the text
that tells a reader how to read a figure sits beside the code that draws it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..core.artifacts import atomic_path, canonical_json  # noqa: E402

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "svg.hashsalt": "latent-abstractions",  # stable element ids: equal figures, equal SVG bytes
}
FORMATS = ("png", "svg")

plt.rcParams.update(STYLE)


def captioned(caption: str) -> Callable[[Callable], Callable]:
    """Give a drawing function the caption that the report prints under its figure."""

    def attach(draw: Callable) -> Callable:
        draw.caption = caption
        return draw

    return attach


def save_figure(figure: plt.Figure, png_path: Path | str, provenance: dict, caption: str = "") -> list[Path]:
    """Write ``figure`` as PNG at ``png_path`` and as SVG beside it; return both paths."""
    text = canonical_json(provenance)
    written = []
    for fmt in FORMATS:
        target = Path(png_path).with_suffix(f".{fmt}")
        if fmt == "png":
            metadata = {"provenance": text, "caption": caption}
        else:
            metadata = {"Description": text, "Title": caption, "Date": None}
        with atomic_path(target) as temporary:
            figure.savefig(temporary, format=fmt, metadata=metadata)
        written.append(target)
    plt.close(figure)
    return written
