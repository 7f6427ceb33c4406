"""Pipeline step: the data set's contact sheet and factor traversals."""

from __future__ import annotations

from pathlib import Path

from ..datasets import base
from ..report.plots import dataset
from .figures import Drawn, run_group


def drawn(sources: list[Path]) -> dict[str, Drawn]:
    images = base.load(sources[0].parent)  # images.npy and factors.parquet
    title = f"{sources[0].parent.parent.name}: {len(images.images)} images"
    # The stored (memory-mapped) images: only the drawn ones are read.
    sheet = dataset.contact_sheet(images.images, title)
    traversals = dataset.traversals(images.images, base.traversal_rows(images))
    return {
        "dataset_contact_sheet": Drawn(sheet, sources, dataset.contact_sheet),
        "dataset_traversals": Drawn(traversals, sources, dataset.traversals),
    }


if __name__ == "__main__":
    run_group("dataset_sheets", drawn)
