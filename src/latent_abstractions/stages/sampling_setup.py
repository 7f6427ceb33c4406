"""What each sampling stage (sample_trajectories, fork_trajectories, forward_backward)
sets up before it samples: :func:`prepare_sampling` loads the experiment's trained
network onto the device and makes the SDE and the sampler's time grid of one params
section (``sample``, ``fork`` or ``forward_backward``). The :class:`Sampling` it returns
resolves that section's conditions and steps (a bad entry is an InputError naming it,
``params.yaml: experiments.<name>.<section>...``) and makes the store's layout and
writer, so a store records the settings it was sampled with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..core.artifacts import file_sha256, provenance
from ..core.devices import select_device
from ..core.factors import Factor
from ..diffusion import checkpoints
from ..diffusion.nets.unet import ScoreUNet
from ..diffusion.sde import SDE, make_sde, time_grid
from ..pipeline.paths import ExperimentPaths
from ..sampling.recording import recorded_steps, resolve_condition, steps_before_end, time_columns
from ..store.store import StoreWriter
from ..store.store_layout import StoreLayout

# The section's settings every store's layout records as they are in params.
STORED_SETTINGS = ("sampler", "steps", "spacing", "t_end", "seed", "batch_size", "eval_block")


@dataclasses.dataclass(frozen=True)
class Sampling:
    """One sampling stage's network, SDE and time grid, for the params ``section``."""

    experiment: str
    params: dict  # the experiment's params
    section: str
    model: ScoreUNet  # on ``device``
    architecture: dict  # the checkpoint's
    factors: tuple[Factor, ...]  # the network's, in its input order
    weights: Path
    sde: SDE
    times: torch.Tensor  # the sampler's grid, T down to t_end
    device: torch.device
    image_shape: tuple[int, ...]  # (C, H, W)

    @property
    def settings(self) -> dict:
        return self.params[self.section]

    @property
    def where(self) -> str:
        return f"params.yaml: experiments.{self.experiment}.{self.section}"

    def condition(self, key: str = "condition") -> list[str]:
        """The factor names the section's ``key`` names, in the network's order."""
        return resolve_condition(self.settings[key], self.factors, f"{self.where}.{key}")

    def recorded_steps(self, key: str) -> list[int]:
        """The grid steps the section's time selection ``key`` names."""
        return recorded_steps(self.settings[key], self.times, self.sde, f"{self.where}.{key}")

    def steps_before_end(self, what: str = "time") -> list[int]:
        """The grid steps the section's ``at`` names, t_end left out; at least one."""
        return steps_before_end(self.settings["at"], self.times, self.sde, f"{self.where}.at", what)

    def layout(
        self,
        kind: str,
        *,
        factor_names: Sequence[str],
        condition: Sequence[str],
        rows: Mapping[int, int],
        **own,
    ) -> StoreLayout:
        """The layout of a store of ``kind`` holding ``rows[step]`` rows at each recorded
        step (in order), in files of the section's ``batch_size``; ``own``: the kind's
        own fields."""
        settings, steps = self.settings, list(rows)
        t_values, log_snrs = time_columns(self.sde, self.times, steps)
        return StoreLayout(
            kind=kind,
            image_shape=self.image_shape,
            factors=self.factors,
            factor_names=tuple(factor_names),
            recorded_steps=tuple(steps),
            recorded_t=tuple(t_values),
            recorded_log_snr=tuple(log_snrs),
            rows=dict(rows),
            parts={step: math.ceil(count / settings["batch_size"]) for step, count in rows.items()},
            checkpoint_sha256=file_sha256(self.weights),
            extra={
                "condition": list(condition),
                "guidance": float(settings["guidance"]),
                **{key: settings[key] for key in STORED_SETTINGS},
                **own,
            },
        )

    def writer(self, stage: str, target: Path, layout: StoreLayout, inputs: Sequence[Path] = ()) -> StoreWriter:
        """The store's writer, its provenance citing the SDE, model and section params,
        ``inputs`` and the weights."""
        section = {key: self.params[key] for key in ("sde", "model", self.section)}
        made = provenance(stage, self.experiment, section, [*inputs, self.weights])
        return StoreWriter(target, layout.to_json(), made)


def step_columns(layout: StoreLayout, step: int, rows: int) -> dict[str, np.ndarray]:
    """The ``step``, ``t`` and ``log_snr`` columns of ``rows`` rows at a recorded step."""
    t, log_snr = layout.time_of(step)
    return {
        "step": np.full(rows, step, np.int32),
        "t": np.full(rows, t, np.float32),
        "log_snr": np.full(rows, log_snr, np.float32),
    }


def load_network(experiment: str, params: dict, taps: Sequence[str] = ()) -> tuple[ScoreUNet, dict, Path]:
    """The experiment's trained network (refusing one params do not describe, or unknown
    ``taps``), its architecture and its weights' path."""
    weights = ExperimentPaths(experiment).weights
    model, metadata = checkpoints.load_for_params(weights, params, experiment)
    model.check_taps(list(taps))
    return model, metadata["architecture"], weights


def network_block(settings: dict) -> int:
    """Rows per network evaluation: ``eval_block``, or for a compiled network without one
    the batch size, so that every call (the last batch's, a guided step's) has one shape."""
    return settings["eval_block"] or (settings["batch_size"] if settings["compile"] else 0)


def compiled(model: ScoreUNet) -> ScoreUNet:
    """``model`` compiled for sampling (fused kernels, one graph per input shape), with
    the model's attributes and call. Not reduce-overhead: its CUDA graphs reuse their
    output buffers, and a sampler step keeps one evaluation's eps while making the next."""
    return torch.compile(model, dynamic=False)


def prepare_sampling(experiment: str, params: dict, section: str, taps: Sequence[str] = ()) -> Sampling:
    """The network (able to record ``taps``) on the device, the SDE and the time grid of
    the experiment's params ``section``."""
    settings = params[section]
    model, architecture, weights = load_network(experiment, params, taps)
    sde = make_sde(params["sde"])
    times = time_grid(sde.T, settings["t_end"], settings["steps"], sde=sde, spacing=settings["spacing"])
    device = select_device()
    return Sampling(
        experiment=experiment,
        params=params,
        section=section,
        model=compiled(model.to(device)) if settings["compile"] else model.to(device),
        architecture=architecture,
        factors=tuple(Factor.from_dict(entry) for entry in architecture["factors"]),
        weights=weights,
        sde=sde,
        times=times,
        device=device,
        image_shape=(architecture["image_channels"], *architecture["image_size"]),
    )
