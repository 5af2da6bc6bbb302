# cython: language_level=3, boundscheck=False, wraparound=False, embedsignature=True
"""edgefleet's native int8 runtime (C kernels, whole-graph interpreter) as a Python extension.

>>> from edgefleet import _native
>>> m = _native.Model("model.int8.efm")          # doctest: +SKIP
>>> m.inputs[0]["shape"], m.kernel_path           # doctest: +SKIP
((None, 784), 'avx2')
>>> y, = m.run([x])                               # float32 outputs, GIL released   # doctest: +SKIP

``Model`` maps the file read-only and runs from it in place; ``Model.from_bytes`` takes one buffer.
Errors raise :class:`NativeError` (a ``ValueError``) with the loader's message.
"""

import mmap
import os
import threading
import time

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, free

cnp.import_array()

cdef extern from "efm.h":
    ctypedef struct efm_header:
        uint32_t version
        uint32_t n_tensors, n_ops, n_inputs, n_outputs
    ctypedef struct efm_tensor:
        uint32_t kind, dtype, rank, name
        int32_t dims[6]
        float scale
        int32_t zero_point
    ctypedef struct efm_op:
        uint32_t opcode
    ctypedef struct efm_opinfo:
        uint32_t flags
    ctypedef struct efm_blob:
        uint64_t offset
    ctypedef struct efm_pool:
        pass
    ctypedef struct efm_model:
        const efm_header *h
        const efm_tensor *tensors
        const efm_op *ops
        const uint32_t *ids
        const char *names
        efm_opinfo *info
        uint64_t arena_per_sample, scratch_bytes
        const void *kernels
    int efm_peek(const void *buf, uint64_t len, uint32_t *n_ops, char *err, size_t errlen)
    int efm_load(const void *buf, uint64_t len, int verify_checksum, efm_model *m, efm_opinfo *info,
                 uint32_t n_info, char *err, size_t errlen)
    uint64_t efm_arena_bytes(const efm_model *m, int64_t batch)
    int efm_run(const efm_model *m, int64_t batch, const void *const *inputs, float *const *outputs_f,
                int8_t *const *outputs_q, void *arena, uint64_t arena_len, char *err, size_t errlen) nogil
    const char *efm_kernel_path(const efm_model *m)
    int efm_use_kernels(efm_model *m, int which)
    efm_pool *efm_pool_create(int threads)
    void efm_pool_destroy(efm_pool *p)
    int efm_pool_threads(const efm_pool *p)
    void efm_use_pool(efm_model *m, efm_pool *p)
    ctypedef void (*efm_op_hook)(void *user, uint32_t op_index)
    int efm_run_hooked(const efm_model *m, int64_t batch, const void *const *inputs, float *const *outputs_f,
                       int8_t *const *outputs_q, void *arena, uint64_t arena_len, char *err, size_t errlen,
                       efm_op_hook hook, void *user)

cdef extern from "kernels.h":
    ctypedef struct efm_clamp:
        int32_t zo, lo, hi
    ctypedef void (*efm_gemm_fn)(int M, int N, int Kp, const int8_t *A, int64_t lda, const int8_t *Wp,
                                 const int64_t *bias, const int32_t *mult, const int32_t *shift, efm_clamp c,
                                 int8_t *out, int64_t ldm, int64_t ldn, uint32_t flags) nogil
    ctypedef struct efm_kernels:
        const char *name
        efm_gemm_fn gemm
        efm_gemm_fn gemm_w7
    const efm_kernels *efm_kernels_named(int which)

cdef extern from "efm_format.h":
    const char *efm_op_name(uint32_t opcode)
    enum: EFM_VERSION

FORMAT_VERSION = EFM_VERSION
cdef enum:
    _ERRLEN = 512


class NativeError(ValueError):
    """The native runtime refused a model file or an input (the message says why)."""


def _aligned(nbytes, zero=True):
    """A uint8 array whose data starts on a 64-byte boundary."""
    raw = (np.zeros if zero else np.empty)(nbytes + 64, np.uint8)
    off = (-raw.ctypes.data) % 64
    return raw[off:off + nbytes]


