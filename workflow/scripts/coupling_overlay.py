"""Write the coupling study's overlays (docs/science.md, "Coupling") from one base each.

    python workflow/scripts/coupling_overlay.py

writes workflow/configs/coupling-study.yaml (16x16, a 2-core CPU) and
workflow/configs/paper-coupling.yaml (32x32, the paper-bumps model, a GPU). Every
experiment is one arm of one lattice group at one seed: the vanilla 2-D model (no factor
dropout), the masked 2-D model (the default dropout mixture) and the two 1-D controls
(bumps whose other coordinate has a single value: the first of its lattice), each trained
with ``scope: generation``. Three seeds of every arm the test reads (vanilla and the
controls); on the CPU, to stay within the hour, one seed of the masked model (read against
the vanilla model's seed range) and the balanced lattice's vanilla model alone (a phase
study of Liang et al.'s model, no coupling test). tests/test_coupling.py checks that the files are up to date.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ONE_VALUE = 1000.0  # a spacing beyond the canvas leaves one lattice value on that axis
VANILLA = {"keep_none": 0.0, "keep_all": 1.0, "keep_single": 0.0}
MASKED = {"keep_none": 0.1, "keep_all": 0.4, "keep_single": 0.3}

CPU_BASE = {
    "dataset": {"kind": "bumps", "height": 16, "width": 16, "sigma": 1.0, "margin": 2.0, "split": {"kind": "none"}},
    "sde": {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0},
    "model": {
        "base_channels": 16,
        "channel_mults": [1, 2],
        "groups": 8,
        "blocks_per_level": 1,
        "attention_levels": [],
        "heads": 1,
        "cond_frequencies": 8,
        "condition_on": [],
        "taps": ["down.1", "mid"],
    },
    "train": {
        "steps": 5000,
        "batch_size": 32,
        "learning_rate": 0.002,
        "warmup_steps": 50,
        "ema_decay": 0.995,
        "checkpoints": 17,
        "resume_every": 500,
        "precision": "fp32",
        "compile": False,
    },
    "generation": {"sampler": "sde", "steps": 50, "tolerance": 1.0, "seed": 5, "max_positions": 128},
}
PAPER_BASE = {
    **CPU_BASE,
    "dataset": {**CPU_BASE["dataset"], "height": 32, "width": 32},
    "model": {
        "base_channels": 64,
        "channel_mults": [1, 2, 2],
        "groups": 8,
        "blocks_per_level": 2,
        "attention_levels": [1, 2],
        "heads": 4,
        "cond_frequencies": 16,
        "condition_on": [],
        "taps": ["down.1", "down.2", "mid", "up.2"],
    },
    "train": {
        "steps": 150000,
        "batch_size": 128,
        "learning_rate": 0.0002,
        "warmup_steps": 2000,
        "ema_decay": 0.9999,
        "checkpoints": 40,
        "resume_every": 2000,
        "precision": "bf16",
        "compile": True,
    },
    "generation": {"sampler": "sde", "steps": 500, "tolerance": 1.0, "seed": 5},
}
# group -> (spacing_x, spacing_y) of its 2-D lattice; arm -> keep mixture
CPU_GROUPS = {"imbalanced": (0.2, 2.0), "balanced": (1.0, 1.0)}
PAPER_GROUPS = {"imbalanced": (0.1, 1.0), "balanced": (1.0, 1.0)}


def arm_spacing(arm: str, spacing: tuple[float, float]) -> tuple[float, float]:
    if arm == "control_x":
        return spacing[0], ONE_VALUE
    if arm == "control_y":
        return ONE_VALUE, spacing[1]
    return spacing


def experiment(base: dict, group: str, spacing: tuple, arm: str, seed: int, tested: bool) -> dict:
    """One arm at one seed; ``tested``: its group has the controls, so it joins the coupling
    test (else it is a phase study of the vanilla model on that lattice alone)."""
    made = copy.deepcopy(base)
    place = {"coupling": {"group": group, "arm": arm}} if tested else {}
    made = {"scope": "generation", **place, **made}
    made["dataset"]["spacing_x"], made["dataset"]["spacing_y"] = arm_spacing(arm, spacing)
    made["train"].update(MASKED if arm == "masked" else VANILLA, seed=seed)
    return made


def overlay(base: dict, groups: dict, arms_of: dict) -> dict:
    """``arms_of``: group -> {arm: number of seeds}."""
    return {
        "experiments": {
            f"coupling_{group}_{arm}_s{seed}": experiment(
                base, group, spacing, arm, seed, "control_x" in arms_of[group]
            )
            for group, spacing in groups.items()
            for arm, seeds in arms_of[group].items()
            for seed in range(seeds)
        }
    }


HEADER = """# The coupling study (docs/science.md, "Coupling"): is x learned with y (coupled) or as
# in its own 1-D task (factorized)? Written by workflow/scripts/coupling_overlay.py; edit
# that, not this. {scale}
# Use: cp {path} params.yaml, then `make run` (or `make dvc.yaml` and `dvc repro`).
"""
TARGETS = {
    "workflow/configs/coupling-study.yaml": (
        CPU_BASE,
        CPU_GROUPS,
        {"imbalanced": {"vanilla": 3, "control_x": 3, "control_y": 3, "masked": 1}, "balanced": {"vanilla": 1}},
        '16x16 on a 2-core CPU (docs/results.md, "Coupling study", has the measured time).',
    ),
    "workflow/configs/paper-coupling.yaml": (
        PAPER_BASE,
        PAPER_GROUPS,
        {
            "imbalanced": {"vanilla": 3, "control_x": 3, "control_y": 3, "masked": 3},
            "balanced": {"vanilla": 3, "control_x": 3, "control_y": 3},
        },
        "32x32 with the paper-bumps model, one GPU per training job.",
    ),
}


def render(path: str) -> str:
    base, groups, arms, scale = TARGETS[path]
    body = yaml.safe_dump(overlay(base, groups, arms), sort_keys=False, default_flow_style=None, width=120)
    return HEADER.format(scale=scale, path=path) + body


def main() -> None:
    for path in TARGETS:
        (ROOT / path).write_text(render(path))
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
