"""Weight-only quantization of the base's matrices for onnxruntime's MatMulNBits (com.microsoft):
symmetric per block of `block` input rows, the default zero point 2^(bits-1), so no zero-point
input. The LoRA experts stay float graph inputs: switching and routing are unchanged."""

from __future__ import annotations

import numpy as np

WEIGHT_TYPES = {"f32": 32, "int8": 8, "int4": 4}


def pack_nbits(w: np.ndarray, bits: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """`w`: MatMul's B, [K, N] float32. Returns MatMulNBits' B (uint8 [N, K/block, block*bits/8])
    and scales (float32 [N * K/block])."""
    k, n = w.shape
    if bits not in (4, 8) or k % block or block % 2:
        raise ValueError(f"cannot pack [{k}, {n}] into {bits}-bit blocks of {block}")
    blocks = np.ascontiguousarray(w.T, dtype=np.float32).reshape(n, k // block, block)
    qmax = 2 ** (bits - 1) - 1
    amax = np.abs(blocks).max(axis=2, keepdims=True)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    q = (np.clip(np.rint(blocks / scale), -qmax - 1, qmax) + 2 ** (bits - 1)).astype(np.uint8)
    if bits == 4:  # two values a byte, the first in the low nibble
        q = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    return np.ascontiguousarray(q), scale.reshape(-1)


def unpack_nbits(b: np.ndarray, scales: np.ndarray, k: int, n: int, bits: int, block: int) -> np.ndarray:
    """The [K, N] float32 matrix MatMulNBits multiplies by (for tests and error figures)."""
    if bits == 4:
        q = np.empty(b.shape[:-1] + (b.shape[-1] * 2,), np.uint8)
        q[..., 0::2], q[..., 1::2] = b & 15, b >> 4
    else:
        q = b
    return ((q.astype(np.float32) - 2 ** (bits - 1)) * scales.reshape(n, k // block, 1)).reshape(n, k).T

# MatMulNBits' accuracy_level: 4 lets onnxruntime's CPU kernels quantize the activations to int8
# per block and use integer dot products (bench/core/RESULTS.md: the quantized-weights table).
ACCURACY_LEVEL = 4
