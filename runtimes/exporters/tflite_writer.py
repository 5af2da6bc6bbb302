"""A minimal writer of TFLite flatbuffers (schema v3) with the ``tflite`` bindings — no TensorFlow.

:class:`TfliteModel` collects tensors, constant buffers and operators in Python, then :meth:`to_bytes`
serializes one subgraph with a ``serving_default`` SignatureDef. It knows nothing about edgefleet's
IR; :mod:`.tflite_lower` decides what to write.

Things the TFLite runtime relies on that the schema does not say:

- buffer 0 must exist and be empty (tensors without data point at it);
- the file identifier is ``TFL3``;
- constant data is 16-byte aligned (the converter's ``force_align``), so kernels may read it in place;
- builtin codes >= 127 go in ``builtin_code`` with ``deprecated_builtin_code`` = 127
  (``PLACEHOLDER_FOR_GREATER_OP_CODES``);
- a dynamic batch axis is written as size 1 in ``shape`` and -1 in ``shape_signature``, so
  ``Interpreter.resize_tensor_input`` accepts another batch size.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
from tflite.BuiltinOperator import BuiltinOperator
from tflite.BuiltinOptions import BuiltinOptions
from tflite.TensorType import TensorType

from ._names import UniqueNames

SCHEMA_VERSION = 3
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127
# the generated builder functions live in modules named like the tables (``tflite`` re-exports the classes)
(Buffer, Model, Operator, OperatorCode, QuantizationParameters, SignatureDef, SubGraph, Tensor, TensorMap) = (
    importlib.import_module(f"tflite.{name}") for name in ("Buffer", "Model", "Operator", "OperatorCode",
                                                         "QuantizationParameters", "SignatureDef", "SubGraph",
                                                         "Tensor", "TensorMap"))
TENSOR_TYPES = {"float32": TensorType.FLOAT32, "int8": TensorType.INT8, "int32": TensorType.INT32,
                "int64": TensorType.INT64}


@dataclass
class Quant:
    """Affine quantization of one tensor; per-channel along ``axis`` when ``scale`` has several entries."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0


@dataclass
class TensorDef:
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int = 0
    quant: Quant | None = None
    dynamic_batch: bool = False


@dataclass
class OpDef:
    code: int
    inputs: list[int]
    outputs: list[int]
    options: str | None = None  # name of the options table, e.g. "Conv2DOptions"
    fields: dict[str, Any] = field(default_factory=dict)


