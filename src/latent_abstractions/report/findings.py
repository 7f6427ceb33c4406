"""The report's findings: a few sentences per study, with numbers, made from the tables
the pipeline wrote (never written by hand), and the verdict of every learned estimate
against the exact ground truth (PASS or MISS against the targets in convergence.py).

Each function takes the tables it reads and returns sentences; ``render_markdown`` and
``render_html`` turn the sections into data/findings.md and the report's first section.
"""

from __future__ import annotations

import dataclasses
import html
import math

import numpy as np
import pandas as pd

from ..analysis import coupling
from ..analysis.convergence import CONVERGING_NOTE, EXCESS_TARGET, GAP_TARGET, gap_text
from ..analysis.order import NATS_LEVEL
from ..analysis.published_order import (
    CLAIM,
    CLAIM_CONTENT,
    CLAIM_SOURCE,
    PUBLISHED_EARLY,
    PUBLISHED_LATE,
    comparable,
    compare_with_published,
    decided_order,
)
from ..analysis.representation import ORDERED, TWO_D, checkpoint_rows, phases_in_order
from ..core.errors import InputError
from ..datasets.registry import image_size


@dataclasses.dataclass
class Section:
    title: str
    sentences: list[str]


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _accuracy_at(accuracy: pd.DataFrame, step: int, axis: str) -> float:
    chosen = accuracy[(accuracy["region"] == "all") & (accuracy["axis"] == axis) & (accuracy["training_step"] == step)]
    return float(chosen["accuracy"].iloc[0]) if len(chosen) else float("nan")


def step_text(step: float) -> str:
    return f"{step:,.0f}"


def runs_text(steps: list[int], labels: list[str]) -> str:
    """'A (steps 50–91), B (126–240), C (331–8,000)': each run of one label with its steps."""
    parts, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            span = step_text(steps[start]) if i - 1 == start else f"{step_text(steps[start])}–{step_text(steps[i - 1])}"
            parts.append(f"{labels[start]} ({'step' if i - 1 == start else 'steps'} {span})")
            start = i
    return ", ".join(parts)


def transitions_text(steps: list[int], labels: list[str]) -> str:
    """When each later phase is first reached, as the interval between the bracketing checkpoints."""
    if "-" in labels:
        return "not measured at some checkpoints (too few conditions), so no transition is located"
    told = [] if "A" in labels else ["A never seen"]
    for label in "BC":
        if label not in labels:
            told.append(f"{label} never reached")
            continue
        i = labels.index(label)
        told.append(
            f"{label} at the first checkpoint (step {step_text(steps[0])})"
            if i == 0
            else f"{label} first between steps {step_text(steps[i - 1])} and {step_text(steps[i])}"
        )
    order = "never going back, ending in C" if phases_in_order(labels) else "going back, or not ending in C"
    return f"{'; '.join(told)} ({order})"


def control_sentence(experiment: str, representation: pd.DataFrame) -> str:
    """The controls' geometry and labels, and whether the thresholds separate them."""
    controls = representation[(representation["reference"] != "checkpoint") & representation["phase_tap"]]
    expected = {"untrained": "A", "permuted": "B"}
    found = {row["reference"]: row for _, row in controls.iterrows()}
    parts = [
        f"{what} network" if what == "untrained" else "the final representation with its rows permuted"
        for what in expected
    ]
    told = [
        f"{part}: dimension {found[what]['intrinsic_dimension']:.1f}, kNN R² {found[what]['knn_r2']:.2f}, "
        f"phase {found[what]['phase']} (expected {expected[what]})"
        for part, what in zip(parts, expected)
        if what in found
    ]
    separated = all(what in found and found[what]["phase"] == label for what, label in expected.items())
    verdict = (
        "the thresholds separate both controls"
        if separated
        else "the thresholds do not separate the controls on this network, so its phase labels are inconclusive"
    )
    return f"{experiment}, controls: the {'; '.join(told)}: {verdict}."


