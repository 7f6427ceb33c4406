"""Pipeline step: the project's report, one self-contained HTML file (data/report.html),
and its findings as text (data/findings.md).

It opens with the findings of both studies (findings.py: sentences made from the tables,
with every learned estimate's verdict against the exact ground truth). Then, for every
experiment, every figure (embedded), what the figure shows and how to read it, and its
provenance: the params and code hashes and the git commit that made it, and the hashes
of the files it was drawn from, as sha256 and as the md5 that dvc.lock records for
them. It ends with the tables behind the findings: the order in which factors are
decided (study 1) and the bumps accuracy over training (study 2)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import re
from pathlib import Path

import pandas as pd
from PIL import Image

from ..analysis import coupling, representation
from ..analysis.published_order import comparable
from ..core.artifacts import atomic_path, read_input_table
from ..core.errors import InputError
from ..pipeline import paths, stage_table
from ..pipeline.cli import run_project_step
from ..pipeline.paths import ExperimentPaths
from ..report import findings

log = logging.getLogger("report")


def dvc_md5(path: str, declared: set[str]) -> str:
    """The md5 dvc.lock records for a file the pipeline declares; a path found inside an
    artifact is never opened (a hostile provenance could name /dev/zero), nor a directory."""
    if path not in declared:
        return "not a declared output: not read"
    if Path(path).is_dir():
        return "directory: see dvc.lock"
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def read_provenance(png: str) -> tuple[dict, str]:
    """A figure's provenance and caption, or one line naming the figure."""
    try:
        with Image.open(png) as image:
            provenance, caption = json.loads(image.text["provenance"]), image.text.get("caption", "")
        if not isinstance(provenance, dict) or not isinstance(provenance.get("inputs", {}), dict):
            raise ValueError("not a JSON object with an inputs table")
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"report: {png} has no readable provenance ({exc}); draw it again with its stage") from None
    return provenance, str(caption)


def _text(value: object) -> str:
    """Any text from an artifact, escaped for the page (quotes included)."""
    return html.escape(str(value), quote=True)


def figure_section(png: str, declared: set[str]) -> str:
    provenance, caption = read_provenance(png)
    name = _text(Path(png).stem)
    encoded = base64.b64encode(Path(png).read_bytes()).decode()
    rows = "".join(
        f"<tr><td><code>{_text(source)}</code></td><td><code>{_text(dvc_md5(str(source), declared))}</code></td>"
        f"<td><code>{_text(str(digest)[:16])}…</code></td></tr>"
        for source, digest in provenance.get("inputs", {}).items()
    )
    code, params = (_text(str(provenance.get(key, "?"))[:16]) for key in ("code_sha256", "params_sha256"))
    return (
        f"<figure id='{_text(png)}'><img src='data:image/png;base64,{encoded}' alt='{name}'>"
        f"<figcaption><b>{name}</b>: {_text(caption)}</figcaption></figure>"
        f"<details><summary>provenance</summary><p>code <code>{code}…</code>, "
        f"params <code>{params}…</code>, commit <code>{_text(provenance.get('git_commit', '?'))}</code>"
        f"{' (work tree dirty)' if provenance.get('git_dirty') else ''}</p>"
        f"<table><tr><th>input</th><th>md5 (as in dvc.lock)</th><th>sha256</th></tr>{rows}</table></details>"
    )


def content_security_policy() -> str:
    """No script, no outside resource: images from the page itself, the one style by its hash."""
    style = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    return f"default-src 'none'; img-src data:; style-src 'sha256-{style}'; base-uri 'none'; form-action 'none'"


def table_html(frame: pd.DataFrame, caption: str) -> str:
    table = frame.to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="–", border=0)
    # pandas aligns the header row by a style attribute, which the page's policy blocks (the style sheet aligns it)
    return f"<h3>{html.escape(caption)}</h3>" + re.sub(r'(<t[rhd]\b[^>]*?)\s+style="[^"]*"', r"\1", table)


