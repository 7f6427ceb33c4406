"""Exact quantities for a finite data set under a VP/VE-type Gaussian corruption.

The noised distribution of N images is the mixture (1/N) sum_i N(alpha_t x_i, sigma_t^2 I),
so the posterior over images given X_t = x, hence over any factor's values, and the
score given any subset of factors are exact (SCIENCE.md, "Ground truth").
"""

from __future__ import annotations

import torch

from .sde import SDE, expand_like


def image_posterior(x_t: torch.Tensor, images: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
                    allowed: torch.Tensor | None = None) -> torch.Tensor:
    """p(i | X_t = x) over the images (B, N); ``alpha``, ``sigma`` are per-sample (B,).

    ``allowed`` (B, N) bool restricts each row to images consistent with a condition.
    """
    x = x_t.flatten(1).double()
    flat = images.flatten(1).double()
    a, s = alpha.double()[:, None], sigma.double()[:, None]
    squared = x.pow(2).sum(1, keepdim=True) - 2 * a * (x @ flat.T) + a**2 * flat.pow(2).sum(1)[None, :]
    logits = -squared / (2 * s**2)
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    return torch.softmax(logits, dim=1)


def factor_posterior(posterior: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """p(y = v | X_t) for one factor: the image posterior summed over images with value v (B, V)."""
    by_value = torch.zeros(posterior.shape[0], int(labels.max()) + 1, dtype=posterior.dtype)
    return by_value.index_add_(1, labels, posterior)


class ExactEpsilon(torch.nn.Module):
    """The Bayes-optimal epsilon-predictor for a finite data set: a drop-in for the score
    network (same call signature), conditioned on any subset of factors."""

    def __init__(self, sde: SDE, images: torch.Tensor, factor_values: torch.Tensor):
        super().__init__()
        self.sde, self.images, self.values = sde, images.float(), factor_values.float()

    def forward(self, x: torch.Tensor, t: torch.Tensor, factor_values: torch.Tensor, keep: torch.Tensor,
                taps=()) -> tuple[torch.Tensor, dict]:
        # Images whose kept factors equal the requested values.
        matches = (self.values[None, :, :] == factor_values[:, None, :]) | ~keep[:, None, :]
        posterior = image_posterior(x, self.images, self.sde.alpha(t), self.sde.sigma(t), matches.all(dim=2))
        mean_x0 = (posterior @ self.images.flatten(1).double()).reshape(x.shape)
        alpha, sigma = expand_like(self.sde.alpha(t), x).double(), expand_like(self.sde.sigma(t), x).double()
        return ((x.double() - alpha * mean_x0) / sigma).to(x.dtype), {}
