"""Pipeline step: when each factor is decided along generation, by every proxy (study 1,
Franzese et al.), beside the order the exact mutual information gives.

The method in full: docs/science.md, "Decision times of the proxies".
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa

from ..analysis import order
from ..analysis.published_order import agrees_with_published, comparable, decided_order
from ..core.artifacts import provenance, read_input_table, write_parquet
from ..core.errors import InputError
from ..pipeline import proxies
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths
from ..pipeline.stage_table import stage

log = logging.getLogger("decision_order")
REFERENCE = "mi_exact"  # the proxy the others are ranked against
BOOTSTRAP = 200  # replicates of the proxies' curves, each point redrawn within its standard error
SEED = 0


def proxy_curves(experiment: str) -> tuple[pd.DataFrame, list[str]]:
    """Every registered proxy's curve, read from the tables this stage's entry declares
    (the registry's sources)."""
    sources = stage("decision_order").inputs
    files = [template.format(experiment=experiment) for template in sources]
    tables = {template: read_input_table(path).to_pandas() for template, path in zip(sources, files)}
    return proxies.curves(tables), files


def _claim_agreement_share(replicates: list[pd.DataFrame]) -> dict[str, float]:
    """Per resampled proxy: the share of replicates whose order agrees with the claim under
    test (a replicate that leaves an early or a late factor undecided does not agree)."""
    agreeing: dict[str, list[bool]] = {}
    for replicate in replicates:
        for proxy, decisions in replicate.groupby("proxy"):
            try:
                agreeing.setdefault(proxy, []).append(agrees_with_published(decided_order(decisions)))
            except InputError:
                agreeing.setdefault(proxy, []).append(False)
    return {proxy: float(np.mean(flags)) for proxy, flags in agreeing.items()}


def order_step(experiment: str, params: dict) -> None:
    files = ExperimentPaths(experiment)
    try:
        curves, sources = proxy_curves(experiment)
    except KeyError as exc:  # a table written by another version of its stage
        raise InputError(f"{experiment}: a proxy table lacks the column {exc}") from None
    table = order.decision_times(curves)
    agreement = order.rank_agreement(table, REFERENCE)
    table["rank_agreement_with_exact"] = table["proxy"].map(agreement).astype(float)
    replicates = order.bootstrap_decisions(curves, BOOTSTRAP, SEED)
    table = order.rank_stability(table, replicates)
    # NaN where the data set has none of the claim's early or late factors (not compared)
    shares = _claim_agreement_share(replicates) if comparable(sorted(set(curves["factor"]))) else {}
    table["claim_agreement_share"] = table["proxy"].map(shares).astype(float)
    table.insert(0, "experiment", experiment)
    meta = provenance("decision_order", experiment, {}, sources)
    write_parquet(pa.Table.from_pandas(table, preserve_index=False), files.order, meta)
    write_parquet(
        pa.Table.from_pandas(curves.assign(experiment=experiment), preserve_index=False),
        files.proxies,
        meta,
    )
    log.info(
        "decision time tau_50 per proxy and factor:\n%s",
        table.pivot(index="factor", columns="proxy", values="tau_50").round(3),
    )


if __name__ == "__main__":
    run_step("decision_order", order_step)
