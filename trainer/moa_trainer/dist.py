"""Data parallelism under torchrun: every rank draws the same global batch and trains on its
own slice, gradients are averaged with all_reduce (what DDP does, without wrapping a module
that is never called as one: the LoRA stacks are applied through the model's adapter hook).

Rank 0 alone emits events and writes files; the others stay silent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor

from .errors import TrainerError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    # NCCL reduces CUDA tensors only; small CPU-side values travel through this device.
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_mean_(self, t: Tensor) -> Tensor:
        if self.world > 1:
            x = t.to(self.device)
            torch.distributed.all_reduce(x)
            t.copy_(x.div_(self.world))
        return t

    def all_reduce_grads_(self, params: Iterable[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.all_reduce_mean_(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def any(self, flag: bool) -> bool:
        """True on every rank if any rank says so (a stop request reaches rank 0 only)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast_(self, t: Tensor) -> Tensor:
        """Rank 0's values of `t` on every rank (what only rank 0 decided, such as an expert's best weights)."""
        if self.world > 1:
            x = t.detach().to(self.device).contiguous()
            torch.distributed.broadcast(x, src=0)
            t.copy_(x)
        return t

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_from_env(device: torch.device) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ.get("RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        torch.distributed.init_process_group(backend=backend)
    except Exception as e:  # noqa: BLE001 - any rendezvous failure is reported the same way
        raise TrainerError(f"torchrun: could not join the process group ({backend}): {e}", None) from None
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return Dist(rank=rank, world=world, device=torch.device("cuda", local))
    return Dist(rank=rank, world=world)
