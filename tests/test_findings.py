"""The report's findings: sentences made from the tables, with the numbers in them, and a
report whose findings cannot be computed stops in one line and writes nothing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import yaml

from latent_abstractions.analysis import order
from latent_abstractions.report import findings

from conftest import ROOT


def accuracy_table(final_x: float, final_y: float, steps=(10, 100, 1000)) -> pd.DataFrame:
    rows = []
    for i, step in enumerate(steps):
        share = (i + 1) / len(steps)
        for axis, final in (("x", final_x), ("y", final_y), ("both", min(final_x, final_y))):
            rows.append({"training_step": step, "region": "all", "axis": axis, "accuracy": final * share})
    return pd.DataFrame(rows)


def representation_table(phases: list[str], behaviours: list[str] | None = None, steps=(10, 100, 1000)) -> pd.DataFrame:
    rows = []
    behaviours = behaviours or phases
    controls = [("untrained", 0, "A", 9.0, 0.3), ("permuted", steps[-1], "B", 2.2, -0.2)]
    at_checkpoints = [("checkpoint", step, phase, 2.1, 0.96) for step, phase in zip(steps, phases)]
    for i, (reference, step, phase, dimension, knn) in enumerate(at_checkpoints + controls):
        for tap in ("down.1", "mid"):
            rows.append(
                {
                    "training_step": step,
                    "reference": reference,
                    "tap": tap,
                    "phase_tap": tap == "down.1",
                    "phase": phase,
                    "generation_behaviour": behaviours[i] if reference == "checkpoint" else "",
                    "accuracy": 0.97,
                    "intrinsic_dimension": dimension,
                    "knn_r2": knn if tap == "down.1" else 0.5,
                }
            )
    return pd.DataFrame(rows)


def test_phase_sentences_carry_the_numbers_both_sequences_and_their_brackets():
    table = representation_table(["A", "B", "C"], ["A", "B", "B"])
    text = " ".join(findings.phase_sentences("bumps", accuracy_table(0.99, 0.97), table))
    assert "step 1,000" in text and "97.0% of samples" in text and "x 99.0%" in text and "y 97.0%" in text
    assert "over 3 checkpoints: A (step 10), B (step 100), C (step 1,000)" in text
    assert (
        "B first between steps 10 and 100; C first between steps 100 and 1,000 (never going back, ending in C)" in text
    )
    assert (
        "Generation behaviour (A several bumps, B one misplaced bump, C accurate): A (step 10), B (steps 100–1,000)"
        in text
    )
    assert "this run does not: they agree at 2 of 3 checkpoints and differ at steps 1,000 (one seed" in text
    assert "the thresholds separate both controls" in text
    stuck = " ".join(findings.phase_sentences("bumps", accuracy_table(0.3, 0.3), representation_table(["A", "B", "B"])))
    assert "C never reached (going back, or not ending in C)" in stuck


def test_controls_on_the_wrong_side_make_the_labels_inconclusive():
    table = representation_table(["C", "C", "C"])
    table.loc[table["reference"] == "untrained", "phase"] = "C"
    text = findings.control_sentence("bumps", table)
    assert "phase C (expected A)" in text and "inconclusive" in text


def test_a_smoke_run_claims_no_transition():
    said = findings.phase_sentences("b", accuracy_table(0.9, 0.9), representation_table(["A", "B", "C"]), False)
    assert "no transition step is claimed" in said[-1]


def test_an_imbalanced_lattice_alone_is_called_inconclusive():
    assert findings.imbalance_sentence("b", {"spacing_x": 1.0, "spacing_y": 1.0}) is None
    said = findings.imbalance_sentence("b", {"spacing_x": 0.2, "spacing_y": 2.0})
    assert "inconclusive" in said and "1-D control" in said


def test_information_verdicts_follow_the_targets():
    metrics = {
        "mmse_difference": {
            "x": {"mean_abs_gap_nats": 0.04, "max_excess_over_entropy_nats": -0.01},
            "y": {"mean_abs_gap_nats": 0.40, "max_excess_over_entropy_nats": 0.02},
            "z": {"mean_abs_gap_nats": 0.05, "max_excess_over_entropy_nats": 0.3},
        }
    }
    said = dict(zip("xyz", findings.information_sentences("e", metrics)))
    assert said["x"].endswith(": PASS.") and "mean gap 0.040 nats" in said["x"]
    assert (
        ": MISS; model not converged: gap 0.40 nats, longer training converges it: workflow/configs/cpu-study.yaml, then paper scale"
        in said["y"]
    )
    assert ": MISS" in said["z"] and "not converged" not in said["z"] and "rises 0.300 nats above H" in said["z"]
    assert "stays below H" in said["x"]


def test_a_bound_short_of_the_target_is_marked_not_converged():
    said = findings.bound_sentences(
        "e", {"bound_against_exact": {"shape": {"mean_abs_gap_nats": 0.3}, "scale": {"mean_abs_gap_nats": 0.05}}}
    )
    assert said[0].startswith("e, classifier bound H − CE on scale: mean gap 0.050 nats: PASS")
    assert "shape: mean gap 0.300 nats: MISS; model not converged: gap 0.30 nats" in said[1]


def decision_table(tau_50, stderr=0.05, peak=None) -> pd.DataFrame:
    factors = ["floor_hue", "wall_hue", "object_hue", "shape", "scale", "orientation"]
    lam_50 = -np.log(np.asarray(tau_50))  # any decreasing map of t: only the order matters here
    lam_peak = lam_50 if peak is None else np.asarray(peak, dtype=float)
    table = pd.DataFrame(
        {
            "factor": factors,
            "tau_50": tau_50,
            "tau_90": np.asarray(tau_50) / 2,
            "log_snr_50": lam_50,
            "log_snr_50_stderr": stderr,
            "log_snr_peak": lam_peak,
            "log_snr_nats": lam_50,
        }
    )
    for rank, column in (("rank_50", "log_snr_50"), ("rank_peak", "log_snr_peak"), ("rank_nats", "log_snr_nats")):
        table[rank] = table[column].rank(method="min")
        table[f"{rank}_stability"] = 0.9
    return table


def test_exact_order_against_the_claim_with_both_definitions_and_its_source():
    decisions = decision_table([0.7, 0.6, 0.5, 0.45, 0.3, 0.2])
    said = " ".join(findings.exact_order_sentences("s64", {"kind": "shapes", "size": 64}, decisions))
    assert "At 64×64 (s64, 6 factors" in said
    assert (
        "floor_hue (0.90), wall_hue (0.90), object_hue (0.90), shape (0.90), scale (0.90), orientation (0.90)" in said
    )
    assert "this agrees with the order attributed to Franzese et al." in said and "no section or figure" in said
    assert "against τ₅₀ they give every factor the same place" in said
    late_shape = decision_table([0.7, 0.6, 0.5, 0.1, 0.3, 0.2], peak=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    said = " ".join(findings.exact_order_sentences("s", {"kind": "shapes", "size": 16}, late_shape))
    assert "departs from" in said and "against τ₅₀ they order" in said


def test_a_data_set_without_the_claims_factors_is_not_compared_with_it():
    decisions = decision_table([0.7, 0.6, 0.5, 0.45, 0.3, 0.2])
    decisions["factor"] = ["a", "b", "c", "d", "e", "f"]
    said = " ".join(findings.exact_order_sentences("t", {"kind": "bumps", "height": 8, "width": 12}, decisions))
    assert "At 8×12 (t, 6 factors" in said and "not compared" in said
    assert "agrees with" not in said and "departs from" not in said


def test_pairs_within_their_errors_are_not_called_different():
    table = findings.resolved_pairs(decision_table([0.7, 0.6, 0.5, 0.45, 0.3, 0.2], stderr=0.01))
    assert len(table) == 15 and table["differ"].all()
    noisy = decision_table([0.7, 0.6, 0.5, 0.45, 0.3, 0.2], stderr=5.0)
    assert "inconclusive" in findings.pairs_sentence(noisy)
    assert not findings.resolved_pairs(noisy)["differ"].any()


def test_markdown_has_a_section_per_study():
    sections = [findings.Section("Study 2", ["one.", "two."]), findings.Section("Study 1", ["three."])]
    text = findings.render_markdown(sections)
    assert text.startswith("# Findings") and "## Study 2\n\n- one.\n- two." in text and "## Study 1" in text
    assert "<li>three.</li>" in findings.render_html(sections)


def test_a_missing_table_stops_the_report_in_one_line_and_writes_nothing(workdir):
    params = yaml.safe_load((ROOT / "tests" / "params-ci.yaml").read_text())
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [sys.executable, "-m", "latent_abstractions.stages.report"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    line = result.stderr.strip()
    assert line.startswith("error: report: cannot compute the findings: data/") and "is missing" in line
    assert "\n" not in line
    assert not (workdir / "data" / "report.html").exists() and not (workdir / "data" / "findings.md").exists()


def test_the_spacing_sentence_says_whether_the_order_changes():
    apart = decision_table([0.7, 0.6, 0.5, 0.45, 0.3, 0.2])
    native = decision_table([0.7, 0.6, 0.5, 0.1, 0.3, 0.2])
    assert "changes no pair" in findings.spacing_sentence("n", apart, "a", apart)
    assert "opposite orders: " in findings.spacing_sentence("n", native, "a", apart)


def test_each_proxy_is_read_against_the_claim_with_its_replicates_or_as_a_point():
    agreeing = decision_table([0.7, 0.6, 0.5, 0.45, 0.3, 0.2]).assign(proxy="probe")
    late_shape = decision_table([0.7, 0.6, 0.5, 0.1, 0.3, 0.2]).assign(
        proxy="fork_agreement", claim_agreement_share=0.25, rank_50_stability=[1.0, 1.0, 0.9, 0.4, 0.6, 1.0]
    )
    said = findings.proxy_claim_sentence("s", pd.concat([agreeing, late_shape]))
    assert "probe agrees (ρ +0.83; no standard errors: a point reading)" in said
    assert "fork_agreement departs (ρ +0.41; agrees in 25% of replicates, ranks stable in 40%-100% of them)" in said


def test_proxy_replicates_give_a_rank_stability_only_where_the_curves_have_errors():
    t = np.linspace(1.0, 0.01, 40)
    curves = pd.concat(
        [
            pd.DataFrame(
                {
                    "proxy": proxy,
                    "factor": factor,
                    "t": t,
                    "log_snr": -4 * np.log(t),
                    "stderr": stderr,
                    "value": 1 / (1 + np.exp((t - centre) * 30)),
                }
            )
            for proxy, stderr in (("precise", 0.01), ("noisy", 0.3), ("probe", np.nan))
            for factor, centre in (("a", 0.7), ("b", 0.65), ("c", 0.2))
        ]
    )
    table = order.rank_stability(order.decision_times(curves), order.bootstrap_decisions(curves, 100, 0))
    by_proxy = {proxy: part.set_index("factor") for proxy, part in table.groupby("proxy")}
    assert (by_proxy["precise"]["rank_50_stability"] == 1.0).all()
    assert by_proxy["noisy"].loc[["a", "b"], "rank_50_stability"].max() < 0.9  # 0.05 apart, errors of 0.3
    assert (by_proxy["noisy"]["tau_50_stderr"] > by_proxy["precise"]["tau_50_stderr"]).all()
    assert by_proxy["probe"][["rank_50_stability", "tau_50_stderr"]].isna().all().all()
