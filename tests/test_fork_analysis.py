"""Fork entropy and agreement, forward-backward agreement, on labels with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from latent_abstractions.analysis import fork_analysis
from latent_abstractions.analysis.entropy import miller_madow_entropy


def test_entropy_of_decided_and_undecided_branches():
    decided = np.zeros((1, 8), dtype=int)
    assert miller_madow_entropy(decided, 4)[0] == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 4, size=(4000, 64))
    # Miller-Madow removes most of the plug-in estimate's downward bias
    assert miller_madow_entropy(uniform, 4).mean() == pytest.approx(np.log(4), abs=0.02)


def test_fork_table_gives_information_and_agreement():
    # 50 parents, 2 fork times, 6 branches: decided at the second time, a coin at the first
    rng = np.random.default_rng(1)
    parent = rng.integers(0, 2, 50)
    labels = np.stack([rng.integers(0, 2, (50, 6)), np.repeat(parent[:, None], 6, axis=1)], axis=1)
    table = fork_analysis.fork_table(
        {"shape": labels},
        {"shape": parent},
        {"shape": 2},
        {"shape": np.log(2)},
        t=np.array([0.9, 0.1]),
        log_snr=np.array([-5.0, 2.0]),
    )
    info = table[table["quantity"] == "fork_information"].sort_values("t")
    assert info["mean"].iloc[0] == pytest.approx(np.log(2))  # decided: H(Y) - 0
    assert abs(info["mean"].iloc[1]) < 0.15
    agreement = table[table["quantity"] == "fork_agreement"].sort_values("t")["mean"].to_numpy()
    assert agreement[0] == 1.0 and abs(agreement[1] - 0.5) < 0.1


def test_forward_backward_agreement_per_split():
    source = np.array([0, 1, 2, 0])
    regenerated = np.stack([np.repeat(source[:, None], 3, axis=1), (np.repeat(source[:, None], 3, axis=1) + 1) % 3])
    table = fork_analysis.forward_backward_table(
        {"hue": regenerated},
        {"hue": source},
        np.array(["train", "train", "test", "test"]),
        t=np.array([0.1, 0.9]),
        log_snr=np.array([2.0, -5.0]),
    )
    train = table[table["split"] == "train"].sort_values("t")["mean"].to_numpy()
    assert train.tolist() == [1.0, 0.0]