def declaring(inputs: list[str], files: list[ExperimentPaths], field: str) -> list[ExperimentPaths]:
    """The experiments whose file ``field`` the report stage reads: its declared inputs
    only, so a stale file of a stage an experiment does not run is never taken up."""
    return [experiment for experiment in files if str(getattr(experiment, field)) in inputs]


def order_tables(inputs: list[str], files: list[ExperimentPaths]) -> str:
    parts = []
    for experiment in declaring(inputs, files, "order"):
        table = read_input_table(experiment.order).to_pandas()
        wide = table.pivot(index="factor", columns="proxy", values="tau_50").sort_values("mi_exact", ascending=False)
        agreement = table.groupby("proxy")["rank_agreement_with_exact"].first().to_frame().T
        parts.append(
            table_html(
                wide.reset_index(),
                f"{table['experiment'].iloc[0]}: tau_50, the time at which "
                "each proxy has covered half its way (generation runs from t = 1 down); rows in the "
                "exact order, first decided on top",
            )
        )
        parts.append(table_html(agreement, "rank correlation of each proxy's order with the exact one"))
    return "".join(parts)


def classifier_table(inputs: list[str], files: list[ExperimentPaths]) -> str:
    accuracy, gaps = [], []
    for experiment in declaring(inputs, files, "classifier_metrics"):
        scores, name = json.loads(experiment.classifier_metrics.read_text()), experiment.experiment
        accuracy.append({"experiment": name, "test images": scores["test_images"], **scores["clean_test_accuracy"]})
        gaps += [{"experiment": name, "factor": factor, **gap} for factor, gap in scores["bound_against_exact"].items()]
    if not accuracy:
        return ""
    return table_html(
        pd.DataFrame(accuracy),
        "clean-image classifier (the labeller of forks and regenerations): accuracy on training images it never saw",
    ) + table_html(
        pd.DataFrame(gaps),
        "the classifier's variational estimate H - CE against the exact "
        "I(factor; X_t) on the same draws, over its evaluation grid (nats)",
    )


def accuracy_tables(inputs: list[str], files: list[ExperimentPaths]) -> str:
    parts = []
    for experiment in declaring(inputs, files, "generation_accuracy"):
        table = read_input_table(experiment.generation_accuracy).to_pandas()
        wide = table.pivot_table(index="training_step", columns=["region", "axis"], values="accuracy")
        wide.columns = [f"{region} {axis}" for region, axis in wide.columns]
        phases = representation.checkpoint_rows(read_input_table(experiment.generation_representation).to_pandas())
        wide = wide.join(
            phases.set_index("training_step")[
                [
                    "multi_bump_fraction",
                    "tap",
                    "intrinsic_dimension",
                    "knn_r2",
                    "trustworthiness",
                    "continuity",
                    "r2_pca",
                    "phase",
                    "generation_behaviour",
                ]
            ]
        )
        parts.append(
            table_html(
                wide.reset_index(),
                f"{table['experiment'].iloc[0]}: generation accuracy over "
                "training; the geometry of the representation at the phase tap (Levina-Bickel "
                "intrinsic dimension, leave-one-out kNN R^2 of (x, y); the PCA-3 linear R^2 is a "
                "diagnostic); the representation phase from geometry alone (A: not 2-D, B: 2-D and "
                "disordered, C: 2-D and ordered); and the generation behaviour beside it (A: several "
                "bumps, B: one misplaced bump, C: accurate)",
            )
        )
    return "".join(parts)


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}img{max-width:100%}"
    "table{border-collapse:collapse;font-size:0.85em}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
    "figure{margin:1.5em 0 0.3em}figcaption{font-size:0.9em;color:#333}thead th{text-align:right}"
)


