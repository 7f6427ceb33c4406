"""The report's findings: a few sentences per study, with numbers, made from the tables
the pipeline wrote (never written by hand), and the verdict of every learned estimate
against the exact ground truth (PASS or MISS against the targets in convergence.py).

Each function takes the tables it reads and returns sentences; ``render_markdown`` and
``render_html`` turn the sections into data/findings.md and the report's first section.
"""

from __future__ import annotations

import dataclasses
import html

import pandas as pd

from .convergence import CONVERGING_NOTE, EXCESS_TARGET, GAP_TARGET, gap_text
from .published_order import compare_with_published
from .representation import ORDERED, phases_in_order


@dataclasses.dataclass
class Section:
    title: str
    sentences: list[str]


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _accuracy_at(accuracy: pd.DataFrame, step: int, axis: str) -> float:
    chosen = accuracy[(accuracy["region"] == "all") & (accuracy["axis"] == axis) & (accuracy["training_step"] == step)]
    return float(chosen["accuracy"].iloc[0]) if len(chosen) else float("nan")


def first_step_reaching(accuracy: pd.DataFrame, axis: str, level: float = 0.5) -> int | None:
    curve = accuracy[(accuracy["region"] == "all") & (accuracy["axis"] == axis)].sort_values("training_step")
    reached = curve[curve["accuracy"] >= level]
    return int(reached["training_step"].iloc[0]) if len(reached) else None


def phase_sentences(experiment: str, accuracy: pd.DataFrame, representation: pd.DataFrame) -> list[str]:
    """Final accuracy, the phase sequence and whether it runs A -> B -> C."""
    at_tap = representation[representation["phase_tap"]].sort_values("training_step")
    final = at_tap.iloc[-1]
    step, tap = int(final["training_step"]), final["tap"]
    phases = list(at_tap["phase"])
    verdict = (
        "runs A→B→C in order and ends in phase C"
        if phases_in_order(phases)
        else "does not run A→B→C in order to phase C"
    )
    reached_c = at_tap[at_tap["phase"] == "C"]
    first_c = f" (first at step {int(reached_c['training_step'].iloc[0])})" if len(reached_c) else ""
    return [
        f"{experiment}: at the final checkpoint (step {step}) {percent(final['accuracy'])} of samples are "
        f"accurate (one bump within the tolerance of the request; x {percent(_accuracy_at(accuracy, step, 'x'))}, "
        f"y {percent(_accuracy_at(accuracy, step, 'y'))}).",
        f"Over its {len(phases)} checkpoints the phases read {', '.join(phases)}: the sequence {verdict}{first_c}; the "
        f"representation at {tap} reads kNN R² {final['knn_r2']:.2f} (ordered at ≥ {ORDERED:g}).",
    ]


def coupling_sentence(experiment: str, accuracy: pd.DataFrame, dataset: dict) -> str | None:
    """Under imbalance (lattice spacings differ), when each axis first reaches 50% accuracy."""
    if dataset.get("spacing_x") == dataset.get("spacing_y"):
        return None
    steps = {axis: first_step_reaching(accuracy, axis) for axis in ("x", "y")}
    told = ", ".join(f"{axis} at step {step}" if step else f"{axis} never" for axis, step in steps.items())
    together = steps["x"] and steps["y"] and max(steps.values()) <= 2 * min(steps.values())
    return (
        f"{experiment} is imbalanced (spacing x {dataset['spacing_x']:g} px, y {dataset['spacing_y']:g} px): "
        f"50% accuracy is first reached {told}, so x and y are learned "
        f"{'together (within a factor 2 of steps)' if together else 'apart'}."
    )


def estimate_verdict(mean_gap: float, excess: float | None) -> str:
    passed = mean_gap <= GAP_TARGET and (excess is None or excess <= EXCESS_TARGET)
    return "PASS" if passed else "MISS"


def not_converged(mean_gap: float) -> str:
    return f"; {gap_text(mean_gap)}, {CONVERGING_NOTE}" if mean_gap > GAP_TARGET else ""


def against_entropy(excess: float) -> str:
    return f"rises {excess:.3f} nats above H" if excess > 0 else "stays below H"


def information_sentences(experiment: str, metrics: dict) -> list[str]:
    """The learned MMSE-form estimate's gap per factor, with its verdict."""
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
    side = dataset.get("size", 64)  # the Shapes3D file is 64x64
    return f"{side}×{side}"


def exact_order_sentence(experiment: str, dataset: dict, decisions: pd.DataFrame) -> str:
    """The order the data alone dictate, beside the published one."""
    found = compare_with_published(decisions)
    verdict = "agrees with" if found["agrees"] else "departs from"
    return (
        f"At {resolution(dataset)} ({experiment}, {len(decisions)} factors, exact: from the data alone, no model), "
        f"the factors are decided in the order {found['text']}; this {verdict} the published finding "
        f"(Franzese et al.: the hues and shape before scale and orientation), Spearman ρ with the published "
        f"groups {found['rank_agreement']:+.2f} (±0.83 at most)."
    )


def proxy_agreement_sentence(experiment: str, order_table: pd.DataFrame) -> str:
    """Each proxy's rank agreement with the exact order of the same experiment."""
    agreement = order_table.groupby("proxy")["rank_agreement_with_exact"].first().dropna().sort_values(ascending=False)
    listed = ", ".join(f"{proxy} {value:+.2f}" for proxy, value in agreement.items())
    return f"{experiment}: each proxy's rank correlation with the exact order: {listed} (1: the same order)."


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
