from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from moa_trainer.errors import TrainerError
from moa_trainer.safetensors_io import load_file, load_metadata, read_header, save_file, serialize


def sample_tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(3, 4, generator=g),
        "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(2, 3, generator=g).bfloat16(),
        "i64": torch.arange(-3, 3, dtype=torch.int64).reshape(2, 3),
        "i32": torch.tensor([1, -2, 2**31 - 1], dtype=torch.int32),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }


def test_round_trip_all_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    tensors = sample_tensors()
    save_file(tensors, path, metadata={"format": "pt", "note": "x"})
    back = load_file(path)
    assert set(back) == set(tensors)
    for k, t in tensors.items():
        assert back[k].dtype == t.dtype and back[k].shape == t.shape, k
        assert torch.equal(back[k], t), k
    assert load_metadata(path) == {"format": "pt", "note": "x"}
    assert list(tmp_path.iterdir()) == [path], "atomic write left a temp file behind"
    _, _, data_start = read_header(path)
    assert data_start % 8 == 0


def test_interoperates_with_the_reference_package(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch", reason="safetensors package not installed")
    tensors = sample_tensors()
    ours = tmp_path / "ours.safetensors"
    theirs = tmp_path / "theirs.safetensors"
    save_file(tensors, ours)
    st.save_file(tensors, str(theirs), metadata={"k": "v"})
    for k, t in st.load_file(str(ours)).items():
        assert torch.equal(t, tensors[k]), k
    for k, t in load_file(theirs).items():
        assert torch.equal(t, tensors[k]), k
    assert load_metadata(theirs) == {"k": "v"}


def write_raw(path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    n = len(raw) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + raw + data)
    return path


@pytest.mark.parametrize("header,data,length,needle", [
    ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, None, "outside"),
    ({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None, "needs 12"),
    ({"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, None, "unsupported dtype"),
    ({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}}, b"\0" * 8, None, "invalid shape"),
    ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8, None, "outside"),
    (b"{not json", b"", None, "not JSON"),
    (b"[1, 2]", b"", None, "not a JSON object"),
    ({}, b"", 1 << 40, "exceeds"),
    ({}, b"", 10_000, "past the end"),
])
def test_bad_files_are_rejected_with_the_file_name(tmp_path: Path, header: object, data: bytes,
                                                   length: int | None, needle: str) -> None:
    path = write_raw(tmp_path / "bad.safetensors", header, data, length)
    with pytest.raises(TrainerError) as info:
        load_file(path)
    assert str(path) in info.value.message
    assert needle in info.value.message


def test_truncated_and_missing(tmp_path: Path) -> None:
    good = serialize({"w": torch.ones(4)})
    short = tmp_path / "short.safetensors"
    short.write_bytes(good[:-3])
    with pytest.raises(TrainerError, match="short.safetensors"):
        load_file(short)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"\1\2")
    with pytest.raises(TrainerError, match="shorter than the 8-byte"):
        load_file(tiny)
    with pytest.raises(TrainerError, match="not found"):
        load_file(tmp_path / "nope.safetensors")
