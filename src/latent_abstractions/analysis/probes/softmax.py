"""The softmax regressions of several categorical factors side by side: their losses,
residuals, curvature and start point, batched over groups of problems that share rows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


class Softmaxes:
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