def phase_sentences(
    experiment: str, accuracy: pd.DataFrame, representation: pd.DataFrame, phase_study: bool = True
) -> list[str]:
    """Final accuracy; the representation phases and the generation behaviours, each with
    its transitions bracketed; whether they coincide; the controls."""
    at_tap = checkpoint_rows(representation)
    final = at_tap.iloc[-1]
    step, tap = int(final["training_step"]), final["tap"]
    steps, phases = [int(s) for s in at_tap["training_step"]], list(at_tap["phase"])
    behaviours = list(at_tap["generation_behaviour"])
    apart = [step_text(s) for s, p, b in zip(steps, phases, behaviours) if p != b]
    agree = len(steps) - len(apart)
    said = [
        f"{experiment}: at the final checkpoint (step {step_text(step)}) {percent(final['accuracy'])} of samples are "
        f"accurate (one bump within the tolerance of the request; x {percent(_accuracy_at(accuracy, step, 'x'))}, "
        f"y {percent(_accuracy_at(accuracy, step, 'y'))}).",
        f"Representation phases at {tap}, from geometry alone (2-D: Levina–Bickel dimension ≤ {TWO_D:g}; ordered: "
        f"kNN R² ≥ {ORDERED:g}), over {len(steps)} checkpoints: {runs_text(steps, phases)}"
        + (f"; {transitions_text(steps, phases)}." if phase_study else "."),
        f"Generation behaviour (A several bumps, B one misplaced bump, C accurate): {runs_text(steps, behaviours)}"
        + (f"; {transitions_text(steps, behaviours)}." if phase_study else "."),
        "Liang et al. claim the two sequences coincide: this run "
        + ("agrees" if not apart else "does not")
        + f": they agree at {agree} of {len(steps)} checkpoints"
        + (f" and differ at steps {', '.join(apart)}" if apart else "")
        + " (one seed: each bracket is this run's, with no seed spread).",
        control_sentence(experiment, representation),
    ]
    if not phase_study:
        said.append(
            f"{experiment} is not a phase study (generation.phase_study: false): its snapshots are too few to "
            "bracket a transition, so no transition step is claimed."
        )
    return said


def imbalance_sentence(experiment: str, dataset: dict) -> str | None:
    """An imbalanced lattice on its own tests nothing about coupling: say so."""
    if dataset.get("spacing_x") == dataset.get("spacing_y"):
        return None
    return (
        f"{experiment} is imbalanced (spacing x {dataset['spacing_x']:g} px, y {dataset['spacing_y']:g} px), but one "
        "model with factor dropout, one seed and no 1-D control cannot tell coupled from factorized learning: "
        "inconclusive here (the coupling study, workflow/configs/coupling-study.yaml, tests it)."
    )


def crossing_text(row: pd.Series) -> str:
    if not row["measured"]:
        return "not measured"
    if row["censored"]:
        return (
            f"median {step_text(row['median'])} (censored in some seed)"
            if math.isfinite(row["median"])
            else "not reached"
        )
    seeds = f"{row['seeds']} seed{'s' if row['seeds'] > 1 else ''}"
    return f"{step_text(row['median'])} ({step_text(row['low'])}–{step_text(row['high'])}, {seeds})"


