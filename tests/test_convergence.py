"""The convergence check of the learned information curves, on constructed tables, and
how the information figure shows it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latent_abstractions.analysis.convergence import (
    CONVERGING_NOTE,
    EXCESS_TARGET,
    GAP_COLUMNS,
    GAP_TARGET,
    information_gaps,
    not_converged_note,
)
from latent_abstractions.report import plotting

T = np.geomspace(1.0, 1e-3, 12)
ENTROPY = np.log(4.0)


def exact_curve(t: np.ndarray) -> np.ndarray:
    return 0.8 * ENTROPY / (1.0 + 20.0 * t)  # stays far enough below H that 0.3 nats more is not above it


def info_table(offsets: dict[str, float]) -> pd.DataFrame:
    """Train rows of an information table: per factor, the exact curve and the MMSE form
    off by ``offsets[factor]`` nats at every t."""
    frames = []
    for factor, offset in offsets.items():
        for quantity, shift in (("exact", 0.0), ("mmse_difference", offset), ("orthogonal", 2 * offset)):
            frames.append(
                pd.DataFrame(
                    {
                        "distribution": "train",
                        "quantity": quantity,
                        "factor": factor,
                        "t": T,
                        "log_snr": -np.log(T),
                        "mean": exact_curve(T) + shift,
                        "stderr": 0.01,
                        "factor_entropy": ENTROPY,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def bound_table(offsets: dict[str, float]) -> pd.DataFrame:
    """A classifier evaluation on its own (coarser) grid: the bound below the exact curve by ``offsets``."""
    t = T[::3]
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "factor": factor,
                    "t": t,
                    "log_snr": -np.log(t),
                    "entropy": ENTROPY,
                    "exact": exact_curve(t),
                    "bound": exact_curve(t) - offset,
                    "bound_se": 0.01,
                }
            )
            for factor, offset in offsets.items()
        ],
        ignore_index=True,
    )


def gaps_by(frame: pd.DataFrame) -> dict:
    return frame.set_index(["factor", "estimate"]).to_dict("index")


def test_a_curve_equal_to_the_exact_one_converges_and_one_off_by_0_3_does_not():
    gaps = gaps_by(information_gaps(info_table({"colour": 0.0, "shape": 0.3})))
    assert gaps[("colour", "mmse_difference")]["mean_gap"] == pytest.approx(0.0)
    assert gaps[("colour", "mmse_difference")]["converged"]
    assert gaps[("shape", "mmse_difference")]["mean_gap"] == pytest.approx(0.3)
    assert not gaps[("shape", "mmse_difference")]["converged"]


def test_the_columns_and_only_the_learned_forms_are_reported():
    frame = information_gaps(info_table({"colour": 0.0}), bound_table({"colour": 0.0}))
    assert list(frame.columns) == GAP_COLUMNS
    assert set(frame["estimate"]) == {"mmse_difference", "classifier_bound"}  # the orthogonal form is a diagnostic


def test_the_bound_is_compared_on_its_own_grid_with_the_exact_values_it_carries():
    gaps = gaps_by(
        information_gaps(info_table({"colour": 0.0, "shape": 0.0}), bound_table({"colour": 0.05, "shape": 0.3}))
    )
    assert gaps[("colour", "classifier_bound")]["mean_gap"] == pytest.approx(0.05)
    assert gaps[("colour", "classifier_bound")]["converged"]
    assert gaps[("shape", "classifier_bound")]["mean_gap"] == pytest.approx(0.3)
    assert not gaps[("shape", "classifier_bound")]["converged"]


def test_a_small_gap_that_rises_above_the_entropy_has_not_converged():
    info = info_table({"colour": 0.0})
    learned = info["quantity"] == "mmse_difference"
    info.loc[learned & (info["t"] == T[-1]), "mean"] = ENTROPY + 2 * EXCESS_TARGET  # one point far above H
    gap = gaps_by(information_gaps(info))[("colour", "mmse_difference")]
    assert gap["mean_gap"] <= GAP_TARGET and gap["max_excess_over_entropy"] == pytest.approx(2 * EXCESS_TARGET)
    assert not gap["converged"]
    assert "nats above H" in not_converged_note(pd.Series(gap))


def test_the_gap_is_measured_on_the_train_rows_only():
    held_out = info_table({"colour": 1.0}).assign(distribution="held_out")
    frame = information_gaps(pd.concat([info_table({"colour": 0.0}), held_out]))
    assert frame["mean_gap"].tolist() == pytest.approx([0.0])


def test_the_note_names_the_gap_and_the_overlay_that_converges_it():
    note = not_converged_note(pd.Series({"mean_gap": 0.3049, "max_excess_over_entropy": 0.0}))
    assert note == "model not converged: gap 0.30 nats"
    assert CONVERGING_NOTE == "longer training converges it: workflow/configs/cpu-study.yaml, then paper scale"


def figure_texts(figure) -> list[str]:
    return [text.get_text() for ax in figure.axes for text in ax.texts]


def test_the_information_figure_marks_the_unconverged_curves_and_has_one_legend_outside_the_panels():
    figure = plotting.mutual_information(
        info_table({"colour": 0.0, "shape": 0.3}), bound_table({"colour": 0.0, "shape": 0.0})
    )
    texts = figure_texts(figure)
    assert [text for text in texts if "not converged" in text] == ["MMSE form: model not converged: gap 0.30 nats"] * 2
    assert texts.count(CONVERGING_NOTE) == 2  # shape's two panels
    assert all(ax.get_legend() is None for ax in figure.axes)
    assert len(figure.legends) == 1
    plotting.plt.close(figure)


def test_a_converged_run_carries_no_mark():
    figure = plotting.mutual_information(info_table({"colour": 0.0}), bound_table({"colour": 0.1}))
    assert not [text for text in figure_texts(figure) if "not converged" in text]
    plotting.plt.close(figure)
