"""The forward noising process as one small abstraction (after score_sde_pytorch's sde_lib).

The method in full: docs/science.md, "The noise processes".
"""

from __future__ import annotations

import abc
import dataclasses
import math

import torch

from ..core.errors import InputError

T_MIN = 1e-3  # smallest time trained on: the eps-target is ill-posed as sigma_t -> 0


def expand_like(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector (B,) to broadcast against ``target`` (B, ...)."""
    return values.reshape(values.shape + (1,) * (target.ndim - values.ndim))


class SDE(abc.ABC):
    T: float = 1.0

    @abc.abstractmethod
    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def diffusion(self, t: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """Mean coefficient of the marginal: E[X_t | x_0] = alpha_t x_0."""

    @abc.abstractmethod
    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Standard deviation of the marginal."""

    @abc.abstractmethod
    def prior_std(self) -> float:
        """Standard deviation of the (Gaussian) distribution sampling starts from at T."""

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """log(alpha_t^2 / sigma_t^2)."""
        return 2.0 * (torch.log(self.alpha(t)) - torch.log(self.sigma(t)))

    def time_of_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        """The inverse of ``log_snr``: the time t at which log(alpha_t^2 / sigma_t^2) = ``log_snr``."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse log-SNR")

    def marginal(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A draw of X_t given x_0, with the given standard-normal ``noise``."""
        return expand_like(self.alpha(t), x0) * x0 + expand_like(self.sigma(t), x0) * noise

    def prior_sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        return self.prior_std() * torch.randn(shape, generator=generator)

    def score_from_eps(self, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """grad log p_t(x) = -eps / sigma_t for an epsilon-prediction network."""
        return -eps / expand_like(self.sigma(t), eps)

    def denoise(self, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Tweedie's estimate E[x_0 | x_t] = (x_t - sigma_t eps) / alpha_t."""
        return (x - expand_like(self.sigma(t), x) * eps) / expand_like(self.alpha(t), x)

    def reverse_drift(self, x: torch.Tensor, t: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """Drift of the reverse-time SDE (Anderson 1982): f - g^2 score (integrated backwards in t)."""
        return self.drift(x, t) - expand_like(self.diffusion(t), x) ** 2 * score

    def probability_flow_drift(self, x: torch.Tensor, t: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """The ODE with the same marginals (Song et al. 2021, eq. 13): f - 1/2 g^2 score."""
        return self.drift(x, t) - 0.5 * expand_like(self.diffusion(t), x) ** 2 * score


@dataclasses.dataclass(frozen=True)
class VPSDE(SDE):
    beta_min: float = 0.1
    beta_max: float = 20.0

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(2.0 * self.log_alpha(t)))

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        two_log_alpha = 2.0 * self.log_alpha(t)  # stable form of the base class's formula
        return two_log_alpha - torch.log(-torch.expm1(two_log_alpha))

    def time_of_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        # alpha^2 = sigmoid(lambda), so c = -2 log alpha = softplus(-lambda) solves
        # 1/2 (beta_max - beta_min) t^2 + beta_min t = c; this root form has no cancellation.
        c = torch.nn.functional.softplus(-log_snr)
        spread = self.beta_max - self.beta_min
        return 2.0 * c / (self.beta_min + torch.sqrt(self.beta_min**2 + 2.0 * spread * c))

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * expand_like(self.beta(t), x) * x

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.beta(t))

    def prior_std(self) -> float:
        return 1.0


@dataclasses.dataclass(frozen=True)
class VESDE(SDE):
    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def _sigma_of_t(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self._sigma_of_t(t) ** 2 - self.sigma_min**2)

    def time_of_log_snr(self, log_snr: torch.Tensor) -> torch.Tensor:
        # sigma_t^2 = exp(-lambda) = sigma_min^2 (r^{2t} - 1) with r = sigma_max / sigma_min.
        log_ratio = math.log(self.sigma_max / self.sigma_min)
        return 0.5 * torch.nn.functional.softplus(-log_snr - 2.0 * math.log(self.sigma_min)) / log_ratio

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return self._sigma_of_t(t) * math.sqrt(2.0 * math.log(self.sigma_max / self.sigma_min))

    def prior_std(self) -> float:
        return math.sqrt(self.sigma_max**2 - self.sigma_min**2)


def make_sde(params: dict) -> SDE:
    if params["kind"] == "vp":
        return VPSDE(beta_min=float(params["beta_min"]), beta_max=float(params["beta_max"]))
    if params["kind"] == "ve":
        return VESDE(sigma_min=float(params["sigma_min"]), sigma_max=float(params["sigma_max"]))
    raise InputError(f"unknown SDE kind {params['kind']!r}; allowed: vp, ve")


def log_snr_grid(sde: SDE, t_start: float, t_end: float, points: int) -> torch.Tensor:
    """``points`` times (float64) from ``t_start`` to ``t_end`` whose log-SNRs are evenly spaced.

    The end points are returned exactly; either order of ``t_start`` and ``t_end`` works.
    """
    if points < 2:
        raise InputError(f"a log-SNR grid needs at least 2 points, got {points}")
    if min(t_start, t_end) <= 0.0:
        raise InputError(f"log-SNR grid times must be > 0 (log-SNR is infinite at t = 0), got {t_start}, {t_end}")
    ends = sde.log_snr(torch.tensor([t_start, t_end], dtype=torch.float64))
    times = sde.time_of_log_snr(torch.linspace(float(ends[0]), float(ends[1]), points, dtype=torch.float64))
    times[0], times[-1] = t_start, t_end
    return times


SPACINGS = ("uniform", "log_snr")


def time_grid(
    t_start: float, t_end: float, steps: int, sde: SDE | None = None, spacing: str | None = None
) -> torch.Tensor:
    """``steps + 1`` times (float32) from ``t_start`` down to ``t_end``.

    ``spacing`` "uniform" spaces them evenly in t; "log_snr" evenly in the ``sde``'s
    log-SNR, which leaves far less residual noise at ``t_end`` for the same number of
    steps. Left out, it is "log_snr" when an ``sde`` is given and "uniform" otherwise.
    """
    spacing = spacing or ("uniform" if sde is None else "log_snr")
    if spacing == "uniform":
        return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64).float()
    if spacing == "log_snr":
        if sde is None:
            raise InputError("a log_snr time grid needs the sde")
        return log_snr_grid(sde, t_start, t_end, steps + 1).float()
    raise InputError(f"unknown time spacing {spacing!r}; allowed: {', '.join(SPACINGS)}")
