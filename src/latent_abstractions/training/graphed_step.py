"""A training step replayed from one CUDA graph: forward, backward, clipping, fused
AdamW (learning rate read from the device) and the foreach EMA, captured once and then
launched as a single graph a step, so the host no longer issues ~1,000 kernels a step.

The batch draws and the gather stay outside the graph: they are copied into fixed input
buffers before each replay. The first ``WARMUP_STEPS`` steps run eagerly on a side
stream (the optimizer's state and cuDNN's kernel choice must exist before capture);
they are real steps. A capture that fails falls back to the eager step with one warning
naming the cause, and so does a request that cannot be met (no CUDA, several processes).
See docs/gpu.md.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from .distributed import World

log = logging.getLogger("train")

WARMUP_STEPS = 3  # the PyTorch CUDA-graph recipe's eager iterations before capture
Update = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]  # (x0, values, batch) -> loss


class GraphableTrainer(Protocol):
    """What the graph needs of train.Trainer, which owns every piece of the state."""

    device: torch.device
    optimizer: torch.optim.Optimizer
    ema: Any

    def update(self, x0: torch.Tensor, values: torch.Tensor, batch: Any) -> torch.Tensor: ...
    def step_inputs(self, x0: torch.Tensor, values: torch.Tensor, batch: Any) -> Sequence[torch.Tensor]: ...
    def set_learning_rate(self) -> None: ...
    def compute(self, inputs: Sequence[torch.Tensor], ema_weight: torch.Tensor) -> torch.Tensor: ...
    def advance_step(self) -> None: ...


def refusal(device: torch.device, world: World) -> str | None:
    """Why a run on ``device`` in ``world`` cannot be graphed, as its warning; None if it can."""
    if device.type != "cuda":
        return f"train.cuda_graph needs a CUDA device; {device} trains eagerly"
    if world.active:
        return "train.cuda_graph: one process only (the gradient all-reduce is not captured); training eagerly"
    return None


class GraphedUpdate:
    """``trainer.update`` with the same arguments and result, replayed from a CUDA graph."""

    def __init__(self, trainer: GraphableTrainer):
        self.trainer = trainer
        self.warmed = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager = False  # after a failed capture
        self.inputs: Sequence[torch.Tensor] | None = None
        self.ema_weight: torch.Tensor | None = None
        self.loss: torch.Tensor | None = None

    def __call__(self, x0: torch.Tensor, values: torch.Tensor, batch: Any) -> torch.Tensor:
        if self.eager:
            return self.trainer.update(x0, values, batch)
        if self.warmed < WARMUP_STEPS:
            self.warmed += 1
            with self._side_stream():
                return self.trainer.update(x0, values, batch)
        inputs = self.trainer.step_inputs(x0, values, batch)
        if self.graph is None:
            try:
                self._capture(inputs)
            except Exception as exc:  # any op the graph cannot hold: never silently slower
                cause = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log.warning("train.cuda_graph: capture failed (%s); training eagerly", cause)
                self.eager = True
                return self.trainer.update(x0, values, batch)
        return self._replay(inputs)

    def _side_stream(self):
        if self.trainer.device.type != "cuda":
            return contextlib.nullcontext()
        stream = torch.cuda.Stream(self.trainer.device)
        stream.wait_stream(torch.cuda.current_stream(self.trainer.device))
        return _joined(stream, self.trainer.device)

    def _capture(self, inputs: Sequence[torch.Tensor]) -> None:
        """Record one step into a graph: nothing runs, the weights stay as they are. The
        trainer built AdamW capturable, its rate a device tensor (Trainer.restore keeps both)."""
        trainer = self.trainer
        graph = torch.cuda.CUDAGraph()
        self.inputs = type(inputs)(*(value.clone() for value in inputs))
        self.ema_weight = torch.zeros((), device=trainer.device)
        trainer.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self.loss = trainer.compute(self.inputs, self.ema_weight)
        self.graph = graph

    def _replay(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        trainer = self.trainer
        for buffer, value in zip(self.inputs, inputs):
            buffer.copy_(value, non_blocking=True)
        trainer.set_learning_rate()
        self.ema_weight.fill_(trainer.ema.next_weight())
        self.graph.replay()
        trainer.advance_step()
        return self.loss.detach().clone()  # the buffer is overwritten by the next replay


@contextlib.contextmanager
def _joined(stream: torch.cuda.Stream, device: torch.device):
    """Run on ``stream``, then make the current stream wait for it."""
    with torch.cuda.stream(stream):
        yield
    torch.cuda.current_stream(device).wait_stream(stream)
