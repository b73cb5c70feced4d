"""Device choice, thread count and the `hello` event shared by every command."""

from __future__ import annotations

import contextlib
import os
import platform
from typing import ContextManager

import torch

from . import PROTOCOL_VERSION
from .errors import TrainerError
from .protocol import emit


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainerError(f"device {requested!r} requested but CUDA is not available to torch "
                               f"{torch.__version__}",
                               "set device to \"auto\" or \"cpu\", or install a CUDA build of torch")
        return torch.device(requested)
    if requested == "cpu":
        return torch.device("cpu")
    raise TrainerError(f"unknown device {requested!r}", "use \"auto\", \"cpu\" or \"cuda\"")


def autocast(device: torch.device, precision: str = "auto") -> ContextManager[object]:
    """bf16 autocast on CUDA (trainable weights stay fp32); plain fp32 on CPU unless bf16 is asked."""
    if use_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def use_bf16(device: torch.device, precision: str) -> bool:
    if precision == "auto":
        return device.type == "cuda"
    return precision == "bf16"


def base_dtype(device: torch.device, precision: str) -> torch.dtype:
    """The frozen base needs no fp32 master copy: under bf16 autocast it is held in bf16
    (half the memory, and no weight cast on every matmul)."""
    return torch.bfloat16 if use_bf16(device, precision) else torch.float32


def hello(device: torch.device) -> None:
    gpu = None
    mem = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = props.name
        mem = round(props.total_memory / 2**30, 2)
    # The machine's CUDA devices, not only the one this process uses: what torchrun can spread over.
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    emit("hello", python=platform.python_version(), torch=torch.__version__, device=device.type,
         gpu=gpu, gpu_memory_gb=mem, gpu_count=count, threads=torch.get_num_threads(), protocol=PROTOCOL_VERSION,
         pid=os.getpid())
