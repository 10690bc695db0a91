"""Data-parallel training on existing engines: torchrun + DistributedDataParallel (gloo on CPU, NCCL on GPU).

    torchrun --nproc_per_node 4 stages/train.py dcseg        # one node, 4 GPUs (or 4 CPU processes)

Every rank builds the same model from the same seed, takes its share of each global batch from
:class:`dcseg.data.sampler.TrainingSampler` (samples rank, rank + world_size, ...), and DDP averages the gradients,
so the optimiser steps stay identical on every rank. Rank 0 alone writes checkpoints, logs and the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_environment(device: str = "auto") -> DistributedContext:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1); a no-op otherwise.
    ``device``: the run's device setting (dcseg.hardware), which picks NCCL (CUDA) or gloo (CPU)."""
    from dcseg.hardware import resolve_device

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or dist.is_initialized():
        return current_context()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = resolve_device(device, local_rank).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    return current_context()


def current_context() -> DistributedContext:
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedContext()
    return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (for logging the global loss); identity in a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / dist.get_world_size()


def gather_floats(values: list[float], device: torch.device) -> list[list[float]]:
    """Every rank's ``values`` (the same length on each), in rank order; ``[values]`` in a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return [list(values)]
    local = torch.tensor(values, dtype=torch.float64, device=device)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return [g.cpu().tolist() for g in gathered]


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
