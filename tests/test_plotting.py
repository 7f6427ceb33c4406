"""The probe figure on a constructed probe table: the best feature of each family per
panel, the condition-blind features on top, and one legend outside the panels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latent_abstractions.report import plotting
from latent_abstractions.store import store_layout

T = np.geomspace(1.0, 1e-3, 6)
FEATURES = [
    "state",
    *(f"{kind}.{p}" for kind in ("eps", "denoised") for p in store_layout.NETWORK_PASSES),
    *(f"{kind}.{p}.{tap}" for kind in ("act", "map") for p in store_layout.PASSES for tap in ("down.1", "mid")),
]


def probe_table(factors=("colour", "x")) -> pd.DataFrame:
    """Every feature's probe of every factor, against the request and (x only) as drawn; a
    feature's score is fixed over t and grows with its place in FEATURES."""
    rows = []
    for factor in factors:
        metric = "r2" if factor == "x" else "accuracy"
        for target in ("requested", "measured") if factor == "x" else ("requested",):
            for rank, feature in enumerate(FEATURES):
                rows += [
                    dict(
                        feature=feature,
                        factor=factor,
                        metric=metric,
                        target=target,
                        t=t,
                        score=rank / len(FEATURES),
                        sees_condition=store_layout.sees_condition(feature),
                    )
                    for t in T
                ]
    return pd.DataFrame(rows)


def bayes_table() -> pd.DataFrame:
    return pd.DataFrame(
        {"distribution": "train", "quantity": "bayes_accuracy", "factor": "colour", "t": T, "mean": 1.0}
    )


@pytest.mark.parametrize(
    "feature, family",
    [
        ("state", "state"),
        ("eps.uncond", "output"),
        ("denoised.cond", "output"),
        ("act.uncond.mid", "taps"),
        ("map.cond.down.1", "taps"),
        ("full.uncond.mid", "taps"),
        ("act.random.mid", "random"),
        ("map.random.down.1", "random"),
    ],
)
def test_every_feature_of_the_probe_table_has_a_family(feature, family):
    assert plotting.feature_family(feature) == family


def test_the_best_feature_of_a_family_has_the_highest_mean_score_over_t():
    table = probe_table(("colour",))
    blind = table[~table["sees_condition"]]
    assert plotting.best_features(blind) == {
        "state": "state",
        "output": "denoised.uncond",
        "taps": "map.uncond.mid",
        "random": "map.random.mid",
    }


def panel_labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_each_panel_draws_at_most_six_curves_and_the_legend_sits_outside_the_panels():
    figure = plotting.probe_scores(probe_table(), bayes_table())
    top, bottom = np.asarray(figure.axes).reshape(2, 2)
    for ax in figure.axes:
        assert len(panel_labels(ax)) <= 6 and ax.get_legend() is None
    assert "Bayes-optimal (exact)" in panel_labels(top[0])  # accuracy: the ceiling of the state's probe
    assert any("as drawn" in label for label in panel_labels(top[1]))  # x: measured on the final image
    assert len(figure.legends) == 1
    plotting.plt.close(figure)


def test_the_top_row_is_blind_to_the_condition_and_the_bottom_row_sees_it():
    figure = plotting.probe_scores(probe_table(("colour",)))
    top, bottom = figure.axes
    assert "map.uncond.mid" in top.get_title() and ".cond" not in top.get_title()
    assert "map.cond.mid" in bottom.get_title() and "uncond" not in bottom.get_title()
    assert "random" not in bottom.get_title()
    plotting.plt.close(figure)


def generation_tables(measured: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    steps = [50, 100, 200]
    accuracy = pd.DataFrame(
        [
            {
                "training_step": s,
                "region": "all",
                "axis": axis,
                "accuracy": 0.5,
                "multi_bump_fraction": 0.1,
                "no_bump_fraction": 0.0,
            }
            for s in steps
            for axis in ("both", "x", "y")
        ]
    )
    value = 0.9 if measured else np.nan
    rows = [
        {
            "training_step": s,
            "reference": reference,
            "tap": tap,
            "phase_tap": tap == "down.1",
            "knn_r2": value,
            "knn_r2_x": value,
            "knn_r2_y": value,
            "trustworthiness": value,
            "continuity": value,
            "r2_pca": value,
            "intrinsic_dimension": 3.0 if measured else np.nan,
            "phase": "C" if measured else "-",
            "generation_behaviour": "B" if reference == "checkpoint" else "",
        }
        for reference, chosen in (("checkpoint", steps), ("untrained", [0]), ("permuted", [200]))
        for s in chosen
        for tap in ("down.1", "mid")
    ]
    return accuracy, pd.DataFrame(rows)


@pytest.mark.parametrize("measured", [True, False])
def test_the_generation_figure_draws_a_control_too_small_to_measure(measured):
    """A 1-D control of 6 conditions has every geometry NaN: the figure still draws, saying so."""
    fig = plotting.generation_over_training(*generation_tables(measured))
    fig.canvas.draw()
    said = [text.get_text() for ax in fig.axes for text in ax.texts]
    assert ("not measured: too few conditions" in said) is not measured
    empty = plotting.representation_pictures(pd.DataFrame())
    assert "too few conditions" in empty.axes[0].texts[0].get_text()
