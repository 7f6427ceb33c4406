"""Linear probes: from a feature recorded along the generative trajectories to a generating
factor, many (recorded step x feature x factor) problems fitted at once in batched torch.

* Categorical factor: multinomial logistic regression (softmax, K weight columns for K
  classes, as scikit-learn's ``LogisticRegression`` fits them; a binary factor gets a single
  logit column, again as scikit-learn does), L2 penalty on the weights, intercept not
  penalised. Scored on test by accuracy, balanced accuracy and log-loss.
* Continuous factor: ridge regression in closed form, scored by test R^2.

Objective of one problem, on the ``m`` rows it is fitted on, features standardised with the
mean and population std of those rows (constant features left at zero)::

    mean_i loss_i(w, b) + penalty / 2 * ||w||^2

``loss`` the negative log-likelihood (logistic) or half the squared error (ridge). The
penalty is per sample: the fit is scikit-learn's ``StandardScaler`` followed by
``LogisticRegression(C=1 / (penalty * m))`` or ``Ridge(alpha=penalty * m)``.

Splits are by trajectory, never by row: ``split_train_validation_test`` draws the test
trajectories (the ones ``split_trajectories`` draws for the same seed) and carves validation
trajectories out of the rest. Every penalty of a small log-spaced grid (``DEFAULT_PENALTIES``)
is fitted on train; the one with the lowest validation loss (log-loss; mean squared error for
ridge) is kept, ties to the larger penalty; the probe is refitted with it on train +
validation (standardised again on those rows) and scored on test.

Logistic optimiser: batched L-BFGS (memory 5, compact form), one curvature history per
problem, run in the eigenbasis of the standardised training features (an exact change of
variables: the penalty is rotation invariant; the features' correlations, the usual cause of
slow convergence, are gone there) and preconditioned by the exact diagonal of the Hessian at
the start point. Step: t = 1, halved until the Armijo condition holds (the scores along the
direction are ``S + t Z D``, so trying a step costs no matrix product). The grid is run from
the largest penalty down, each fit starting from the previous solution; the refit starts
from the chosen solution carried over to the train + validation basis. A problem stops when
the Euclidean norm of the gradient of the objective above is at most ``tol`` (default 1e-4;
scikit-learn's lbfgs stops at a max-norm of 1e-4, which is looser) and is frozen while the
others go on; groups whose problems have all stopped are dropped from the batch. The steps,
features and factors of one call share each matrix product. Computation runs where the
features are (CUDA tensors: on the GPU), in float32 unless ``dtype`` says otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
CATEGORICAL, CONTINUOUS = "categorical", "continuous"
CATEGORICAL_METRICS = ("accuracy", "balanced_accuracy", "log_loss")
CONTINUOUS_METRICS = ("r2",)


# ----------------------------------------------------------------------------- splits


def split_trajectories(n_trajectories: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train and test masks over trajectory ids; both halves non-empty."""
    if n_trajectories < 2:
        raise ValueError(f"need at least 2 trajectories to split, got {n_trajectories}")
    order = np.random.default_rng(seed).permutation(n_trajectories)
    n_test = min(max(1, round(test_fraction * n_trajectories)), n_trajectories - 1)
    test = np.zeros(n_trajectories, dtype=bool)
    test[order[:n_test]] = True
    return ~test, test


@dataclasses.dataclass(frozen=True)
class TrajectorySplit:
    """Disjoint boolean masks over trajectory ids 0..n-1 (``train`` excludes ``validation``)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def rows(self, trajectory: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boolean row masks (train, validation, test) for rows with these trajectory ids."""
        ids = np.asarray(trajectory)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"trajectory ids must be a 1-D integer array, got {ids.dtype} of shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.train)):
            raise ValueError(f"trajectory ids must lie in [0, {len(self.train)}), got [{ids.min()}, {ids.max()}]")
        return self.train[ids], self.validation[ids], self.test[ids]


def split_train_validation_test(
    n_trajectories: int, test_fraction: float, validation_fraction: float, seed: int
) -> TrajectorySplit:
    """Test trajectories as ``split_trajectories(n, test_fraction, seed)``; then a share
    ``validation_fraction`` of the remaining ones (at least one, and at least one left) for
    validation. Needs at least 3 trajectories."""
    if n_trajectories < 3:
        raise ValueError(f"need at least 3 trajectories for a train/validation/test split, got {n_trajectories}")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
    rest, test = split_trajectories(n_trajectories, test_fraction, seed)
    if rest.sum() < 2:  # test_fraction left a single trajectory for train + validation
        test[np.flatnonzero(test)[-1]] = False
        rest = ~test
    rest_ids = np.flatnonzero(rest)
    order = np.random.default_rng([seed, 1]).permutation(rest_ids)
    n_val = min(max(1, round(validation_fraction * len(rest_ids))), len(rest_ids) - 1)
    validation = np.zeros(n_trajectories, dtype=bool)
    validation[order[:n_val]] = True
    return TrajectorySplit(train=rest & ~validation, validation=validation, test=test)


