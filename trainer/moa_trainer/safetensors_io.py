"""safetensors read/write with the standard library and torch only (no pickle, no extra package).

Format: u64 little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the raw little-endian tensor bytes; offsets are relative to the end of the header.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path
from typing import BinaryIO, Mapping

import torch

from .errors import TrainerError
from .fsutil import atomic_write

# Same cap as the reference implementation: a larger header is a corrupt or hostile file.
MAX_HEADER_BYTES = 100 * 1024 * 1024

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}

if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
    raise ImportError("moa_trainer.safetensors_io assumes a little-endian host")


class TensorInfo:
    __slots__ = ("dtype", "shape", "begin", "end")

    def __init__(self, dtype: torch.dtype, shape: list[int], begin: int, end: int) -> None:
        self.dtype = dtype
        self.shape = shape
        self.begin = begin
        self.end = end


def _bad(path: Path, why: str) -> TrainerError:
    return TrainerError(f"{path}: not a valid safetensors file: {why}",
                        "the file may be truncated or corrupt; re-create or re-download it")


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, TensorInfo], dict[str, str], int]:
    """Parse and validate the header. Returns (tensors, metadata, data_start)."""
    p = Path(path)
    if p.exists() and not p.is_file() and not p.is_dir():
        # A device or a pipe would be read forever (or block): only regular files are tensors.
        raise TrainerError(f"{p}: not a regular file, expected a .safetensors file", None)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            raw_len = f.read(8)
            if len(raw_len) < 8:
                raise _bad(p, f"file is {size} bytes, shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", raw_len)
            if n > MAX_HEADER_BYTES:
                raise _bad(p, f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte cap")
            if 8 + n > size:
                raise _bad(p, f"header length {n} runs past the end of the {size}-byte file")
            raw = f.read(n)
    except FileNotFoundError:
        raise TrainerError(f"{p}: file not found", None) from None
    except IsADirectoryError:
        raise TrainerError(f"{p}: is a directory, expected a .safetensors file", None) from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _bad(p, f"header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise _bad(p, "header is not a JSON object")
    data_start = 8 + n
    data_len = size - data_start
    meta_raw = header.pop("__metadata__", None) or {}
    if not isinstance(meta_raw, dict) or not all(isinstance(v, str) for v in meta_raw.values()):
        raise _bad(p, "__metadata__ must map strings to strings")
    infos: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise _bad(p, f"entry {name!r} is not an object")
        dtype = DTYPES.get(entry.get("dtype"))  # type: ignore[arg-type]
        if dtype is None:
            raise _bad(p, f"tensor {name!r} has unsupported dtype {entry.get('dtype')!r}")
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise _bad(p, f"tensor {name!r} has invalid shape {shape!r}")
        offs = entry.get("data_offsets")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) for o in offs)):
            raise _bad(p, f"tensor {name!r} has invalid data_offsets {offs!r}")
        begin, end = offs
        if not 0 <= begin <= end <= data_len:
            raise _bad(p, f"tensor {name!r} offsets [{begin}, {end}] are outside the "
                          f"{data_len}-byte data section")
        numel = 1
        for d in shape:
            numel *= d
        itemsize = torch.empty((), dtype=dtype).element_size()
        if end - begin != numel * itemsize:
            raise _bad(p, f"tensor {name!r} has {end - begin} bytes but shape {shape} of "
                          f"{entry['dtype']} needs {numel * itemsize}")
        infos[name] = TensorInfo(dtype, shape, begin, end)
    # As the reference implementation requires: the tensors tile the data section exactly, in
    # offset order, with no overlap, gap or trailing bytes.
    at = 0
    for name, info in sorted(infos.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if info.begin != at:
            raise _bad(p, f"tensor {name!r} starts at byte {info.begin} of the data section, expected {at} "
                          "(tensors overlap or leave a gap)")
        at = info.end
    if at != data_len:
        raise _bad(p, f"the tensors cover {at} bytes but the data section holds {data_len}")
    return infos, dict(meta_raw), data_start


def _read_tensor(f: BinaryIO, info: TensorInfo, data_start: int, path: Path, name: str) -> torch.Tensor:
    nbytes = info.end - info.begin
    if nbytes == 0:
        return torch.empty(info.shape, dtype=info.dtype)
    f.seek(data_start + info.begin)
    buf = bytearray(nbytes)
    got = f.readinto(buf)
    if got != nbytes:
        raise _bad(path, f"tensor {name!r}: short read ({got} of {nbytes} bytes)")
    # bytearray is writable, so torch shares it without a copy and without a warning.
    return torch.frombuffer(buf, dtype=info.dtype).reshape(info.shape)


def load_file(path: str | os.PathLike[str], names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Load tensors (all, or `names`) to CPU."""
    p = Path(path)
    infos, _, data_start = read_header(p)
    wanted = list(infos) if names is None else names
    out: dict[str, torch.Tensor] = {}
    with p.open("rb") as f:
        for name in wanted:
            info = infos.get(name)
            if info is None:
                raise TrainerError(f"{p}: has no tensor named {name!r}", None)
            out[name] = _read_tensor(f, info, data_start, p, name)
    return out


def load_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    return read_header(path)[1]


def _tensor_bytes(t: torch.Tensor) -> bytes:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    # View as bytes first: numpy has no bfloat16.
    return flat.view(torch.uint8).numpy().tobytes()


def serialize(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in NAMES:
            raise TrainerError(f"cannot write tensor {name!r}: dtype {t.dtype} is not supported", None)
        data = _tensor_bytes(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
    raw += b" " * (-len(raw) % 8)
    return b"".join([struct.pack("<Q", len(raw)), raw, *chunks])


def save_file(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
              metadata: Mapping[str, str] | None = None) -> None:
    """Write atomically: readers see either the old file or the complete new one."""
    data = serialize(tensors, metadata)
    atomic_write(path, lambda f: f.write(data))
