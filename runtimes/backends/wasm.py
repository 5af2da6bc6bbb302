"""The ``wasm`` backend: the native runtime's C compiled to WebAssembly (``wasm/``), running a
``.efm`` artifact whole-graph — the browser's runtime.

Two hosts:

- **Pyodide** (in a page): the page loads ``wasm/web/efm.mjs`` and sets ``globalThis.edgefleetWasm``
  to its runtime (``await loadRuntime()``); Python reaches it through the JS FFI. Without numpy
  (Pyodide offline has none) use :func:`runner_factory` with ``Device(runner_factory=...)``.
- **CPython** (tests, benchmarks): the same ``efm.mjs`` and ``.wasm`` in a Node process
  (``wasm/node/efm_worker.mjs``) behind a pipe. Needs ``node`` and the built ``.wasm``
  (``bash wasm/build.sh``, run by ``scripts/setup.sh``); ``EDGEFLEET_WASM_DIR`` points at another
  ``wasm/`` folder.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

from edgefleet._errors import DataError, RuntimeBackendError

from ..base import Runtime, TensorSpec

PYODIDE = sys.platform == "emscripten"


def wasm_dir() -> Path:
    """The ``wasm/`` folder (source tree) holding ``web/efm.mjs`` and the built modules."""
    env = os.environ.get("EDGEFLEET_WASM_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "wasm"


# ---- the browser: JS FFI --------------------------------------------------------------------------
def _js_runtime():
    import js  # type: ignore[import-not-found]  # Pyodide only

    rt = getattr(js, "edgefleetWasm", None)
    if rt is None:
        raise RuntimeBackendError("runtime 'wasm': the page has not loaded efm.mjs (globalThis.edgefleetWasm is unset)")
    return rt


class _JsModel:
    """One model in the page's wasm runtime; inputs and outputs are flat lists of numbers."""

    def __init__(self, data: bytes, kernels: str = "best"):
        from pyodide.ffi import JsException, to_js  # type: ignore[import-not-found]

        rt = _js_runtime()
        try:
            self.model = rt.open(to_js(data), to_js({"kernels": kernels}, dict_converter=_js_object))
        except JsException as e:
            raise RuntimeBackendError(f"runtime 'wasm': {e}") from e
        self.variant = rt.variant
        self.kernel_table = self.model.kernelTable
        self.inputs = [_spec(t) for t in self.model.inputs.to_py()]
        self.outputs = [_spec(t) for t in self.model.outputs.to_py()]

    def run(self, flat_inputs: list, raw: bool = False) -> list:
        from js import Array, BigInt64Array, Float32Array  # type: ignore[import-not-found]
        from pyodide.ffi import JsException, to_js  # type: ignore[import-not-found]

        arrays = Array.new()
        for spec, values in zip(self.inputs, flat_inputs):
            arrays.push((BigInt64Array if spec["dtype"] == "int64" else Float32Array).new(to_js(values)))
        try:
            out = self.model.run(arrays, to_js({"raw": raw}, dict_converter=_js_object))
        except JsException as e:
            raise DataError(f"runtime 'wasm': {e}") from e
        return [getattr(out, spec["name"]).to_py().tolist() for spec in self.outputs]  # memoryview -> numbers


def _js_object(pairs):
    from js import Object  # type: ignore[import-not-found]
    return Object.fromEntries(pairs)


def _spec(t: dict) -> dict:
    return {"name": t["name"], "dtype": t["dtype"], "shape": [int(d) if isinstance(d, (int, float)) else None for d in t["shape"]],  # JS null: batch
            "size": int(t["size"])}


def runner_factory(target: str, path):
    """``Device(runner_factory=...)`` for Pyodide without numpy: rows (lists of floats) in, rows of
    the first output out, through the page's wasm runtime."""
    if target != "efm-int8":
        raise RuntimeBackendError(f"runtime 'wasm' runs efm-int8 artifacts, not {target}")
    model = _JsModel(Path(path).read_bytes())
    size_in, size_out = model.inputs[0]["size"], model.outputs[0]["size"]

    def run(rows):
        flat = [float(v) for row in rows for v in _flatten(row)]
        if len(flat) != len(rows) * size_in:
            raise DataError(f"runtime 'wasm': each row must hold {size_in} values")
        out = model.run([flat])[0]
        return [out[i * size_out:(i + 1) * size_out] for i in range(len(rows))]
    run.kernel_table = model.kernel_table
    return run


def _flatten(row):
    if isinstance(row, (list, tuple)):
        for v in row:
            yield from _flatten(v)
    else:
        yield row