KERNEL_TABLES = ("best", "portable", "avx2", "avxvnni", "avx512vnni", "neon", "neondot")  # enum order of kernels.h


def _table(name):
    if name not in KERNEL_TABLES:
        raise NativeError(f"unknown kernel table {name!r}; known: {', '.join(KERNEL_TABLES)}")
    return KERNEL_TABLES.index(name)


def kernel_path():
    """Name of the kernel table this CPU gets: ``"avx512vnni"``, ``"avxvnni"``, ``"avx2"``, ``"neondot"``,
    ``"neon"`` or ``"portable"``."""
    return efm_kernels_named(0).name.decode()


def record_sizes():
    """Byte sizes of the .efm records as this C build lays them out (the exporter must agree)."""
    return {"header": sizeof(efm_header), "tensor": sizeof(efm_tensor), "op": sizeof(efm_op), "blob": sizeof(efm_blob)}


def default_threads():
    """Threads a model uses unless told: the physical cores this process may run on (at least 1)."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/core_id") as f:
                core = f.read().strip()
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id") as f:
                cores.add((f.read().strip(), core))
        except OSError:
            cores.add(("", str(cpu)))
    return max(1, len(cores))


def opcode_names():
    """``{name: opcode}`` of every op this C build knows (from the generated efm_format.h)."""
    names = {}
    for i in range(1, 256):
        name = efm_op_name(i).decode()
        if name != "?":
            names[name] = i
    return names


def kernel_tables():
    """Every kernel table this CPU can run (tests run them all)."""
    return [n for n in KERNEL_TABLES[1:] if efm_kernels_named(KERNEL_TABLES.index(n)) != NULL]


cdef class Model:
    """A loaded ``.efm`` model. ``verify=False`` skips the checksum (tests of the validators);
    ``kernels`` picks a kernel table by name (default: the best this CPU runs; tests run each);
    ``threads``: intra-op threads (default :func:`default_threads`, the physical cores; every count
    gives the same outputs bit for bit; 1 runs on the calling thread only)."""

    cdef efm_model m
    cdef efm_opinfo *info
    cdef efm_pool *pool
    cdef const void **pin
    cdef void **pout
    cdef object buf          # keeps the mapped/copied bytes alive
    cdef object _mm
    cdef public object _arenas
    cdef object _in_specs, _out_shapes, _out_float
    cdef object _lock
    cdef readonly object path

    def __cinit__(self):
        self.info = NULL
        self.pool = NULL
        self.pin = NULL
        self.pout = NULL

    def __init__(self, path=None, *, verify=True, kernels="best", threads=None, _data=None):
        self._arenas = {}
        self._in_specs = None
        self._lock = threading.Lock()
        self.path = path
        if _data is None:
            with open(path, "rb") as f:
                try:
                    self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                except ValueError:  # an empty file cannot be mapped
                    self._mm = b""
            data = np.frombuffer(self._mm, np.uint8) if len(self._mm) else np.zeros(0, np.uint8)
        else:
            data = np.frombuffer(_data, np.uint8)
        if data.size == 0 or data.ctypes.data % 64:
            copy = _aligned(data.size)
            copy[:] = data
            data = copy
        self.buf = data
        if threads is None:
            threads = default_threads()
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise NativeError(f"threads must be a positive integer, got {threads!r}")
        self._load(verify, _table(kernels))
        if threads > 1:
            self.pool = efm_pool_create(threads)  # NULL where the build has no threads: one thread
            efm_use_pool(&self.m, self.pool)

    @classmethod
    def from_bytes(cls, data, *, verify=True, kernels="best", threads=None):
        """Load from one buffer (bytes, bytearray, memoryview); copied only if not 64-byte aligned."""
        return cls(None, verify=verify, kernels=kernels, threads=threads, _data=data)

    cdef _load(self, bint verify, int table):
        cdef char err[_ERRLEN]
        cdef uint32_t n_ops = 0
        cdef const uint8_t[::1] view = self.buf
        cdef const void *ptr = <const void *>&view[0] if view.shape[0] else <const void *>err
        cdef uint64_t n = view.shape[0]
        err[0] = 0
        rc = efm_peek(ptr, n, &n_ops, err, _ERRLEN)
        if rc == 0:
            self.info = <efm_opinfo *>malloc(sizeof(efm_opinfo) * (n_ops + 1))
            if self.info == NULL:
                raise MemoryError()
            rc = efm_load(ptr, n, 1 if verify else 0, &self.m, self.info, n_ops + 1, err, _ERRLEN)
        if rc != 0:
            raise NativeError(err.decode("utf-8", "replace"))
        if efm_use_kernels(&self.m, table) != 0:
            raise NativeError(f"this CPU cannot run the {KERNEL_TABLES[table]} kernels")
        self.pin = <const void **>malloc(sizeof(void *) * (self.m.h.n_inputs + 1))
        self.pout = <void **>malloc(sizeof(void *) * 2 * (self.m.h.n_outputs + 1))  # float32, then int8 outputs
        if self.pin == NULL or self.pout == NULL:
            raise MemoryError()

    def __dealloc__(self):
        efm_pool_destroy(self.pool)
        free(self.info)
        free(self.pin)
        free(self.pout)

    # -- introspection --------------------------------------------------------------------------
    cdef dict _tensor(self, uint32_t tid):
        cdef const efm_tensor *t = &self.m.tensors[tid]
        dims = tuple(int(t.dims[d]) for d in range(t.rank))
        return {"name": (self.m.names + t.name).decode("utf-8", "replace"),
                "dtype": "int64" if t.kind == 1 else "float32",
                "shape": (None,) + dims[1:], "scale": float(t.scale), "zero_point": int(t.zero_point)}

    @property
    def version(self):
        return int(self.m.h.version)

    @property
    def inputs(self):
        """Graph inputs: dicts of name, dtype (float32 or int64 indices), shape (None = batch), qparams."""
        return [self._tensor(self.m.ids[k]) for k in range(self.m.h.n_inputs)]

    @property
    def outputs(self):
        return [self._tensor(self.m.ids[self.m.h.n_inputs + k]) for k in range(self.m.h.n_outputs)]

    @property
    def ops(self):
        """Op names in execution order."""
        return [efm_op_name(self.m.ops[i].opcode).decode() for i in range(self.m.h.n_ops)]

    @property
    def kernel_path(self):
        return efm_kernel_path(&self.m).decode()

    @property
    def threads(self):
        """Intra-op threads this model runs with (1 where the build has no threads)."""
        return int(efm_pool_threads(self.pool))

    def arena_bytes(self, batch=1):
        """Bytes of activation memory one run with this batch size uses."""
        return int(efm_arena_bytes(&self.m, batch))

    # -- run ------------------------------------------------------------------------------------
    def run(self, inputs, raw=False):
        """Run the whole graph on a list of arrays (one per input, batch axis first). Returns float32
        outputs, or the int8 outputs when ``raw``. The GIL is released while the C code runs."""
        cdef uint32_t n_in = self.m.h.n_inputs
        if len(inputs) != n_in:
            raise NativeError(f"model has {n_in} inputs, got {len(inputs)}")
        if self._in_specs is None:  # (name, dtype, per-sample shape), computed once
            self._in_specs = [(t["name"], np.dtype(t["dtype"]), tuple(t["shape"][1:])) for t in self.inputs]
            self._out_shapes = [tuple(t["shape"][1:]) for t in self.outputs]
        feeds = []
        batch = None
        for (name, want, shape), x in zip(self._in_specs, inputs):
            arr = np.asarray(x)
            if arr.dtype != want:
                raise NativeError(f"input {name!r}: expected dtype {want.name}, got {arr.dtype}")
            if arr.ndim != len(shape) + 1 or arr.shape[1:] != shape:
                raise NativeError(f"input {name!r}: expected shape {['N', *shape]}, got {list(arr.shape)}")
            if batch is None:
                batch = arr.shape[0]
            elif arr.shape[0] != batch:
                raise NativeError("all inputs must have the same batch size")
            feeds.append(arr if cnp.PyArray_IS_C_CONTIGUOUS(arr) else np.ascontiguousarray(arr))
        if batch is None or batch < 1:
            raise NativeError(f"batch size must be at least 1, got {batch}")
        return self._run_checked(feeds, batch, raw)

    def _run_checked(self, list feeds, Py_ssize_t batch, bint raw=False):
        """``run`` on inputs the caller has already checked (C-contiguous arrays of the model's dtypes
        and per-sample shapes, one batch size >= 1): the SDK backend's path, without a second check."""
        cdef uint32_t n_in = self.m.h.n_inputs, n_out = self.m.h.n_outputs, k
        if self._out_shapes is None:
            self._out_shapes = [tuple(t["shape"][1:]) for t in self.outputs]
        if self._out_float is None:  # an output written by a precision island is float32 even when raw (as run_int)
            self._out_float = [self.m.tensors[self.m.ids[n_in + k]].dtype == 3 for k in range(n_out)]
        outs = [np.empty((batch, *shape), np.int8 if raw and not fl else np.float32)
                for shape, fl in zip(self._out_shapes, self._out_float)]
        cdef char err[_ERRLEN]
        cdef int rc
        cdef int64_t b = batch
        cdef uint64_t alen
        cdef void *aptr
        cdef const efm_model *mp = &self.m
        cdef const void **pin = self.pin
        cdef void **pout = self.pout
        cdef void *data
        err[0] = 0
        with self._lock:  # one run at a time per model: the arena, pointer arrays and thread pool are shared
            for k in range(n_in):
                pin[k] = <const void *>cnp.PyArray_DATA(<cnp.ndarray>feeds[k])
            for k in range(n_out):  # pout[k]: float32 destinations, pout[n_out + 1 + k]: int8 ones
                data = cnp.PyArray_DATA(<cnp.ndarray>outs[k])
                pout[k] = data if not raw or self._out_float[k] else NULL
                pout[n_out + 1 + k] = data if raw and not self._out_float[k] else NULL
            arena = self._arenas.get(batch)
            if arena is None:
                need = efm_arena_bytes(&self.m, batch)
                if need == 0:
                    raise NativeError(f"batch size {batch} is too large for this model")
                arena = self._arenas[batch] = _aligned(need, zero=False)
                while len(self._arenas) > 4:  # keep a few batch sizes, not every one ever seen
                    self._arenas.pop(next(iter(self._arenas)))
            alen = arena.size
            aptr = cnp.PyArray_DATA(<cnp.ndarray>arena)
            with nogil:
                rc = efm_run(mp, b, pin, <float *const *>pout, <int8_t *const *>(pout + n_out + 1), aptr, alen, err,
                             _ERRLEN)
        if rc != 0:
            raise NativeError(err.decode("utf-8", "replace"))
        return outs