class TfliteModel:
    """Tensors, buffers and operators of one subgraph, serialized by :meth:`to_bytes`."""

    def __init__(self, description: str = "edgefleet"):
        self.description = description
        self.tensors: list[TensorDef] = []
        self.buffers: list[bytes] = [b""]  # buffer 0: the empty buffer
        self.ops: list[OpDef] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self._unique = UniqueNames()

    # -- building --------------------------------------------------------------------------------
    def tensor(self, name: str, shape, dtype: str, quant: Quant | None = None, *, dynamic_batch: bool = False) -> int:
        """Add an activation tensor (no data); returns its index."""
        return self._add(TensorDef(self._unique(name), tuple(int(d) for d in shape), dtype, 0, quant, dynamic_batch))

    def const(self, name: str, array: np.ndarray, dtype: str | None = None, quant: Quant | None = None) -> int:
        """Add a constant tensor holding ``array`` (cast to ``dtype``); returns its index."""
        dtype = dtype or str(array.dtype)
        data = np.ascontiguousarray(np.asarray(array).astype(dtype, copy=False))
        self.buffers.append(data.tobytes())
        return self._add(TensorDef(self._unique(name), data.shape, dtype, len(self.buffers) - 1, quant))

    def op(self, code: int, inputs: list[int], outputs: list[int], options: str | None = None, **fields) -> None:
        """Append an operator; ``options`` names its builtin options table, ``fields`` its CamelCase fields."""
        self.ops.append(OpDef(code, list(inputs), list(outputs), options, fields))

    def shape_of(self, index: int) -> tuple[int, ...]:
        return self.tensors[index].shape

    def _add(self, t: TensorDef) -> int:
        self.tensors.append(t)
        return len(self.tensors) - 1

    # -- serializing -----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        b = flatbuffers.Builder(1024 + sum(len(x) for x in self.buffers))
        codes = sorted({op.code for op in self.ops})
        code_index = {c: i for i, c in enumerate(codes)}

        buffer_offs = [self._buffer(b, data) for data in self.buffers]
        tensor_offs = [self._tensor(b, t) for t in self.tensors]
        op_offs = [self._operator(b, op, code_index[op.code]) for op in self.ops]

        name = b.CreateString("main")
        t_vec = _table_vector(b, SubGraph.StartTensorsVector, tensor_offs)
        in_vec, out_vec = _int_vector(b, self.inputs), _int_vector(b, self.outputs)
        op_vec = _table_vector(b, SubGraph.StartOperatorsVector, op_offs)
        SubGraph.Start(b)
        SubGraph.AddTensors(b, t_vec)
        SubGraph.AddInputs(b, in_vec)
        SubGraph.AddOutputs(b, out_vec)
        SubGraph.AddOperators(b, op_vec)
        SubGraph.AddName(b, name)
        subgraph = SubGraph.End(b)

        code_offs = []
        for c in codes:
            OperatorCode.Start(b)
            OperatorCode.AddDeprecatedBuiltinCode(b, min(c, _PLACEHOLDER_FOR_GREATER_OP_CODES))
            OperatorCode.AddBuiltinCode(b, c)
            OperatorCode.AddVersion(b, 1)
            code_offs.append(OperatorCode.End(b))

        signature = self._signature(b)
        codes_vec = _table_vector(b, Model.StartOperatorCodesVector, code_offs)
        subgraphs_vec = _table_vector(b, Model.StartSubgraphsVector, [subgraph])
        buffers_vec = _table_vector(b, Model.StartBuffersVector, buffer_offs)
        sig_vec = _table_vector(b, Model.StartSignatureDefsVector, [signature])
        desc = b.CreateString(self.description)
        Model.Start(b)
        Model.AddVersion(b, SCHEMA_VERSION)
        Model.AddOperatorCodes(b, codes_vec)
        Model.AddSubgraphs(b, subgraphs_vec)
        Model.AddDescription(b, desc)
        Model.AddBuffers(b, buffers_vec)
        Model.AddSignatureDefs(b, sig_vec)
        b.Finish(Model.End(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    @staticmethod
    def _buffer(b, data: bytes) -> int:
        vec = None
        if data:
            b.StartVector(1, len(data), 16)
            b.head -= len(data)
            b.Bytes[b.head:b.head + len(data)] = data
            vec = b.EndVector()
        Buffer.Start(b)
        if vec is not None:
            Buffer.AddData(b, vec)
        return Buffer.End(b)

    @staticmethod
    def _tensor(b, t: TensorDef) -> int:
        name = b.CreateString(t.name)
        shape = b.CreateNumpyVector(np.asarray(t.shape, np.int32))
        signature = None
        if t.dynamic_batch:
            signature = b.CreateNumpyVector(np.asarray((-1, *t.shape[1:]), np.int32))
        quant = _quantization(b, t.quant) if t.quant is not None else None
        Tensor.Start(b)
        Tensor.AddShape(b, shape)
        Tensor.AddType(b, TENSOR_TYPES[t.dtype])
        Tensor.AddBuffer(b, t.buffer)
        Tensor.AddName(b, name)
        if quant is not None:
            Tensor.AddQuantization(b, quant)
        if signature is not None:
            Tensor.AddShapeSignature(b, signature)
        return Tensor.End(b)

    @staticmethod
    def _operator(b, op: OpDef, opcode_index: int) -> int:
        options = _options(b, op.options, op.fields) if op.options else None
        ins, outs = _int_vector(b, op.inputs), _int_vector(b, op.outputs)
        Operator.Start(b)
        Operator.AddOpcodeIndex(b, opcode_index)
        Operator.AddInputs(b, ins)
        Operator.AddOutputs(b, outs)
        if options is not None:
            Operator.AddBuiltinOptionsType(b, getattr(BuiltinOptions, op.options))
            Operator.AddBuiltinOptions(b, options)
        return Operator.End(b)

    def _signature(self, b) -> int:
        def tensor_maps(indices):
            offs = []
            for i in indices:
                name = b.CreateString(self.tensors[i].name)
                TensorMap.Start(b)
                TensorMap.AddName(b, name)
                TensorMap.AddTensorIndex(b, i)
                offs.append(TensorMap.End(b))
            return offs

        ins = _table_vector(b, SignatureDef.StartInputsVector, tensor_maps(self.inputs))
        outs = _table_vector(b, SignatureDef.StartOutputsVector, tensor_maps(self.outputs))
        key = b.CreateString("serving_default")
        SignatureDef.Start(b)
        SignatureDef.AddInputs(b, ins)
        SignatureDef.AddOutputs(b, outs)
        SignatureDef.AddSignatureKey(b, key)
        SignatureDef.AddSubgraphIndex(b, 0)
        return SignatureDef.End(b)


def _quantization(b, q: Quant) -> int:
    scale = b.CreateNumpyVector(np.asarray(q.scale, np.float32).reshape(-1))
    zp = b.CreateNumpyVector(np.asarray(q.zero_point, np.int64).reshape(-1))
    QuantizationParameters.Start(b)
    QuantizationParameters.AddScale(b, scale)
    QuantizationParameters.AddZeroPoint(b, zp)
    QuantizationParameters.AddQuantizedDimension(b, int(q.axis))
    return QuantizationParameters.End(b)


def _options(b, table: str, fields: dict[str, Any]) -> int:
    module = importlib.import_module(f"tflite.{table}")
    vectors = {k: b.CreateNumpyVector(np.asarray(v, np.int32)) for k, v in fields.items() if isinstance(v, (list, tuple))}
    module.Start(b)
    for key, value in fields.items():
        getattr(module, f"Add{key}")(b, vectors.get(key, value))
    return module.End(b)


def _int_vector(b, values) -> int:
    return b.CreateNumpyVector(np.asarray(values, np.int32))


def _table_vector(b, start, offsets) -> int:
    start(b, len(offsets))
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


__all__ = ["TfliteModel", "Quant", "BuiltinOperator", "TENSOR_TYPES"]
