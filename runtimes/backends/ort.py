"""The ``onnxruntime`` backend (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path

from ..base import Runtime, TensorSpec

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
               "tensor(int32)": "int32", "tensor(int64)": "int64"}


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    extra = "onnxruntime"
    targets = ("onnx-fp32", "onnx-int8", "teacher-fp32")

    @classmethod
    def _available(cls):
        import onnxruntime  # noqa: F401
        return None

    def _load(self, path: Path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        specs = []
        for inp in self._session.get_inputs():
            shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
            specs.append(TensorSpec(inp.name, _ORT_DTYPES.get(inp.type, inp.type), shape))
        return specs, [o.name for o in self._session.get_outputs()]

    def _run(self, feeds):
        return self._session.run(self.output_names, feeds)

    def run_outputs(self, names: list[str], feeds: dict) -> list:
        """Only the outputs ``names``, for checked ``feeds`` (onnxruntime computes just what they
        need): calibration fetches each tensor's values or only its range this way."""
        return self._session.run(names, feeds)
