"""When each factor is decided along generation: the time at which a proxy curve has
covered 50% and 90% of its way from its value at pure noise to its final value.

A proxy is any curve of "how much the trajectory knows about the factor" against the
generative time t (generation runs from t = T down to t_end): probe accuracy, mutual
information (learned or exact), the classifier's bound, one minus the fork entropy,
forward-backward agreement. For a curve v(t), with v_start = v(T) and v_final = v(t_end),
the fraction covered is f(t) = (v(t) - v_start) / (v_final - v_start); ``tau_50`` is the
first time along generation (the largest t) at which f reaches 0.5, found by linear
interpolation in log-SNR between grid points, and likewise ``tau_90``. A curve that
never moves (|v_final - v_start| below ``MIN_CHANGE``) has no crossing (NaN).
Factors are then ranked by tau_50: rank 1 is decided first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.progress import progress

LEVELS = (0.5, 0.9)
MIN_CHANGE = 1e-6
NATS_LEVEL = 0.5  # the absolute reading: when I(factor; X_t) first holds this many nats


def fraction_covered(value: np.ndarray) -> np.ndarray:
    """f = (v - v_start) / (v_final - v_start) of a curve given in generation order; NaN
    throughout for a curve that never moves."""
    value = np.asarray(value, dtype=np.float64)
    change = value[-1] - value[0]
    if not np.isfinite(change) or abs(change) < MIN_CHANGE:
        return np.full(value.shape, np.nan)
    return (value - value[0]) / change


def crossing(t: np.ndarray, log_snr: np.ndarray, value: np.ndarray, level: float) -> tuple[float, float]:
    """(t, log-SNR) at which the fraction covered first reaches ``level`` along generation."""
    order = np.argsort(-np.asarray(t))  # generation order: from T down to t_end
    t, log_snr, value = (np.asarray(a, dtype=np.float64)[order] for a in (t, log_snr, value))
    fraction = fraction_covered(value)
    above = np.flatnonzero(fraction >= level)
    if len(above) == 0:
        return float("nan"), float("nan")
    i = above[0]
    if i == 0:
        return float(t[0]), float(log_snr[0])
    w = (level - fraction[i - 1]) / (fraction[i] - fraction[i - 1])
    crossed = log_snr[i - 1] + w * (log_snr[i] - log_snr[i - 1])
    # t at the crossing, interpolated in log-SNR as well (t is monotone in it)
    return float(np.interp(crossed, log_snr[[i - 1, i]], t[[i - 1, i]])), float(crossed)


def decision_times(curves: pd.DataFrame) -> pd.DataFrame:
    """``curves``: columns proxy, factor, t, log_snr, value. One row per (proxy, factor):
    tau_50, tau_90, log_snr_50, log_snr_90, and rank_50 (1 = decided first by this proxy)."""
    rows = []
    for (proxy, factor), curve in curves.groupby(["proxy", "factor"], sort=True):
        row = {"proxy": proxy, "factor": factor}
        for level in LEVELS:
            tau, lam = crossing(curve["t"].to_numpy(), curve["log_snr"].to_numpy(), curve["value"].to_numpy(), level)
            row[f"tau_{round(level * 100)}"], row[f"log_snr_{round(level * 100)}"] = tau, lam
        rows.append(row)
    table = pd.DataFrame(rows)
    table["rank_50"] = table.groupby("proxy")["tau_50"].rank(ascending=False, method="min")
    return table


def rank_agreement(table: pd.DataFrame, reference: str) -> pd.Series:
    """Spearman correlation of each proxy's tau_50 ranking with the ``reference`` proxy's
    (1: the same order of factors), over the factors both rank."""
    pivot = table.pivot(index="factor", columns="proxy", values="tau_50")
    return pivot.rank().corr(method="pearson")[reference].drop(reference)


def _by_log_snr(log_snr: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both in generation order: log-SNR rising from pure noise."""
    order = np.argsort(np.asarray(log_snr, dtype=np.float64))
    return np.asarray(log_snr, dtype=np.float64)[order], np.asarray(value, dtype=np.float64)[order]


def entropy_rate_peak(log_snr: np.ndarray, value: np.ndarray) -> float:
    """The log-SNR at which an information curve I rises fastest: the peak of the entropy
    rate -dH(Y | X_t)/d log-SNR = dI/d log-SNR (Handke et al. 2025). The rate is taken on
    each grid interval; its largest is refined by the parabola through it and its two
    neighbours (the vertex, kept between their midpoints). NaN for a flat curve."""
    lam, value = _by_log_snr(log_snr, value)
    rates = np.diff(value) / np.diff(lam)
    middles = (lam[:-1] + lam[1:]) / 2
    if not np.isfinite(rates).all() or rates.max() - rates.min() < MIN_CHANGE:
        return float("nan")
    i = int(np.argmax(rates))
    if i == 0 or i == len(rates) - 1:
        return float(middles[i])
    x, y = middles[i - 1 : i + 2], rates[i - 1 : i + 2]
    a, b, _ = np.polyfit(x, y, 2)
    return float(np.clip(-b / (2 * a), x[0], x[2])) if a < 0 else float(middles[i])


def nats_crossing(log_snr: np.ndarray, value: np.ndarray, level: float = NATS_LEVEL) -> float:
    """The log-SNR at which I first reaches ``level`` nats along generation (interpolated);
    NaN if it never does."""
    lam, value = _by_log_snr(log_snr, value)
    above = np.flatnonzero(value >= level)
    if not len(above):
        return float("nan")
    i = above[0]
    if i == 0:
        return float(lam[0])
    return float(np.interp(level, value[[i - 1, i]], lam[[i - 1, i]]))


def bootstrap_decisions(curves: pd.DataFrame, replicates: int, seed: int) -> list[pd.DataFrame]:
    """``replicates`` decision-time tables of the proxies whose curves carry a ``stderr``,
    each point redrawn from N(value, stderr^2), the points independent (a proxy without
    standard errors is left out: nothing to resample)."""
    resampled = curves[curves["stderr"].notna()]
    rng = np.random.default_rng(seed)
    noise_scale = resampled["stderr"].to_numpy()
    return [
        decision_times(resampled.assign(value=resampled["value"] + noise_scale * rng.standard_normal(len(resampled))))
        for _ in progress(range(replicates), "bootstrap", "replicate")
    ]


def rank_stability(table: pd.DataFrame, replicates: list[pd.DataFrame]) -> pd.DataFrame:
    """``table`` (decision_times) with ``tau_50_stderr`` and ``rank_50_stability`` (the share
    of replicates giving the factor the same rank within its proxy), NaN where not resampled."""
    keys = ["proxy", "factor"]
    stacked = pd.concat([rep[keys + ["tau_50", "rank_50"]] for rep in replicates], ignore_index=True)
    merged = stacked.merge(table[keys + ["rank_50"]], on=keys, suffixes=("", "_found"))
    merged["same_rank"] = merged["rank_50"] == merged["rank_50_found"]
    spread = merged.groupby(keys).agg(tau_50_stderr=("tau_50", "std"), rank_50_stability=("same_rank", "mean"))
    return table.merge(spread.reset_index(), on=keys, how="left")