def coupling_sentences(spreads: pd.DataFrame) -> list[str]:
    """Per coupling group: every crossing of the vanilla model against its 1-D controls,
    the verdict per measure and level, the overall answer, and what dropout moves."""
    said = []
    for group in sorted(spreads["group"].unique()):
        verdicts = {}
        for (measure, level), chosen in spreads[spreads["group"] == group].groupby(["measure", "level"]):
            answer, why = coupling.verdict(spreads, group, measure, level)
            verdicts[(measure, level)] = answer
            listed = "; ".join(
                f"{row['axis']} {row['arm']} {crossing_text(row)}"
                for _, row in chosen.sort_values(["axis", "arm"]).iterrows()
            )
            said.append(
                f"Coupling ({group}), {measure} reaching {level:g}, step median (range): {listed}: {answer} ({why})."
            )
        read = {key: answer for key, answer in verdicts.items() if answer != "not measured"}
        answers = set(read.values())
        overall = answers.pop() if len(answers) == 1 else "inconclusive"
        depends = (
            ""
            if len(set(read.values())) <= 1
            else (
                ": the answer depends on the measure and level ("
                + ", ".join(f"{m} at {lv:g}: {a}" for (m, lv), a in sorted(read.items()))
                + ")"
            )
        )
        said.append(f"Coupling ({group}), Liang et al.'s claim that x and y are learned coupled: {overall}{depends}.")
        shifts = [
            f"{measure} at {level:g}: {moved}"
            for (measure, level) in sorted(verdicts)
            if (moved := coupling.dropout_shift(spreads, group, measure, level)) is not None
        ]
        if shifts:
            said.append(
                f"Coupling ({group}), factor dropout (the masked model against the vanilla seed range) moves the "
                f"crossings of: {'; '.join(shifts)}."
            )
    return said


def estimate_verdict(mean_gap: float, excess: float | None) -> str:
    passed = mean_gap <= GAP_TARGET and (excess is None or excess <= EXCESS_TARGET)
    return "PASS" if passed else "MISS"


def not_converged(mean_gap: float) -> str:
    return f"; {gap_text(mean_gap)}, {CONVERGING_NOTE}" if mean_gap > GAP_TARGET else ""


def against_entropy(excess: float) -> str:
    return f"rises {excess:.3f} nats above H" if excess > 0 else "stays below H"


def information_sentences(experiment: str, metrics: dict) -> list[str]:
    """The learned MMSE-form estimate's gap per factor, with its verdict."""
    if "mmse_difference" not in metrics:
        return [f"{experiment}: no learned information estimate (the network cannot drop one factor's condition)."]
    return [
        f"{experiment}, learned I({factor}; X_t) (MMSE form): mean gap {entry['mean_abs_gap_nats']:.3f} nats to "
        f"the exact curve, {against_entropy(entry['max_excess_over_entropy_nats'])}: "
        f"{estimate_verdict(entry['mean_abs_gap_nats'], entry['max_excess_over_entropy_nats'])}"
        f"{not_converged(entry['mean_abs_gap_nats'])}."
        for factor, entry in sorted(metrics["mmse_difference"].items())
    ]


def bound_sentences(experiment: str, classifier_metrics: dict) -> list[str]:
    return [
        f"{experiment}, classifier bound H − CE on {factor}: mean gap {entry['mean_abs_gap_nats']:.3f} nats: "
        f"{estimate_verdict(entry['mean_abs_gap_nats'], None)}{not_converged(entry['mean_abs_gap_nats'])}."
        for factor, entry in sorted(classifier_metrics["bound_against_exact"].items())
    ]


def targets_sentence() -> str:
    return (
        f"Targets: a learned curve passes when its mean absolute gap to the exact one is at most {GAP_TARGET:g} "
        f"nats and it never exceeds H by more than {EXCESS_TARGET:g} nats."
    )


def resolution(dataset: dict) -> str:
    height, width = image_size(dataset)
    return f"{height}×{width}"


RESOLVED = 2.0  # two decision times differ when their gap exceeds this many combined standard errors


def ranked_text(decisions: pd.DataFrame, rank: str) -> str:
    """'floor_hue (1.00), wall_hue (0.97), ...': the factors by ``rank``, each with the share
    of bootstrap replicates that keep its rank."""
    chosen = decisions[decisions[rank].notna()].sort_values([rank, "factor"])
    return ", ".join(f"{row['factor']} ({row[f'{rank}_stability']:.2f})" for _, row in chosen.iterrows())


def rank_differences(decisions: pd.DataFrame, rank: str, other: str) -> str:
    """Which factors two definitions place differently, among the factors both decide."""
    both = decisions.dropna(subset=[rank, other])
    first, second = (both.sort_values([key, "factor"])["factor"].tolist() for key in (rank, other))
    moved = sorted(f for i, f in enumerate(first) if second[i] != f)
    undecided = sorted(set(decisions["factor"]) - set(both["factor"]))
    said = f"they order {', '.join(moved)} differently" if moved else "they give every factor the same place"
    return said + (f" ({', '.join(undecided)} undecided by one of them)" if undecided else "")


