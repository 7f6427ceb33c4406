"""The proxy registry: what decision_order reads, from which declared table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latent_abstractions.core.errors import InputError
from latent_abstractions.pipeline import paths, proxies, stage_table


def test_an_unregistered_proxy_is_one_line_listing_the_registered_ones():
    with pytest.raises(
        InputError, match=r"^proxy 'entropy' is not registered; registered proxies: probe, mi_learned, "
    ):
        proxies.proxy("entropy")


def test_every_proxy_is_read_from_a_table_a_stage_writes_before_the_decision_order():
    written = {template for entry in stage_table.STAGES for template in entry.all_outputs()}
    assert set(proxies.sources()) <= written
    assert paths.ORDER not in proxies.sources()  # the order is made from the proxies, not read by them


def curve_rows(**columns) -> pd.DataFrame:
    base = {"factor": ["x", "x"], "t": [0.1, 0.2], "log_snr": [2.0, 1.0], "stderr": [0.01, 0.02]}
    return pd.DataFrame({**base, **columns})


def test_each_proxy_takes_its_own_rows_of_its_source():
    tables = {
        paths.PROBES: curve_rows(
            feature=["state", "mid"], metric=["accuracy", "accuracy"], target=["requested"] * 2, score=[0.9, 0.5]
        ),
        paths.INFORMATION: curve_rows(distribution=["train", "test"], quantity=["exact", "exact"], mean=[0.7, 0.1]),
        paths.CLASSIFIER_EVALUATION: curve_rows(bound=[0.3, 0.4], bound_se=[0.05, 0.06]),
        paths.FORK_ANALYSIS: curve_rows(quantity=["fork_agreement"] * 2, split=["all", "train"], mean=[0.6, 0.2]),
    }
    curves = proxies.curves(tables)
    by_proxy = {name: rows.reset_index(drop=True) for name, rows in curves.groupby("proxy")}
    assert by_proxy["probe"]["value"].tolist() == [0.9] and np.isnan(by_proxy["probe"]["stderr"][0])
    assert by_proxy["mi_exact"]["value"].tolist() == [0.7]
    assert by_proxy["classifier_bound"]["stderr"].tolist() == [0.05, 0.06]
    assert by_proxy["fork_agreement"]["value"].tolist() == [0.6]
    assert "mi_learned" not in by_proxy and "forward_backward" not in by_proxy  # no rows of theirs
    assert list(curves.columns) == proxies.COLUMNS