# ---- CPython: a Node worker -----------------------------------------------------------------------
class _NodeWorker:
    """One ``node wasm/node/efm_worker.mjs`` per process, started on first use; calls are serialised."""

    _instance: _NodeWorker | None = None
    _guard = threading.Lock()

    def __init__(self):
        script = wasm_dir() / "node" / "efm_worker.mjs"
        self.proc = subprocess.Popen([shutil.which("node") or "node", str(script)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lock = threading.Lock()
        atexit.register(self.close)

    @classmethod
    def get(cls) -> _NodeWorker:
        with cls._guard:
            if cls._instance is None or cls._instance.proc.poll() is not None:
                cls._instance = cls()
            return cls._instance

    def call(self, header: dict, payload: bytes = b"") -> tuple[dict, bytes]:
        hb = json.dumps(header).encode()
        with self.lock:
            try:
                self.proc.stdin.write(struct.pack("<I", len(hb)) + hb + struct.pack("<I", len(payload)) + payload)
                self.proc.stdin.flush()
                (hl,) = struct.unpack("<I", self._read(4))
                reply = json.loads(self._read(hl))
                (pl,) = struct.unpack("<I", self._read(4))
                data = self._read(pl)
            except (OSError, EOFError) as e:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                raise RuntimeBackendError(f"runtime 'wasm': the node worker stopped ({e}) {err.strip()}") from e
        if not reply.get("ok"):
            raise _WorkerError(reply.get("error", "unknown error"))
        return reply, data

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.proc.stdout.read(n - len(buf))
            if not chunk:
                raise EOFError("end of stream")
            buf += chunk
        return buf

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class _WorkerError(Exception):
    pass


class WasmRuntime(Runtime):
    """Options: ``variant`` ("simd128" or "portable" build; default: what the engine supports),
    ``kernels`` ("best", "portable", "wasm-simd128")."""

    name = "wasm"
    extra = ""
    targets = ("efm-int8",)

    def __init__(self, path, *, threads: int | None = None, input_ranges=None, variant: str | None = None,
                 kernels: str = "best"):
        self.variant_asked, self.kernels_asked = variant, kernels
        super().__init__(path, threads=threads, input_ranges=input_ranges)

    @classmethod
    def _available(cls):
        if PYODIDE:
            try:
                _js_runtime()
            except RuntimeBackendError as e:
                return str(e)
            return None
        if not shutil.which("node"):
            return "Node.js (node) is not installed; the wasm runtime runs in browsers, and in Node for tests"
        built = wasm_dir() / "web" / "efm-simd128.wasm"
        if not built.is_file():
            return f"{built} is not built (run: bash wasm/build.sh)"
        return None

    def _load(self, path: Path):
        data = path.read_bytes()
        if PYODIDE:
            self._js = _JsModel(data, self.kernels_asked)
            self.variant, self.kernel_path = self._js.variant, self._js.kernel_table
            ins, outs = self._js.inputs, self._js.outputs
        else:
            self._worker = _NodeWorker.get()
            try:
                reply, _ = self._worker.call({"op": "open", "variant": self.variant_asked, "kernels": self.kernels_asked},
                                             data)
            except _WorkerError as e:
                raise ValueError(str(e)) from e  # the base class names the backend and the file
            self._id, self.variant, self.kernel_path = reply["id"], reply["variant"], reply["kernelTable"]
            ins, outs = reply["inputs"], reply["outputs"]
        self._outs = outs
        return [TensorSpec(t["name"], t["dtype"], tuple(t["shape"])) for t in ins], [t["name"] for t in outs]

    def run_raw(self, inputs):
        """The int8 outputs (before dequantization), as the tests compare them with ``native``."""
        return self._run_any(self._check_inputs(inputs), raw=True)

    def _run(self, feeds):
        return self._run_any(feeds, raw=False)

    def _run_any(self, feeds, raw: bool):
        import numpy as np

        arrays = [feeds[s.name] for s in self.input_specs]
        batch = arrays[0].shape[0]
        if batch == 0:
            raise DataError("runtime 'wasm': the batch is empty")
        if PYODIDE:
            flat = self._js.run([a.reshape(-1).tolist() for a in arrays], raw=raw)
            return [np.asarray(v, np.int8 if raw else np.float32).reshape(batch, *t["shape"][1:])
                    for v, t in zip(flat, self._outs)]
        payload = b"".join(a.tobytes() for a in arrays)
        try:
            reply, data = self._worker.call({"op": "run", "id": self._id, "raw": raw}, payload)
        except _WorkerError as e:
            raise DataError(f"runtime 'wasm': {e}") from e
        self.last_run_ns = reply["run_ns"]
        outs, off = [], 0
        for size, t in zip(reply["sizes"], self._outs):
            dt = np.int8 if raw else np.float32
            outs.append(np.frombuffer(data[off:off + size], dt).reshape(batch, *t["shape"][1:]).copy())
            off += size
        return outs

    def use_kernels(self, kernels: str) -> None:
        """Switch kernel table ("portable", "wasm-simd128", "best")."""
        if PYODIDE:
            self._js.model.useKernels(kernels)
            self.kernel_path = self._js.model.kernelTable
            return
        try:
            self.kernel_path = self._worker.call({"op": "kernels", "id": self._id, "kernels": kernels})[0]["kernelTable"]
        except _WorkerError as e:
            raise RuntimeBackendError(f"runtime 'wasm': {e}") from e

    def close(self) -> None:
        if not PYODIDE and getattr(self, "_id", None):
            try:
                self._worker.call({"op": "close", "id": self._id})
            except (RuntimeBackendError, _WorkerError):
                pass
            self._id = None
