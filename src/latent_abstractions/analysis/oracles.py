"""Test oracles: the exact epsilon of a finite data set, and Gaussian tasks whose
information is known in closed form. The tests and benchmarks check the estimators and
samplers against them; no pipeline stage imports this module, so no stage's code hash
depends on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import torch

from ..diffusion.sde import SDE, expand_like
from .ground_truth import Draw, FiniteMixture


class ExactEpsilon(torch.nn.Module):
    """The Bayes-optimal epsilon-predictor for a finite data set: a drop-in for the score
    network (same call signature), conditioned on any subset of factors."""

    def __init__(
        self,
        sde: SDE,
        images: torch.Tensor | np.ndarray,
        factor_values: torch.Tensor | np.ndarray,
        chunk_size: int | None = None,
    ):
        super().__init__()
        self.sde = sde
        self.mixture = FiniteMixture(images, values=factor_values, chunk_size=chunk_size)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, factor_values: torch.Tensor, keep: torch.Tensor, taps=()
    ) -> tuple[torch.Tensor, dict]:
        t = t.double()
        alpha, sigma = self.sde.alpha(t), self.sde.sigma(t)
        mean_x0 = self.mixture.conditional_mean(x, alpha, sigma, factor_values, keep)
        eps = (x.double() - expand_like(alpha, x) * mean_x0) / expand_like(sigma, x)
        return eps.to(x.dtype), {}


@dataclasses.dataclass(frozen=True)
class GaussianTask:
    """Y ~ N(0, ``cov_y``) in R^K, one factor per component, and X_0 = ``mixing`` Y + N(0, ``noise_cov``) in R^D.

    Given the kept factors Y_S, X_t = alpha X_0 + sigma eps is Gaussian with mean
    alpha A E[Y | Y_S] and covariance C_S = alpha^2 (A Cov(Y | Y_S) A^T + noise_cov) + sigma^2 I,
    so eps(x | y_S) = sigma C_S^{-1} (x - mean) and I(Y_k; X_t) = 1/2 log det C_none / det C_{k}.
    """

    name: str
    mixing: np.ndarray  # (D, K)
    cov_y: np.ndarray  # (K, K)
    noise_cov: np.ndarray  # (D, D)

    @property
    def n_factors(self) -> int:
        return self.mixing.shape[1]

    @property
    def entropy(self) -> np.ndarray:
        return np.full(self.n_factors, np.nan)  # differential entropies: no upper bound on I to report

    def _given(self, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(G, Cov(X_0 | Y_S)) with E[X_0 | Y_S = y_S] = G y_S, for the kept factors S."""
        a, cov = self.mixing, self.cov_y
        if not kept.any():
            return np.zeros((a.shape[0], 0)), a @ cov @ a.T + self.noise_cov
        gain = cov[:, kept] @ np.linalg.inv(cov[np.ix_(kept, kept)])  # E[Y | Y_S] = gain y_S
        residual = cov - gain @ cov[kept, :]
        return a @ gain, a @ residual @ a.T + self.noise_cov

    def _noised(self, sde: SDE, t: float, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(M, C_S, sigma_t): X_t | Y_S = y_S ~ N(M y_S, C_S)."""
        ts = torch.tensor([t], dtype=torch.float64)
        alpha, sigma = float(sde.alpha(ts)), float(sde.sigma(ts))
        gain, cov = self._given(kept)
        return alpha * gain, alpha**2 * cov + sigma**2 * np.eye(len(cov)), sigma

    def mutual_information(self, sde: SDE, t: float) -> np.ndarray:
        """I(Y_k; X_t) in nats for every factor k, (K,)."""
        factors = np.arange(self.n_factors)
        log_det = [
            np.linalg.slogdet(self._noised(sde, t, kept)[1])[1]
            for kept in [factors < 0] + [factors == k for k in factors]
        ]
        return 0.5 * (log_det[0] - np.asarray(log_det[1:]))

    def joint_covariance(self, sde: SDE, t: float, k: int) -> np.ndarray:
        """The covariance of (X_t, Y_k), (D + 1, D + 1): for checks against other MI formulas."""
        _, cov_x, _ = self._noised(sde, t, np.zeros(self.n_factors, dtype=bool))
        alpha = float(sde.alpha(torch.tensor([t], dtype=torch.float64)))
        cross = alpha * self.mixing @ self.cov_y[:, k]
        joint = np.block([[cov_x, cross[:, None]], [cross[None, :], self.cov_y[k : k + 1, k : k + 1]]])
        return (joint + joint.T) / 2  # exactly symmetric

    def epsilon(self, sde: SDE, x: torch.Tensor, t: float, values: torch.Tensor, kept: np.ndarray) -> torch.Tensor:
        """The exact eps(x | Y_S = values_S) = sigma C_S^{-1} (x - M y_S) at one time, rows ``x`` (B, D), float64."""
        gain, cov, sigma = self._noised(sde, t, kept)
        mean = values.double()[:, torch.from_numpy(kept)] @ torch.from_numpy(gain).T
        return sigma * torch.linalg.solve(torch.from_numpy(cov), (x.double() - mean).T).T

    def draws(self, points: int, samples: int, generator: torch.Generator) -> Iterator[Draw]:
        y_factor = torch.from_numpy(np.linalg.cholesky(self.cov_y))
        noise_factor = torch.from_numpy(np.linalg.cholesky(self.noise_cov))
        mixing = torch.from_numpy(self.mixing)
        for _ in range(points):
            y = torch.randn(samples, self.n_factors, generator=generator, dtype=torch.float64) @ y_factor.T
            noise = torch.randn(samples, len(self.noise_cov), generator=generator, dtype=torch.float64)
            yield Draw(y @ mixing.T + noise @ noise_factor.T, y.float(), None)

    def exact_terms(self, sde: SDE, x: torch.Tensor, t: float, draw: Draw) -> tuple[dict[str, torch.Tensor], None]:
        """The closed-form I(Y_k; X_t), the same for every draw; no discrete posteriors."""
        return {"exact": torch.from_numpy(self.mutual_information(sde, t)).expand(len(x), -1)}, None


class GaussianEpsilon(torch.nn.Module):
    """The exact epsilon-predictor of a ``GaussianTask``, with the score network's call signature."""

    def __init__(self, sde: SDE, task: GaussianTask):
        super().__init__()
        self.sde, self.task = sde, task

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, factor_values: torch.Tensor, keep: torch.Tensor, taps=()
    ) -> tuple[torch.Tensor, dict]:
        eps = torch.empty(x.shape, dtype=torch.float64)
        # One closed form per (time, kept subset): group the rows by both, as one integer key.
        times, time_index = torch.unique(t.cpu(), return_inverse=True)
        subset = (keep.cpu().long() << torch.arange(keep.shape[1])).sum(1)
        keys = torch.unique(time_index * 2 ** keep.shape[1] + subset)
        for key in keys.tolist():
            time, code = divmod(key, 2 ** keep.shape[1])
            rows = (time_index == time) & (subset == code)
            kept = np.asarray([(code >> k) & 1 for k in range(keep.shape[1])], dtype=bool)
            eps[rows] = self.task.epsilon(self.sde, x[rows].cpu(), float(times[time]), factor_values[rows].cpu(), kept)
        return eps.to(x.device, x.dtype), {}