def resolved_pairs(decisions: pd.DataFrame, column: str = "log_snr_50") -> pd.DataFrame:
    """Every pair of factors: the gap between their decision times, its combined standard
    error, and whether the gap exceeds RESOLVED of them (the abstract's own claim, pair by pair)."""
    rows = []
    decisions = decisions.dropna(subset=[column]).reset_index(drop=True)
    for i, a in decisions.iterrows():
        for j, b in decisions.iterrows():
            if j <= i:
                continue
            gap = abs(a[column] - b[column])
            error = math.hypot(a[f"{column}_stderr"], b[f"{column}_stderr"])
            rows.append(
                {
                    "first": a["factor"] if a[column] <= b[column] else b["factor"],
                    "second": b["factor"] if a[column] <= b[column] else a["factor"],
                    "gap": gap,
                    "stderr": error,
                    "differ": bool(gap > RESOLVED * error),
                }
            )
    return pd.DataFrame(rows)


def pairs_sentence(decisions: pd.DataFrame) -> str:
    pairs = resolved_pairs(decisions)
    if pairs.empty:
        return "one factor: no pair to compare."
    apart = pairs[pairs["differ"]]
    if apart.empty:
        return (
            f"No two factors' decision times (log-SNR at 50%) differ by more than {RESOLVED:g} standard errors: "
            "inconclusive, the draws are too few to rank them (more exact_order.samples or points)."
        )
    close = pairs[~pairs["differ"]]
    unresolved = ", ".join(f"{row['first']} and {row['second']}" for _, row in close.iterrows())
    return (
        f"{len(apart)} of {len(pairs)} pairs of factors are decided at different times (log-SNR at 50% apart by "
        f"more than {RESOLVED:g} combined standard errors)" + (f"; not resolved: {unresolved}." if len(close) else ".")
    )


def claim_clause(decisions: pd.DataFrame) -> str:
    """How the exact order stands against the claim under test, or why it is not compared."""
    if not comparable(list(decisions["factor"])):
        return (
            f"{CLAIM} concerns Shapes3D's factors (early: {', '.join(sorted(PUBLISHED_EARLY))}; late: "
            f"{', '.join(sorted(PUBLISHED_LATE))}), and this data set lacks an early or a late one: not compared."
        )
    try:
        found = compare_with_published(decisions)
    except InputError:  # an early or a late factor never decided
        return f"an early or a late factor of {CLAIM} is never decided here: not compared."
    verdict = "agrees with" if found["agrees"] else "departs from"
    return (
        f"this {verdict} {CLAIM} ({CLAIM_CONTENT}; {CLAIM_SOURCE}), Spearman ρ with its groups "
        f"{found['rank_agreement']:+.2f} (±0.83 at most)."
    )


def exact_order_sentences(experiment: str, dataset: dict, decisions: pd.DataFrame) -> list[str]:
    """The order the data alone dictate by each definition of decision time, beside the
    claim under test, with rank stability and which differences are real."""
    return [
        f"At {resolution(dataset)} ({experiment}, {len(decisions)} factors, exact: from the data alone, no model), by τ₅₀ of I/H the factors are decided in the order "
        f"{ranked_text(decisions, 'rank_50')} (in brackets: the share of bootstrap replicates keeping each rank); "
        f"{claim_clause(decisions)}",
        f"{experiment}, by the peak of the entropy rate −dH(Y|X_t)/d log-SNR: {ranked_text(decisions, 'rank_peak')}; "
        f"against τ₅₀ {rank_differences(decisions, 'rank_peak', 'rank_50')}.",
        f"{experiment}, in absolute nats (log-SNR where I first holds {NATS_LEVEL:g} nats): "
        f"{ranked_text(decisions, 'rank_nats')}; against τ₅₀ {rank_differences(decisions, 'rank_nats', 'rank_50')}.",
        f"{experiment}: {pairs_sentence(decisions)}",
    ]


