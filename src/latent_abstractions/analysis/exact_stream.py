"""Exact I(Y_k; X_t) of a finite image set at many times, in one streaming pass over its images.

The draws at every time share their clean image and their noise direction (common random
numbers): x_b(t) = alpha_t x0_b + sigma_t eps_b for pair b. Up to a constant per draw, the
log posterior of image i is

    -||x_b(t) - alpha_t x_i||^2 / 2 sigma_t^2  =  -snr_t ||x0_b - x_i||^2 / 2 + sqrt(snr_t) eps_b . (x_i - x0_b),

so two dot products per (pair, image) serve every time. They are taken in float64 on the
images as stored (uint8 pixels are integers, so ||x0_b - x_i||^2 is exact however close the
two images are); a running log-sum-exp per (time, pair) accumulates the factor posteriors.

Each time's draws are exact draws of X_t, so each time's mean and standard error are as
with independent draws; the curves' errors are correlated across times, which is why the
decision times are bootstrapped over the pairs (``resample_pairs``), never point by point.
The method in full: docs/science.md, "The exact order at paper resolution".
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..core.pixels import stored_step
from ..core.progress import Progress
from ..diffusion.sde import SDE, log_snr_grid
from .ground_truth import FiniteMixture, entropy_terms
from .information import InformationEstimate

LOGIT_BYTES = 1 << 24  # a chunk's float32 logits (times x pairs x images): small enough to stay in cache
CHUNK_LIMITS = (64, 2048)  # images per chunk, at least and at most
LOG_WEIGHT_FLOOR = -80.0


@dataclasses.dataclass(frozen=True)
class ExactCurves:
    """The curves (``estimate``) and each pair's exact I terms ``per_pair`` (P, N, K)."""

    estimate: InformationEstimate
    per_pair: np.ndarray


@dataclasses.dataclass
class _Running:
    """A running log-sum-exp over the images per (time, pair), kept per factor value: each
    factor's columns sum to the same total, so the posteriors need no separate one."""

    top: torch.Tensor  # (P, N) the largest logit so far
    weighted: torch.Tensor  # (P, N, V) sum of exp(logit - top) one_hot

    def add(self, logits: torch.Tensor, one_hot: torch.Tensor) -> None:
        """Fold in one chunk's logits (P, N, C), overwritten with their weights."""
        new_top = torch.maximum(self.top, logits.amax(2).double())
        # exp is many times slower below about -87 (float32 denormals): a weight under
        # e^-80 of the largest counts as e^-80, an error under 1e-29 per million images.
        weights = logits.sub_(new_top[..., None].float()).clamp_(min=LOG_WEIGHT_FLOOR).exp_()
        rescale = torch.exp(self.top - new_top)[..., None]
        self.weighted = self.weighted * rescale + (weights @ one_hot).double()
        self.top = new_top


