"""The learning-rate schedule both trainers use (score network and noise classifier)."""

from __future__ import annotations

import math


def learning_rate_at(step: int, config) -> float:
    """Linear warm-up over ``config.warmup_steps``, then cosine decay to a tenth of
    ``config.learning_rate`` at ``config.steps``."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.45 * (1.0 + math.cos(math.pi * progress)))
