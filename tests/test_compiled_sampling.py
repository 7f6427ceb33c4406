"""sample/fork/forward_backward ``compile``: the compiled network samples the trajectories
the eager one does (to float rounding), through a sampler with extra evaluations."""

from __future__ import annotations

import torch

from latent_abstractions.core.factors import Factor
from latent_abstractions.diffusion.counter_noise import CounterNoise
from latent_abstractions.diffusion.nets.unet import ScoreUNet
from latent_abstractions.diffusion.samplers import SAMPLERS
from latent_abstractions.diffusion.sde import VPSDE, time_grid
from latent_abstractions.sampling.recording import TrajectoryRecorder
from latent_abstractions.stages.sampling_setup import compiled


def test_a_compiled_network_samples_what_the_eager_one_does():
    torch.manual_seed(0)
    factors = [Factor("x", "continuous", (0.0, 1.0, 2.0))]
    model = ScoreUNet(1, factors, base_channels=8, channel_mults=[1, 2], groups=4, cond_frequencies=4).eval()
    sde = VPSDE()
    times = time_grid(1.0, 1e-3, 5, sde=sde)

    def sample(network):
        noise = CounterNoise(range(4))
        recorder = TrajectoryRecorder(network, sde, torch.ones(4, 1), [2], ["mid"], block=4)
        final = SAMPLERS["heun"](recorder, sde, noise((4, 1, 8, 8)), times, noise=noise)  # two passes a step
        return final, recorder.records[2]

    eager, compiled_run = sample(model), sample(compiled(model))
    assert torch.allclose(eager[0], compiled_run[0], atol=1e-4)
    for column, value in eager[1].items():
        assert abs(value - compiled_run[1][column]).max() < 1e-4, column
