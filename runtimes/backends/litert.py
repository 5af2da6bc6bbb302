"""The ``litert`` backend: runs ``.tflite`` artifacts with LiteRT's Interpreter.

``ai-edge-litert`` is the maintained successor of ``tflite-runtime``; where a device only has
``tflite_runtime``, its Interpreter has the same API and is used instead. The default op resolver
applies XNNPACK, as an app would.

Inputs and outputs are the model's ``serving_default`` signature (the names edgefleet's exporter
writes); a batch size other than the file's is applied with ``resize_tensor_input`` (the exporter
marks the batch axis dynamic in ``shape_signature``).
"""

from __future__ import annotations

from pathlib import Path

from ..base import Runtime, TensorSpec

_DTYPES = {"float32": "float32", "int8": "int8", "uint8": "uint8", "int32": "int32", "int64": "int64"}


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # same API on devices without ai-edge-litert
    return Interpreter


class LiteRtRuntime(Runtime):
    name = "litert"
    extra = "litert"
    targets = ("tflite-fp32", "tflite-int8")

    @classmethod
    def _available(cls):
        _interpreter_class()
        return None

    def _load(self, path: Path):
        self._interp = _interpreter_class()(model_path=str(path), num_threads=self.threads)
        self._interp.allocate_tensors()
        inputs = {d["index"]: d for d in self._interp.get_input_details()}
        outputs = {d["index"]: d for d in self._interp.get_output_details()}
        signatures = self._interp.get_signature_list()
        if signatures:
            # the signature's names are the model's public ones; map them onto tensor indices
            runner = self._interp.get_signature_runner(next(iter(signatures)))
            in_map = {name: d["index"] for name, d in runner.get_input_details().items()}
            out_map = {name: d["index"] for name, d in runner.get_output_details().items()}
        else:
            in_map = {d["name"]: i for i, d in inputs.items()}
            out_map = {d["name"]: i for i, d in outputs.items()}
        self._in_index, self._out_index = in_map, out_map
        specs = []
        for name, index in in_map.items():
            d = inputs[index]
            sig = d.get("shape_signature")
            dims = list(sig) if sig is not None and len(sig) else list(d["shape"])
            shape = tuple(None if int(s) < 0 else int(s) for s in dims)
            specs.append(TensorSpec(name, _DTYPES.get(d["dtype"].__name__, d["dtype"].__name__), shape))
        self._shapes = {name: tuple(inputs[i]["shape"]) for name, i in in_map.items()}
        return specs, list(out_map)

    def _run(self, feeds):
        resized = False
        for name, value in feeds.items():
            if tuple(value.shape) != self._shapes[name]:
                self._interp.resize_tensor_input(self._in_index[name], list(value.shape))
                self._shapes[name] = tuple(value.shape)
                resized = True
        if resized:
            self._interp.allocate_tensors()
        for name, value in feeds.items():
            self._interp.set_tensor(self._in_index[name], value)
        self._interp.invoke()
        return [self._interp.get_tensor(self._out_index[name]).copy() for name in self.output_names]