def exact_order_tables(inputs: list[str], files: list[ExperimentPaths]) -> str:
    parts = []
    for experiment in declaring(inputs, files, "exact_decisions"):
        table = read_input_table(experiment.exact_decisions).to_pandas()
        shown = table[
            [
                "factor",
                "published_group",
                *(c for time in ("log_snr_50", "log_snr_peak", "log_snr_nats") for c in (time, f"{time}_stderr")),
                *(c for rank in ("rank_50", "rank_peak", "rank_nats") for c in (rank, f"{rank}_stability")),
            ]
        ]
        name = table["experiment"].iloc[0]
        parts.append(
            table_html(
                shown,
                f"{name}: the exact order, from the data alone, by three definitions of decision time (log-SNR "
                "where I/H reaches 0.5; where the entropy rate peaks; where I first holds 0.5 nats), each "
                "with its bootstrap standard error, rank and the share of replicates keeping that rank; "
                "published_group: early or late in the order attributed to Franzese et al.",
            )
            + table_html(
                findings.resolved_pairs(table),
                f"{name}: which pairs of factors are decided at different times (log-SNR at 50% apart by more "
                f"than {findings.RESOLVED:g} combined standard errors)",
            )
        )
    return "".join(parts)


MIN_FACTORS_TO_ORDER = 3  # with two factors a rank correlation is +1 or -1 and says little


# The tables the findings read: name -> (the ExperimentPaths field of its file, how to read it).
FINDINGS_TABLES = {
    "accuracy": ("generation_accuracy", "parquet"),
    "representation": ("generation_representation", "parquet"),
    "exact_decisions": ("exact_decisions", "parquet"),
    "order": ("order", "parquet"),
    "information_metrics": ("information_metrics", "json"),
    "classifier_metrics": ("classifier_metrics", "json"),
}
STUDY_KEYS = ("bumps", "exact", "proxies", "estimates")


def read_tables(files: ExperimentPaths, inputs: list[str]) -> dict:
    """The tables of one experiment that the findings read, among the declared inputs."""
    tables = {}
    for name, (field, kind) in FINDINGS_TABLES.items():
        if declaring(inputs, [files], field):
            path = getattr(files, field)
            tables[name] = read_input_table(path).to_pandas() if kind == "parquet" else json.loads(path.read_text())
    return tables


def experiment_findings(name: str, experiment: dict, tables: dict) -> dict[str, list[str]]:
    """Sentences per study for one experiment, from the tables it has."""
    said = {key: [] for key in STUDY_KEYS}
    if "accuracy" in tables and "coupling" not in experiment:  # the coupling study speaks for its arms
        phase_study = experiment["generation"]["phase_study"]
        said["bumps"] += findings.phase_sentences(name, tables["accuracy"], tables["representation"], phase_study)
        imbalance = findings.imbalance_sentence(name, experiment["dataset"])
        said["bumps"] += [imbalance] if imbalance else []
    if "exact_decisions" in tables:
        said["exact"] += findings.exact_order_sentences(name, experiment["dataset"], tables["exact_decisions"])
    if "order" in tables and tables["order"]["factor"].nunique() >= MIN_FACTORS_TO_ORDER:
        said["proxies"].append(findings.proxy_agreement_sentence(name, tables["order"]))
        if comparable(sorted(set(tables["order"]["factor"]))):  # the claim is about Shapes3D's factors
            said["proxies"].append(findings.proxy_claim_sentence(name, tables["order"]))
    if "information_metrics" in tables:
        said["estimates"] += findings.information_sentences(name, tables["information_metrics"])
    if "classifier_metrics" in tables:
        said["estimates"] += findings.bound_sentences(name, tables["classifier_metrics"])
    return said


def coupling_spreads(params: dict, tables_of: dict[str, dict]) -> pd.DataFrame | None:
    """The coupling study's crossings (median and range over seeds), if params has one."""
    runs = {}
    for name, experiment in sorted(params["experiments"].items()):
        tables = tables_of[name]
        if "coupling" in experiment and "accuracy" in tables:
            runs[name] = {**experiment["coupling"], "seed": experiment["train"]["seed"], **tables}
    return coupling.spread(coupling.crossings(runs)) if runs else None


def coupling_table(spreads: pd.DataFrame | None) -> str:
    if spreads is None:
        return ""
    return "<h2 id='coupling'>Coupling: crossings over seeds</h2>" + table_html(
        spreads,
        "the step at which each axis's curve first reaches the level, interpolated in log-step between the "
        "bracketing snapshots: median, range and seeds per arm (censored: outside the snapshots in some seed)",
    )


