"""Every figure's drawing function in one namespace, and their captions: what tests and
Snakemake's report (workflow/rules/common.smk) read. No stage imports this module: each
figure stage imports only its group's module under plots/."""

from __future__ import annotations

import matplotlib.pyplot as plt  # noqa: F401 (tests close figures through it)

from .plots.dataset import contact_sheet, traversals
from .plots.generation import generation_over_training, representation_pictures
from .plots.images import show_image
from .plots.information import information_curves, information_notes, mutual_information
from .plots.layout import legend_columns
from .plots.loss import training_loss
from .plots.probes import FEATURE_FAMILIES, best_features, feature_family, probe_scores
from .plots.proxies import proxy_curves
from .plots.samples import sample_grid

__all__ = [
    "FEATURE_FAMILIES",
    "best_features",
    "contact_sheet",
    "feature_family",
    "generation_over_training",
    "information_curves",
    "information_notes",
    "legend_columns",
    "mutual_information",
    "probe_scores",
    "proxy_curves",
    "representation_pictures",
    "sample_grid",
    "show_image",
    "training_loss",
    "traversals",
]

# Each figure's caption by the name its PNG takes (data/<experiment>/figures/<name>.png):
# Snakemake's report (workflow/rules/common.smk) prints it under the figure.
FIGURE_CAPTIONS = {
    "dataset_contact_sheet": contact_sheet.caption,
    "dataset_traversals": traversals.caption,
    "probes": probe_scores.caption,
    "information": mutual_information.caption,
    "samples": sample_grid.caption,
    "loss": training_loss.caption,
    "generation": generation_over_training.caption,
    "representation": representation_pictures.caption,
    "proxies": proxy_curves.caption,
}
