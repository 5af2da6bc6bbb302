// The browser benchmark page's script (benchmarks/wasm_bench.py serves it): our wasm runtime (SIMD128
// and portable tables) vs onnxruntime-web (wasm backend, int8 and fp32, one thread), interleaved round
// by round. performance.now() is coarse in a page (up to 0.1 ms), so each sample times a block of calls
// lasting at least blockMs and divides.
import { loadRuntime } from "/web/efm.mjs";
import * as ort from "/ort/ort.wasm.min.mjs";

ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = "/ort/";

async function bytes(url) {
  return new Uint8Array(await (await fetch(url)).arrayBuffer());
}

function randn(n, seed) {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const u = (s + 1) / 2147483649;
    s = (s * 1103515245 + 12345) % 2147483648;
    const v = (s + 1) / 2147483649;
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

async function block(fn, blockMs) {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < blockMs || n < 1) {
    await fn();
    n++;
    t = performance.now();
  }
  return (t - t0) / n;
}

async function main() {
  const cfg = await (await fetch("/bench/config.json")).json();
  const rt = await loadRuntime();
  const results = { variant: rt.variant, userAgent: navigator.userAgent, ort: ort.env.versions, models: [] };
  for (const m of cfg.models) {
    const efm = await bytes(m.efm);
    const ours = rt.open(efm), portable = rt.open(efm, { kernels: "portable" });
    const sessions = {};
    for (const [key, url] of [["onnxruntime-web int8", m.onnx_int8], ["onnxruntime-web fp32", m.onnx_fp32]]) {
      if (!url) continue;
      try {
        sessions[key] = await ort.InferenceSession.create(await bytes(url), { executionProviders: ["wasm"],
          graphOptimizationLevel: "all" });
      } catch (e) {
        results.errors = [...(results.errors || []), `${m.name} ${key}: ${e.message}`];
      }
    }
    const entry = { model: m.name, kernel_table: ours.kernelTable, batches: {} };
    for (const batch of cfg.batches) {
      const size = m.shape.reduce((a, b) => a * b, 1), x = randn(batch * size, 7);
      const runners = { "ours wasm-simd128": () => ours.run([x]) };
      if (batch === 1) runners["ours portable"] = () => portable.run([x]); // the scalar table, for reference
      for (const [key, s] of Object.entries(sessions)) {
        const t = new ort.Tensor("float32", x, [batch, ...m.shape]);
        runners[key] = () => s.run({ [s.inputNames[0]]: t });
      }
      for (const fn of Object.values(runners)) for (let i = 0; i < 3; i++) await fn(); // warm-up
      const samples = Object.fromEntries(Object.keys(runners).map((k) => [k, []]));
      for (let r = 0; r < cfg.rounds; r++)
        for (const [k, fn] of Object.entries(runners)) samples[k].push(await block(fn, cfg.block_ms));
      const stats = {};
      for (const [k, v] of Object.entries(samples)) {
        const s = [...v].sort((a, b) => a - b);
        stats[k] = { min_ms: s[0], median_ms: s[Math.floor(s.length / 2)], rounds: s.length };
      }
      // agreement: ours vs ort int8/fp32 on this batch (max abs difference of the outputs)
      const mine = Object.values(ours.run([x]))[0];
      for (const [key, s] of Object.entries(sessions)) {
        const out = Object.values(await s.run({ [s.inputNames[0]]: new ort.Tensor("float32", x, [batch, ...m.shape]) }))[0].data;
        let d = 0;
        for (let i = 0; i < mine.length; i++) d = Math.max(d, Math.abs(mine[i] - out[i]));
        stats[key].max_abs_diff_vs_ours = d;
      }
      entry.batches[batch] = stats;
    }
    ours.close();
    portable.close();
    results.models.push(entry);
  }
  window.benchResult = results;
}

main().catch((e) => { window.benchError = String(e.stack || e); });
