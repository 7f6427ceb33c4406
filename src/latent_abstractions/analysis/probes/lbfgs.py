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


def _per_problem(x: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """Sum over features and over each problem's weight columns: (G, C, q) -> (G, F)."""
    return x.sum(-1) @ member


def _per_column(a: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """A value per problem spread to its weight columns: (G, F) -> (G, C, 1)."""
    return (a @ member.T)[:, :, None]


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
        gamma_c = _per_column(self.gamma, self.member)
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
        keep_c = _per_column(keep, self.member)
        self.s[:, :, slot], self.y[:, :, slot] = s * keep_c, y * keep_c
        py = self.precond * self.y[:, :, slot]
        u_new, v_new = self.dots(self.s, grad), self.dots(self.y, self.precond * grad)
        sy_col = keep[..., None] * (u_new - self.u)  # s_i . y for the other slots
        ypy_col = keep[..., None] * (v_new - self.v)  # y_i . P^-1 y
        sy_row = (keep * t)[..., None] * self.yd  # y_i . s
        sy_col[:, :, slot] = sy_row[:, :, slot] = keep * sy_new
        ypy_col[:, :, slot] = _per_problem(self.y[:, :, slot] * py, self.member)
        self.sy[:, :, :, slot], self.sy[:, :, slot, :] = sy_col, sy_row
        self.ypy[:, :, :, slot] = self.ypy[:, :, slot, :] = ypy_col
        self.u, self.v = u_new, v_new
        last_ypy = ypy_col[:, :, slot]
        self.gamma = torch.where(valid & (last_ypy > 0), sy_new / last_ypy.clamp_min(1e-30), self.gamma)


def _unconverged(grad: torch.Tensor, member: torch.Tensor, tol: float) -> torch.Tensor:
    """The problems (G, F) whose gradient norm is still above ``tol``."""
    return _per_problem(grad * grad, member).sqrt() > tol


@dataclasses.dataclass
class _Iterate:
    """The groups still iterating (``ids``: their indices among those given) and what the
    iteration carries for each: rows z (G, m, q) and their transpose zt, weights w and
    penalties pen (G, C, q), scores w @ zt, gradient, diagonal preconditioner, loss (G, F)
    and which problems are still active (G, F)."""

    ids: torch.Tensor
    z: torch.Tensor
    zt: torch.Tensor
    w: torch.Tensor
    scores: torch.Tensor
    grad: torch.Tensor
    pen: torch.Tensor
    precond: torch.Tensor
    loss: torch.Tensor
    active: torch.Tensor

    def select(self, keep: torch.Tensor) -> None:
        """Keep only these groups (a boolean mask over the current ones)."""
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name)[keep])


def _start(z: torch.Tensor, soft: Softmaxes, lam: torch.Tensor, w: torch.Tensor | None, tol: float) -> _Iterate:
    """The iteration at the start point: loss, gradient and preconditioner there."""
    G, m, q = z.shape
    member = soft.member
    pen = (lam @ member.T)[:, :, None].repeat(1, 1, q)  # (G, C, q); the intercept is not penalised
    pen[:, :, -1] = 0.0
    zt = z.mT.contiguous()  # (G, q, m)
    w = soft.start(G, q) if w is None else w.clone()
    scores = w @ zt  # (G, C, m)
    # diagonal preconditioner: the exact diagonal of the Hessian at the start point
    precond = (soft.curvature(scores) @ (z * z) / m + pen).clamp_min_(1e-8).reciprocal_()
    data, resid = soft.loss_residual(scores)
    loss = data + 0.5 * _per_problem(pen * w * w, member)
    grad = torch.baddbmm(pen * w, resid, z, alpha=1.0 / m)
    ids = torch.arange(G, device=z.device)
    return _Iterate(ids, z, zt, w, scores, grad, pen, precond, loss, _unconverged(grad, member, tol))


