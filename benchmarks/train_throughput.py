"""Training throughput of our step (``Trainer.update`` on a ``ScoreUNet``, its loss read at once) against HuggingFace
diffusers' ``UNet2DModel`` trained with the same loss, side by side, in one run.

Run from the repository root, no arguments:

    .venv/bin/python benchmarks/train_throughput.py

diffusers is needed for the baseline only: ``pip install -e '.[diffusers]'``. The model is built
from a config (no Hub download).

Both sides are trained by the same ``Trainer``, so they do the same work per step:
- the batch drawn on the CPU by ``Trainer.draw`` (times, noise, condition-dropout flags) and
  moved to the device;
- the VP-SDE epsilon-matching loss of train.py (``denoising_loss``: x_t = alpha_t x0 +
  sigma_t eps, t uniform on [T_MIN, 1]); the diffusers U-Net gets the timestep as t * 999;
- the same conditioning: our ``FactorConditioner`` (two continuous factors with a learned
  null per factor) feeds the diffusers U-Net through ``class_embed_type="identity"``, so its
  output is added to the time embedding as in ours;
- AdamW (weight decay 0; fused on CUDA, as Trainer's), the learning rate set every step,
  gradient clipping at 1.0, the same ``ExponentialMovingAverage`` (one foreach lerp of every
  floating tensor of the state dict) and one host synchronisation for the loss value;
- on CUDA, torch.compile of the network's forward with static shapes, as Trainer does.

The architectures are matched on parameter count (asserted within 10%): ours has
``blocks_per_level`` = 2 residual blocks per level on both paths and one residual block plus
attention in the middle; diffusers has ``layers_per_block`` = 1 on the way down, 2 on the
way up, two residual blocks around the middle attention, and a conv after each upsampling.
Same widths, same levels, attention at the same (16x16) level and in the middle, the same
number of GroupNorm groups and attention head width, scale-and-shift time conditioning.

Defaults: on CPU fp32, 32x32, batch 32; on CUDA 64x64, batch 128, bf16 autocast,
channels_last, cudnn.benchmark and torch.compile for both (``--no-compile`` to skip), plus the
model FLOP utilisation (FLOPs of one forward+backward counted by ``FlopCounterMode``, over the
GPU's peak dense bf16 FLOP/s; ``PEAK_FLOPS`` overrides the peak). Timed windows of the two
models alternate, so a machine that is busier for a while slows both; each side's figure is
the median over its windows. The last line is ``ratio=<ours / diffusers images/s>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
import warnings

import torch
from torch import nn

try:
    import diffusers
    from diffusers import UNet2DModel
except ImportError:
    sys.exit(
        "train_throughput: diffusers is not installed; install the diffusers extra with: pip install -e '.[diffusers]'"
    )

from latent_abstractions.core.devices import peak_flops
from latent_abstractions.core.factors import Factor
from latent_abstractions.diffusion import checkpoints
from latent_abstractions.diffusion.conditioning import FactorConditioner
from latent_abstractions.diffusion.sde import VPSDE
from latent_abstractions.training.train import TrainConfig, Trainer, denoising_loss

FACTORS = [Factor("x", "continuous", (0.0, 1.0)), Factor("y", "continuous", (0.0, 1.0))]
N_DATA = 1024  # random "images" the batches are drawn from
HEAD_DIM = 64  # attention head width on both sides (one head where a level has fewer channels)
COND_FREQUENCIES = 8
PARAM_TOLERANCE = 0.10


@dataclasses.dataclass
class Setup:
    device: torch.device
    resolution: int
    batch: int
    base_channels: int
    precision: str
    compile: bool
    warmup: int
    windows: int
    steps_per_window: int

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def channel_mults(self) -> list[int]:
        # 32x32 -> 32, 16, 8; 64x64 -> 64, 32, 16, 8: the lowest level is 8x8 either way.
        levels = max(2, (self.resolution // 8).bit_length())
        return [1] + [2] * (levels - 1)

    @property
    def attention_level(self) -> int:
        # The level at 16x16 (as in DDPM), or the lowest if the images are smaller.
        return min(len(self.channel_mults) - 1, max(0, (self.resolution // 16).bit_length() - 1))

    @property
    def groups(self) -> int:
        return min(32, self.base_channels // 4)

    @property
    def attention_width(self) -> int:
        return self.base_channels * self.channel_mults[self.attention_level]


def parse_args() -> Setup:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--resolution", type=int, help="image side (default 64 on CUDA, 32 on CPU)")
    parser.add_argument("--batch", type=int, help="batch size (default 128 on CUDA, 32 on CPU)")
    parser.add_argument("--base-channels", type=int, help="first-level width (default 128 on CUDA, 32 on CPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps per model (default 15 on CUDA, 5 on CPU)")
    parser.add_argument("--windows", type=int, help="timed windows per model (default 7)")
    parser.add_argument("--steps", type=int, help="steps per timed window (default 20 on CUDA, 15 on CPU)")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile both models (default: on CUDA only)",
    )
    parser.add_argument("--precision", choices=["fp32", "bf16"], help="default bf16 on CUDA, fp32 on CPU")
    args = parser.parse_args()
    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    setup = Setup(
        device=device,
        resolution=args.resolution or (64 if on_cuda else 32),
        batch=args.batch or (128 if on_cuda else 32),
        base_channels=args.base_channels or (128 if on_cuda else 32),
        precision=args.precision or ("bf16" if on_cuda else "fp32"),
        compile=on_cuda if args.compile is None else args.compile,
        warmup=args.warmup if args.warmup is not None else (15 if on_cuda else 5),
        windows=args.windows or 7,
        steps_per_window=args.steps or (20 if on_cuda else 15),
    )
    if setup.precision == "bf16" and not on_cuda:
        parser.error("bf16 autocast is CUDA-only in Trainer; use --precision fp32 on CPU")
    if setup.resolution % 8 or setup.base_channels % 8:
        parser.error("--resolution and --base-channels must be multiples of 8")
    return setup


# --------------------------------------------------------------------------- models


def build_ours(setup: Setup) -> nn.Module:
    model_params = {
        "base_channels": setup.base_channels,
        "channel_mults": setup.channel_mults,
        "groups": setup.groups,
        "cond_frequencies": COND_FREQUENCIES,
        "blocks_per_level": 2,
        "attention_levels": [setup.attention_level],
        "heads": max(1, setup.attention_width // HEAD_DIM),
    }
    architecture = checkpoints.architecture_from_params(model_params, FACTORS, (3, setup.resolution, setup.resolution))
    return checkpoints.build_model(architecture)


class DiffusersBaseline(nn.Module):
    """diffusers' UNet2DModel with our factor conditioner as its (identity) class embedding;
    called like ScoreUNet: ``(x, t, values, keep) -> (eps, {})``."""

    def __init__(self, setup: Setup):
        super().__init__()
        widths = tuple(setup.base_channels * m for m in setup.channel_mults)
        attention = setup.attention_level
        self.unet = UNet2DModel(
            sample_size=setup.resolution,
            in_channels=3,
            out_channels=3,
            block_out_channels=widths,
            layers_per_block=1,
            down_block_types=tuple("AttnDownBlock2D" if i == attention else "DownBlock2D" for i in range(len(widths))),
            up_block_types=tuple(
                "AttnUpBlock2D" if i == attention else "UpBlock2D" for i in reversed(range(len(widths)))
            ),
            norm_num_groups=setup.groups,
            attention_head_dim=min(HEAD_DIM, setup.attention_width),
            resnet_time_scale_shift="scale_shift",
            class_embed_type="identity",
        )
        # The same conditioning work as ours, at diffusers' time-embedding width (4 x base).
        self.conditioner = FactorConditioner(FACTORS, 4 * widths[0], COND_FREQUENCIES)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, factor_values: torch.Tensor, keep: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        condition = self.conditioner(factor_values, keep)
        return self.unet(x, t * 999.0, class_labels=condition, return_dict=False)[0], {}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- timing


class Side:
    """One model's trainer plus the random data its batches are drawn from."""

    def __init__(self, name: str, trainer: Trainer, setup: Setup):
        self.name, self.trainer, self.setup = name, trainer, setup
        generator = torch.Generator().manual_seed(1)
        shape = (N_DATA, 3, setup.resolution, setup.resolution)
        self.images = torch.rand(shape, generator=generator) * 2.0 - 1.0
        self.values = torch.rand((N_DATA, len(FACTORS)), generator=generator)
        self.rates: list[float] = []

    def run(self, steps: int) -> float:
        """``steps`` full iterations as train() does them (draw, index, step); returns seconds."""
        sync(self.setup.device)
        start = time.perf_counter()
        for _ in range(steps):
            batch = self.trainer.draw(N_DATA, tuple(self.images.shape[1:]), len(FACTORS))
            float(self.trainer.update(self.images[batch.index], self.values[batch.index], batch)[0])  # one host sync
        sync(self.setup.device)
        return time.perf_counter() - start


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_step(model: nn.Module, setup: Setup, sde: VPSDE) -> int:
    """FLOPs of one forward + backward (the eager model, under the benchmark's autocast).

    Counted with attention on PyTorch's math backend: FlopCounterMode has no formula for the
    CPU flash kernel, and the math backend's matmuls count the same FLOPs as the fused
    kernels' formulas, on every device, for both models."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    device, size = setup.device, setup.batch
    generator = torch.Generator().manual_seed(2)
    x0 = torch.rand((size, 3, setup.resolution, setup.resolution), generator=generator).to(device) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator).to(device)
    if setup.cuda:
        x0, noise = (
            x0.contiguous(memory_format=torch.channels_last),
            noise.contiguous(memory_format=torch.channels_last),
        )
    t = torch.rand(size, generator=generator).to(device)
    values = torch.rand((size, len(FACTORS)), generator=generator).to(device)
    keep = torch.ones((size, len(FACTORS)), dtype=torch.bool, device=device)
    autocast = torch.autocast(
        device_type="cuda", dtype=torch.bfloat16, enabled=setup.cuda and setup.precision == "bf16"
    )
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        with autocast:
            loss = denoising_loss(model, sde, x0, values, keep, t, noise)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main() -> None:
    setup = parse_args()
    warnings.filterwarnings("ignore", module="diffusers")
    # torch.compile's one-off notes (e.g. the graph break at diffusers' lru_cache'd
    # is_torch_version check in its upsamplers) would split the report; the cost stays timed.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._dynamo")
    if setup.cuda:
        torch.backends.cudnn.benchmark = True  # global: both models get it
    sde = VPSDE()

    torch.manual_seed(0)
    ours_model = build_ours(setup)
    baseline_model = DiffusersBaseline(setup)
    ours_params, baseline_params = count_parameters(ours_model), count_parameters(baseline_model)
    param_ratio = ours_params / baseline_params

    config = TrainConfig(
        steps=100_000,
        batch_size=setup.batch,
        learning_rate=1e-4,
        warmup_steps=0,
        keep_none=0.1,
        keep_all=0.4,
        keep_single=0.3,
        ema_decay=0.999,
        seed=0,
        precision=setup.precision,
        compile=setup.compile,
    )
    ours_trainer = Trainer(ours_model, sde, config, setup.device)
    baseline_trainer = Trainer(baseline_model, sde, config, setup.device)  # the same step code for both
    ours_model.train()
    baseline_model.train()

    # counted on the eager modules before any timing; gradients are cleared after
    flops = {"ours": flops_per_step(ours_model, setup, sde), "diffusers": flops_per_step(baseline_model, setup, sde)}

    sides = [Side("ours", ours_trainer, setup), Side("diffusers", baseline_trainer, setup)]

    threads = torch.get_num_threads()
    print(f"train throughput: ours (Trainer.update, ScoreUNet) vs diffusers {diffusers.__version__} UNet2DModel")
    device_name = torch.cuda.get_device_name(setup.device) if setup.cuda else f"CPU ({os.cpu_count()} cores)"
    print(f"device:          {setup.device} {device_name}, torch {torch.__version__}, {threads} intra-op threads")
    print(
        f"resolution:      {setup.resolution}x{setup.resolution}, batch {setup.batch}, precision {setup.precision}"
        f"{', channels_last' if setup.cuda else ''}, compile {'on' if setup.compile else 'off'} (both)"
    )
    print(
        f"architecture:    widths {[setup.base_channels * m for m in setup.channel_mults]}, attention at level "
        f"{setup.attention_level} ({setup.resolution >> setup.attention_level}x{setup.resolution >> setup.attention_level})"
        f" and mid, {setup.groups} groups, head width {min(HEAD_DIM, setup.attention_width)}"
    )
    print(
        f"parameters:      ours {ours_params:,}, diffusers {baseline_params:,} (incl. the same factor conditioner), "
        f"ratio {param_ratio:.3f}"
    )
    if abs(param_ratio - 1.0) > PARAM_TOLERANCE:
        sys.exit(
            f"train_throughput: parameter counts differ by more than {PARAM_TOLERANCE:.0%} "
            f"({ours_params:,} vs {baseline_params:,}); the comparison would not be fair"
        )
    print(
        f"timing:          {setup.warmup} warm-up steps each, then {setup.windows} alternating windows of "
        f"{setup.steps_per_window} steps each; images/s = median over windows",
        flush=True,
    )

    started = time.perf_counter()
    for side in sides:
        seconds = side.run(setup.warmup)
        print(
            f"warm-up {side.name:<9} {seconds:7.1f} s for {setup.warmup} steps"
            f"{' (torch.compile included)' if setup.compile else ''}",
            flush=True,
        )
    for window in range(setup.windows):
        order = sides if window % 2 == 0 else sides[::-1]  # alternate who goes first
        for side in order:
            seconds = side.run(setup.steps_per_window)
            side.rates.append(setup.steps_per_window * setup.batch / seconds)
    elapsed = time.perf_counter() - started

    medians = {side.name: statistics.median(side.rates) for side in sides}
    print(f"timed in {elapsed:.0f} s (warm-up included)")
    for side in sides:
        spread = ", ".join(f"{r:.1f}" for r in side.rates)
        print(
            f"{side.name:<10} {medians[side.name]:9.1f} images/s  "
            f"({1e3 * setup.batch / medians[side.name]:.1f} ms/step; windows: {spread})"
        )
    peak, source = peak_flops(setup.device) if setup.cuda else (None, "CPU: no MFU")
    for side in sides:
        achieved = flops[side.name] * medians[side.name] / setup.batch
        if peak:
            mfu = f"MFU {100 * achieved / peak:.1f}% of {peak / 1e12:.0f} TFLOP/s ({source})"
        else:
            mfu = f"MFU n/a ({source})"
        print(
            f"{side.name:<10} {flops[side.name] / 1e9:9.1f} GFLOP/step (fwd+bwd, FlopCounterMode)  "
            f"{achieved / 1e12:.3f} TFLOP/s achieved  {mfu}"
        )
    print(f"ratio={medians['ours'] / medians['diffusers']:.3f}")


if __name__ == "__main__":
    main()
