"""The rolling resume checkpoint: weights, EMA, optimizer state, step, loss history and
every random-number state, in one safetensors file (never a pickle), written atomically.

A run that finds a resume file with its own fingerprint (params and data hash) picks up
at the saved step and ends with the same weights, bit for bit on a CPU, as a run that
was never interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open

from . import safetensors_file
from .artifacts import canonical_json
from .train import Trainer


def save(trainer: Trainer, path: Path | str, fingerprint: str) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
    tensors |= {f"ema.{k}": v.detach().cpu().contiguous() for k, v in trainer.ema.shadow.items()}
    optimizer = trainer.optimizer.state_dict()
    for index, state in optimizer["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.batch"] = trainer.generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    tensors["history"] = torch.tensor(trainer.history, dtype=torch.float64).reshape(-1, 3)
    metadata = {
        "fingerprint": fingerprint,
        "step": str(trainer.step_index),
        "ema_updates": str(trainer.ema.updates),
        "param_groups": canonical_json([_plain(group) for group in optimizer["param_groups"]]),
    }
    safetensors_file.write(tensors, path, metadata)


def _plain(group: dict) -> dict:
    """An optimizer param group as JSON can hold it: a device-tensor setting (the CUDA-graph
    step's learning rate) as its float; ``load`` makes it a tensor again."""
    return {key: float(value) if isinstance(value, torch.Tensor) else value for key, value in group.items()}


def fingerprint_of(path: Path | str) -> str | None:
    """The fingerprint a resume file was written for, or None if there is no readable one."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("fingerprint")
    except Exception:  # a missing, truncated or foreign file is simply not resumable
        return None


def load(trainer: Trainer, path: Path | str) -> None:
    """Restore ``trainer`` to the saved step."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    trainer.model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    for key in trainer.ema.shadow:
        trainer.ema.shadow[key].copy_(tensors[f"ema.{key}"])
    trainer.ema.updates = int(metadata["ema_updates"])
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    trainer.optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})
    built = trainer.optimizer.defaults  # as this trainer was built, not as the file's run was
    for group in trainer.optimizer.param_groups:
        group["capturable"] = built["capturable"]
        if isinstance(built["lr"], torch.Tensor):  # the graphed step reads its rate on the device
            group["lr"] = torch.tensor(float(group["lr"]), device=built["lr"].device)
    trainer.generator.set_state(tensors["rng.batch"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    trainer.history = [(int(step), float(loss), float(rate)) for step, loss, rate in tensors["history"].tolist()]
    trainer.step_index = int(metadata["step"])
