"""Pipeline step: make the experiment's dataset under data/<experiment>/dataset/:
Gaussian bumps, procedural Shapes3D-like scenes, or an import of the real Shapes3D file."""

from __future__ import annotations

import logging
from pathlib import Path

from ..artifacts import provenance
from ..cli import run_step
from ..datasets import base, bumps, shapes, shapes3d_file, splits
from ..paths import ExperimentPaths

log = logging.getLogger("prepare_data")

BUMPS_KEYS = ("height", "width", "sigma", "spacing_x", "spacing_y", "margin", "profile", "centres", "count", "seed")


def subset_indices(subset: dict | None) -> dict[str, list[int]] | None:
    return {name: list(indices) for name, indices in subset.items()} if subset else None


def prepare(experiment: str, params: dict) -> None:
    spec = params["dataset"]
    folder = ExperimentPaths(experiment).dataset_dir
    external = [spec["path"]] if spec["kind"] == "shapes3d_file" and Path(spec["path"]).is_file() else []
    meta = provenance("prepare_data", experiment, spec, inputs=external)
    if spec["kind"] == "shapes3d_file":
        count = shapes3d_file.import_file(spec["path"], folder, subset_indices(spec["subset"]), spec["split"], meta)
        log.info("imported %d images from %s", count, spec["path"])
        return
    if spec["kind"] == "bumps":
        dataset = bumps.make(**{key: spec[key] for key in BUMPS_KEYS})
    else:
        dataset = shapes.make(spec["size"], subset_indices(spec["subset"]))
    dataset.factors["split"] = splits.split_column(dataset.factors, dataset.factor_table, spec["split"])
    base.save(dataset, folder, meta)
    log.info(
        "%d images of shape %s (%d for training), factors %s",
        len(dataset.images),
        dataset.images.shape[1:],
        len(dataset.train_rows()),
        {f.name: f.cardinality for f in dataset.factor_table},
    )


if __name__ == "__main__":
    run_step("prepare_data", prepare)
