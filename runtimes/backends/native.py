"""The ``native`` backend: edgefleet's own int8 runtime (C kernels via the ``edgefleet._native``
extension) running a ``.efm`` artifact whole-graph in one call, with the GIL released.

The extension is built by ``pip install`` (setup.py). Where it is missing, the backend reports
itself unavailable with the reason (logged once) and the SDK picks another runtime.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgefleet._errors import DataError

from ..base import Runtime, TensorSpec

_log = logging.getLogger(__name__)
_warned = False


class NativeRuntime(Runtime):
    name = "native"
    extra = ""
    targets = ("efm-int8",)

    @classmethod
    def _available(cls):
        global _warned
        try:
            from edgefleet import _native  # noqa: F401
        except ImportError as e:
            reason = (f"the native extension edgefleet._native is not built ({e}); "
                      "reinstall edgefleet from source with a C compiler (bash scripts/setup.sh)")
            if not _warned:
                _log.warning("runtime 'native' unavailable: %s", reason)
                _warned = True
            return reason
        return None

    def _load(self, path: Path):
        from edgefleet import _native

        try:
            self._model = _native.Model(str(path), threads=self.threads)  # None: the physical cores
        except _native.NativeError as e:
            # the base class wraps this into RuntimeBackendError naming the backend and the file
            raise ValueError(f"invalid .efm file: {e}") from e
        specs = [TensorSpec(t["name"], t["dtype"], tuple(t["shape"])) for t in self._model.inputs]
        # the common call, one float32 array of the right shape, is checked here without the general path
        import numpy as np

        self._fast = (specs[0].name, specs[0].shape[1:], _native.all_finite, np.ndarray, np.float32) if (
            len(specs) == 1 and specs[0].dtype == "float32") else None
        return specs, [t["name"] for t in self._model.outputs]

    @property
    def kernel_path(self) -> str:
        """The kernel table this CPU runs (``"avx512vnni"``, ``"avxvnni"``, ``"avx2"``, ``"neon"``, ...)."""
        return self._model.kernel_path

    def _check_inputs(self, inputs):
        """The base class's checks; one C-contiguous float32 array of the model's shape (the usual call)
        takes a shorter path with the same verdicts (shape, dtype, NaN/infinity)."""
        fast = self._fast
        if fast is not None and type(inputs) is fast[3] and inputs.dtype == fast[4] and \
                inputs.shape[1:] == fast[1] and inputs.flags.c_contiguous:
            if not fast[2](inputs):
                raise DataError(f"input {fast[0]!r}: holds NaN or infinite values")
            return {fast[0]: inputs}
        return super()._check_inputs(inputs)

    def _run(self, feeds):
        from edgefleet import _native

        # the base class has checked names, dtypes and shapes and made every array C-contiguous
        arrays = [feeds[s.name] for s in self.input_specs]
        batch = arrays[0].shape[0]
        if batch == 0 or any(a.shape[0] != batch for a in arrays):
            raise DataError(f"runtime 'native': the batch is empty or differs between inputs "
                            f"({[a.shape[0] for a in arrays]})")
        try:
            return self._model._run_checked(arrays, batch)
        except _native.NativeError as e:
            raise DataError(f"runtime 'native': {e}") from e
