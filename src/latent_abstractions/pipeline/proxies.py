"""The proxies of decision order: one registry that decision_order reads.

A proxy is a curve per factor over the generative time, read from one table another
stage writes. Each entry names its source table (a path template of paths.py, which is
also the decision_order stage's declared input) and how its curve is read from it.
Adding a proxy: one entry here, and the stage that writes its table (docs/extending.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..core.errors import InputError
from . import paths

COLUMNS = ["proxy", "factor", "t", "log_snr", "value", "stderr"]
PROBE_FEATURE = "state"


@dataclasses.dataclass(frozen=True)
class Proxy:
    name: str
    source: str  # a path template of paths.py: the table the curve is read from
    curve: Callable[[pd.DataFrame], pd.DataFrame]  # rows of factor, t, log_snr, value, stderr


def _probe(probes: pd.DataFrame) -> pd.DataFrame:
    chosen = probes[
        (probes["feature"] == PROBE_FEATURE)
        & probes["metric"].isin(["accuracy", "r2"])
        & (probes["target"] == "requested")
    ]
    return chosen.assign(value=chosen["score"], stderr=np.nan)  # one fit per point: no error


def _information(quantity: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def curve(information: pd.DataFrame) -> pd.DataFrame:
        rows = information[(information["distribution"] == "train") & (information["quantity"] == quantity)]
        return rows.assign(value=rows["mean"])

    return curve


def _classifier_bound(bound: pd.DataFrame) -> pd.DataFrame:
    return bound.assign(value=bound["bound"], stderr=bound["bound_se"])


def _forks(quantity: str, split: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def curve(forks: pd.DataFrame) -> pd.DataFrame:
        rows = forks[(forks["quantity"] == quantity) & (forks["split"] == split)]
        return rows.assign(value=rows["mean"])

    return curve


PROXIES: dict[str, Proxy] = {
    proxy.name: proxy
    for proxy in (
        Proxy("probe", paths.PROBES, _probe),
        Proxy("mi_learned", paths.INFORMATION, _information("mmse_difference")),
        Proxy("mi_exact", paths.INFORMATION, _information("exact")),
        Proxy("bayes_accuracy", paths.INFORMATION, _information("bayes_accuracy")),
        Proxy("classifier_bound", paths.CLASSIFIER_EVALUATION, _classifier_bound),
        Proxy("fork_information", paths.FORK_ANALYSIS, _forks("fork_information", "all")),
        Proxy("fork_agreement", paths.FORK_ANALYSIS, _forks("fork_agreement", "all")),
        Proxy("forward_backward", paths.FORK_ANALYSIS, _forks("forward_backward", "train")),
    )
}


def sources() -> tuple[str, ...]:
    """The path templates of the tables the registered proxies read, each once, in order."""
    return tuple(dict.fromkeys(proxy.source for proxy in PROXIES.values()))


def proxy(name: str) -> Proxy:
    """The registered proxy ``name``; one line listing the registered ones if it is not."""
    if name not in PROXIES:
        raise InputError(f"proxy {name!r} is not registered; registered proxies: {', '.join(PROXIES)}")
    return PROXIES[name]


def curves(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every registered proxy's curve from ``tables`` (source template -> table), stacked."""
    found = [entry.curve(tables[entry.source]).assign(proxy=entry.name)[COLUMNS] for entry in PROXIES.values()]
    return pd.concat(found, ignore_index=True)
