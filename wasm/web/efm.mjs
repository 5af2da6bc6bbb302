// edgefleet's browser runtime: loads efm-simd128.wasm (or efm-portable.wasm on an engine without
// SIMD) and runs .efm models in it. Plain ES module, no dependencies; works in browsers and Node.
//
//   import { loadRuntime } from "./efm.mjs";
//   const rt = await loadRuntime();                 // feature-detects SIMD128
//   const model = rt.open(efmBytes);                // validates the whole file (checksum included)
//   const { logits } = model.run({ x: float32Array });   // batch inferred from the input length
//
// Memory: every buffer lives in the module's linear memory, allocated with its exported allocator
// above __heap_base; views are re-created after each call because the memory may grow.

// A 29-byte module whose only function returns i8x16.splat(0): valid only where SIMD128 is.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0,
  10, 8, 1, 6, 0, 65, 0, 253, 15, 11]);

export function hasSimd128() {
  return WebAssembly.validate(SIMD_PROBE);
}

/** A model file was refused, or a run failed; `message` says what and where. */
export class EfmError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = "EfmError";
    this.status = status;
  }
}

const KERNELS = { best: 0, portable: 1, "wasm-simd128": 5, simd128: 5 };
const ERR_BYTES = 256;
const T_ACT = 0, T_INPUT_I64 = 1;

async function readBytes(source) {
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) return source;
  const url = source instanceof URL ? source : new URL(String(source), import.meta.url);
  if (url.protocol === "file:") { // Node
    const fs = await import("node:fs/promises");
    return fs.readFile(url);
  }
  const resp = await fetch(url);
  if (!resp.ok) throw new EfmError(`could not fetch ${url}: HTTP ${resp.status}`);
  return new Uint8Array(await resp.arrayBuffer());
}

/** Instantiate the runtime. `variant`: "simd128" | "portable" (default: by feature detection);
 *  `wasm`: the module's bytes or URL (default: efm-<variant>.wasm beside this file). */
export async function loadRuntime({ variant, wasm } = {}) {
  variant = variant || (hasSimd128() ? "simd128" : "portable");
  if (variant !== "simd128" && variant !== "portable") throw new EfmError(`unknown wasm variant ${variant}`);
  if (variant === "simd128" && !hasSimd128()) throw new EfmError("this engine has no WebAssembly SIMD128");
  const bytes = await readBytes(wasm || new URL(`./efm-${variant}.wasm`, import.meta.url));
  const { instance } = await WebAssembly.instantiate(bytes, {});
  return new EfmRuntime(instance, variant);
}

export class EfmRuntime {
  constructor(instance, variant) {
    this.exports = instance.exports;
    this.variant = variant;
    this.simd128 = this.exports.efw_simd128() === 1;
    this.heapBase = this.exports.__heap_base.value;
    this.modelBytes = this.exports.efw_model_bytes();
    this.opinfoBytes = this.exports.efw_opinfo_bytes();
    this.err = this.alloc(ERR_BYTES);
  }

  alloc(n) {
    const p = this.exports.efw_alloc(Math.max(1, n));
    if (!p) throw new EfmError(`out of wasm memory (asked for ${n} bytes)`);
    return p;
  }

  free(p) {
    if (p) this.exports.efw_free(p);
  }

  get heapUsed() {
    return this.exports.efw_heap_used();
  }

  bytes() {
    return new Uint8Array(this.exports.memory.buffer);
  }

  cString(p) {
    const mem = this.bytes();
    let end = p;
    while (mem[end] !== 0) end++;
    return new TextDecoder().decode(mem.subarray(p, end));
  }

  errorText() {
    return this.cString(this.err);
  }

  /** Load a .efm file (Uint8Array or ArrayBuffer). verify=false skips the checksum (tests only). */
  open(data, { verify = true, kernels = "best" } = {}) {
    return new EfmModel(this, data instanceof Uint8Array ? data : new Uint8Array(data), verify, kernels);
  }
}

export class EfmModel {
  constructor(rt, data, verify, kernels) {
    this.rt = rt;
    this.ptrs = [];
    this.io = null;
    this.arena = 0;
    this.arenaBytes = 0;
    const ex = rt.exports;
    try {
      this.buf = this.#keep(rt.alloc(data.length));
      rt.bytes().set(data, this.buf);
      const nOps = ex.efw_peek(this.buf, data.length, rt.err, ERR_BYTES);
      if (nOps < 0) throw new EfmError(`invalid .efm file: ${rt.errorText()}`, -nOps);
      const info = this.#keep(rt.alloc(nOps * rt.opinfoBytes));
      this.rec = this.#keep(rt.alloc(rt.modelBytes));
      const rc = ex.efw_load(this.buf, data.length, verify ? 1 : 0, this.rec, info, nOps, rt.err, ERR_BYTES);
      if (rc !== 0) throw new EfmError(`invalid .efm file: ${rt.errorText()}`, rc);
      this.#readTensors(data);
      this.useKernels(kernels);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  #keep(p) {
    this.ptrs.push(p);
    return p;
  }

  // the loader has validated every table: read names and shapes straight from the file
  #readTensors(data) {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const u32 = (o) => dv.getUint32(o, true);
    const u64 = (o) => Number(dv.getBigUint64(o, true));
    const nIn = u32(40), nOut = u32(44), tensorsOff = u64(48), idsOff = u64(72), namesOff = u64(80);
    const name = (off) => {
      let end = namesOff + off;
      while (data[end] !== 0) end++;
      return new TextDecoder().decode(data.subarray(namesOff + off, end));
    };
    const tensor = (id) => {
      const o = tensorsOff + 64 * id, kind = u32(o), rank = u32(o + 8);
      const shape = [null];
      for (let i = 1; i < rank; i++) shape.push(dv.getInt32(o + 16 + 4 * i, true));
      return { id, name: name(u32(o + 12)), kind, dtype: kind === T_INPUT_I64 ? "int64" : "float32", shape,
               size: shape.slice(1).reduce((a, b) => a * b, 1), scale: dv.getFloat32(o + 48, true),
               zeroPoint: dv.getInt32(o + 52, true) };
    };
    const ids = (start, n) => Array.from({ length: n }, (_, i) => u32(idsOff + 4 * (start + i)));
    this.inputs = ids(0, nIn).map(tensor);
    this.outputs = ids(nIn, nOut).map(tensor);
    for (const t of this.outputs) if (t.kind !== T_ACT) throw new EfmError(`output ${t.name} is not an activation`);
  }

