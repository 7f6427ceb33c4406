"""The noise classifier's evaluation: cross-entropy, accuracy and the Barber-Agakov bound
H(Y_k) - CE <= I(Y_k; X_t) per time and factor, beside the exact value on the same draws."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from ..analysis.entropy import plug_in_entropy
from ..analysis.ground_truth import FiniteMixture, entropy_terms
from ..core.image_rows import ImageRows
from ..core.progress import progress
from .classifier import ClassifierError, NoiseClassifier, check_matches, device_of, device_rows, labels_of

if TYPE_CHECKING:
    from ..datasets.base import Dataset


def _standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def balanced_positions(n_rows: int, samples: int, generator: torch.Generator) -> torch.Tensor:
    """``samples`` indices into ``n_rows`` rows, each row as often as possible (concatenated
    random permutations, the last one cut short)."""
    rounds = -(-samples // n_rows)
    return torch.cat([torch.randperm(n_rows, generator=generator) for _ in range(rounds)])[:samples]


EVALUATION_COLUMNS = (
    "t",
    "log_snr",
    "factor",
    "cardinality",
    "samples",
    "entropy",
    "chance_accuracy",
    "cross_entropy",
    "cross_entropy_se",
    "accuracy",
    "accuracy_se",
    "bound",
    "bound_se",
    "exact",
    "exact_se",
    "bound_gap",
    "bound_gap_se",
)


@torch.no_grad()
def evaluate(
    model: NoiseClassifier,
    dataset: Dataset,
    times: Sequence[float] | np.ndarray | torch.Tensor,
    rows: np.ndarray,
    samples: int = 1024,
    seed: int = 0,
    batch_size: int = 512,
) -> pd.DataFrame:
    """Cross-entropy, accuracy and the Barber-Agakov bound per time and factor, on fresh draws.

    For each t of ``times``: ``samples`` draws (row from ``rows``, each as often as
    possible; fresh standard-normal noise) x_t = sde.marginal(x_0, t, noise), with the
    model's own SDE. One row per (t, factor), columns ``EVALUATION_COLUMNS``:

    - ``entropy``: H(Y_k) of ``rows``' labels (the distribution the draws come from);
      ``chance_accuracy``: the frequency of its most common value;
    - ``cross_entropy``: mean of -log q(y_k | x_t, t); ``accuracy``: of the argmax;
    - ``bound`` = entropy - cross_entropy <= I(Y_k; X_t) for the uniform mixture over
      ``rows``. Never above ``entropy``; negative when the classifier is worse than the
      label prior (reported as is, not clipped at 0);
    - ``exact``: I(Y_k; X_t) of that mixture on the same draws (H(Y_k) minus the exact
      posterior's entropy at each x_t, as in ground_truth), and ``bound_gap`` = bound -
      exact, paired draw by draw: -E[KL(p(. | x_t) || q(. | x_t))] <= 0, how far the
      variational estimate falls short;
    - ``*_se``: standard errors std / sqrt(samples) over draws (conservative: the draws
      are stratified over rows); ``bound_se`` = ``cross_entropy_se`` (the entropy is exact).

    ``t`` at or below ``t_min`` is classified as ``t_min`` but noised at its own t.
    """
    check_matches(model.architecture, dataset)
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0 or samples < 2:
        raise ClassifierError(f"evaluation needs rows and at least 2 samples, got {len(rows)} rows, {samples} samples")
    model.eval()
    context = _context_of(model, dataset, rows, batch_size)
    generator = torch.Generator().manual_seed(seed)
    records = []
    grid = torch.as_tensor(times, dtype=torch.float64).reshape(-1).tolist()
    for t in progress(grid, "evaluate classifier", "time"):
        positions = balanced_positions(len(rows), samples, generator)
        records += _records_at(t, positions, generator, context)
    return pd.DataFrame.from_records(records, columns=list(EVALUATION_COLUMNS))


@dataclasses.dataclass
class _Context:
    """What the draws at every time share."""

    model: NoiseClassifier
    images: ImageRows
    labels: torch.Tensor  # (rows, factors), on the model's device
    mixture: FiniteMixture
    entropies: list[float]
    chance: list[float]
    image_shape: tuple[int, ...]
    batch_size: int


def _context_of(model: NoiseClassifier, dataset: Dataset, rows: np.ndarray, batch_size: int) -> _Context:
    device = device_of(model)
    all_labels = labels_of(dataset)
    labels = all_labels[rows]
    images = device_rows(dataset.images, rows, device)
    # The exact posterior reads the same rows: from the device cache when there is one,
    # instead of streaming the whole set again for every batch.
    mixture = (
        FiniteMixture(images.cache, labels)
        if images.cache is not None
        else FiniteMixture(dataset.images, all_labels, rows=rows)
    )
    entropies = [plug_in_entropy(labels[:, k], f.cardinality) for k, f in enumerate(model.factors)]
    chance = [
        float(np.bincount(labels[:, k], minlength=f.cardinality).max() / len(labels))
        for k, f in enumerate(model.factors)
    ]
    labels_device = torch.from_numpy(labels).to(device)
    return _Context(model, images, labels_device, mixture, entropies, chance, images.image_shape, batch_size)


def _records_at(t: float, positions: torch.Tensor, generator: torch.Generator, context: _Context) -> list[dict]:
    """One record per factor at time ``t``, over the draws of ``positions``."""
    model, sde, device = context.model, context.model.sde, device_of(context.model)
    ce = [[] for _ in model.factors]
    hit = [[] for _ in model.factors]
    exact = []
    for start in range(0, len(positions), context.batch_size):
        chunk = positions[start : start + context.batch_size]
        noise = torch.randn((len(chunk),) + context.image_shape, generator=generator).to(device)
        t_batch = torch.full((len(chunk),), t, dtype=torch.float32, device=device)
        x_t = sde.marginal(context.images.gather(chunk, device), t_batch, noise)
        target = context.labels[chunk.to(device)]
        posteriors = context.mixture.factor_posteriors(x_t, sde.alpha(t_batch), sde.sigma(t_batch))
        exact.append(entropy_terms(posteriors, target, np.asarray(context.entropies))["exact"].cpu())
        for k, z in enumerate(model(x_t, t_batch)):
            log_q = torch.log_softmax(z.double(), dim=1)
            ce[k].append(-log_q.gather(1, target[:, k : k + 1])[:, 0].cpu())
            hit[k].append((z.argmax(1) == target[:, k]).double().cpu())
    log_snr = float(sde.log_snr(torch.tensor(t, dtype=torch.float64))) if t > 0 else math.inf
    exact_k = torch.cat(exact).numpy()
    records = []
    for k, factor in enumerate(model.factors):
        c, a, e = torch.cat(ce[k]).numpy(), torch.cat(hit[k]).numpy(), exact_k[:, k]
        ce_mean, ce_se = float(c.mean()), _standard_error(c)
        gap = context.entropies[k] - c - e  # per draw: H(Y_k | X_t = x) + log q(y | x)
        records.append(
            {
                "t": t,
                "log_snr": log_snr,
                "factor": factor.name,
                "cardinality": factor.cardinality,
                "samples": len(positions),
                "entropy": context.entropies[k],
                "chance_accuracy": context.chance[k],
                "cross_entropy": ce_mean,
                "cross_entropy_se": ce_se,
                "accuracy": float(a.mean()),
                "accuracy_se": _standard_error(a),
                "bound": context.entropies[k] - ce_mean,
                "bound_se": ce_se,
                "exact": float(e.mean()),
                "exact_se": _standard_error(e),
                "bound_gap": float(gap.mean()),
                "bound_gap_se": _standard_error(gap),
            }
        )
    return records