def all_finite(cnp.ndarray x):
    """True when a C-contiguous float32 array holds no NaN or infinity (one pass, GIL released;
    the SDK's input check without numpy temporaries)."""
    if x.dtype != np.float32 or not cnp.PyArray_IS_C_CONTIGUOUS(x):
        return bool(np.isfinite(x).all())
    cdef const uint32_t *p = <const uint32_t *>cnp.PyArray_DATA(x)
    cdef Py_ssize_t i, n = x.size
    cdef uint32_t bad = 0
    with nogil:
        for i in range(n):
            bad |= <uint32_t>((p[i] & 0x7F800000u) == 0x7F800000u)
    return bad == 0


cdef void _profile_hook(void *user, uint32_t op_index) noexcept with gil:
    (<list>user).append(time.perf_counter_ns())


def profile(Model model, inputs, int repeats=20):
    """Median wall time of each op in microseconds over ``repeats`` runs: a list of
    ``(index, op, microseconds)`` (for the benchmark's profile; holds the GIL between ops)."""
    feeds = [np.ascontiguousarray(x) for x in inputs]
    model.run(feeds)  # validates the inputs and allocates the arena
    batch = feeds[0].shape[0]
    arena = model._arenas[batch]
    lock = model._lock
    cdef uint32_t n_in = len(feeds)
    cdef const void **pin = <const void **>malloc(sizeof(void *) * n_in)
    cdef char err[_ERRLEN]
    times = []
    try:
        for k in range(n_in):
            pin[k] = <const void *><size_t>feeds[k].ctypes.data
        for _ in range(repeats):
            stamps = [time.perf_counter_ns()]
            with lock:
                rc = efm_run_hooked(&model.m, batch, pin, NULL, NULL, <void *><size_t>arena.ctypes.data, arena.size,
                                    err, _ERRLEN, _profile_hook, <void *>stamps)
            if rc:
                raise NativeError(err.decode("utf-8", "replace"))
            times.append(np.diff(stamps))
    finally:
        free(pin)
    med = np.median(np.array(times), axis=0) / 1e3
    return [(i, op, float(us)) for i, (op, us) in enumerate(zip(model.ops, med))]


