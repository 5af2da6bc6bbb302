// The wasm runtime behind a pipe, for CPython (edgefleet.runtimes.backends.wasm) and the tests:
// the same efm.mjs and .wasm the browser loads, run by Node.
//
// Frames both ways: u32 header length, JSON header, u32 payload length, payload (little endian).
//   {op: "open", variant, kernels, verify} + .efm bytes  -> {ok, id, variant, kernelTable, inputs, outputs}
//   {op: "run", id, raw} + inputs, concatenated           -> {ok, sizes} + outputs, concatenated
//   {op: "kernels", id, kernels}                          -> {ok, kernelTable}
//   {op: "close", id}                                     -> {ok}
// Any failure answers {ok: false, error} and the worker keeps serving.
import { loadRuntime } from "../web/efm.mjs";

const runtimes = new Map(); // variant -> EfmRuntime
const models = new Map();
let nextId = 1;

async function runtime(variant) {
  const key = variant || "auto";
  if (!runtimes.has(key)) runtimes.set(key, await loadRuntime({ variant }));
  return runtimes.get(key);
}

function describe(t) {
  return { name: t.name, dtype: t.dtype, shape: t.shape, size: t.size };
}

async function handle(h, payload) {
  if (h.op === "open") {
    const rt = await runtime(h.variant);
    const m = rt.open(payload, { verify: h.verify !== false, kernels: h.kernels || "best" });
    const id = nextId++;
    models.set(id, m);
    return [{ id, variant: rt.variant, kernelTable: m.kernelTable, inputs: m.inputs.map(describe),
              outputs: m.outputs.map(describe) }, null];
  }
  const m = models.get(h.id);
  if (!m) throw new Error(`no model ${h.id}`);
  if (h.op === "close") { m.close(); models.delete(h.id); return [{}, null]; }
  if (h.op === "kernels") { m.useKernels(h.kernels); return [{ kernelTable: m.kernelTable }, null]; }
  if (h.op !== "run") throw new Error(`unknown op ${h.op}`);
  // split the payload by the per-sample sizes: batch = first input's bytes / its sample bytes
  const width = (t) => (t.dtype === "int64" ? 8 : 4) * t.size;
  const per = m.inputs.reduce((a, t) => a + width(t), 0);
  if (payload.length % per !== 0) throw new Error(`inputs of ${payload.length} bytes are not a whole batch`);
  const batch = payload.length / per;
  let off = 0;
  const inputs = m.inputs.map((t) => {
    const n = batch * t.size, bytes = payload.slice(off, off + n * (t.dtype === "int64" ? 8 : 4));
    off += bytes.length;
    return t.dtype === "int64" ? new BigInt64Array(bytes.buffer, bytes.byteOffset, n)
      : new Float32Array(bytes.buffer, bytes.byteOffset, n);
  });
  const t0 = process.hrtime.bigint();
  const out = m.run(inputs, { raw: !!h.raw });
  const ns = Number(process.hrtime.bigint() - t0);
  const parts = m.outputs.map((t) => new Uint8Array(out[t.name].buffer));
  return [{ sizes: parts.map((p) => p.length), run_ns: ns }, Buffer.concat(parts)];
}

function send(header, payload) {
  const hb = Buffer.from(JSON.stringify(header));
  const pb = payload || Buffer.alloc(0);
  const lens = Buffer.alloc(4);
  lens.writeUInt32LE(hb.length);
  const plen = Buffer.alloc(4);
  plen.writeUInt32LE(pb.length);
  process.stdout.write(Buffer.concat([lens, hb, plen, pb]));
}

let pending = Buffer.alloc(0);
let chain = Promise.resolve();
process.stdin.on("data", (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  for (;;) {
    if (pending.length < 4) return;
    const hl = pending.readUInt32LE(0);
    if (pending.length < 8 + hl) return;
    const pl = pending.readUInt32LE(4 + hl);
    if (pending.length < 8 + hl + pl) return;
    const header = JSON.parse(pending.subarray(4, 4 + hl).toString());
    const payload = new Uint8Array(pending.subarray(8 + hl, 8 + hl + pl)); // a copy, 8-aligned
    pending = pending.subarray(8 + hl + pl);
    chain = chain.then(async () => {
      try {
        const [h, p] = await handle(header, payload);
        send({ ok: true, ...h }, p);
      } catch (e) {
        send({ ok: false, error: String(e.message || e) });
      }
    });
  }
});
process.stdin.on("end", () => chain.then(() => process.exit(0)));
