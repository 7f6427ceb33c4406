"""The noise classifier's predictions: per-factor probabilities q(y_k | x_t, t) of images
in either stored form, and the clean-image accuracy against known labels."""

from __future__ import annotations

import numpy as np
import torch

from ..core.image_rows import ImageRows
from .classifier import ClassifierError, NoiseClassifier, device_of


@torch.no_grad()
def predict(
    model: NoiseClassifier,
    images: np.ndarray | torch.Tensor,
    t: float | np.ndarray | torch.Tensor,
    batch_size: int = 512,
) -> dict[str, np.ndarray]:
    """Per-factor probabilities q(y_k | x_t, t) of noised (or, with t = 0, clean) images.

    ``images`` (N, C, H, W) in either stored form (uint8, or float in [-1, 1]; generated
    images slightly outside [-1, 1] are fine); ``t`` a number or one per image. Returns
    ``{factor name: (N, V_k) float32}`` in factor-table order, rows summing to 1.
    """
    device = device_of(model)
    model.eval()
    n = len(images)
    times = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    if times.numel() not in (1, n):
        raise ClassifierError(f"predict: {times.numel()} times for {n} images")
    times = times.expand(n) if times.numel() == 1 else times
    source = ImageRows(images)
    parts: list[list[torch.Tensor]] = [[] for _ in model.factors]
    for start in range(0, n, batch_size):
        x = source.span(start, start + batch_size, "cpu").to(device)
        logits = model(x, times[start : start + batch_size].to(device))
        for k, z in enumerate(logits):
            parts[k].append(torch.softmax(z.float(), dim=1).cpu())
    return {
        f.name: (torch.cat(p).numpy() if p else np.zeros((0, f.cardinality), np.float32))
        for f, p in zip(model.factors, parts)
    }


def clean_accuracy(
    model: NoiseClassifier, images: np.ndarray | torch.Tensor, labels: np.ndarray, batch_size: int = 512
) -> dict[str, float]:
    """Accuracy per factor of the clean-image classifier (t = 0, read as t_min) against
    ``labels`` (N, K) value indices in factor-table order."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape != (len(images), len(model.factors)):
        raise ClassifierError(
            f"labels of shape {labels.shape} do not match {len(images)} images and {len(model.factors)} factors"
        )
    probabilities = predict(model, images, 0.0, batch_size)
    return {name: float((p.argmax(1) == labels[:, k]).mean()) for k, (name, p) in enumerate(probabilities.items())}