def gemm(a, w_packed, int n, bias, mult, shift, int zo, int lo, int hi, kernel="best", vector_requant=None):
    """Direct entry to the GEMM kernel (for tests): ``a`` int8 [M, Kp], ``w_packed`` the packed int8
    weights of ``n`` output channels, ``bias`` int64, ``mult``/``shift`` int32 per channel.
    ``kernel``: a table name (``"portable"``, ``"avx2"``, ``"avxvnni"``, ``"best"``) for its general GEMM, or
    ``"<table>-w7"`` for its 7-bit one (exact only when every |w| <= 63 on avx2).
    ``vector_requant``: allow the int32-lane requantization (default: when the bound of the loader holds)."""
    cdef const int8_t[:, ::1] A = np.ascontiguousarray(a, np.int8)
    cdef int M = A.shape[0], Kp = A.shape[1]
    if Kp % 4 or M < 1:
        raise NativeError("gemm: K must be a positive multiple of 4")
    npad = (n + 7) // 8 * 8
    wp = np.ascontiguousarray(w_packed, np.int8).reshape(-1)
    if wp.size != npad * Kp:
        raise NativeError(f"gemm: packed weights must hold {npad * Kp} bytes, got {wp.size}")
    wbuf = _aligned(wp.size)
    wbuf[:] = wp.view(np.uint8)
    abuf = _aligned(A.shape[0] * Kp + 64)
    abuf[:M * Kp] = np.asarray(A).view(np.uint8).reshape(-1)
    cdef const int64_t[::1] B = np.ascontiguousarray(bias, np.int64)
    cdef const int32_t[::1] MU = np.ascontiguousarray(mult, np.int32)
    cdef const int32_t[::1] SH = np.ascontiguousarray(shift, np.int32)
    if B.shape[0] != n or MU.shape[0] != n or SH.shape[0] != n:
        raise NativeError("gemm: bias/mult/shift need one entry per output channel")
    for s in SH:
        if not 1 <= s <= 62:
            raise NativeError("gemm: shift out of range")
    if vector_requant is None:
        wmax = int(np.abs(wp.astype(np.int32)).max()) if wp.size else 0
        vector_requant = int(np.abs(np.asarray(B)).max()) + Kp * 255 * wmax < 2 ** 31
    cdef uint32_t flags = 2 if vector_requant else 0
    if vector_requant and all(s >= 31 for s in SH):
        flags |= 4  # multipliers below 1: the short sequence (as the loader decides)
    out = np.empty((M, n), np.int8)
    cdef int8_t[:, ::1] O = out
    table, _, w7 = kernel.partition("-")
    cdef const efm_kernels *k = efm_kernels_named(_table(table))
    if k == NULL:
        raise NativeError(f"this CPU cannot run the {table} kernels")
    cdef efm_gemm_fn f = k.gemm_w7 if w7 == "w7" else k.gemm
    cdef efm_clamp c
    c.zo, c.lo, c.hi = zo, lo, hi
    cdef const int8_t *ap = <const int8_t *><size_t>abuf.ctypes.data
    cdef const int8_t *wptr = <const int8_t *><size_t>wbuf.ctypes.data
    with nogil:
        f(M, n, Kp, ap, Kp, wptr, &B[0], &MU[0], &SH[0], c, &O[0, 0], n, 1, flags)
    return out
