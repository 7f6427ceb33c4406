"""Noise-conditional factor classifier: learns clean images, is at chance in pure noise, its
Barber-Agakov bound stays below H(Y) and reaches it where the images are clean, it is
reproducible, and its checkpoints round-trip and refuse another data set."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from latent_abstractions.classifier import (
    classifier,
    classifier_checkpoint,
    classifier_evaluation,
    classifier_prediction,
    classifier_training,
)
from latent_abstractions.core import safetensors_file
from latent_abstractions.core.errors import TrainingDiverged
from latent_abstractions.core.factors import Factor
from latent_abstractions.datasets.base import Dataset
from latent_abstractions.diffusion.sde import VESDE, VPSDE

SDE = VPSDE(beta_min=0.1, beta_max=20.0)
COLOURS = np.array([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])
X_VALUES = (0.0, 2.0, 4.0, 6.0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: on a shared 2-core machine a second thread only adds contention
    (module scope, so that it is in force while the module's trained classifier is built)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def square_dataset(copies: int = 4, seed: int = 0) -> Dataset:
    """8x8 RGB images of a 2x2 square on a textured grey background: its colour (3 values,
    categorical) and its column x (4 values, continuous: classified through its bin).
    ``copies`` backgrounds per combination; the last copy of each is the test split."""
    rng = np.random.default_rng(seed)
    images, rows = [], []
    for copy in range(copies):
        for c in range(len(COLOURS)):
            for b, x in enumerate(X_VALUES):
                image = rng.uniform(-0.3, 0.3, (3, 8, 8)).astype(np.float32)
                image[:, 3:5, int(x) : int(x) + 2] = COLOURS[c][:, None, None]
                images.append(image)
                rows.append(
                    {
                        "colour": float(c),
                        "colour_bin": c,
                        "x": x,
                        "x_bin": b,
                        "split": "test" if copy == copies - 1 else "train",
                    }
                )
    table = [Factor("colour", "categorical", (0.0, 1.0, 2.0)), Factor("x", "continuous", X_VALUES)]
    return Dataset(images=np.stack(images), factors=pd.DataFrame(rows), factor_table=table)


def tiny_architecture(dataset: Dataset, sde=SDE) -> dict:
    return classifier.architecture_for(
        dataset.factor_table,
        dataset.images.shape[1:],
        sde,
        channels=(16, 32),
        groups=4,
        frequencies=4,
        embedding_dim=32,
    )


@pytest.fixture(scope="module")
def trained(one_thread):
    dataset = square_dataset()
    config = classifier_training.ClassifierConfig(steps=300, batch_size=64, learning_rate=3e-3, warmup_steps=20, seed=0)
    model, history = classifier_training.train_classifier(dataset, tiny_architecture(dataset), config, device="cpu")
    return dataset, model, history


def test_learns_clean_images_and_is_at_chance_in_pure_noise(trained):
    dataset, model, history = trained
    assert list(history.columns) == ["step", "learning_rate", "loss", "loss_colour", "loss_x"]
    assert len(history) == 300 and history["loss"].iloc[-50:].mean() < history["loss"].iloc[:50].mean()
    test = classifier.held_out_rows(dataset)
    labels = classifier.labels_of(dataset)
    accuracy = classifier_prediction.clean_accuracy(model, dataset.images[test], labels[test])
    assert set(accuracy) == {"colour", "x"} and min(accuracy.values()) > 0.9

    table = classifier_evaluation.evaluate(model, dataset, [1e-3, 0.05, 0.3, 1.0], test, samples=600, seed=1)
    assert list(table.columns) == list(classifier_evaluation.EVALUATION_COLUMNS) and len(table) == 8
    entropy = {"colour": math.log(3), "x": math.log(4)}
    for name, rows in table.groupby("factor"):
        assert np.allclose(rows["entropy"], entropy[name])
        assert (rows["bound"] <= rows["entropy"]).all()  # CE >= 0: the bound never exceeds H(Y)
        assert np.allclose(rows["bound"], rows["entropy"] - rows["cross_entropy"])
        clean, noise = rows.iloc[0], rows.iloc[-1]
        assert clean["accuracy"] > 0.9 and clean["bound"] > clean["entropy"] - 0.15
        # t = 1: alpha ~ 0.007, the images are gone: chance accuracy, no information left.
        assert noise["accuracy"] < noise["chance_accuracy"] + 0.1
        assert abs(noise["bound"]) < 0.1 + 3 * noise["bound_se"]
        assert (rows["cross_entropy_se"] > 0).all() and (rows["bound_se"] == rows["cross_entropy_se"]).all()
        # Information only falls with noise (up to the estimates' noise).
        assert (np.diff(rows["bound"]) < 3 * rows["bound_se"].to_numpy()[1:]).all()
        # The exact value on the same draws: H(Y) where the images are clean, 0 in pure noise,
        # never below the bound (the paired gap is minus a KL divergence).
        assert abs(clean["exact"] - clean["entropy"]) < 1e-6 and noise["exact"] < 0.01
        assert np.allclose(rows["bound_gap"], rows["bound"] - rows["exact"])
        assert (rows["bound_gap"] <= 3 * rows["bound_gap_se"]).all() and (rows["exact_se"] >= 0).all()


def test_predict_gives_probabilities_at_any_time(trained):
    dataset, model, _ = trained
    images = dataset.images[:5]
    for t in (0.0, 0.5, np.linspace(0.0, 1.0, 5)):
        probabilities = classifier_prediction.predict(model, images, t, batch_size=2)
        assert [p.shape for p in probabilities.values()] == [(5, 3), (5, 4)]
        for p in probabilities.values():
            assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1.0, atol=1e-5)
    uint8 = np.round((dataset.images[:5] + 1.0) * 127.5).astype(np.uint8)  # the other stored form
    assert classifier_prediction.predict(model, uint8, 0.0)["colour"].argmax(1).tolist() == [0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="3 times for 5 images"):
        classifier_prediction.predict(model, images, np.zeros(3))


def test_same_seed_same_weights():
    dataset = square_dataset(copies=2)
    architecture = tiny_architecture(dataset)

    def run(seed):
        config = classifier_training.ClassifierConfig(steps=8, batch_size=16, warmup_steps=2, seed=seed)
        return classifier_training.train_classifier(dataset, architecture, config, device="cpu")

    (first, first_history), (second, second_history), (other, _) = run(3), run(3), run(4)
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name
    pd.testing.assert_frame_equal(first_history, second_history)
    assert not torch.equal(first.heads[0].weight, other.heads[0].weight)


def test_uniform_time_sampling_and_time_draws():
    generator = torch.Generator().manual_seed(0)
    t = classifier_training.draw_times(4000, SDE, 1e-3, 1.0, "log_snr", generator)
    assert float(t.min()) >= 1e-3 and float(t.max()) <= 1.0
    log_snr = SDE.log_snr(t.double())
    low, high = float(SDE.log_snr(torch.tensor(1.0))), float(SDE.log_snr(torch.tensor(1e-3)))
    assert abs(float(log_snr.mean()) - (low + high) / 2) < 0.3  # uniform in log-SNR
    uniform = classifier_training.draw_times(4000, SDE, 1e-3, 1.0, "t", generator)
    assert abs(float(uniform.mean()) - 0.5) < 0.02
    with pytest.raises(ValueError, match="unknown time sampling"):
        classifier_training.draw_times(2, SDE, 1e-3, 1.0, "cosine", generator)


def test_checkpoint_round_trip_and_refusals(trained, tmp_path):
    dataset, model, _ = trained
    path = tmp_path / "weights.safetensors"
    classifier_checkpoint.save(model, path, {"seed": 0})
    loaded, header = classifier_checkpoint.load(path, dataset=dataset, sde=SDE)
    assert header["provenance"] == {"seed": 0} and header["architecture"] == model.architecture
    before = classifier_prediction.predict(model, dataset.images, 0.1)
    after = classifier_prediction.predict(loaded, dataset.images, 0.1)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    classifier_checkpoint.save(loaded, tmp_path / "again.safetensors", {"seed": 0})
    assert path.read_bytes() == (tmp_path / "again.safetensors").read_bytes()  # byte-stable

    other_values = dataclasses.replace(dataset.factor_table[1], values=(0.0, 2.0, 4.0, 5.0))
    shifted = Dataset(dataset.images, dataset.factors, [dataset.factor_table[0], other_values])
    fewer = dataset.restricted(["colour"])
    larger = Dataset(np.zeros((2, 3, 16, 16), np.float32), dataset.factors.iloc[:2], dataset.factor_table)
    for wrong, detail in ((shifted, "factor 'x' values"), (fewer, "factors"), (larger, "image shape")):
        with pytest.raises(ValueError, match="classifier checkpoint does not match its data set: " + detail) as error:
            classifier_checkpoint.load(path, dataset=wrong)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="does not match its SDE"):
        classifier_checkpoint.load(path, sde=VPSDE(beta_min=0.1, beta_max=10.0))
    with pytest.raises(ValueError, match="does not match its data set"):
        classifier_evaluation.evaluate(model, shifted, [0.5], np.arange(4))
    (tmp_path / "broken.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint"):
        classifier_checkpoint.load(tmp_path / "broken.safetensors")
    for header, message in (
        (["noise_classifier"], "not a noise_classifier checkpoint"),
        ({k: v for k, v in model.architecture.items() if k != "t_max"}, "the header's architecture lacks t_max"),
    ):
        partial = tmp_path / "partial.safetensors"
        safetensors_file.write_checkpoint(model.state_dict(), header, {"seed": 0}, partial)
        with pytest.raises(ValueError, match=f"partial.safetensors: {message}"):
            classifier_checkpoint.load(partial)


def test_one_class_factor_is_refused_by_name():
    dataset = square_dataset(copies=2)
    dataset.factor_table = [dataset.factor_table[0], Factor("brightness", "categorical", (0.0,))]
    dataset.factors["brightness_bin"] = 0
    with pytest.raises(ValueError, match="factor 'brightness' has 1 class") as error:
        classifier.architecture_for(dataset.factor_table, (3, 8, 8), SDE)
    assert "\n" not in str(error.value)
    architecture = tiny_architecture(square_dataset(copies=2))
    with pytest.raises(ValueError, match="factor 'brightness' has 1 class"):
        classifier_training.train_classifier(
            dataset, architecture, classifier_training.ClassifierConfig(steps=1), device="cpu"
        )


def test_architecture_holds_the_sde():
    dataset = square_dataset(copies=1)
    ve = VESDE(sigma_min=0.01, sigma_max=50.0)
    model = classifier.build_model(tiny_architecture(dataset, sde=ve))
    assert model.sde == ve
    u = model.scaled_log_snr(torch.tensor([0.0, 1e-3, 0.5, 1.0, 2.0]))
    assert u[0] == u[1] == 1.0 and u[3] == u[4] == -1.0 and -1.0 < u[2] < 1.0  # clamped to [t_min, t_max]
    with pytest.raises(ValueError, match="multiples of groups"):
        classifier.architecture_for(dataset.factor_table, (3, 8, 8), SDE, channels=(6,), groups=4)


def test_rows_read_the_same_from_the_device_cache_and_from_storage(monkeypatch):
    dataset = square_dataset(copies=1)
    stored = np.round((dataset.images + 1.0) * 127.5).astype(np.uint8)
    rows, positions = np.array([7, 2, 5, 2, 11]), torch.tensor([4, 0, 1, 3, 3, 2])
    chosen = rows[positions.numpy()]
    mapped = torch.from_numpy(stored[chosen]).float() / 127.5 - 1.0
    floats = dataset.images.astype(np.float64)  # read as float32 either way
    for images, expected in ((stored, mapped), (torch.from_numpy(stored), mapped), (floats, floats[chosen])):
        for cache_bytes in (0, classifier.CACHE_BYTES):
            monkeypatch.setattr(classifier, "CACHE_BYTES", cache_bytes)
            source = classifier.device_rows(images, rows, torch.device("cpu"))
            assert (source.cache is None) == (cache_bytes == 0)
            gathered = source.gather(positions, torch.device("cpu"))
            assert gathered.dtype == torch.float32
            torch.testing.assert_close(gathered, torch.as_tensor(expected, dtype=torch.float32), rtol=0, atol=0)


def test_a_diverging_classifier_training_stops_at_the_step_with_its_last_finite_loss():
    dataset = square_dataset()
    config = classifier_training.ClassifierConfig(
        steps=50, batch_size=16, learning_rate=1e30, warmup_steps=0, seed=0, grad_clip=0.0
    )
    with pytest.raises(TrainingDiverged) as caught:
        classifier_training.train_classifier(dataset, tiny_architecture(dataset), config, device="cpu")
    diverged = caught.value
    assert 2 <= diverged.step < 50 and not math.isfinite(diverged.loss)
    assert diverged.last_finite[0] == diverged.step - 1 and math.isfinite(diverged.last_finite[1])
    assert str(diverged).startswith(f"the noise classifier's training diverged at step {diverged.step}: loss ")
    assert "\n" not in str(diverged)
