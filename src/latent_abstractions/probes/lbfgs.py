"""Batched L-BFGS for softmax regressions (compact form; Byrd, Nocedal and Schnabel 1994),
one curvature history per problem, with a backtracking Armijo line search."""

from __future__ import annotations

import dataclasses
import warnings

import torch

from .softmax import Softmaxes


@dataclasses.dataclass(frozen=True)
class LineSearch:
    """Backtracking from the quasi-Newton step t = 1: halve t until the Armijo condition
    loss(t) <= loss + sufficient_decrease * t * slope + slack * (1 + |loss|) holds, at most
    ``halvings`` times; a problem still failing then takes no step (t = 0)."""

    sufficient_decrease: float = 1e-4
    halvings: int = 39  # 2^-39: far below any step float32 weights can take
    float32_slack: float = 1e-6  # rounding of the loss, relative, in float32 ...
    float64_slack: float = 1e-13  # ... and in float64
    regroup_fraction: float = 0.8  # drop converged groups once the busy ones are at most this share

    def slack(self, dtype: torch.dtype) -> float:
        return self.float32_slack if dtype == torch.float32 else self.float64_slack


class LbfgsHistory:
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


def fit_softmax(
    z: torch.Tensor,
    soft: Softmaxes,
    lam: torch.Tensor,
    w: torch.Tensor | None = None,
    *,
    tol: float,
    max_iter: int,
    memory: int = 5,
    search: LineSearch = LineSearch(),
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
    history = LbfgsHistory(memory, w, member, precond, grad)
    active = psum(grad * grad).sqrt() > tol
    iterations = torch.zeros(G, F, dtype=torch.long, device=device)
    slack = search.slack(dtype)
    out, ids = w.clone(), torch.arange(G, device=device)  # ids: the groups still iterating
    for _ in range(max_iter):
        busy = active.any(1)
        if not bool(busy.any()):
            break
        if int(busy.sum()) <= search.regroup_fraction * len(ids):  # drop the groups whose problems have all converged
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
        for attempt in range(search.halvings + 2):  # t = 1, the halvings, then t = 0
            data, resid = soft.loss_residual(torch.addcmul(scores, cols(t), dz))
            new_loss = data + 0.5 * w_w + t * p_wd + 0.5 * t * t * p_dd
            ok = (new_loss <= loss + search.sufficient_decrease * t * slope + slack * (1 + loss.abs())) | ~active
            if bool(ok.all()):
                break
            t = torch.where(ok, t, 0.5 * t if attempt < search.halvings else torch.zeros_like(t))
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
