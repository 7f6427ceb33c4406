"""Pipeline step: when each factor of a shapes data set is decided along generation,
from the data and the noise process alone (no model, no training).

The method in full: docs/science.md, "The exact order at paper resolution".
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from ..analysis import information, order
from ..analysis.exact_stream import exact_information, resample_pairs
from ..analysis.ground_truth import FiniteMixture
from ..analysis.published_order import PUBLISHED_EARLY, PUBLISHED_LATE, compare_with_published
from ..core.artifacts import provenance, write_parquet, write_series_csv
from ..core.errors import InputError
from ..core.progress import progress
from ..datasets import base
from ..datasets.registry import EXACT_ORDER, serves, serving
from ..diffusion.sde import make_sde
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths

log = logging.getLogger("exact_order")
PROXY = "mi_exact"
TIME_COLUMNS = ("tau_50", "tau_90", "log_snr_50", "log_snr_90", "log_snr_peak", "log_snr_nats")
# Each definition of decision time and its rank column (rank 1: decided first).
RANKS = {"rank_50": "log_snr_50", "rank_peak": "log_snr_peak", "rank_nats": "log_snr_nats"}


def load_dataset(experiment: str, params: dict) -> base.Dataset:
    """The experiment's data set, memory-mapped; one clear line if its kind does not serve
    the exact order or it is missing."""
    if not serves(params["dataset"], EXACT_ORDER):
        raise InputError(
            f"exact_order: experiment {experiment} has a {params['dataset']['kind']} data set; the exact order "
            f"is made for data set kinds {', '.join(serving(EXACT_ORDER))}"
        )
    try:
        dataset = base.load(ExperimentPaths(experiment).dataset_dir)
    except InputError as exc:  # with what to do about it
        raise InputError(f"exact_order: {exc} (make the data set of {experiment} first)") from None
    return varying_factors(dataset)


def varying_factors(dataset: base.Dataset) -> base.Dataset:
    """The data set with only its factors that take several values (a fixed one has I = 0 at every t)."""
    varying = [f.name for f in dataset.factor_table if f.cardinality > 1]
    fixed = [f.name for f in dataset.factor_table if f.cardinality < 2]
    if not varying:
        raise InputError("exact_order: every factor of the data set takes a single value")
    if fixed:
        log.info("left out, as they take one value: %s", ", ".join(fixed))
    return dataset.restricted(varying)


def mixture(dataset: base.Dataset, rows: str, device: torch.device) -> FiniteMixture:
    """The uniform mixture over all rows or the train rows; the uint8 images stay as stored."""
    chosen = dataset.train_rows() if rows == "train" else None
    try:
        source = FiniteMixture(dataset.images, dataset.bins(), dataset.condition_values(), rows=chosen)
    except InputError as exc:  # named as this stage's
        raise InputError(f"exact_order: {exc}") from None
    return source.to(device) if device.type == "cuda" else source


def curve_table(estimate: information.InformationEstimate, names: list[str]) -> pd.DataFrame:
    """One row per (factor, t), in generation order (t from T down)."""
    frames = []
    for k, name in enumerate(names):
        mi = estimate.mean["exact"][:, k]
        frames.append(
            pd.DataFrame(
                {
                    "factor": name,
                    "t": estimate.times,
                    "log_snr": estimate.log_snr,
                    "mi": mi,
                    "stderr": estimate.stderr["exact"][:, k],
                    "entropy": estimate.entropy[k],
                    "fraction": order.fraction_covered(mi),
                    "bayes_accuracy": estimate.mean["bayes_accuracy"][:, k],
                    "bayes_accuracy_stderr": estimate.stderr["bayes_accuracy"][:, k],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _decisions(curves: pd.DataFrame, value: np.ndarray) -> pd.DataFrame:
    """Every definition of decision time per factor: tau_50 and tau_90 of I/H (order.py),
    the entropy rate's peak and the absolute crossing of NATS_LEVEL nats, in log-SNR."""
    valued = curves.assign(proxy=PROXY, value=value)
    table = order.decision_times(valued).drop(columns="proxy").set_index("factor")
    for factor, curve in valued.groupby("factor"):
        lam, mi = curve["log_snr"].to_numpy(), curve["value"].to_numpy()
        table.loc[factor, "log_snr_peak"] = order.entropy_rate_peak(lam, mi)
        table.loc[factor, "log_snr_nats"] = order.nats_crossing(lam, mi)
    for rank, column in RANKS.items():
        table[rank] = table[column].rank(method="min")  # the smaller log-SNR, the earlier in generation
    return table


