"""What forked continuations and forward-backward regenerations say about when a factor
is decided (study 1; Sclocchi et al., arXiv 2410.13770).

The method in full: docs/science.md, "Forks and forward-backward: the decision read from branches".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .entropy import miller_madow_entropy


def _mean_and_stderr(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    n = values.shape[axis]
    return values.mean(axis=axis), values.std(axis=axis, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(values.shape[1:])


def fork_table(
    branch_labels: dict[str, np.ndarray],
    parent_labels: dict[str, np.ndarray],
    cardinalities: dict[str, int],
    entropies: dict[str, float],
    t: np.ndarray,
    log_snr: np.ndarray,
) -> pd.DataFrame:
    """``branch_labels[f]`` (M, F, K), ``parent_labels[f]`` (M,), per factor; one row per
    (quantity, factor, fork time)."""
    rows = []
    for factor, labels in branch_labels.items():
        entropy = miller_madow_entropy(labels, cardinalities[factor])  # (M, F)
        agreement = (labels == parent_labels[factor][:, None, None]).mean(axis=-1)  # (M, F)
        for quantity, values in (
            ("fork_entropy", entropy),
            ("fork_information", entropies[factor] - entropy),
            ("fork_agreement", agreement),
        ):
            mean, stderr = _mean_and_stderr(values)
            rows.append(
                pd.DataFrame(
                    {"quantity": quantity, "factor": factor, "t": t, "log_snr": log_snr, "mean": mean, "stderr": stderr}
                )
            )
    return pd.concat(rows, ignore_index=True)


def forward_backward_table(
    regenerated_labels: dict[str, np.ndarray],
    source_labels: dict[str, np.ndarray],
    split: np.ndarray,
    t: np.ndarray,
    log_snr: np.ndarray,
) -> pd.DataFrame:
    """``regenerated_labels[f]`` (S, N, R) and ``source_labels[f]`` (N,); one row per
    (split, factor, start time): the fraction of regenerations that kept the factor."""
    rows = []
    for factor, labels in regenerated_labels.items():
        kept = (labels == source_labels[factor][None, :, None]).mean(axis=-1)  # (S, N)
        for part in sorted(set(split)):
            mean, stderr = _mean_and_stderr(kept[:, split == part], axis=1)
            rows.append(
                pd.DataFrame(
                    {
                        "quantity": "forward_backward",
                        "split": part,
                        "factor": factor,
                        "t": t,
                        "log_snr": log_snr,
                        "mean": mean,
                        "stderr": stderr,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)