def spacing_sentences(params: dict, tables_of: dict[str, dict]) -> list[str]:
    """Each native-spacing exact order against the other exact orders at its resolution."""
    decisions = {
        name: tables["exact_decisions"] for name, tables in sorted(tables_of.items()) if "exact_decisions" in tables
    }
    said = []
    for name, table in decisions.items():
        dataset = params["experiments"][name]["dataset"]
        if dataset.get("spacing") != "native":
            continue
        for other, other_table in decisions.items():
            other_dataset = params["experiments"][other]["dataset"]
            if (
                other != name
                and other_dataset.get("spacing") != "native"
                and other_dataset["kind"] == dataset["kind"]
                and other_dataset.get("size") == dataset.get("size")
            ):
                said.append(findings.spacing_sentence(name, table, other, other_table))
    return said


def findings_sections(params: dict, tables_of: dict[str, dict], spreads: pd.DataFrame | None) -> list[findings.Section]:
    said = {key: [] for key in STUDY_KEYS}
    for name, experiment in sorted(params["experiments"].items()):
        for key, sentences in experiment_findings(name, experiment, tables_of[name]).items():
            said[key] += sentences
    if spreads is not None:
        said["bumps"] += findings.coupling_sentences(spreads)
    said["exact"] += spacing_sentences(params, tables_of)
    return [
        findings.Section("Study 2: phases of representation on Gaussian bumps (Liang, Liu & Fiete)", said["bumps"]),
        findings.Section(
            "Study 1: the order in which factors are decided (Franzese et al.)", said["exact"] + said["proxies"]
        ),
        findings.Section(
            "Learned estimates against the exact ground truth", said["estimates"] + [findings.targets_sentence()]
        ),
    ]


def contents(experiments: list[str]) -> str:
    targets = [
        ("findings", "Findings"),
        *((name, name) for name in experiments),
        ("order", "When each factor is decided"),
        ("accuracy", "Bumps: accuracy over training"),
    ]
    return (
        "<nav>" + " · ".join(f"<a href='#{_text(anchor)}'>{_text(title)}</a>" for anchor, title in targets) + "</nav>"
    )


def report_step(params: dict) -> None:
    inputs = stage_table.REPORT.inputs(params)
    missing = [path for path in inputs if not Path(path).exists()]  # a store is a folder
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"report: cannot compute the findings: {missing[0]} is missing{more}")
    # every experiment's tables read once, for the findings, the coupling study and the spacing
    tables_of = {name: read_tables(ExperimentPaths(name), inputs) for name in params["experiments"]}
    spreads = coupling_spreads(params, tables_of)
    sections = findings_sections(params, tables_of, spreads)
    experiments = sorted(params["experiments"])
    declared = set(stage_table.final_outputs(params))
    files = [ExperimentPaths(experiment) for experiment in experiments]
    body = ["<h1>Latent abstractions: report</h1>", contents(experiments), findings.render_html(sections)]
    for experiment in files:
        pngs = [p for p in inputs if Path(p).parent == experiment.figures_dir]
        body.append(f"<h2 id='{_text(experiment.experiment)}'>{_text(experiment.experiment)}</h2>")
        body.append("".join(figure_section(png, declared) for png in pngs))
    body.append(
        "<h2 id='order'>When each factor is decided</h2>"
        + exact_order_tables(inputs, files)
        + order_tables(inputs, files)
        + classifier_table(inputs, files)
    )
    body.append("<h2 id='accuracy'>Bumps: accuracy over training</h2>" + accuracy_tables(inputs, files))
    body.append(coupling_table(spreads))
    document = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{content_security_policy()}\">"
        f"<title>Latent abstractions report</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
    with atomic_path(paths.FINDINGS) as temporary:
        temporary.write_text(findings.render_markdown(sections))
    with atomic_path(paths.REPORT) as temporary:
        temporary.write_text(document)
    log.info("wrote %s and %s (%d figures)", paths.REPORT, paths.FINDINGS, sum(p.endswith(".png") for p in inputs))


if __name__ == "__main__":
    run_project_step("report", report_step)