# ------------------------------------------------------------------ batched fitting


class _Softmaxes:
    """The softmax regressions of F categorical factors side by side, for G groups sharing rows.

    A factor with K classes has K weight columns (1 for a binary factor: its logit, class 0
    the reference). Scores are laid out (G, C, m): group, weight column, row. Columns are
    ordered by width so that the factors of one width form one contiguous block, viewed as
    (G, F_b, width, m): no padding, no gather, and every elementwise pass runs along rows.
    (Softmaxes are written out: torch's kernels are slow for a handful of classes on CPUs.)"""

    def __init__(self, n_classes: Sequence[int], codes: torch.Tensor, dtype: torch.dtype):
        # codes: (F, m) class indices per factor, shared by all groups
        self.n_classes = list(n_classes)
        self.F = len(self.n_classes)
        widths = [1 if k == 2 else k for k in self.n_classes]
        device = codes.device
        self.blocks = []  # (width, factor indices, first column, last column + 1)
        col_factor, col_class, start = [], [], 0
        for width in sorted(set(widths)):
            factors = [f for f in range(self.F) if widths[f] == width]
            stop = start + width * len(factors)
            self.blocks.append((width, torch.tensor(factors, device=device), start, stop))
            for f in factors:
                col_factor += [f] * width
                col_class += [1] if width == 1 else list(range(width))
            start = stop
        self.C = start
        self.col_factor = torch.tensor(col_factor, device=device)
        self.col_class = torch.tensor(col_class, device=device)
        self.member = (self.col_factor[:, None] == torch.arange(self.F, device=device)).to(dtype)  # (C, F)
        self.block_order = torch.cat([b[1] for b in self.blocks]).argsort()  # block-major -> factor order
        self.onehot = (codes[self.col_factor] == self.col_class[:, None]).to(dtype)  # (C, m)
        self.targets = [self.onehot[b[2] : b[3]].unflatten(0, (len(b[1]), b[0])) for b in self.blocks]
        self.labels = [codes[b[1]][:, None, :] for b in self.blocks]  # (F_b, 1, m) per block

    def _split(self, scores: torch.Tensor):
        for width, factors, start, stop in self.blocks:
            yield width, scores[:, start:stop].unflatten(1, (len(factors), width))

    def _join(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts, dim=1)[:, self.block_order]

    def nll(self, scores: torch.Tensor) -> torch.Tensor:
        """Per-row negative log-likelihoods (G, F, m)."""
        parts = []
        for (width, s), target, labels in zip(self._split(scores), self.targets, self.labels):
            if width == 1:
                parts.append(torch.nn.functional.softplus(s[:, :, 0]) - s[:, :, 0] * target[:, 0])
            else:
                shifted = s - s.amax(2, keepdim=True)
                lse = shifted.exp().sum(2).log()
                parts.append(lse - shifted.gather(2, labels.expand(s.shape[0], -1, -1, -1))[:, :, 0])
        return self._join(parts)

    def log_probs(self, scores: torch.Tensor) -> torch.Tensor:
        """(G, m, F, max K) log-probabilities, -inf past a factor's classes."""
        kmax = max(self.n_classes)
        out = scores.new_full((scores.shape[0], scores.shape[2], self.F, kmax), -math.inf)
        for (width, factors, _, _), (_, s) in zip(self.blocks, self._split(scores)):
            if width == 1:
                logp = torch.cat([-torch.nn.functional.softplus(s), -torch.nn.functional.softplus(-s)], 2)
            else:
                shifted = s - s.amax(2, keepdim=True)
                logp = shifted - shifted.exp().sum(2, keepdim=True).log()
            out[:, :, factors, : logp.shape[2]] = logp.permute(0, 3, 1, 2)
        return out

    def loss_residual(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean NLL per factor (G, F) and m * d(mean NLL)/d(scores), (G, C, m)."""
        resid = torch.empty_like(scores)
        parts = []
        for (width, _, start, stop), (_, s), target, labels in zip(
            self.blocks, self._split(scores), self.targets, self.labels
        ):
            out = resid[:, start:stop].unflatten(1, s.shape[1:3])
            if width == 1:
                s = s[:, :, 0]
                parts.append((torch.nn.functional.softplus(s) - s * target[:, 0]).mean(-1))
                torch.sigmoid(s, out=out[:, :, 0])
            else:
                shifted = s - s.amax(2, keepdim=True)
                torch.exp(shifted, out=out)
                total = out.sum(2, keepdim=True)
                out.div_(total)
                picked = shifted.gather(2, labels.expand(s.shape[0], -1, -1, -1))
                parts.append((total.log_() - picked)[:, :, 0].mean(-1))
        return self._join(parts), resid.sub_(self.onehot)

    def curvature(self, scores: torch.Tensor) -> torch.Tensor:
        """p (1 - p) per column and row (G, C, m): the diagonal of each row's Hessian in the scores."""
        out = torch.empty_like(scores)
        for (width, _, start, stop), (_, s) in zip(self.blocks, self._split(scores)):
            if width == 1:
                p = torch.sigmoid(s)
            else:
                e = (s - s.amax(2, keepdim=True)).exp()
                p = e / e.sum(2, keepdim=True)
            out[:, start:stop] = (p * (1 - p)).flatten(1, 2)
        return out

    def start(self, G: int, q: int) -> torch.Tensor:
        """Zero weights (G, C, q), intercepts (last entry) at the class log-frequencies."""
        freq = self.onehot.mean(1).clamp_min(1e-12)
        w = freq.new_zeros(G, self.C, q)
        binary = self.onehot.new_tensor([self.n_classes[f] == 2 for f in self.col_factor.tolist()]).bool()
        w[:, :, -1] = torch.where(binary, (freq / (1 - freq).clamp_min(1e-12)).log(), freq.log())
        return w


class _History:
    """L-BFGS memory of every problem at once, in the compact form of Byrd, Nocedal and Schnabel
    (1994): the product of the inverse-Hessian approximation with a vector costs a fixed number
    of batched operations whatever the memory length. Pairs are stored in a ring of ``memory``
    slots; a problem whose pair is unusable (frozen, or s.y <= 0) stores zeros there, which the
    algebra below leaves inert. Vectors are laid out (G, C, q): group, weight column, feature.

    Of the inner products the compact form needs, only S.g and Y.P^-1 g of each new gradient
    are computed in full (two passes over the memory): the new pair's products with the stored
    ones follow from them and from the small matrices (y = g_new - g_old, and Y.d is known
    from the direction's own coefficients)."""

    def __init__(
        self, memory: int, like: torch.Tensor, member: torch.Tensor, precond: torch.Tensor, grad: torch.Tensor
    ):
        G, C, q = like.shape
        F = member.shape[1]
        self.memory, self.member, self.precond = memory, member, precond  # member: (C, F) 0/1
        self.s = like.new_zeros(G, C, memory, q)
        self.y = like.new_zeros(G, C, memory, q)
        self.sy = like.new_zeros(G, F, memory, memory)  # s_i . y_j
        self.ypy = like.new_zeros(G, F, memory, memory)  # y_i . P^-1 y_j
        self.u = like.new_zeros(G, F, memory)  # s_i . g, for the current gradient g
        self.v = like.new_zeros(G, F, memory)  # y_i . P^-1 g
        self.yd = like.new_zeros(G, F, memory)  # y_i . d, for the last direction d
        self.order: list[int] = []  # slots, oldest first
        self.gamma = like.new_ones(G, F)

    def dots(self, buffer: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-problem dot products of every slot with x: (G, F, memory)."""
        return ((buffer * x[:, :, None, :]).sum(-1).mT @ self.member).mT

    def combine(self, buffer: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        """sum_i coef[g, f, i] * buffer[g, :, i, :] over each problem's columns -> (G, C, q)."""
        per_col = (coef.mT @ self.member.T).mT  # (G, C, memory)
        return (per_col[:, :, None, :] @ buffer)[:, :, 0, :]

    def select(self, keep: torch.Tensor) -> None:
        """Keep only these groups (a boolean mask over the current ones)."""
        for name in ("precond", "s", "y", "sy", "ypy", "u", "v", "yd", "gamma"):
            setattr(self, name, getattr(self, name)[keep])

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """-H grad, H the L-BFGS inverse Hessian on top of gamma * P^-1 (P the preconditioner)."""
        gamma_c = (self.gamma @ self.member.T)[:, :, None]
        if not self.order:
            return -gamma_c * self.precond * grad
        o = torch.tensor(self.order, device=grad.device)
        sy = self.sy[:, :, o][:, :, :, o]
        ypy = self.ypy[:, :, o][:, :, :, o]
        diag = torch.diagonal(sy, dim1=-2, dim2=-1)
        r = sy.triu() + torch.diag_embed((diag == 0).to(sy.dtype))  # inert slots: 1 on the diagonal
        u, v = self.u[:, :, o, None], self.v[:, :, o, None]
        g = self.gamma[..., None, None]
        p2 = -torch.linalg.solve_triangular(r, u, upper=True)
        rhs = -(diag[..., None] * p2 + g * ypy @ p2) - g * v
        p1 = torch.linalg.solve_triangular(r.mT, rhs, upper=False)
        self.yd.zero_()
        self.yd[:, :, o] = -(g * v + sy.mT @ p1 + g * ypy @ p2)[..., 0]  # Y.d, d = -H grad
        full1 = p1.new_zeros(*p1.shape[:2], self.memory)
        full2 = p1.new_zeros(*p1.shape[:2], self.memory)
        full1[:, :, o], full2[:, :, o] = p1[..., 0], p2[..., 0]
        return -(gamma_c * self.precond * (grad + self.combine(self.y, full2)) + self.combine(self.s, full1))

    def fallback(self, bad: torch.Tensor) -> None:
        """The direction of the problems ``bad`` (G, F) was replaced by -P^-1 grad."""
        self.yd = torch.where(bad[..., None], -self.v, self.yd)

    def push(
        self,
        s: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor,
        sy_new: torch.Tensor,
        valid: torch.Tensor,
        grad: torch.Tensor,
    ) -> None:
        """Store the pair s = t d, y = grad - previous grad (where ``valid``); ``sy_new`` = s.y
        per problem; ``grad`` the new gradient."""
        keep = valid.to(s.dtype)
        slot = self.order.pop(0) if len(self.order) == self.memory else len(self.order)
        self.order.append(slot)
        keep_c = (keep @ self.member.T)[:, :, None]
        self.s[:, :, slot], self.y[:, :, slot] = s * keep_c, y * keep_c
        py = self.precond * self.y[:, :, slot]
        u_new, v_new = self.dots(self.s, grad), self.dots(self.y, self.precond * grad)
        sy_col = keep[..., None] * (u_new - self.u)  # s_i . y for the other slots
        ypy_col = keep[..., None] * (v_new - self.v)  # y_i . P^-1 y
        sy_row = (keep * t)[..., None] * self.yd  # y_i . s
        sy_col[:, :, slot] = sy_row[:, :, slot] = keep * sy_new
        ypy_col[:, :, slot] = (self.y[:, :, slot] * py).sum(-1) @ self.member
        self.sy[:, :, :, slot], self.sy[:, :, slot, :] = sy_col, sy_row
        self.ypy[:, :, :, slot] = self.ypy[:, :, slot, :] = ypy_col
        self.u, self.v = u_new, v_new
        last_ypy = ypy_col[:, :, slot]
        self.gamma = torch.where(valid & (last_ypy > 0), sy_new / last_ypy.clamp_min(1e-30), self.gamma)


def _fit_softmax(
    z: torch.Tensor,
    soft: _Softmaxes,
    lam: torch.Tensor,
    w: torch.Tensor | None = None,
    *,
    tol: float,
    max_iter: int,
    memory: int = 5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched L-BFGS for the softmax regressions ``soft`` on rotated, standardised features.

    z (G, m, q): fit rows, eigen-rotated (orthogonal columns) with a last constant column for
    the intercept; lam (G, F) penalties; w (G, C, q) a start (default ``soft.start``).
    Returns the weights (G, C, q) and the iteration count per problem (G, F)."""
    G, m, q = z.shape
    dtype, device, F, member = z.dtype, z.device, soft.F, soft.member
    pen = (lam @ member.T)[:, :, None].repeat(1, 1, q)  # (G, C, q); the intercept is not penalised
    pen[:, :, -1] = 0.0

    def psum(x):  # (G, C, q) -> per problem (G, F)
        return x.sum(-1) @ member

    def cols(a):  # (G, F) -> (G, C, 1)
        return (a @ member.T)[:, :, None]

    zt = z.mT.contiguous()  # (G, q, m)
    w = soft.start(G, q) if w is None else w.clone()
    scores = w @ zt  # (G, C, m)
    # diagonal preconditioner: the exact diagonal of the Hessian at the start point
    precond = (soft.curvature(scores) @ (z * z) / m + pen).clamp_min_(1e-8).reciprocal_()
    data, resid = soft.loss_residual(scores)
    loss = data + 0.5 * psum(pen * w * w)
    grad = torch.baddbmm(pen * w, resid, z, alpha=1.0 / m)
    history = _History(memory, w, member, precond, grad)
    active = psum(grad * grad).sqrt() > tol
    iterations = torch.zeros(G, F, dtype=torch.long, device=device)
    slack = 1e-6 if dtype == torch.float32 else 1e-13
    out, ids = w.clone(), torch.arange(G, device=device)  # ids: the groups still iterating
    for _ in range(max_iter):
        busy = active.any(1)
        if not bool(busy.any()):
            break
        if int(busy.sum()) <= 0.8 * len(ids):  # drop the groups whose problems have all converged
            out[ids] = w
            ids, z, zt, w, scores, grad, pen, loss, active = (
                a[busy] for a in (ids, z, zt, w, scores, grad, pen, loss, active)
            )
            precond = precond[busy]
            history.select(busy)
        G = len(ids)
        d = history.direction(grad)
        slope = psum(grad * d)
        bad = (slope >= 0) & active
        if bool(bad.any()):  # not a descent direction (rounding): the preconditioned gradient there
            d = torch.where(cols(bad.to(dtype)) > 0, -grad * precond, d)
            history.fallback(bad)
            slope = psum(grad * d)
        d.mul_(cols(active.to(dtype)))
        slope = slope * active
        dz = d @ zt  # the scores move along dz
        p_wd, p_dd = psum(pen * w * d), psum(pen * d * d)
        # t = 1 (the quasi-Newton step), halved until the loss decreases enough (up to rounding);
        # trying a t costs no matrix product: the scores are scores + t dz
        t = torch.ones(G, F, dtype=dtype, device=device)
        w_w = psum(pen * w * w)
        for attempt in range(41):
            data, resid = soft.loss_residual(torch.addcmul(scores, cols(t), dz))
            new_loss = data + 0.5 * w_w + t * p_wd + 0.5 * t * t * p_dd
            ok = (new_loss <= loss + 1e-4 * t * slope + slack * (1 + loss.abs())) | ~active
            if bool(ok.all()):
                break
            t = torch.where(ok, t, 0.5 * t if attempt < 39 else torch.zeros_like(t))  # last try: no step
        t = t * active
        loss = torch.where(active, new_loss, loss)
        step = d.mul_(cols(t))
        w = w + step
        scores = scores.addcmul_(cols(t), dz)
        new_grad = torch.baddbmm(pen * w, resid, z, alpha=1.0 / m)
        y = new_grad - grad
        sy = psum(step * y)
        history.push(step, y, t, sy, active & (sy > 1e-20), new_grad)
        grad = new_grad
        iterations[ids] += active.long()
        active = active & (psum(grad * grad).sqrt() > tol)
    out[ids] = w
    if bool(active.any()):
        warnings.warn(
            f"{int(active.sum())} logistic probe fit(s) stopped at max_iter={max_iter} with the gradient "
            f"norm above tol={tol}",
            RuntimeWarning,
            stacklevel=2,
        )
    return out, iterations


def _standardise(x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std over the rows ``rows``, accumulated in float64 (std 1 where a
    feature is constant, as scikit-learn's ``StandardScaler`` does)."""
    fit = x[:, rows].double()
    mean = fit.mean(1, keepdim=True)
    std = fit.std(1, unbiased=False, keepdim=True)
    std = torch.where(std > 1e-12 * mean.abs(), std, torch.ones_like(std))
    return mean.to(x.dtype), std.to(x.dtype)


def _rotation(zfit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
class _Basis:
    """Standardisation and rotation learnt from a set of fit rows, applied to any rows."""

    mean: torch.Tensor
    std: torch.Tensor
    vecs: torch.Tensor
    eig: torch.Tensor  # (G, q): mean squares of the rotated fit columns, 1 for the intercept

    @classmethod
    def fit(cls, x: torch.Tensor, rows: torch.Tensor) -> _Basis:
        mean, std = _standardise(x, rows)
        vecs, evals = _rotation((x[:, rows] - mean) / std)
        eig = torch.cat([evals, torch.ones_like(evals[:, :1])], dim=1)
        return cls(mean, std, vecs, eig)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        z = ((x - self.mean) / self.std) @ self.vecs
        return torch.cat([z, torch.ones_like(z[..., :1])], dim=-1)


def _ridge(z: torch.Tensor, eig: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Closed-form ridge on orthogonal-column rotated features. z (G, m, q) with a constant last
    column, eig (G, q), y (m, F) targets, lam (G, L, F) -> weights (G, L, F, q)."""
    m = z.shape[1]
    zy = (z.mT @ y) / m  # (G, q, F)
    denom = eig[:, None, None, :] + torch.cat(
        [lam[..., None].expand(*lam.shape, z.shape[2] - 1), torch.zeros_like(lam[..., None])], dim=-1
    )
    safe = torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(denom > 0, zy.mT[:, None] / safe, torch.zeros_like(safe))


def _r2(y: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """1 - SSE/SST over dim -2 (rows) of (..., n, F) -> (..., F); NaN where the target is constant."""
    total = ((y - y.mean(-2, keepdim=True)) ** 2).sum(-2)
    sse = ((y - pred) ** 2).sum(-2)
    return torch.where(total > 0, 1 - sse / total.clamp_min(1e-300), torch.full_like(total, float("nan")))


def _check_inputs(x: np.ndarray | torch.Tensor, names: Sequence[str]) -> None:
    """ValueError naming the groups (first dim of x) holding NaN or infinite values."""
    if isinstance(x, torch.Tensor):
        finite = torch.isfinite(x).flatten(1).all(1).cpu().numpy()
    else:
        finite = np.isfinite(x).reshape(len(x), -1).all(1)
    if not finite.all():
        bad = [names[i] for i in np.flatnonzero(~finite)]
        raise ValueError(f"NaN or infinite feature values in {', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else ""))


def _encode_factors(
    targets: Mapping[str, np.ndarray], kinds: Mapping[str, str], n: int, fit_rows: np.ndarray
) -> dict[str, tuple]:
    """Validated targets: categorical -> (classes, codes), continuous -> float64 values."""
    encoded = {}
    for name, kind in kinds.items():
        if name not in targets:
            raise ValueError(f"no target given for factor {name!r}")
        values = np.asarray(targets[name])
        if values.shape != (n,):
            raise ValueError(f"target of factor {name!r} has shape {values.shape}, expected ({n},)")
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            raise ValueError(f"NaN or infinite target values in factor {name!r}")
        if kind == CATEGORICAL:
            classes, codes = np.unique(values, return_inverse=True)
            if len(classes) < 2:
                only = classes[0] if len(classes) else "none"
                raise ValueError(f"categorical factor {name!r} has a single class ({only}): nothing to predict")
            missing = np.setdiff1d(classes, np.unique(values[fit_rows]))
            if len(missing):
                raise ValueError(
                    f"the split leaves class(es) {missing.tolist()} of factor {name!r} absent from "
                    f"the training trajectories (train without validation)"
                )
            encoded[name] = (kind, classes, codes)
        elif kind == CONTINUOUS:
            values = values.astype(np.float64)
            if np.ptp(values) == 0:
                raise ValueError(f"continuous factor {name!r} is constant ({values[0]}): nothing to predict")
            encoded[name] = (kind, None, values)
        else:
            raise ValueError(f"factor {name!r} has unknown kind {kind!r}; allowed: {CATEGORICAL}, {CONTINUOUS}")
    return encoded


def _fit_stack(
    x: torch.Tensor,
    encoded: dict,
    masks: tuple[np.ndarray, np.ndarray, np.ndarray],
    grid: list[float],
    tol: float,
    max_iter: int,
) -> dict[str, dict[str, np.ndarray]]:
    """All factors for one stack of groups x (G, n, d) sharing rows and targets."""
    device, dtype = x.device, x.dtype
    penalties = torch.tensor(grid, dtype=dtype, device=device)
    grid64 = np.asarray(grid, dtype=np.float64)
    train, val, test = (torch.as_tensor(mk, device=device) for mk in masks)
    trainval = train | val
    G, L = x.shape[0], len(penalties)
    out: dict[str, dict[str, np.ndarray]] = {}

    sel = _Basis.fit(x, train)
    z_fit, z_val = sel.apply(x[:, train]), sel.apply(x[:, val])
    ref = _Basis.fit(x, trainval)
    z_ref, z_test = ref.apply(x[:, trainval]), ref.apply(x[:, test])

    # ---- continuous factors: closed form for the whole grid
    cont = [name for name, e in encoded.items() if e[0] == CONTINUOUS]
    if cont:
        y = torch.as_tensor(np.stack([encoded[k][2] for k in cont], 1), dtype=dtype, device=device)  # (n, F)
        lam = penalties[None, :, None].expand(G, L, len(cont))
        w = _ridge(z_fit, sel.eig, y[train], lam)  # (G, L, F, q)
        pred_val = torch.einsum("gvq,glfq->glvf", z_val, w)
        mse = ((pred_val - y[val]) ** 2).mean(2)  # (G, L, F)
        best = _argmin_last_tie(mse)  # (G, F)
        chosen = penalties[best]
        w = _ridge(z_ref, ref.eig, y[trainval], chosen[:, None, :])[:, 0]  # (G, F, q)
        pred = torch.einsum("gtq,gfq->gtf", z_test, w)
        r2 = _r2(y[test], pred)
        for i, name in enumerate(cont):
            out[name] = {"r2": r2[:, i].double().cpu().numpy(), "penalty": grid64[best[:, i].cpu().numpy()]}

    # ---- categorical factors: batched softmax regressions, the grid from the strongest penalty
    # down, each fit starting from the previous one's solution
    cat = [name for name, e in encoded.items() if e[0] == CATEGORICAL]
    if cat:
        n_classes = [len(encoded[k][1]) for k in cat]
        codes = torch.as_tensor(np.stack([encoded[k][2] for k in cat]), device=device)  # (F, n)
        F = len(cat)
        soft, soft_val = _Softmaxes(n_classes, codes[:, train], dtype), _Softmaxes(n_classes, codes[:, val], dtype)
        w, path, val_nll = None, [], []
        for lam in penalties.flip(0):
            w, _ = _fit_softmax(z_fit, soft, lam.expand(G, F), w, tol=tol, max_iter=max_iter)
            path.append(w)
            val_nll.append(soft_val.nll(w @ z_val.mT).mean(-1))  # (G, F)
        best = _argmin_last_tie(torch.stack(val_nll[::-1], 1))  # (G, F)
        chosen = penalties[best]
        path = torch.stack(path[::-1], 1)  # (G, L, C, q)
        index = best[:, soft.col_factor][:, None, :, None].expand(G, 1, soft.C, path.shape[3])
        start = _carry(path.gather(1, index)[:, 0], sel, ref)  # the chosen fit, in the refit's basis
        soft_ref = _Softmaxes(n_classes, codes[:, trainval], dtype)
        w, _ = _fit_softmax(z_ref, soft_ref, chosen, start, tol=tol, max_iter=max_iter)
        logp = _Softmaxes(n_classes, codes[:, test], dtype).log_probs(w @ z_test.mT).double()  # (G, t, F, K)
        truth = codes[:, test].T  # (t, F)
        nll = -logp.gather(-1, truth.expand(G, -1, -1)[..., None])[..., 0]
        correct = (logp.argmax(-1) == truth).double()  # (G, t, F)
        for i, name in enumerate(cat):
            recalls = torch.stack([correct[:, truth[:, i] == c, i].mean(1) for c in torch.unique(truth[:, i])], 1)
            out[name] = {
                "accuracy": correct[..., i].mean(1).cpu().numpy(),
                "balanced_accuracy": recalls.mean(1).cpu().numpy(),
                "log_loss": nll[..., i].mean(1).cpu().numpy(),
                "penalty": grid64[best[:, i].cpu().numpy()],
            }
    return out


def _carry(w: torch.Tensor, a: _Basis, b: _Basis) -> torch.Tensor:
    """Weights (G, C, q) of a linear map on basis ``a``'s features, expressed on basis ``b``'s
    (exact where ``b``'s rotation has full rank)."""
    coef = a.vecs @ w[:, :, :-1].mT / a.std.mT  # (G, d, C) on the raw features
    intercept = w[:, :, -1:].mT - a.mean @ coef  # (G, 1, C)
    wb = b.vecs.mT @ (coef * b.std.mT)
    return torch.cat([wb, intercept + (b.mean / b.std) @ (b.vecs @ wb)], dim=1).mT.contiguous()


def _argmin_last_tie(values: torch.Tensor) -> torch.Tensor:
    """Index of the minimum over dim 1 (the penalty grid, ascending); ties go to the largest
    penalty. NaN (a diverged fit) counts as +inf."""
    v = torch.nan_to_num(values, nan=float("inf")).flip(1)
    return values.shape[1] - 1 - v.argmin(1)


def fit_probes(
    features: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
    targets: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    trajectory: np.ndarray,
    split: TrajectorySplit,
    penalties: Sequence[float] = DEFAULT_PENALTIES,
    names: Sequence[str] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    tol: float = 1e-4,
    max_iter: int = 500,
    n_stacks: int = 4,
) -> dict[str, dict[str, np.ndarray]]:
    """Fit and score a probe for every (group, factor) pair, all in one batched computation.

    ``features``: a stack (G, n, d) (numpy or torch), or a sequence of G arrays (n, d_g) of
    any widths (stacked internally, at most ``n_stacks`` stacks, narrower groups padded with
    zero features, which drop out exactly). A group is e.g. one (recorded step, feature)
    pair; row i of every group belongs to trajectory ``trajectory[i]`` and has the target
    ``targets[factor][i]``. ``kinds`` maps each factor to ``"categorical"`` or
    ``"continuous"``; a categorical target may hold any values, its classes are the distinct
    ones. ``split`` assigns trajectory ids to train / validation / test; ``penalties`` is the
    grid (per-sample L2 penalty, see the module docstring); ``names`` (one per group) name the
    groups in error messages. ``tol``: gradient-norm stopping threshold of the logistic fits.

    Returns ``{factor: {metric: array (G,)}}``, metrics ``accuracy``, ``balanced_accuracy``,
    ``log_loss`` (categorical) or ``r2`` (continuous), and ``penalty`` (the chosen one).
    Computed on ``device``, by default the features' own (the CPU for numpy input).

    Raises a one-line ValueError on: a categorical factor with a single class; a class absent
    from the training trajectories (train without validation); NaN or infinite feature or
    target values (naming the group); a constant continuous factor; an unknown kind; missing
    or mis-shaped targets or trajectory ids; a split leaving train, validation or test empty."""
    stacked = not isinstance(features, (list, tuple))
    groups = [features] if stacked else list(features)
    sizes = [len(g) for g in groups] if stacked else [1] * len(groups)
    total = sum(sizes)
    names = list(names) if names is not None else [f"group {i}" for i in range(total)]
    if len(names) != total:
        raise ValueError(f"{len(names)} names for {total} feature groups")
    if not kinds:
        raise ValueError("no factors to probe")
    shapes = set()
    for g in groups:
        if g.ndim != (3 if stacked else 2):
            raise ValueError(
                f"features must be a (groups, rows, dims) stack or a list of (rows, dims) arrays, "
                f"got an array of shape {tuple(g.shape)}"
            )
        shapes.add(g.shape[-2])
    if len(shapes) != 1:
        raise ValueError(f"all feature groups must have the same rows, got row counts {sorted(shapes)}")
    n = shapes.pop()
    trajectory = np.asarray(trajectory)
    if trajectory.shape != (n,):
        raise ValueError(f"trajectory ids have shape {trajectory.shape}, expected ({n},)")
    masks = split.rows(trajectory)
    for label, mk in zip(("train", "validation", "test"), masks):
        if not mk.any():
            raise ValueError(f"the split leaves no {label} rows")
    grid = sorted(float(p) for p in penalties)
    if not grid or grid[0] <= 0:
        raise ValueError(f"penalties must be positive, got {list(penalties)}")
    encoded = _encode_factors(targets, kinds, n, masks[0])

    if stacked:
        _check_inputs(groups[0], names)
        stacks = [(np.arange(total), torch.as_tensor(groups[0]))]
    else:  # groups of similar widths stacked, the narrower ones padded with zero features (they drop out)
        for g, name in zip(groups, names):
            _check_inputs(g[None], [name])
        stacks = []
        for members in _width_stacks([g.shape[-1] for g in groups], n_stacks):
            width = max(groups[i].shape[-1] for i in members)
            stacks.append(
                (
                    members,
                    torch.stack(
                        [
                            torch.nn.functional.pad(
                                torch.as_tensor(groups[i]).to(dtype), (0, width - groups[i].shape[-1])
                            )
                            for i in members
                        ]
                    ),
                )
            )
    results: dict[str, dict[str, np.ndarray]] = {}
    for members, block in stacks:
        x = block.to(device=device or block.device, dtype=dtype)
        for factor, metrics in _fit_stack(x, encoded, masks, grid, tol, max_iter).items():
            slot = results.setdefault(factor, {k: np.full(total, np.nan) for k in metrics})
            for k, v in metrics.items():
                slot[k][members] = v
    return {name: results[name] for name in kinds}


def probe_frame(
    step: np.ndarray,
    trajectory: np.ndarray,
    features: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    split: TrajectorySplit,
    penalties: Sequence[float] = DEFAULT_PENALTIES,
    **options,
) -> pd.DataFrame:
    """Probes for every (recorded step, feature, factor) of a trajectory table, as tidy rows.

    One entry per table row: ``step`` and ``trajectory`` (ids, split by ``split``), each
    feature's vectors ``features[name]`` (rows, d_name) and each factor's ``targets[factor]``
    (rows,); ``kinds`` maps factors to ``"categorical"`` / ``"continuous"``. All steps holding
    the same trajectories with the same targets are fitted in one batched call of
    ``fit_probes`` (``options`` go to it). Returns a DataFrame with columns step, feature,
    factor, metric (accuracy, balanced_accuracy, log_loss; or r2), score, penalty (the chosen
    one), sorted by step, feature, factor, metric."""
    import pandas as pd

    step, trajectory = np.asarray(step), np.asarray(trajectory)
    n = len(step)
    if trajectory.shape != (n,):
        raise ValueError(f"step and trajectory must be 1-D of equal length, got {step.shape} and {trajectory.shape}")
    for name, values in list(features.items()) + list(targets.items()):
        if len(values) != n:
            raise ValueError(f"{name!r} has {len(values)} rows, the table {n}")
    # steps that hold the same trajectories with the same targets are batched together
    batches: dict[bytes, list] = {}
    for s in np.unique(step):
        rows = np.flatnonzero(step == s)
        rows = rows[np.argsort(trajectory[rows], kind="stable")]
        key = trajectory[rows].tobytes() + b"".join(np.asarray(targets[f])[rows].tobytes() for f in kinds)
        batches.setdefault(key, []).append((s, rows))
    records = []
    for members in batches.values():
        rows0 = members[0][1]
        groups = [(name, s, rows) for name in features for s, rows in members]
        result = fit_probes(
            [np.asarray(features[name])[rows] for name, _, rows in groups],
            {f: np.asarray(targets[f])[rows0] for f in kinds},
            kinds,
            trajectory[rows0],
            split,
            penalties,
            names=[f"feature {name!r} at step {s}" for name, s, _ in groups],
            **options,
        )
        for factor, kind in kinds.items():
            metrics = CATEGORICAL_METRICS if kind == CATEGORICAL else CONTINUOUS_METRICS
            for i, (name, s, _) in enumerate(groups):
                for metric in metrics:
                    records.append(
                        (
                            int(s),
                            name,
                            factor,
                            metric,
                            float(result[factor][metric][i]),
                            float(result[factor]["penalty"][i]),
                        )
                    )
    frame = pd.DataFrame.from_records(records, columns=["step", "feature", "factor", "metric", "score", "penalty"])
    return frame.sort_values(["step", "feature", "factor", "metric"], ignore_index=True)


def _width_stacks(widths: Sequence[int], n_stacks: int) -> list[np.ndarray]:
    """Split groups into at most ``n_stacks`` stacks of consecutive widths (sorted), minimising
    the padded size sum(stack size * widest member)."""
    order = np.argsort(widths, kind="stable")
    w = np.asarray(widths)[order]
    n = len(w)
    # best[k][i]: minimal cost of the first i sorted groups in k stacks
    best = [[0.0] + [math.inf] * n]
    cut = []
    for _ in range(min(n_stacks, n)):
        row, arg = [0.0] + [math.inf] * n, [0] * (n + 1)
        for i in range(1, n + 1):
            for j in range(i):
                cost = best[-1][j] + (i - j) * w[i - 1]
                if cost < row[i]:
                    row[i], arg[i] = cost, j
        best.append(row)
        cut.append(arg)
    k = min(range(1, len(best)), key=lambda k: best[k][n])
    bounds, i = [], n
    for level in range(k, 0, -1):
        j = cut[level - 1][i]
        bounds.append((j, i))
        i = j
    return [order[a:b] for a, b in reversed(bounds) if b > a]
