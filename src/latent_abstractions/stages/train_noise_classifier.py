"""Pipeline step: train the noise-conditional factor classifier q(y_k | x_t, t) on the
training rows and evaluate, on fresh noise over a log-SNR grid, its cross-entropy,
accuracy and the variational bound I(Y_k; X_t) >= H(Y_k) - CE (Barber-Agakov; study 1's
classifier log-likelihood proxy), beside the exact I(Y_k; X_t) on the same draws; the
metrics file holds the clean-image test accuracy and, per factor, how far the bound falls
below the exact curve. At t = 0 the same network labels generated images."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from ..classifier import (
    classifier,
    classifier_checkpoint,
    classifier_evaluation,
    classifier_prediction,
    classifier_training,
)
from ..core.artifacts import provenance, write_json, write_parquet
from ..datasets import base
from ..diffusion.sde import log_snr_grid, make_sde
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths

log = logging.getLogger("train_noise_classifier")


def bound_against_exact(table) -> dict:
    """Per factor, how far the variational estimate H - CE falls below the exact I(Y_k; X_t)
    on the evaluation grid: its mean absolute gap and its largest shortfall, in nats."""
    gap = table.groupby("factor")["bound_gap"]
    return {
        factor: {
            "mean_abs_gap_nats": round(float(values.abs().mean()), 4),
            "max_shortfall_nats": round(float(-values.min()), 4),
        }
        for factor, values in gap
    }


def classifier_step(experiment: str, params: dict) -> None:
    settings = params["classifier"]
    dataset = base.load(ExperimentPaths(experiment).dataset_dir).restricted(params["model"]["condition_on"])
    sde = make_sde(params["sde"])
    architecture = classifier.architecture_for(
        dataset.factor_table, dataset.images.shape[1:], sde, channels=settings["channels"], groups=settings["groups"]
    )
    train_rows, test_rows = labeller_split(dataset.train_rows(), settings["seed"])
    model, history = classifier_training.train_classifier(
        dataset, architecture, training_config(settings), rows=train_rows
    )
    clean = classifier_prediction.clean_accuracy(model, dataset.images[test_rows], dataset.bins()[test_rows])
    times = log_snr_grid(sde, 1.0, settings["t_end"], settings["evaluation_points"]).numpy()
    # The training rows with fresh noise: the distribution the score model was trained on too.
    table = classifier_evaluation.evaluate(
        model, dataset, times, dataset.train_rows(), samples=settings["evaluation_samples"], seed=settings["seed"] + 1
    )
    table.insert(0, "experiment", experiment)
    write_outputs(experiment, params, model, table, clean, len(test_rows))
    log.info(
        "final loss %.4f; clean accuracy on %d unseen training images: %s",
        history["loss"].tail(50).mean(),
        len(test_rows),
        {k: round(v, 3) for k, v in clean.items()},
    )


def training_config(settings: dict) -> classifier_training.ClassifierConfig:
    return classifier_training.ClassifierConfig(
        steps=settings["steps"],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        weight_decay=settings["weight_decay"],
        warmup_steps=settings["warmup_steps"],
        seed=settings["seed"],
        time_sampling=settings["time_sampling"],
    )


def labeller_split(train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training rows the classifier learns from, and the tenth kept from it: its clean
    accuracy there is the test accuracy of the labeller that fork and forward-backward
    analyses rely on."""
    unseen = np.zeros(len(train), dtype=bool)
    unseen[np.random.default_rng(seed).permutation(len(train))[: max(1, len(train) // 10)]] = True
    return train[~unseen], train[unseen]


def write_outputs(
    experiment: str, params: dict, model: classifier.NoiseClassifier, table, clean: dict, test_images: int
) -> None:
    """The weights, the evaluation table and the metrics (clean test accuracy, the bound
    against the exact curve)."""
    files = ExperimentPaths(experiment)
    section = {key: params[key] for key in ("sde", "model", "classifier")}
    meta = provenance("train_noise_classifier", experiment, section, files.dataset_files)
    classifier_checkpoint.save(model, files.classifier_weights, meta)
    write_parquet(pa.Table.from_pandas(table, preserve_index=False), files.classifier_evaluation, meta)
    write_json(
        {
            "clean_test_accuracy": {k: round(v, 4) for k, v in clean.items()},
            "test_images": int(test_images),
            "bound_against_exact": bound_against_exact(table),
        },
        files.classifier_metrics,
    )


if __name__ == "__main__":
    run_step("train_noise_classifier", classifier_step)