def decision_table(curves: pd.DataFrame, per_pair: np.ndarray, replicates: int, seed: int) -> pd.DataFrame:
    """One row per factor: order.py's decision times of the ``mi`` curves, with standard
    errors and the share of replicates that rank the factor as the curves do, from a
    bootstrap over the draws' pairs (``per_pair`` (P, N, K): each pair's I terms; the pairs
    are shared by every time, so the curves' errors are correlated and are resampled together)."""
    table = _decisions(curves, curves["mi"].to_numpy())
    rng = np.random.default_rng(seed)
    # curve_table's rows run factor by factor, each over the times: (P, K) -> K blocks of P
    draws = [
        _decisions(curves, resample_pairs(per_pair, rng).T.ravel())
        for _ in progress(range(replicates), "bootstrap", "replicate")
    ]
    for column in TIME_COLUMNS:
        spread = pd.concat([draw[column] for draw in draws], axis=1)
        table[f"{column}_stderr"] = spread.std(axis=1, ddof=1)
    for rank in RANKS:
        ranks = pd.concat([draw[rank] for draw in draws], axis=1)
        table[f"{rank}_stability"] = ranks.eq(table[rank], axis=0).mean(axis=1)
    table["entropy"] = curves.groupby("factor")["entropy"].first()
    table["published_group"] = [_group(name) for name in table.index]
    columns = [
        "entropy",
        *(c for time in TIME_COLUMNS for c in (time, f"{time}_stderr")),
        *(c for rank in RANKS for c in (rank, f"{rank}_stability")),
        "published_group",
    ]
    return table[columns].reset_index().sort_values(["rank_50", "factor"], ignore_index=True)


def _group(name: str) -> str:
    return "early" if name in PUBLISHED_EARLY else "late" if name in PUBLISHED_LATE else "none"


def exact_curves(dataset: base.Dataset, sde_params: dict, settings: dict) -> tuple[pd.DataFrame, np.ndarray]:
    """The curve table and each pair's exact I terms (P, N, K), for the bootstrap."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    source = mixture(dataset, settings["rows"], device)
    found = exact_information(
        make_sde(sde_params),
        source,
        t_end=settings["t_end"],
        points=settings["points"],
        samples=settings["samples"],
        seed=settings["seed"],
        device=device,
    )
    return curve_table(found.estimate, [f.name for f in dataset.factor_table]), found.per_pair


def exact_order_step(experiment: str, params: dict) -> None:
    files = ExperimentPaths(experiment)
    dataset = load_dataset(experiment, params)
    settings = params["exact_order"]
    log.info(
        "%d images of shape %s, %s rows, %d times x %d draws",
        len(dataset.images),
        dataset.images.shape[1:],
        settings["rows"],
        settings["points"],
        settings["samples"],
    )
    curves, per_pair = exact_curves(dataset, params["sde"], settings)
    decisions = decision_table(curves, per_pair, settings["bootstrap"], settings["seed"])
    meta = provenance(
        "exact_order", experiment, {key: params[key] for key in ("sde", "exact_order")}, files.dataset_files
    )
    targets = (files.exact_information, files.exact_decisions)
    for frame, target in zip((curves, decisions), targets):
        frame.insert(0, "experiment", experiment)
        write_parquet(pa.Table.from_pandas(frame, preserve_index=False), target, meta)
    write_series_csv(curves, "t", ["factor"], "mi", files.plot_data("exact_information"))
    log.info("largest Monte-Carlo standard error of I: %.4f nats", curves["stderr"].max())
    log.info("decision times:\n%s", decisions.drop(columns="experiment").round(3).to_string(index=False))
    _log_comparison(decisions)


def _log_comparison(decisions: pd.DataFrame) -> None:
    try:
        found = compare_with_published(decisions)
    except ValueError as exc:
        log.info("no comparison with the order attributed to Franzese et al.: %s", exc)
        return
    log.info(
        "order: %s; agrees with the order attributed to Franzese et al. (hues and shape before scale and orientation): %s; "
        "Spearman rho with the published groups: %.3f",
        found["text"],
        found["agrees"],
        found["rank_agreement"],
    )


if __name__ == "__main__":
    run_step("exact_order", exact_order_step)
