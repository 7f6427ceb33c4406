"""The linear algebra of the probes: standardisation and eigen-rotation of the features
(a basis), closed-form ridge, R^2, and weights carried from one basis to another."""

from __future__ import annotations

import dataclasses

import torch


def standardise(x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std over the rows ``rows``, accumulated in float64 (std 1 where a
    feature is constant, as scikit-learn's ``StandardScaler`` does)."""
    fit = x[:, rows].double()
    mean = fit.mean(1, keepdim=True)
    std = fit.std(1, unbiased=False, keepdim=True)
    std = torch.where(std > 1e-12 * mean.abs(), std, torch.ones_like(std))
    return mean.to(x.dtype), std.to(x.dtype)


def rotation(zfit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal directions (G, d, r) of the principal components of the standardised fit rows
    (r = min(m, d)) and the eigenvalues of the row-mean Gram (G, r); null directions have zero
    columns, so projecting onto them gives exactly zero."""
    G, m, d = zfit.shape
    if d <= m:
        evals, vecs = torch.linalg.eigh(zfit.mT @ zfit / m)
        keep = evals > 1e-6 * evals[:, -1:].clamp_min(1e-30)
        return vecs * keep[:, None, :], torch.where(keep, evals, torch.zeros_like(evals))
    evals, u = torch.linalg.eigh(zfit @ zfit.mT / m)  # kernel form when there are fewer rows than dims
    keep = evals > 1e-6 * evals[:, -1:].clamp_min(1e-30)
    inv_sqrt = torch.where(keep, (evals * m).clamp_min(1e-30).rsqrt(), torch.zeros_like(evals))
    return zfit.mT @ u * inv_sqrt[:, None, :], torch.where(keep, evals, torch.zeros_like(evals))


@dataclasses.dataclass
class Basis:
    """Standardisation and rotation learnt from a set of fit rows, applied to any rows."""

    mean: torch.Tensor
    std: torch.Tensor
    vecs: torch.Tensor
    eig: torch.Tensor  # (G, q): mean squares of the rotated fit columns, 1 for the intercept

    @classmethod
    def fit(cls, x: torch.Tensor, rows: torch.Tensor) -> Basis:
        mean, std = standardise(x, rows)
        vecs, evals = rotation((x[:, rows] - mean) / std)
        eig = torch.cat([evals, torch.ones_like(evals[:, :1])], dim=1)
        return cls(mean, std, vecs, eig)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        z = ((x - self.mean) / self.std) @ self.vecs
        return torch.cat([z, torch.ones_like(z[..., :1])], dim=-1)


def ridge(z: torch.Tensor, eig: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Closed-form ridge on orthogonal-column rotated features. z (G, m, q) with a constant last
    column, eig (G, q), y (m, F) targets, lam (G, L, F) -> weights (G, L, F, q)."""
    m = z.shape[1]
    zy = (z.mT @ y) / m  # (G, q, F)
    denom = eig[:, None, None, :] + torch.cat(
        [lam[..., None].expand(*lam.shape, z.shape[2] - 1), torch.zeros_like(lam[..., None])], dim=-1
    )
    safe = torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(denom > 0, zy.mT[:, None] / safe, torch.zeros_like(safe))


def r_squared(y: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """1 - SSE/SST over dim -2 (rows) of (..., n, F) -> (..., F); NaN where the target is constant."""
    total = ((y - y.mean(-2, keepdim=True)) ** 2).sum(-2)
    sse = ((y - pred) ** 2).sum(-2)
    return torch.where(total > 0, 1 - sse / total.clamp_min(1e-300), torch.full_like(total, float("nan")))


def carry(w: torch.Tensor, a: Basis, b: Basis) -> torch.Tensor:
    """Weights (G, C, q) of a linear map on basis ``a``'s features, expressed on basis ``b``'s
    (exact where ``b``'s rotation has full rank)."""
    coef = a.vecs @ w[:, :, :-1].mT / a.std.mT  # (G, d, C) on the raw features
    intercept = w[:, :, -1:].mT - a.mean @ coef  # (G, 1, C)
    wb = b.vecs.mT @ (coef * b.std.mT)
    return torch.cat([wb, intercept + (b.mean / b.std) @ (b.vecs @ wb)], dim=1).mT.contiguous()