  /** "best" | "portable" | "wasm-simd128": which kernel table runs this model. */
  useKernels(name) {
    const which = KERNELS[name];
    if (which === undefined || this.rt.exports.efw_use_kernels(this.rec, which) !== 0)
      throw new EfmError(`kernel table ${name} is not in the ${this.rt.variant} build`);
    this.kernelTable = this.rt.cString(this.rt.exports.efw_kernel_name(this.rec));
  }

  /** Run. `inputs`: an array in input order or an object by input name of typed arrays (Float32Array,
   *  or BigInt64Array / Int32Array / number arrays for int64 index inputs), batch-major.
   *  Returns { outputName: Float32Array } (raw: Int8Array of the quantized outputs). */
  run(inputs, { raw = false } = {}) {
    if (!this.rec) throw new EfmError("model is closed");
    const rt = this.rt, ex = rt.exports;
    const list = Array.isArray(inputs) ? inputs
      : (this.inputs.length === 1 && ArrayBuffer.isView(inputs)) ? [inputs]
      : this.inputs.map((t) => {
        if (!(t.name in inputs)) throw new EfmError(`input ${t.name} is missing`);
        return inputs[t.name];
      });
    if (list.length !== this.inputs.length) throw new EfmError(`model has ${this.inputs.length} inputs, got ${list.length}`);
    const batch = list[0].length / this.inputs[0].size;
    if (!Number.isInteger(batch) || batch < 1)
      throw new EfmError(`input ${this.inputs[0].name}: ${list[0].length} values is not a whole batch of ${this.inputs[0].size}`);
    this.inputs.forEach((t, i) => {
      if (list[i].length !== batch * t.size)
        throw new EfmError(`input ${t.name}: expected ${batch * t.size} values (batch ${batch}), got ${list[i].length}`);
    });
    const io = this.#buffers(batch);
    const heap = rt.bytes();
    this.inputs.forEach((t, i) => {
      const src = list[i];
      if (t.dtype === "int64") {
        const v = new BigInt64Array(heap.buffer, io.inputs[i], batch * t.size);
        for (let k = 0; k < v.length; k++) v[k] = BigInt(src[k]);
      } else {
        new Float32Array(heap.buffer, io.inputs[i], batch * t.size).set(src);
      }
    });
    const rc = ex.efw_run(this.rec, batch, io.inPtrs, raw ? 0 : io.outPtrs, raw ? io.outPtrs : 0, this.arena,
                          this.arenaBytes, rt.err, ERR_BYTES);
    if (rc !== 0) throw new EfmError(`run failed: ${rt.errorText()}`, rc);
    const buf = ex.memory.buffer, out = {};
    this.outputs.forEach((t, i) => {
      out[t.name] = raw ? new Int8Array(buf, io.outputs[i], batch * t.size).slice()
        : new Float32Array(buf, io.outputs[i], batch * t.size).slice();
    });
    return out;
  }

  // input/output buffers and the arena for one batch size, kept until the batch size changes
  #buffers(batch) {
    if (this.io && this.io.batch === batch) return this.io;
    const rt = this.rt;
    this.#freeBuffers();
    const need = rt.exports.efw_arena_bytes(this.rec, batch);
    if (!need) throw new EfmError(`batch ${batch} needs more memory than wasm32 has`);
    const io = { batch, ptrs: [] };
    const keep = (n) => { const p = rt.alloc(n); io.ptrs.push(p); return p; };
    this.arena = keep(need);
    this.arenaBytes = need;
    io.inputs = this.inputs.map((t) => keep(batch * t.size * (t.dtype === "int64" ? 8 : 4)));
    io.outputs = this.outputs.map((t) => keep(batch * t.size * 4));
    io.inPtrs = keep(4 * io.inputs.length);
    io.outPtrs = keep(4 * io.outputs.length);
    const heap32 = new Uint32Array(rt.exports.memory.buffer);
    io.inputs.forEach((p, i) => { heap32[io.inPtrs / 4 + i] = p; });
    io.outputs.forEach((p, i) => { heap32[io.outPtrs / 4 + i] = p; });
    this.io = io;
    return io;
  }

  #freeBuffers() {
    if (this.io) for (const p of this.io.ptrs) this.rt.free(p);
    this.io = null;
    this.arena = 0;
    this.arenaBytes = 0;
  }

  close() {
    this.#freeBuffers();
    for (const p of this.ptrs.reverse()) this.rt.free(p);
    this.ptrs = [];
    this.rec = 0;
  }
}
