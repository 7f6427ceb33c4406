"""Pipeline step: take an outside diffusers UNet2DModel (``model.kind: diffusers``) as the
experiment's network, in place of training one.

Reads the ``model.path`` save_pretrained folder, checks it against the data set (sample
size, channels, classes), the SDE (the VP SDE with beta 0.1 to 20: DDPM's linear schedule
over 1,000 steps) and the taps, before anything is written; then writes the network as the
project's checkpoint (model/weights.safetensors, the architecture and provenance in its
header) and as the single snapshot in model/checkpoints/, which the generation
evaluation reads. Every later stage then runs on it as on a trained network.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..core.artifacts import provenance
from ..core.errors import InputError
from ..datasets import base
from ..diffusion import checkpoints, diffusers_folder
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths
from ..training.snapshot_schedule import snapshot_name

log = logging.getLogger("import_model")

SNAPSHOT = snapshot_name(0)  # the one snapshot: the network as given


def import_model(experiment: str, params: dict) -> None:
    files = ExperimentPaths(experiment)
    folder = Path(params["model"]["path"])
    diffusers_folder.check_ddpm_sde(params["sde"])
    dataset = base.load(files.dataset_dir).restricted(params["model"]["condition_on"])
    architecture = checkpoints.architecture_from_params(params["model"], dataset.factor_table, dataset.images.shape[1:])
    model = checkpoints.build_model(architecture)
    model.check_taps(params["model"]["taps"])
    state = diffusers_folder.load_state(folder)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = str(exc).splitlines()
        first = lines[1].strip() if len(lines) > 1 else str(exc)
        raise InputError(f"model.path {folder}: the weights do not fit its config.json ({first})") from None
    inputs = diffusers_folder.weight_files(folder)
    section = {key: params[key] for key in checkpoints.IMPORT_SECTIONS}
    meta = provenance("import_model", experiment, section, [*files.dataset_files, *inputs])
    checkpoints.save(model, architecture, files.weights, meta)
    shutil.rmtree(files.checkpoints_dir, ignore_errors=True)
    checkpoints.save(model, architecture, files.checkpoints_dir / SNAPSHOT, meta)
    log.info(
        "imported %s: a UNet2DModel, %d parameters, conditioning %s, taps %s",
        folder,
        sum(p.numel() for p in model.parameters()),
        architecture["conditioning"],
        ", ".join(params["model"]["taps"]),
    )


if __name__ == "__main__":
    run_step("import_model", import_model)
