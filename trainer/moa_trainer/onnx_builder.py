"""A small builder for ONNX graphs written node by node (`onnx_graph.py`): unique value names,
initializers from numpy arrays, typed inputs and outputs."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

MS = "com.microsoft"
# The additive mask value: the most negative float32 (finite, so a fully masked row stays finite).
NEG = float(np.finfo(np.float32).min)


class ExternalData:
    """Initializers written to the weights file as the graph is built: each array goes to disk
    once, straight from its buffer, and the graph keeps only its name, shape and offset. Peak
    memory stays near the model's own weights, not several copies of them (bench/export_memory.py)."""

    def __init__(self, path: Path, location: str) -> None:
        self.file: BinaryIO = open(path, "wb")
        self.location = location
        self.offset = 0

    def tensor(self, name: str, value: np.ndarray) -> onnx.TensorProto:
        t = onnx.TensorProto()
        t.name = name
        t.data_type = helper.np_dtype_to_tensor_dtype(value.dtype)
        t.dims.extend(value.shape)
        t.data_location = onnx.TensorProto.EXTERNAL
        for key, v in (("location", self.location), ("offset", str(self.offset)), ("length", str(value.nbytes))):
            entry = t.external_data.add()
            entry.key, entry.value = key, v
        self.file.write(memoryview(value).cast("B"))
        self.offset += value.nbytes
        return t

    def close(self) -> None:
        self.file.close()


class Graph:
    """Nodes, initializers and I/O of one graph; names are made unique by a counter. With
    `external`, initializers of 1 KiB or more are streamed to the weights file."""

    def __init__(self, external: Optional[ExternalData] = None) -> None:
        self.external = external
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.n = 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{hint}_{self.n}"

    def op(self, op_type: str, inputs: list[str], hint: str = "", outputs: int = 1, domain: str = "",
           **attrs: object) -> list[str]:
        outs = [self.name(hint or op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(f"n_{op_type}"),
                                           domain=domain, **attrs))
        return outs

    def one(self, op_type: str, inputs: list[str], hint: str = "", domain: str = "", **attrs: object) -> str:
        return self.op(op_type, inputs, hint, 1, domain, **attrs)[0]

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        value = np.ascontiguousarray(value)
        if self.external is not None and value.nbytes >= 1024:
            self.inits.append(self.external.tensor(name, value))
        else:
            self.inits.append(numpy_helper.from_array(value, name))
        return name

    def per_layer(self, x: str, layers: int, hint: str) -> list[str]:
        """A [layers, …] value cut into one [1, …] value per layer (itself when there is one layer)."""
        return self.op("Split", [x], hint, outputs=layers, axis=0) if layers > 1 else [x]

    def ints(self, *values: int) -> str:
        return self.const("ints", np.array(values, dtype=np.int64))

    def input(self, name: str, elem: int, shape: list[object]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem, shape))
        return name

    def output(self, value: str, name: str, elem: int, shape: list[object]) -> None:
        self.nodes.append(helper.make_node("Identity", [value], [name], name=self.name("n_out")))
        self.outputs.append(helper.make_tensor_value_info(name, elem, shape))
