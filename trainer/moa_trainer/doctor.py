"""`doctor`: what the trainer would run on (hello) and that it can start at all (done)."""

from __future__ import annotations

import time

from .protocol import emit
from .runtime import hello, pick_device


def run() -> None:
    start = time.perf_counter()
    import numpy

    device = pick_device("auto")
    hello(device)
    emit("done", stopped=False, elapsed_s=round(time.perf_counter() - start, 3), numpy=numpy.__version__)
