"""Mutual information between a factor and the noised state, I(Y_k; X_t), in nats.

The method in full: docs/science.md, "The score-difference information estimate".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch

from ..core.errors import InputError
from ..core.progress import progress
from ..diffusion.sde import SDE, log_snr_grid
from .ground_truth import Draw, FiniteMixture, label_entropy

SCORE_FORMS = ("orthogonal", "mmse_difference")


class Source(Protocol):
    """What the estimator draws from (``ground_truth.FiniteMixture``, ``oracles.GaussianTask``)."""

    n_factors: int
    entropy: np.ndarray

    def draws(self, points: int, samples: int, generator: torch.Generator) -> Iterator[Draw]: ...

    def exact_terms(
        self, sde: SDE, x: torch.Tensor, t: float, draw: Draw
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor] | None]: ...


@dataclasses.dataclass(frozen=True)
class InformationEstimate:
    """Curves on the grid ``times`` (P,) from T down to t_end, ``log_snr`` (P,) increasing.

    ``mean`` and ``stderr`` map a quantity to (P, K), one column per factor:

    - ``orthogonal``, ``mmse_difference``: I(Y_k; X_t) by the two score forms, nats,
      including the I(Y; X_T) term (``exact`` at T) when the source is exact;
    - ``orthogonal_integrand``, ``mmse_difference_integrand``: the integrands per unit
      of log-SNR (before the factor 1/2);
    - ``exact``: I(Y_k; X_t) from the source's exact distribution, on the same draws;
    - for a finite image set also ``conditional_entropy`` E[H(Y_k | X_t)],
      ``bayes_accuracy`` E[max_v p(v | X_t)] and ``log_likelihood`` E[log p(Y_k | X_t)];
    - ``consistency`` (when asked): E || eps_hat(x) - sum_v p(Y_k = v | x) eps_hat(x | Y_k = v) ||^2
      over X_t, with p the exact posterior of the data's mixture and the squared norm
      summed over pixels (the units of the integrands). The score of a mixture is the
      posterior-weighted mixture of its components' scores, so this is zero for exact
      scores; it measures how far the model's unconditional pass is from its own
      single-factor passes.

    ``entropy`` (K,) is H(Y_k) of the data's labels (NaN for continuous Y).
    """

    times: np.ndarray
    log_snr: np.ndarray
    entropy: np.ndarray
    mean: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]

    def columns(self, factor_names: list[str]) -> dict[str, np.ndarray]:
        """Every curve in long form, one row per (quantity, factor, time): columns ``quantity``,
        ``factor``, ``t``, ``log_snr``, ``mean``, ``stderr``, ``factor_entropy`` (for a table)."""
        rows = [(name, k) for name in self.mean for k in range(len(factor_names))]
        points = len(self.times)
        return {
            "quantity": np.repeat([name for name, _ in rows], points),
            "factor": np.repeat([factor_names[k] for _, k in rows], points),
            "t": np.tile(self.times, len(rows)),
            "log_snr": np.tile(self.log_snr, len(rows)),
            "mean": np.concatenate([self.mean[name][:, k] for name, k in rows]),
            "stderr": np.concatenate([self.stderr[name][:, k] for name, k in rows]),
            "factor_entropy": np.repeat([self.entropy[k] for _, k in rows], points),
        }


def factor_entropy(labels: np.ndarray) -> float:
    """H(Y) in nats of the empirical distribution of integer labels."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return label_entropy(labels, int(labels.max()) + 1)


def cumulative_weights(grid: np.ndarray) -> np.ndarray:
    """Trapezoid weights W (P, P): (W @ f)[i] = int_{grid[0]}^{grid[i]} f, for samples f on ``grid``."""
    widths = np.diff(grid)
    weights = np.zeros((len(grid), len(grid)))
    for i in range(1, len(grid)):
        weights[i, :i] += widths[:i] / 2
        weights[i, 1 : i + 1] += widths[:i] / 2
    return weights


