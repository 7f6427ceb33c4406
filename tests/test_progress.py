"""Progress (progress.py): a line per tenth of the work, with the bar's postfix, in the
step's log file and not on its terminal; the stages' long loops report through it."""

from __future__ import annotations

import io
import logging
import re

import numpy as np
import pandas as pd
import pytest
import torch

from latent_abstractions.analysis import exact_stream, information, order
from latent_abstractions.analysis.ground_truth import FiniteMixture
from latent_abstractions.classifier import classifier_training
from latent_abstractions.core import progress
from latent_abstractions.datasets import shapes
from latent_abstractions.diffusion.sde import VPSDE
from latent_abstractions.pipeline import cli

from test_classifier import square_dataset, tiny_architecture

LINE = re.compile(
    r"(?P<desc>.+): (?P<percent>\d+)% \((?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+), \d+ s\)(?P<postfix>.*)"
)


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[re.Match]:
    """The progress lines logged so far, each one checked against the documented form."""
    lines = [record.getMessage() for record in caplog.records if record.name == progress.LOGGER]
    matches = [LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    return matches


def count_to(total: int, **options: object) -> None:
    """``total`` units, one at a time, each with its number and a loss as the postfix."""
    with progress.Progress(total, "work", "batch", **options) as bar:
        for done in range(bar.done + 1, total + 1):
            bar.update(1, loss=f"{done / 100:.2f}", done=done)


def test_a_line_per_tenth_of_the_work_with_its_postfix(caplog):
    caplog.set_level(logging.INFO, logger=progress.LOGGER)
    count_to(25)
    lines = progress_lines(caplog)
    assert len(lines) == 10
    percents = [int(line["percent"]) for line in lines]
    assert percents[-1] == 100 and all(10 * tenth <= p < 10 * (tenth + 1) for tenth, p in enumerate(percents, 1))
    for line in lines:
        done = int(line["done"])
        assert (line["desc"], line["total"], line["unit"]) == ("work", "25", "batch")
        assert line["postfix"] == f", loss {done / 100:.2f}, done {done}"  # the postfix of the update that logged


def test_a_resumed_count_logs_the_tenths_still_to_come_and_a_disabled_one_nothing(caplog):
    caplog.set_level(logging.INFO, logger=progress.LOGGER)
    count_to(10, initial=4)
    assert [int(line["done"]) for line in progress_lines(caplog)] == [5, 6, 7, 8, 9, 10]
    caplog.clear()
    count_to(10, disable=True)  # e.g. a rank other than 0 under torchrun
    assert not progress_lines(caplog)


def test_the_terminal_leaves_the_lines_to_the_log_file(tmp_path):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    log_file = tmp_path / "logs" / "step.log"
    screen = io.StringIO()
    try:
        cli._setup_logging(log_file)
        terminal = next(h for h in root.handlers if not isinstance(h, logging.FileHandler))
        terminal.setStream(screen)
        logging.getLogger("stage").info("the step started")
        count_to(25)
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    written = log_file.read_text().splitlines()
    lines = [line for line in written if f" {progress.LOGGER}: " in line]
    assert len(lines) == 10 and lines[-1].split(f" {progress.LOGGER}: ")[1].startswith("work: 100% (25/25 batch, ")
    assert all(", loss " in line and ", done " in line for line in lines)
    assert any(line.endswith("stage: the step started") for line in written)
    assert "the step started" in screen.getvalue() and "work:" not in screen.getvalue()


# --- the stages' loops ---------------------------------------------------------------------------


def information_curves() -> None:
    """estimate_information: the exact curves of a small shapes set (no model), per time."""
    data = shapes.make(16, {name: [0, 1] for name in shapes.FACTOR_NAMES})
    source = FiniteMixture(data.images, data.bins(), data.condition_values())
    information.mutual_information(None, VPSDE(), source, t_end=1e-3, points=5, samples=16, seed=0)


def exact_stream_curves() -> None:
    """exact_order: the one pass over the images, chunk by chunk (64 images in 10 chunks)."""
    data = shapes.make(16, {name: [0, 1] for name in shapes.FACTOR_NAMES})
    source = FiniteMixture(data.images, data.bins(), data.condition_values())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exact_stream, "CHUNK_LIMITS", (7, 7))
        exact_stream.exact_information(VPSDE(), source, 1e-3, 4, 8, seed=0, device=torch.device("cpu"))


def classifier_steps() -> None:
    """train_noise_classifier: the classifier's training steps."""
    dataset = square_dataset(copies=2)
    config = classifier_training.ClassifierConfig(steps=20, batch_size=8, warmup_steps=2)
    classifier_training.train_classifier(dataset, tiny_architecture(dataset), config, device="cpu")


def bootstrap_replicates() -> None:
    """decision_order: the bootstrap replicates of the proxies' decision times."""
    t = np.linspace(1.0, 0.01, 12)
    curves = pd.DataFrame(
        {"proxy": "p", "factor": "f", "t": t, "log_snr": np.log(1 / t), "value": 1 - t, "stderr": 0.05}
    )
    order.bootstrap_decisions(curves, 30, seed=0)


STAGES = {  # what runs, and the description, unit, total and postfix keys of its bar
    "estimate_information": (information_curves, "information", "time", 5, []),
    "exact_order": (exact_stream_curves, "exact stream", "image", 64, []),
    "train_noise_classifier": (classifier_steps, "train classifier", "step", 20, ["loss"]),
    "decision_order": (bootstrap_replicates, "bootstrap", "replicate", 30, []),
}


@pytest.mark.parametrize("stage", STAGES)
def test_a_stages_loop_logs_its_tenths(stage, caplog):
    run, desc, unit, total, postfix = STAGES[stage]
    caplog.set_level(logging.INFO, logger=progress.LOGGER)
    run()
    lines = [line for line in progress_lines(caplog) if line["desc"] == desc]  # not the data set's rendering
    assert len(lines) == min(total, 10) and int(lines[-1]["percent"]) == 100
    for line in lines:
        assert (line["desc"], line["unit"], int(line["total"])) == (desc, unit, total)
        assert re.findall(r", (\w+) ", line["postfix"]) == postfix
