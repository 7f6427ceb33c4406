"""A diffusers ``UNet2DModel`` behind the project's network interface:
``model(x, t, values, keep, taps) -> (epsilon, {tap: activation})``.

Time: the project's VP SDE (beta from 0.1 to 20 over t in [0, 1]) is DDPM's linear
schedule (beta from 1e-4 to 0.02 over 1,000 steps) in the continuous limit, DDPM's step i
being t = (i + 1) / 1000; so t maps to the timestep 1000 t - 1, where the two schedules'
signal and noise scales agree within 1.4e-3 (tests/test_diffusers_model.py).

Condition, one of:
- ``embedding``: the project's per-factor condition embedding (FactorConditioner), passed
  as the UNet's class embedding (``class_embed_type="identity"``); any factor can be dropped;
- ``class``: ``num_class_embeds`` classes, one per combination of the factors' values
  (the first factor slowest), and one more, the last, for no condition; factors can be
  kept all or none, not one at a time;
- ``none``: an unconditional model.

Taps are module paths (``down_blocks.2``, ``mid_block``), read with forward hooks in the
same pass; a block that returns a tuple gives its first element.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from ...core.errors import InputError
from ...core.factors import Factor
from ..conditioning import FactorConditioner

DDPM_STEPS = 1000
CONDITIONINGS = ("embedding", "class", "none")


def ddpm_timestep(t: torch.Tensor) -> torch.Tensor:
    """The project's time t in [0, 1] as DDPM's (continuous) timestep."""
    return t * DDPM_STEPS - 1


class DiffusersScoreNet(nn.Module):
    def __init__(self, unet: nn.Module, factors: list[Factor], conditioning: str, cond_frequencies: int | None = 8):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise InputError(f"diffusers conditioning {conditioning!r}: one of {', '.join(CONDITIONINGS)}")
        self.unet = unet
        self.factors = list(factors)
        self.conditioning = conditioning
        self.levels = len(unet.down_blocks)
        self.cond_frequencies = cond_frequencies
        if conditioning == "embedding":
            self.conditioner = FactorConditioner(self.factors, embedding_width(unet), cond_frequencies)

    @property
    def unavailable_estimates(self) -> str | None:
        """Why the learned information estimate (each factor's condition alone against none)
        cannot be made with this network, or None when it can."""
        if self.conditioning == "none":
            return "the learned information needs a condition for each factor; this diffusers model is unconditional"
        if self.conditioning == "class" and len(self.factors) > 1:
            return (
                "the learned information needs each factor's condition alone; this diffusers model is "
                "class-conditional on the joint factor values (no per-factor null condition)"
            )
        return None

    @property
    def tap_names(self) -> list[str]:
        """The blocks, encoder first: what `deepest_encoder` and whole-network recording read."""
        ups = len(self.unet.up_blocks)
        return [f"down_blocks.{i}" for i in range(self.levels)] + ["mid_block"] + [f"up_blocks.{i}" for i in range(ups)]

    def module_paths(self, depth: int = 2) -> list[str]:
        return [name for name, _ in self.unet.named_modules() if name and name.count(".") < depth]

    def check_taps(self, taps: list[str]) -> None:
        modules = dict(self.unet.named_modules())
        unknown = [tap for tap in taps if tap not in modules]
        if unknown:
            raise InputError(
                f"unknown feature tap {', '.join(unknown)}; this diffusers model's module paths include: "
                f"{', '.join(self.module_paths())}"
            )

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        factor_values: torch.Tensor,
        keep: torch.Tensor,
        taps: list[str] | tuple[str, ...] = (),
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.check_taps(list(taps))
        modules = dict(self.unet.named_modules())
        recorded: dict[str, torch.Tensor] = {}
        hooks = [modules[name].register_forward_hook(functools.partial(_record, recorded, name)) for name in taps]
        try:
            labels = self.class_labels(factor_values, keep)
            timestep = ddpm_timestep(t).to(x.dtype)
            eps = self.unet(x, timestep, class_labels=labels, return_dict=False)[0]
        finally:
            for hook in hooks:
                hook.remove()
        return eps, recorded

    def class_labels(self, values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor | None:
        if self.conditioning == "embedding":
            return self.conditioner(values, keep)
        if self.conditioning == "none":
            return None
        return self.joint_class(values, keep)

    def joint_class(self, values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The class of each row's factor values; the last class where no factor is kept."""
        kept_rows = keep.all(dim=1)
        if bool((keep.any(dim=1) & ~kept_rows).any()):
            raise InputError(
                "this diffusers model is class-conditional on the joint factor values: it can keep all "
                "factors or none, not one at a time"
            )
        index = torch.zeros(len(values), dtype=torch.long, device=values.device)
        for k, factor in enumerate(self.factors):
            index = index * factor.cardinality + value_codes(factor, values[:, k])
        return torch.where(kept_rows, index, torch.full_like(index, self.null_class))

    @property
    def null_class(self) -> int:
        return math.prod(f.cardinality for f in self.factors)


def _record(recorded: dict, name: str, module: nn.Module, inputs: object, output: object) -> None:
    recorded[name] = output[0] if isinstance(output, tuple) else output


def value_codes(factor: Factor, values: torch.Tensor) -> torch.Tensor:
    """Each value's index among the factor's values (a categorical factor's value is its index)."""
    if factor.kind == "categorical":
        return values.long()
    grid = torch.tensor(factor.values, dtype=values.dtype, device=values.device)
    return (values[:, None] - grid[None, :]).abs().argmin(dim=1)


def embedding_width(unet: nn.Module) -> int:
    """The width of the UNet's time embedding, which an identity class embedding is added to."""
    config = unet.config
    return config.time_embedding_dim or 4 * config.block_out_channels[0]


def build_unet(config: dict) -> nn.Module:
    """A ``UNet2DModel`` from its config (diffusers is imported only where it is used)."""
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise InputError(
            "model.architecture diffusers_unet2d and model.kind diffusers need diffusers: "
            "`.venv/bin/pip install -e '.[diffusers]'`"
        ) from None
    return UNet2DModel.from_config(config)


def unet_config(model_params: dict, image_shape: tuple[int, int, int], conditioning: str) -> dict:
    """The UNet2DModel config the pipeline trains for ``model_params`` (architecture
    diffusers_unet2d): the same widths, depths and attention levels as the project's U-Net."""
    widths = [model_params["base_channels"] * mult for mult in model_params["channel_mults"]]
    attended = set(model_params["attention_levels"])
    return {
        "sample_size": list(image_shape[1:]),
        "in_channels": image_shape[0],
        "out_channels": image_shape[0],
        "block_out_channels": widths,
        "layers_per_block": model_params["blocks_per_level"],
        "down_block_types": ["AttnDownBlock2D" if i in attended else "DownBlock2D" for i in range(len(widths))],
        "up_block_types": ["AttnUpBlock2D" if i in attended else "UpBlock2D" for i in reversed(range(len(widths)))],
        "norm_num_groups": model_params["groups"],
        "attention_head_dim": widths[-1] // model_params["heads"],
        "class_embed_type": "identity" if conditioning == "embedding" else None,
        "num_train_timesteps": DDPM_STEPS,
    }
