"""Data-parallel training through torchrun, on the same code path as one process.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them this is a world of one.
Every rank draws the same global batch from the same seeded generator and trains on
its own contiguous shard of it, and DistributedDataParallel averages the gradients,
so the update equals one process's on the whole global batch.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist

from ..core.errors import InputError


@dataclasses.dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (the batch size divides evenly)."""
        per_rank = batch.shape[0] // self.size
        return batch[self.rank * per_rank : (self.rank + 1) * per_rank]

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of a scalar tensor."""
        if not self.active:
            return value
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.size


def _int_variable(name: str, default: str) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{name}={value!r} is not an integer; unset it or start the run with torchrun") from None


def init_world() -> World:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on CPUs), if any."""
    size = _int_variable("WORLD_SIZE", "1")
    if size == 1:
        return World()
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise InputError(
            f"WORLD_SIZE={size} is set but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not: "
            "start the run with torchrun, or unset WORLD_SIZE for a single process"
        )
    world = World(rank=int(os.environ["RANK"]), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group(backend=backend)
    return world


def device_for(world: World) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", world.local_rank)
    return torch.device("cpu")


def close_world(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