def _chunk_size(points: int, pairs: int) -> int:
    return int(np.clip(LOGIT_BYTES // (4 * points * pairs), *CHUNK_LIMITS))


class _Pairs:
    """The pairs' clean images (stored units, float64) and noise, and the chunk products."""

    def __init__(self, mixture: FiniteMixture, positions: np.ndarray, noise: torch.Tensor, device: torch.device):
        self.step = stored_step(mixture.image_rows.images)
        clean = mixture.image_rows.read(positions).to(device, torch.float64).flatten(1)
        noise = noise.flatten(1).to(device, torch.float64)
        self.sides = torch.cat([clean, noise])  # (2N, D): one product gives both dot products
        self.clean_norms = torch.einsum("nd,nd->n", clean, clean)[:, None]
        self.noise_at_clean = torch.einsum("nd,nd->n", noise, clean)[:, None]
        self.count = len(clean)

    def distances_and_noise(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """||x0_b - x_i||^2 and eps_b . (x_i - x0_b) in the model range, each (N, C) float32."""
        products = self.sides @ images.T
        norms = torch.einsum("cd,cd->c", images, images)[None, :]
        distances = (self.clean_norms + norms - 2.0 * products[: self.count]) * self.step**2
        along_noise = (products[self.count :] - self.noise_at_clean) * self.step
        return distances.float(), along_noise.float()


def posteriors(
    mixture: FiniteMixture, positions: np.ndarray, noise: torch.Tensor, snr: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, list[int]]:
    """p(Y_k = v | X_t = x_b(t)) for every time and pair (the pairs' clean images at the
    mixture's row ``positions``): (P, N, V) float64 on ``device``, with the factors'
    cardinalities (the columns of V, factor by factor)."""
    pairs = _Pairs(mixture, positions, noise, device)
    half_snr = (-0.5 * snr).to(device, torch.float32)[:, None, None]
    root = snr.sqrt().to(device, torch.float32)[:, None, None]
    one_hot, sizes = mixture.one_hot(0, len(mixture), torch.float32, device), mixture.cardinalities
    shape = (len(snr), pairs.count)
    running = _Running(
        torch.full(shape, -torch.inf, dtype=torch.float64, device=device),
        torch.zeros(*shape, sum(sizes), dtype=torch.float64, device=device),
    )
    step = _chunk_size(*shape)
    buffer = torch.empty(step, pairs.sides.shape[1], dtype=torch.float64, device=device)
    with Progress(len(mixture), "exact stream", "image") as progress:
        for start in range(0, len(mixture), step):
            stop = min(start + step, len(mixture))
            images = buffer[: stop - start].copy_(mixture.image_rows.read_span(start, stop).flatten(1))
            distances, along_noise = pairs.distances_and_noise(images)
            logits = torch.mul(distances[None], half_snr).addcmul_(along_noise[None], root)
            running.add(logits, one_hot[start:stop])
            progress.update(stop - start)
    joint = torch.cat([block / block.sum(2, keepdim=True) for block in running.weighted.split(sizes, dim=2)], dim=2)
    return joint, sizes


@torch.no_grad()
def exact_information(
    sde: SDE, mixture: FiniteMixture, t_end: float, points: int, samples: int, seed: int, device: torch.device
) -> ExactCurves:
    """I(Y_k; X_t) and the Bayes-optimal accuracy on a log-SNR-uniform grid of ``points``
    times from T down to ``t_end``, from ``samples`` pairs (a clean image of the mixture,
    drawn without replacement while rows last, and a noise direction) shared by every time."""
    times = log_snr_grid(sde, sde.T, t_end, points)
    generator = torch.Generator().manual_seed(seed)
    positions = mixture.stratified_positions(1, samples, generator)[0]
    noise = torch.randn((samples, *mixture.image_shape), generator=generator, dtype=torch.float64)
    snr = (sde.alpha(times) / sde.sigma(times)) ** 2
    joint, sizes = posteriors(mixture, positions, noise, snr, device)
    factor_posteriors = [p.reshape(points * samples, -1) for p in joint.split(sizes, dim=2)]
    labels = mixture.labels[torch.from_numpy(positions)].repeat(points, 1)  # row (time p, pair b): pair b's
    terms = entropy_terms(factor_posteriors, labels, mixture.entropy)
    per_pair = {name: value.reshape(points, samples, -1).cpu().numpy() for name, value in terms.items()}
    mean = {name: value.mean(1) for name, value in per_pair.items()}
    stderr = {name: value.std(1, ddof=1) / np.sqrt(samples) for name, value in per_pair.items()}
    estimate = InformationEstimate(
        times.numpy(), sde.log_snr(times).numpy(), np.asarray(mixture.entropy, dtype=np.float64), mean, stderr
    )
    return ExactCurves(estimate, per_pair["exact"])


def resample_pairs(per_pair: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One bootstrap replicate of the mean curves (P, K): the pairs drawn with replacement."""
    chosen = rng.integers(per_pair.shape[1], size=per_pair.shape[1])
    return per_pair[:, chosen, :].mean(1)