def _descent_direction(it: _Iterate, history: LbfgsHistory) -> tuple[torch.Tensor, torch.Tensor]:
    """The L-BFGS direction d (G, C, q), zero for the converged problems, and the slope
    grad . d per problem (G, F)."""
    member = history.member
    d = history.direction(it.grad)
    slope = _per_problem(it.grad * d, member)
    bad = (slope >= 0) & it.active
    if bool(bad.any()):  # not a descent direction (rounding): the preconditioned gradient there
        d = torch.where(_per_column(bad.to(it.z.dtype), member) > 0, -it.grad * it.precond, d)
        history.fallback(bad)
        slope = _per_problem(it.grad * d, member)
    d.mul_(_per_column(it.active.to(it.z.dtype), member))
    return d, slope * it.active


def _backtrack(
    search: LineSearch, soft: Softmaxes, it: _Iterate, d: torch.Tensor, slope: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The step length t (G, F) along d by ``search``, zero for the converged problems;
    with the loss and residual at t and the scores' direction dz = d @ zt."""
    member, dtype = soft.member, it.z.dtype
    dz = d @ it.zt  # the scores move along dz
    p_wd, p_dd = _per_problem(it.pen * it.w * d, member), _per_problem(it.pen * d * d, member)
    # t = 1 (the quasi-Newton step), halved until the loss decreases enough (up to rounding);
    # trying a t costs no matrix product: the scores are scores + t dz
    t = torch.ones(len(it.ids), soft.F, dtype=dtype, device=it.z.device)
    w_w = _per_problem(it.pen * it.w * it.w, member)
    slack = search.slack(dtype)
    for attempt in range(search.halvings + 2):  # t = 1, the halvings, then t = 0
        data, resid = soft.loss_residual(torch.addcmul(it.scores, _per_column(t, member), dz))
        new_loss = data + 0.5 * w_w + t * p_wd + 0.5 * t * t * p_dd
        ok = (new_loss <= it.loss + search.sufficient_decrease * t * slope + slack * (1 + it.loss.abs())) | ~it.active
        if bool(ok.all()):
            break
        t = torch.where(ok, t, 0.5 * t if attempt < search.halvings else torch.zeros_like(t))
    return t * it.active, new_loss, resid, dz


def _take_step(
    it: _Iterate,
    history: LbfgsHistory,
    d: torch.Tensor,
    t: torch.Tensor,
    dz: torch.Tensor,
    new_loss: torch.Tensor,
    resid: torch.Tensor,
) -> None:
    """Move the weights by t d (the loss and residual at t known) and record the step's
    curvature pair in ``history``."""
    member = history.member
    it.loss = torch.where(it.active, new_loss, it.loss)
    step = d.mul_(_per_column(t, member))
    it.w = it.w + step
    it.scores = it.scores.addcmul_(_per_column(t, member), dz)
    new_grad = torch.baddbmm(it.pen * it.w, resid, it.z, alpha=1.0 / it.z.shape[1])
    y = new_grad - it.grad
    sy = _per_problem(step * y, member)
    history.push(step, y, t, sy, it.active & (sy > 1e-20), new_grad)
    it.grad = new_grad


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
    it = _start(z, soft, lam, w, tol)
    history = LbfgsHistory(memory, it.w, soft.member, it.precond, it.grad)
    iterations = torch.zeros(z.shape[0], soft.F, dtype=torch.long, device=z.device)
    out = it.w.clone()
    for _ in range(max_iter):
        busy = it.active.any(1)
        if not bool(busy.any()):
            break
        if int(busy.sum()) <= search.regroup_fraction * len(
            it.ids
        ):  # drop the groups whose problems have all converged
            out[it.ids] = it.w
            it.select(busy)
            history.select(busy)
        d, slope = _descent_direction(it, history)
        t, new_loss, resid, dz = _backtrack(search, soft, it, d, slope)
        _take_step(it, history, d, t, dz, new_loss, resid)
        iterations[it.ids] += it.active.long()
        it.active = it.active & _unconverged(it.grad, soft.member, tol)
    out[it.ids] = it.w
    if bool(it.active.any()):
        warnings.warn(
            f"{int(it.active.sum())} logistic probe fit(s) stopped at max_iter={max_iter} with the gradient "
            f"norm above tol={tol}",
            RuntimeWarning,
            stacklevel=2,
        )
    return out, iterations