def gaussian_suite() -> list[GaussianTask]:
    """Validation tasks with I(Y_k; X_0) from about 0.3 to 4 nats, from one to three
    factors and two to sixteen dimensions, with correlated factors and correlated noise."""
    rng = np.random.default_rng(3)
    correlated = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 1.0]])
    sparse = np.zeros((16, 2))
    sparse[:4, 0], sparse[4:6, 1] = 0.8, 0.25
    lags = np.abs(np.subtract.outer(np.arange(8), np.arange(8)))
    return [
        GaussianTask("1 factor in 2 dims", np.array([[1.0], [0.5]]), np.eye(1), 0.5 * np.eye(2)),
        GaussianTask("1 factor in 3 dims, 4 nats", np.ones((3, 1)), np.eye(1), 0.001 * np.eye(3)),
        GaussianTask(
            "3 correlated factors in 6 dims", rng.normal(0, 0.5, (6, 3)), correlated, np.diag(rng.uniform(0.05, 0.3, 6))
        ),
        GaussianTask("2 sparse factors in 16 dims", sparse, np.eye(2), 0.1 * np.eye(16)),
        GaussianTask("1 factor in 8 dims, correlated noise", rng.normal(0, 0.3, (8, 1)), np.eye(1), 0.1 * 0.9**lags),
    ]