def spacing_sentence(native: str, native_decisions: pd.DataFrame, other: str, other_decisions: pd.DataFrame) -> str:
    """Whether the exact order changes between a subset of far-apart values and the data's
    own (consecutive) spacing, at the same resolution: a pair of factors resolved in both
    subsets (beyond its standard errors) and decided in opposite orders."""
    tables = {other: other_decisions, native: native_decisions}
    orders = {name: decided_order(table) for name, table in tables.items()}
    resolved = {name: resolved_pairs(table) for name, table in tables.items()}
    apart_in_other = {(row["first"], row["second"]) for _, row in resolved[other].iterrows() if row["differ"]}
    flips = [
        f"{row['first']} and {row['second']}"
        for _, row in resolved[native].iterrows()
        if row["differ"] and (row["second"], row["first"]) in apart_in_other
    ]
    told = (
        f"changes beyond the standard errors (pairs resolved in opposite orders: {', '.join(flips)}): the subset, "
        "not only the data, decides it."
        if flips
        else "changes no pair of factors that both resolve."
    )
    return (
        f"Between {other} (values chosen apart: {', '.join(orders[other])}) and {native} (consecutive values, the "
        f"data's own spacing: {', '.join(orders[native])}) the order by τ₅₀ {told}"
    )


def proxy_agreement_sentence(experiment: str, order_table: pd.DataFrame) -> str:
    """Each proxy's rank agreement with the exact order of the same experiment."""
    agreement = order_table.groupby("proxy")["rank_agreement_with_exact"].first().dropna().sort_values(ascending=False)
    listed = ", ".join(f"{proxy} {value:+.2f}" for proxy, value in agreement.items())
    return f"{experiment}: each proxy's rank correlation with the exact order: {listed} (1: the same order)."


def proxy_claim_sentence(experiment: str, order_table: pd.DataFrame) -> str:
    """Each proxy's order of the trained model against the claim under test, with the share
    of bootstrap replicates that agree and the range of its ranks' stability (a proxy
    without standard errors, the probe, is read as a point)."""
    told = []
    for proxy, table in sorted(order_table.groupby("proxy")):
        try:
            found = compare_with_published(table)
        except InputError:  # an early or a late factor never decided by this proxy
            told.append(f"{proxy}: cannot be compared")
            continue
        verdict = "agrees" if found["agrees"] else "departs"
        told.append(f"{proxy} {verdict} (ρ {found['rank_agreement']:+.2f}; {_replicate_note(table)})")
    return (
        f"{experiment}, the trained model's order by each proxy against {CLAIM}: {'; '.join(told)} "
        "(replicates redraw each point of a proxy's curve within its standard error, the points independent)."
    )


def _replicate_note(table: pd.DataFrame) -> str:
    share = table.get("claim_agreement_share", pd.Series(np.nan, index=table.index)).iloc[0]
    stability = table.get("rank_50_stability", pd.Series(np.nan, index=table.index)).dropna()
    if pd.isna(share) or stability.empty:
        return "no standard errors: a point reading"
    return f"agrees in {share:.0%} of replicates, ranks stable in {stability.min():.0%}-{stability.max():.0%} of them"


def render_markdown(sections: list[Section]) -> str:
    parts = ["# Findings\n"]
    for section in sections:
        parts.append(f"## {section.title}\n")
        parts += [f"- {sentence}" for sentence in section.sentences]
        parts.append("")
    return "\n".join(parts)


def render_html(sections: list[Section]) -> str:
    parts = ["<h2 id='findings'>Findings</h2>"]
    for section in sections:
        items = "".join(f"<li>{html.escape(sentence)}</li>" for sentence in section.sentences)
        parts.append(f"<h3>{html.escape(section.title)}</h3><ul>{items}</ul>")
    return "".join(parts)
