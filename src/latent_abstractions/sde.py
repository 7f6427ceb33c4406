"""The forward noising process as one small object (after score_sde_pytorch's sde_lib).

VP SDE (Song et al. 2021, eq. 11): dX = -1/2 beta(t) X dt + sqrt(beta(t)) dW with
beta(t) = beta_min + t (beta_max - beta_min) on t in [0, 1]. Its marginal is
X_t | x_0 ~ N(alpha_t x_0, sigma_t^2 I) with
log alpha_t = -1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min and sigma_t^2 = 1 - alpha_t^2.
"""

from __future__ import annotations

import dataclasses

import torch


def expand_like(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector (B,) to broadcast against ``target`` (B, ...)."""
    return values.reshape(values.shape + (1,) * (target.ndim - values.ndim))


@dataclasses.dataclass(frozen=True)
class VPSDE:
    beta_min: float = 0.1
    beta_max: float = 20.0
    T: float = 1.0

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(2.0 * self.log_alpha(t)))

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """log(alpha_t^2 / sigma_t^2)."""
        two_log_alpha = 2.0 * self.log_alpha(t)
        return two_log_alpha - torch.log(-torch.expm1(two_log_alpha))

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * expand_like(self.beta(t), x) * x

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.beta(t))

    def marginal(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A draw of X_t given x_0, with the given standard-normal ``noise``."""
        return expand_like(self.alpha(t), x0) * x0 + expand_like(self.sigma(t), x0) * noise

    def prior_sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    def score_from_eps(self, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """grad log p_t(x) = -eps / sigma_t for an epsilon-prediction network."""
        return -eps / expand_like(self.sigma(t), eps)

    def denoise(self, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Tweedie's estimate E[x_0 | x_t] = (x_t - sigma_t eps) / alpha_t."""
        return (x - expand_like(self.sigma(t), x) * eps) / expand_like(self.alpha(t), x)


def make_sde(params: dict) -> VPSDE:
    if params["kind"] != "vp":
        raise ValueError(f"unknown SDE kind {params['kind']!r}; allowed: vp")
    return VPSDE(beta_min=float(params["beta_min"]), beta_max=float(params["beta_max"]))


def time_grid(t_start: float, t_end: float, steps: int) -> torch.Tensor:
    """``steps + 1`` equally spaced times from ``t_start`` down to ``t_end``."""
    return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64).float()


