"""Decision times of proxy curves: crossings at known times, and the ranking of factors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latent_abstractions.analysis import order


def sigmoid_curve(t: np.ndarray, midpoint: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp((t - midpoint) / 0.02))


def test_crossing_of_a_known_curve():
    t = np.linspace(1.0, 0.001, 400)
    log_snr = -np.log(t)  # any decreasing function of t will do for the test
    value = sigmoid_curve(t, 0.4)
    tau, _ = order.crossing(t, log_snr, value, 0.5)
    assert tau == pytest.approx(0.4, abs=0.005)
    tau_90, _ = order.crossing(t, log_snr, value, 0.9)
    assert tau_90 < tau


def test_flat_curve_has_no_crossing():
    t = np.linspace(1.0, 0.001, 10)
    assert np.isnan(order.crossing(t, t, np.ones(10), 0.5)[0])


def test_factors_are_ranked_by_decision_time_and_rankings_compared():
    t = np.linspace(1.0, 0.001, 200)
    rows = []
    for proxy, midpoints in {
        "exact": {"hue": 0.6, "scale": 0.3, "shape": 0.5},
        "probe": {"hue": 0.55, "scale": 0.25, "shape": 0.45},
        "reversed": {"hue": 0.2, "scale": 0.7, "shape": 0.4},
    }.items():
        for factor, midpoint in midpoints.items():
            rows.append(
                pd.DataFrame(
                    {
                        "proxy": proxy,
                        "factor": factor,
                        "t": t,
                        "log_snr": -np.log(t),
                        "value": sigmoid_curve(t, midpoint),
                    }
                )
            )
    table = order.decision_times(pd.concat(rows))
    exact = table[table["proxy"] == "exact"].set_index("factor")["rank_50"]
    assert exact.to_dict() == {"hue": 1, "shape": 2, "scale": 3}
    agreement = order.rank_agreement(table, "exact")
    assert agreement["probe"] == pytest.approx(1.0) and agreement["reversed"] == pytest.approx(-1.0)


def test_the_entropy_rate_peaks_where_a_logistic_information_curve_is_steepest():
    lam = np.linspace(-8, 8, 33)
    for centre in (-2.3, 0.4, 3.1):
        curve = np.log(4) / (1 + np.exp(-(lam - centre)))
        assert order.entropy_rate_peak(lam[::-1], curve[::-1]) == pytest.approx(centre, abs=0.05)
    assert np.isnan(order.entropy_rate_peak(lam, np.full_like(lam, 0.3)))


def test_the_absolute_reading_is_where_the_curve_first_holds_the_nats():
    lam = np.linspace(-8, 8, 161)
    entropy, centre = np.log(4), 1.0
    curve = entropy / (1 + np.exp(-(lam - centre)))
    expected = centre + np.log(order.NATS_LEVEL / (entropy - order.NATS_LEVEL))
    assert order.nats_crossing(lam, curve) == pytest.approx(expected, abs=0.01)
    assert np.isnan(order.nats_crossing(lam, curve * 0.1))  # never holds 0.5 nats