def integrate(grid: np.ndarray, mean: np.ndarray, stderr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1/2 int_{grid[0]}^{grid[i]} of an integrand estimated at the grid points (P, K),
    with its standard error (the points' errors independent)."""
    weights = 0.5 * cumulative_weights(grid)
    return weights @ mean, np.sqrt(weights**2 @ stderr**2)


def _pass_inputs(values: torch.Tensor, value_table: list[torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep flags and condition values (passes, B, K) for: none kept, each factor alone,
    and (with a ``value_table``) each factor alone at each of its values."""
    n_factors = values.shape[1]
    alone = torch.eye(n_factors, dtype=torch.bool)
    keeps = [torch.zeros(n_factors, dtype=torch.bool)] + list(alone)
    inputs = [values] * (1 + n_factors)
    for k, table in enumerate(value_table or []):
        for value in table:
            keeps.append(alone[k])
            inputs.append(torch.cat([values[:, :k], value.expand(len(values), 1), values[:, k + 1 :]], dim=1))
    keep = torch.stack(keeps)[:, None, :].expand(-1, len(values), -1)
    return keep, torch.stack(inputs)


def _run_passes(
    model: torch.nn.Module,
    x: torch.Tensor,
    t: float,
    keep: torch.Tensor,
    values: torch.Tensor,
    device: torch.device | str,
    precision: str = "fp32",
) -> torch.Tensor:
    """The model's eps for every pass in one call: (passes, B, D) float64 on ``device``."""
    passes, batch = keep.shape[:2]
    x = x.to(device, torch.float32).expand(passes, *x.shape).reshape(passes * batch, *x.shape[1:])
    ts = torch.full((passes * batch,), t, device=device)
    device_type = torch.device(device).type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16" and device_type == "cuda"):
        eps, _ = model(
            x, ts, values.reshape(passes * batch, -1).to(device), keep.reshape(passes * batch, -1).to(device)
        )
    return eps.double().reshape(passes, batch, -1)


def score_terms(
    model: torch.nn.Module,
    x: torch.Tensor,
    t: float,
    noise: torch.Tensor,
    values: torch.Tensor,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    posteriors: list[torch.Tensor] | None = None,
    value_table: list[torch.Tensor] | None = None,
    precision: str = "fp32",
) -> dict[str, torch.Tensor]:
    """Per-draw integrands (B, K) of the two score forms at X_s = ``x`` (made with ``noise``),
    and ``consistency`` when the exact factor ``posteriors`` and the ``value_table`` are given,
    on ``device``.

    The draws go through the model in groups: all passes of a group in one call of at
    most ``batch_size`` rows (or one draw's passes, if more). ``precision`` bf16
    autocasts the network on CUDA.
    """
    passes = 1 + values.shape[1] + sum(len(table) for table in value_table or [])
    step = max(1, batch_size // passes)
    x, noise = x.to(device), noise.to(device)
    parts = []
    for start in range(0, len(x), step):
        rows = slice(start, start + step)
        weights = None if posteriors is None else [p[rows].to(device) for p in posteriors]
        parts.append(
            _score_terms(model, x[rows], t, noise[rows], values[rows], device, weights, value_table, precision)
        )
    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}


def _score_terms(
    model: torch.nn.Module,
    x: torch.Tensor,
    t: float,
    noise: torch.Tensor,
    values: torch.Tensor,
    device: torch.device | str,
    posteriors: list[torch.Tensor] | None,
    value_table: list[torch.Tensor] | None,
    precision: str,
) -> dict[str, torch.Tensor]:
    keep, inputs = _pass_inputs(values, value_table)
    eps = _run_passes(model, x, t, keep, inputs, device, precision)
    n_factors, noise = values.shape[1], noise.flatten(1).double()
    none, alone = eps[0], eps[1 : 1 + n_factors]  # (B, D), (K, B, D)
    terms = {
        "orthogonal_integrand": (alone - none).pow(2).sum(-1).T,
        "mmse_difference_integrand": (noise - none).pow(2).sum(-1)[:, None] - (noise - alone).pow(2).sum(-1).T,
    }
    if value_table is not None:
        mixtures, start = [], 1 + n_factors
        for p in posteriors:  # sum_v p(v | x) eps_hat(x | Y_k = v), factor by factor
            mixtures.append(torch.einsum("bv,vbd->bd", p, eps[start : start + p.shape[1]]))
            start += p.shape[1]
        terms["consistency"] = (none[None] - torch.stack(mixtures)).pow(2).sum(-1).T
    return terms


def _mean_and_stderr(per_draw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return per_draw.mean(0), per_draw.std(0, ddof=1) / np.sqrt(len(per_draw))


def _on_host(terms: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Every (B, K) per-draw term on the host, in one transfer from the device that made them."""
    names = list(terms)
    widths = [terms[name].shape[1] for name in names]
    made_on = next((v.device for v in terms.values() if v.device.type != "cpu"), torch.device("cpu"))
    joined = torch.cat([terms[name].double().to(made_on) for name in names], dim=1).cpu().numpy()
    columns = np.split(joined, np.cumsum(widths)[:-1], axis=1)
    return dict(zip(names, columns))


@torch.no_grad()
def mutual_information(
    model: torch.nn.Module | None,
    sde: SDE,
    source: Source,
    t_end: float,
    points: int,
    samples: int,
    seed: int,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    exact: bool = True,
    consistency: bool = False,
    precision: str = "fp32",
) -> InformationEstimate:
    """I(Y_k; X_t) on a log-SNR-uniform grid of ``points`` times from T down to ``t_end``.

    ``source`` is the data distribution, e.g. ``FiniteMixture(images, labels, values, rows=train_rows)``
    for the rows the model was trained on (another call with held-out rows gives the
    held-out curve). ``model(x, t, values, keep) -> (eps, taps)`` is the score network
    (None: the exact curves only); ``batch_size`` bounds the rows per model call, and
    ``precision`` bf16 autocasts it on CUDA (checked against fp32 by
    benchmarks/gpu_sampling.py before use). Each point's terms reach the host in one transfer.
    ``exact`` adds the source's exact quantities; ``consistency`` (a finite image set
    with one condition value per label) the model-consistency check, at the cost of
    one extra pass per factor value.
    """
    if points < 2 or samples < 2:
        raise InputError(f"need at least 2 points and 2 samples, got points={points}, samples={samples}")
    if not 0.0 < t_end < sde.T:
        raise InputError(f"t_end must lie in (0, {sde.T}), got {t_end}")
    if model is None and not exact:
        raise InputError("nothing to estimate: no model and exact=False")
    if consistency and not (exact and isinstance(source, FiniteMixture)):
        raise InputError("the consistency check needs exact=True and a finite image set (discrete posteriors)")
    times = log_snr_grid(sde, sde.T, t_end, points)
    value_table = source.value_table() if consistency else None
    generator = torch.Generator().manual_seed(seed)
    per_time: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
    drawn = zip(times.tolist(), source.draws(points, samples, generator))
    for t, draw in progress(drawn, "information", "time", total=points):
        noise = torch.randn(draw.x0.shape, generator=generator, dtype=torch.float64)
        x = sde.marginal(draw.x0, torch.full((samples,), t, dtype=torch.float64), noise).float()
        terms, posteriors = source.exact_terms(sde, x.to(device), t, draw) if exact else ({}, None)
        if model is not None:
            terms.update(
                score_terms(model, x, t, noise, draw.values, device, batch_size, posteriors, value_table, precision)
            )
        per_time.append({name: _mean_and_stderr(value) for name, value in _on_host(terms).items()})
    mean = {name: np.stack([row[name][0] for row in per_time]) for name in per_time[0]}
    stderr = {name: np.stack([row[name][1] for row in per_time]) for name in per_time[0]}
    log_snr = sde.log_snr(times).numpy()
    if model is not None:
        _add_integrals(log_snr, mean, stderr)
    return InformationEstimate(times.numpy(), log_snr, np.asarray(source.entropy, dtype=np.float64), mean, stderr)


def _add_integrals(log_snr: np.ndarray, mean: dict[str, np.ndarray], stderr: dict[str, np.ndarray]) -> None:
    """Each score form's I(Y_k; X_t): the integral from T, plus I(Y; X_T) where the exact curve gives it."""
    start, start_error = (mean["exact"][0], stderr["exact"][0]) if "exact" in mean else (0.0, 0.0)
    for form in SCORE_FORMS:
        value, error = integrate(log_snr, mean[f"{form}_integrand"], stderr[f"{form}_integrand"])
        mean[form], stderr[form] = start + value, np.sqrt(error**2 + np.square(start_error))
