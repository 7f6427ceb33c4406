"""Exact quantities for data whose noised distribution is known in closed form.

The method in full: docs/science.md, "The exact ground truth of a finite image set".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..core.errors import InputError
from ..core.image_rows import ImageRows
from ..diffusion.sde import SDE

# Float64 image rows per streamed chunk: on a CPU small enough to stay in the allocator's
# pool (measured 2x faster than 128 MiB), on a GPU large enough that kernel launches do not dominate.
CHUNK_BYTES = {"cpu": 1 << 25, "cuda": 1 << 30}
PROBABILITY_FLOOR = 1e-300  # log p is clamped at about -690 nats


@dataclasses.dataclass
class Draw:
    """One time's draws: clean images, the network's condition values and (discrete data) labels."""

    x0: torch.Tensor  # (B, ...) float64
    values: torch.Tensor  # (B, K) float32
    labels: torch.Tensor | None  # (B, K) long


def label_entropy(labels: torch.Tensor, cardinality: int) -> float:
    """H(Y) in nats of the empirical distribution of integer labels (N,), on their device.
    (entropy.plug_in_entropy is the same estimate in NumPy: the two can differ in the last
    bit, and the information tables' values are kept as they were made.)"""
    p = torch.bincount(labels, minlength=cardinality).double() / len(labels)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def entropy_terms(posteriors: list[torch.Tensor], labels: torch.Tensor, entropy: np.ndarray) -> dict[str, torch.Tensor]:
    """Per-draw exact quantities from the factor posteriors p(v | x_b) (each (B, V_k)):

    - ``conditional_entropy``: H(Y_k | X_t = x_b); its mean is E[H(Y_k | X_t)];
    - ``exact``: H(Y_k) - H(Y_k | X_t = x_b); its mean is I(Y_k; X_t);
    - ``bayes_accuracy``: max_v p(v | x_b), the Bayes-optimal classifier's accuracy;
    - ``log_likelihood``: log p(y_b | x_b) of the draw's true label (the bound
      I >= H(Y) + E log q(Y | X_t) holds with equality for q = p).

    Each (B, K) float64, on the posteriors' device (the caller brings them to the host
    together with its other terms).
    """
    columns: dict[str, list[torch.Tensor]] = {
        key: [] for key in ("conditional_entropy", "bayes_accuracy", "log_likelihood")
    }
    for k, p in enumerate(posteriors):
        log_p = p.clamp_min(PROBABILITY_FLOOR).log()
        rows = torch.arange(len(labels), device=p.device)
        columns["conditional_entropy"].append(-(p * log_p).sum(1))
        columns["bayes_accuracy"].append(p.max(1).values)
        columns["log_likelihood"].append(log_p[rows, labels[:, k].to(p.device)])
    terms = {key: torch.stack(value, 1) for key, value in columns.items()}
    device = terms["conditional_entropy"].device
    terms["exact"] = torch.as_tensor(entropy, device=device)[None, :] - terms["conditional_entropy"]
    return terms


class FiniteMixture:
    """The uniform distribution over ``images[rows]`` (all rows when ``rows`` is None).

    ``images`` (N, ...) stay as stored (float in [-1, 1] or uint8, a memory map is
    fine; image_rows.ImageRows reads them): each chunk is read, mapped to [-1, 1] and
    cast to float64 on its own.
    ``labels`` (N, K) int are each factor's value index (for exact information);
    ``values`` (N, K) the network's condition input (for the exact epsilon and draws).
    Images are streamed ``chunk_size`` at a time (default: ``CHUNK_BYTES`` of float64 for
    the device). Call ``to(device)`` to keep the rows' images on a GPU between passes.
    """

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor | None = None,
        values: np.ndarray | torch.Tensor | None = None,
        rows: np.ndarray | None = None,
        chunk_size: int | None = None,
    ):
        self.image_rows = ImageRows(images, rows)
        if len(self.image_rows) == 0:
            raise InputError("a finite mixture needs at least one image")
        self.image_shape = self.image_rows.image_shape
        self.chunk_size = chunk_size
        self.values = None if values is None else self._select(values).to(torch.float32)
        self.labels = None if labels is None else self._select(labels).to(torch.long)
        if self.labels is not None:
            self._check_labels()

    def _select(self, array: np.ndarray | torch.Tensor) -> torch.Tensor:
        table, n_images = np.asarray(array), len(self.image_rows.images)
        if table.ndim != 2 or len(table) != n_images:
            raise InputError(f"factor table of shape {table.shape} does not match {n_images} images")
        return torch.from_numpy(table[self.image_rows.rows])  # a copy: fancy indexing

    def _check_labels(self) -> None:
        if int(self.labels.min()) < 0:
            raise InputError("labels must be non-negative value indices")
        for k in range(self.labels.shape[1]):
            if len(torch.unique(self.labels[:, k])) < 2:
                raise InputError(f"factor {k} takes one value in these rows: I(Y; X_t) is 0 and not worth estimating")

    def __len__(self) -> int:
        return len(self.image_rows)

    @property
    def n_factors(self) -> int:
        table = self.labels if self.labels is not None else self.values
        return 0 if table is None else table.shape[1]

    @property
    def cardinalities(self) -> list[int]:
        return [int(m) + 1 for m in self.labels.max(0).values]

    @property
    def entropy(self) -> np.ndarray:
        """H(Y_k) in nats of the rows' labels, (K,) (NaN without labels)."""
        if self.labels is None:
            return np.full(self.n_factors, np.nan)
        return np.asarray([label_entropy(self.labels[:, k], v) for k, v in enumerate(self.cardinalities)])

    def to(self, device: torch.device | str) -> FiniteMixture:
        """Keep the rows' images on ``device`` in their stored dtype (uint8 stays 1 byte a pixel)."""
        self.image_rows.keep_on(device, rows_per_read=self._span_size("cpu"))
        return self

    def _span_size(self, device: torch.device | str) -> int:
        budget = CHUNK_BYTES.get(torch.device(device).type, CHUNK_BYTES["cpu"])
        return self.chunk_size or max(1, budget // (8 * math.prod(self.image_shape)))

    def _spans(self, device: torch.device | str) -> Iterator[tuple[int, int]]:
        size = self._span_size(device)
        for start in range(0, len(self), size):
            yield start, min(start + size, len(self))

    def gather(self, positions: np.ndarray) -> torch.Tensor:
        """Images at ``positions`` (indices into the rows) as float64 (B, ...) in [-1, 1], on the CPU."""
        return self.image_rows.gather(positions, "cpu", torch.float64)

    def posterior_average(
        self,
        x: torch.Tensor,
        alpha: torch.Tensor,
        sigma: torch.Tensor,
        features: Callable[[int, int, torch.Tensor], torch.Tensor],
        allowed: Callable[[int, int], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """sum_i p(i | X_t = x) features_i for each row of ``x`` (B, ...), (B, F) float64.

        p(i | x) is proportional to exp(-||x - alpha x_i||^2 / 2 sigma^2) over the images
        that ``allowed(start, stop)`` (B, C) admits (all when None); ``alpha``, ``sigma`` are
        per-row (B,). ``features(start, stop, chunk)`` gives (C, F) for the rows' images
        ``chunk`` (C, D). Runs on ``x``'s device, one chunk of images at a time, keeping a
        running maximum of the logits so that nothing under- or overflows.
        """
        device = x.device
        flat = x.flatten(1).double()
        a = alpha.to(device, torch.float64)[:, None]
        inverse_var = 1.0 / sigma.to(device, torch.float64)[:, None] ** 2
        top = torch.full((len(flat),), -math.inf, dtype=torch.float64, device=device)
        total = torch.zeros(len(flat), dtype=torch.float64, device=device)
        weighted = None
        for start, stop in self._spans(device):
            chunk = self.image_rows.span(start, stop, device, torch.float64).flatten(1)
            # -||x - a x_i||^2 / 2 s^2 without the ||x||^2 term, which is the same for every i.
            logits = (a * (flat @ chunk.T) - 0.5 * a**2 * chunk.pow(2).sum(1)[None, :]) * inverse_var
            if allowed is not None:
                logits = logits.masked_fill(~allowed(start, stop).to(device), -math.inf)
            new_top = torch.maximum(top, logits.max(1).values)
            shift = torch.where(torch.isfinite(new_top), new_top, torch.zeros_like(new_top))
            rescale, w = torch.exp(top - shift), torch.exp(logits - shift[:, None])
            contribution = w @ features(start, stop, chunk)
            weighted = contribution if weighted is None else weighted * rescale[:, None] + contribution
            total = total * rescale + w.sum(1)
            top = new_top
        if not bool((total > 0).all()):
            raise InputError("a condition matches no image in the mixture")
        return weighted / total[:, None]

    def one_hot(self, start: int, stop: int, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        """Rows ``start:stop``'s factor values as concatenated one-hots, (C, sum V_k): factor
        k's value v is column sum(V_<k) + v."""
        offsets = torch.tensor([0] + self.cardinalities[:-1]).cumsum(0)
        columns = (self.labels[start:stop] + offsets).to(device)
        hot = torch.zeros(stop - start, sum(self.cardinalities), dtype=dtype, device=device)
        return hot.scatter_(1, columns, 1.0)

    def factor_posteriors(self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> list[torch.Tensor]:
        """p(Y_k = v | X_t = x) for every factor k: a list of (B, V_k) float64, on ``x``'s device."""
        hot = self.one_hot(0, len(self), torch.float64, x.device)
        average = self.posterior_average(x, alpha, sigma, lambda start, stop, chunk: hot[start:stop])
        return list(average.split(self.cardinalities, dim=1))

    def conditional_mean(
        self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, values: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        """E[X_0 | X_t = x, the kept factors = ``values``] (B, ...) float64: the posterior mean
        over the images whose kept factors (``keep`` (B, K) bool) equal the given values."""
        table = self.values.to(x.device)
        values, keep = values.to(x.device, torch.float32), keep.to(x.device)

        def matching(start: int, stop: int) -> torch.Tensor:
            same = table[None, start:stop, :] == values[:, None, :]
            return (same | ~keep[:, None, :]).all(dim=2)

        mean = self.posterior_average(x, alpha, sigma, lambda start, stop, chunk: chunk, matching)
        return mean.reshape(x.shape)

    def value_table(self) -> list[torch.Tensor]:
        """The condition value of each label, per factor ((V_k,) float32): the network input
        that stands for Y_k = v. Needs one value per label (lattice or categorical factors)."""
        tables = []
        for k, size in enumerate(self.cardinalities):
            table = torch.full((size,), math.nan)
            table[self.labels[:, k]] = self.values[:, k]
            clash = table[self.labels[:, k]] != self.values[:, k]
            if bool(clash.any()) or bool(table.isnan().any()):
                raise InputError(f"factor {k}: some label has several condition values (or none)")
            tables.append(table)
        return tables

    def stratified_positions(self, points: int, samples: int, generator: torch.Generator) -> np.ndarray:
        """(points, samples) row positions: one random permutation of the rows read in turn, cycling."""
        order = torch.randperm(len(self), generator=generator).numpy()
        return order[np.arange(points * samples).reshape(points, samples) % len(self)]

    def draws(self, points: int, samples: int, generator: torch.Generator) -> Iterator[Draw]:
        """``points`` batches of ``samples`` draws, stratified: the rows of one random
        permutation in turn, cycling, so each batch holds every row once before any twice."""
        for positions in self.stratified_positions(points, samples, generator):
            index = torch.from_numpy(positions)
            yield Draw(self.gather(positions), self.values[index], None if self.labels is None else self.labels[index])

    def exact_terms(
        self, sde: SDE, x: torch.Tensor, t: float, draw: Draw
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """Per-draw exact quantities at time ``t`` (see ``entropy_terms``) and the factor posteriors."""
        if self.labels is None:
            raise InputError("exact information needs the factors' labels")
        ts = torch.full((len(x),), t, dtype=torch.float64)
        posteriors = self.factor_posteriors(x, sde.alpha(ts), sde.sigma(ts))
        return entropy_terms(posteriors, draw.labels, self.entropy), posteriors
