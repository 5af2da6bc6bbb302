// The demo page: a browser device of the fleet. The wasm runtime (efm.mjs) starts at once; Pyodide
// and the edgefleet SDK (a pure-Python wheel) load beside it. The SDK's Device runs the bundle through
// the wasm runtime, summarises traffic into telemetry windows, queues them in IndexedDB (IDBFS) and
// syncs with the coordinator that serves this page (same origin, Connect over fetch).
//
// config.json (written by `edgefleet demo --browser`): bundle (folder URL), wheel (URL),
// enrollment_token, trusted_key (base64 ed25519), samples (URL of {x, y}), sync_ms, window_size.
import { EfmError, loadRuntime } from "./efm.mjs";

const $ = (id) => document.getElementById(id);
const app = { ready: false, busy: Promise.resolve(), samples: null, next: 0, delivered: 0, lastPolicy: "" };
window.edgefleetApp = app; // read by the end-to-end test

function message(text, kind = "error") {
  const m = $("message");
  m.textContent = text;
  m.className = kind;
  m.hidden = false;
  note(text);
}

function clearMessage() {
  $("message").hidden = true;
}

function note(text) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("log").prepend(li);
  while ($("log").children.length > 30) $("log").lastChild.remove();
}

// one Python call at a time (the SDK is not re-entrant from JS callbacks)
function serial(fn) {
  const run = app.busy.then(fn, fn);
  app.busy = run.catch(() => {});
  return run;
}

// ---- drawing pad --------------------------------------------------------------------------------
const pad = $("pad"), ctx = pad.getContext("2d");
let drawing = false, inked = false;

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
}

pad.addEventListener("pointerdown", (e) => { drawing = true; stroke(e, true); });
pad.addEventListener("pointermove", (e) => { if (drawing) stroke(e, false); });
window.addEventListener("pointerup", () => { drawing = false; });

function stroke(e, start) {
  const r = pad.getBoundingClientRect(), x = e.clientX - r.left, y = e.clientY - r.top;
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 18;
  ctx.lineCap = ctx.lineJoin = "round";
  if (start) { ctx.beginPath(); ctx.moveTo(x, y); }
  ctx.lineTo(x, y);
  ctx.stroke();
  inked = true;
}

// the pad as the model's input: 8x8 cells, mean brightness in [0, 1] (sklearn digits / 16)
function padRow() {
  const img = ctx.getImageData(0, 0, pad.width, pad.height).data, cell = pad.width / 8, row = [];
  for (let cy = 0; cy < 8; cy++)
    for (let cx = 0; cx < 8; cx++) {
      let s = 0;
      for (let y = cy * cell; y < (cy + 1) * cell; y++)
        for (let x = cx * cell; x < (cx + 1) * cell; x++) s += img[(y * pad.width + x) * 4];
      row.push(s / (cell * cell * 255));
    }
  return row;
}

function drawRow(row) {
  const cell = pad.width / 8;
  for (let i = 0; i < 64; i++) {
    const v = Math.round(Math.min(1, Math.max(0, row[i])) * 255);
    ctx.fillStyle = `rgb(${v},${v},${v})`;
    ctx.fillRect((i % 8) * cell, Math.floor(i / 8) * cell, cell, cell);
  }
  inked = row.some((v) => v > 0);
}

// "simulate shift": rotate by 25 degrees (bilinear) and add noise, from a seeded generator
let seed = 12345;
function rand() {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

function shifted(row) {
  const out = [], a = (25 * Math.PI) / 180, c = Math.cos(a), s = Math.sin(a);
  const at = (x, y) => (x < 0 || y < 0 || x > 7 || y > 7 ? 0 : row[y * 8 + x]);
  for (let y = 0; y < 8; y++)
    for (let x = 0; x < 8; x++) {
      const u = c * (x - 3.5) + s * (y - 3.5) + 3.5, v = -s * (x - 3.5) + c * (y - 3.5) + 3.5;
      const x0 = Math.floor(u), y0 = Math.floor(v), fx = u - x0, fy = v - y0;
      const val = at(x0, y0) * (1 - fx) * (1 - fy) + at(x0 + 1, y0) * fx * (1 - fy) +
        at(x0, y0 + 1) * (1 - fx) * fy + at(x0 + 1, y0 + 1) * fx * fy;
      out.push(Math.min(1, Math.max(0, val + (rand() - 0.5) * 0.6)));
    }
  return out;
}

// ---- the SDK in Pyodide -------------------------------------------------------------------------
const DEVICE_PY = `
import json, time
from edgefleet import Device
from edgefleet.device import FetchTransport
from edgefleet.runtimes.backends import wasm as _wasm

_cfg = json.loads(CONFIG_JSON)
_last = {}

def _factory(target, path):
    run = _wasm.runner_factory(target, path)
    def wrapped(rows):
        t0 = time.perf_counter()
        out = run(rows)
        _last.update(logits=out, kernel=run.kernel_table, run_ms=(time.perf_counter() - t0) * 1000)
        return out
    return wrapped

dev = Device("/bundle", _cfg.get("state_dir", "/state") + "/device", transport=FetchTransport(""), enrollment_token=_cfg["enrollment_token"],
             trusted_key=_cfg.get("trusted_key") or None, runner_factory=_factory,
             window_size=_cfg.get("window_size", 10), window_seconds=_cfg.get("window_seconds", 30), hardware="browser")

def _status(**extra):
    return json.dumps({"queued": len(dev.queue), "version": dev.model_version, "artifact": dev.artifact,
                       "device": dev.device_id, "policy": dev.policy, **extra})

def page_predict(row_json):
    t0 = time.perf_counter()
    p = dev.predict([json.loads(row_json)])[0]
    ms = (time.perf_counter() - t0) * 1000
    return _status(label=p.label, confidence=p.confidence, ms=ms, run_ms=_last["run_ms"],
                   logits=list(_last["logits"][0]), kernel=_last["kernel"])

def page_sync():
    r = dev.sync()
    return _status(sync=r)
`;

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function persist(py) {
  await new Promise((resolve, reject) => py.FS.syncfs(false, (err) => (err ? reject(err) : resolve())));
}

async function startDevice(config, t0, runtime) {
  const { loadPyodide } = await import("./pyodide/pyodide.mjs");
  const [py, wheel, manifestBytes] = await Promise.all([
    loadPyodide({ indexURL: new URL("pyodide/", location.href).href }),
    fetchBytes(config.wheel),
    fetchBytes(new URL("manifest.json", new URL(config.bundle, location.href)).href),
  ]);
  app.timings.pyodide = performance.now() - t0;
  py.unpackArchive(wheel, "wheel");
  // the bundle's files into the in-memory FS; the SDK verifies sizes, digests and the signature
  const base = new URL(config.bundle, location.href), manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  py.FS.mkdirTree("/bundle");
  py.FS.writeFile("/bundle/manifest.json", manifestBytes);
  for (const a of manifest.artifacts) {
    const dir = a.file.split("/").slice(0, -1).join("/");
    if (dir) py.FS.mkdirTree(`/bundle/${dir}`);
    py.FS.writeFile(`/bundle/${a.file}`, await fetchBytes(new URL(a.file, base).href));
  }
  // identity, queue and policy live in IndexedDB: a reload loses nothing
  const stateDir = config.state_dir || "/state"; // also the IndexedDB database's name
  py.FS.mkdirTree(stateDir);
  py.FS.mount(py.FS.filesystems.IDBFS, {}, stateDir);
  await new Promise((resolve, reject) => py.FS.syncfs(true, (err) => (err ? reject(err) : resolve())));
  py.globals.set("CONFIG_JSON", JSON.stringify(config));
  globalThis.edgefleetWasm = await runtime; // the SDK's wasm backend finds the runtime here
  await py.runPythonAsync(DEVICE_PY);
  await persist(py);
  return py;
}

function showStatus(s) {
  $("queued").textContent = s.queued;
  $("version").textContent = `${s.version} (${s.artifact})`;
  $("device").textContent = s.device || "not enrolled yet";
  const p = s.policy || {};
  const policy = [p.fallback_artifact && `fallback to ${p.fallback_artifact}`, p.canary && `canary ${p.canary.version}`,
    p.baseline && `baseline ${p.baseline.version}`, p.reason].filter(Boolean).join(", ");
  $("policy").textContent = policy || "–";
  if (app.lastVersion && (app.lastVersion !== s.version || app.lastArtifact !== s.artifact))
    message(`policy applied: now serving ${s.version} (${s.artifact}), signature verified`, "info");
  app.lastVersion = s.version;
  app.lastArtifact = s.artifact;
}

async function predict(row, label) {
  if (!app.ready) return;
  if (!row.some((v) => v > 0.02)) {
    message("The canvas is empty: draw a digit (or pick a test sample) first.");
    return;
  }
  if ($("shift").checked) {
    row = shifted(row);
    drawRow(row);
  }
  const r = await serial(async () => {
    const out = JSON.parse(app.py.globals.get("page_predict")(JSON.stringify(row)));
    await persist(app.py);
    return out;
  });
  clearMessage();
  const exps = r.logits.map((v) => Math.exp(v - Math.max(...r.logits))), sum = exps.reduce((a, b) => a + b, 0);
  const top = exps.map((e, i) => [i, e / sum]).sort((a, b) => b[1] - a[1]).slice(0, 3);
  $("top").innerHTML = "";
  for (const [cls, p] of top) {
    const li = document.createElement("li");
    li.dataset.label = cls;
    li.textContent = `${cls} (${(100 * p).toFixed(1)}%)`;
    $("top").append(li);
  }
  $("top").dataset.label = r.label;
  $("top").dataset.truth = label === undefined ? "" : label;
  $("conf").textContent = `${(100 * r.confidence).toFixed(1)}% (calibrated)`;
  $("lat").textContent = `${r.ms.toFixed(2)} ms per call (model ${r.run_ms.toFixed(2)} ms)`;
  (app.latencies = app.latencies || []).push([r.ms, r.run_ms]);
  $("kernels").textContent = r.kernel;
  app.predictions = (app.predictions || 0) + 1;
  showStatus(r);
}

async function sync() {
  if (!app.ready) return;
  const r = await serial(async () => {
    const out = JSON.parse(await app.py.runPythonAsync("page_sync()"));
    await persist(app.py);
    return out;
  });
  app.delivered += r.sync.delivered || 0;
  $("delivered").textContent = app.delivered;
  app.online = r.sync.online;
  $("online").textContent = r.sync.online ? "online" : `unreachable: ${r.queued} windows kept in IndexedDB`;
  $("online").className = r.sync.online ? "online" : "offline";
  if (!r.sync.online && app.wasOnline !== false) message("Coordinator unreachable: telemetry is queued and will be sent when it is back.");
  if (r.sync.online && app.wasOnline === false) message("Coordinator is back: queued telemetry delivered.", "info");
  app.wasOnline = r.sync.online;
  showStatus(r);
  return r;
}
app.sync = sync;

// a .efm picked by the visitor: loaded into the wasm runtime (validated before anything runs)
$("efmfile").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    const model = app.rt.open(new Uint8Array(await file.arrayBuffer()));
    const ins = model.inputs.map((t) => `${t.name} [${t.shape.map((d) => d ?? "N").join(", ")}]`).join(", ");
    model.close();
    message(`${file.name}: a valid .efm model, inputs ${ins}`, "info");
  } catch (err) {
    message(`${file.name} refused: ${err instanceof EfmError ? err.message : err}`);
  }
  e.target.value = "";
});

$("clear").addEventListener("click", () => { clearPad(); clearMessage(); });
$("predict").addEventListener("click", () => predict(padRow()).catch((e) => message(`prediction failed: ${e.message}`)));
$("sample").addEventListener("click", () => {
  if (!app.samples) return;
  const i = app.next++ % app.samples.y.length;
  drawRow(app.samples.x[i]);
  predict(app.samples.x[i], app.samples.y[i]).catch((e) => message(`prediction failed: ${e.message}`));
});

// everything this page loaded from its own folder, cached so that a reload works with the server down
async function cacheForOffline() {
  if (!("serviceWorker" in navigator) || !("caches" in window)) return;
  await navigator.serviceWorker.register("sw.js");
  const scope = new URL(".", location.href).href;
  const urls = [location.href.split("#")[0], ...performance.getEntriesByType("resource").map((e) => e.name)]
    .filter((u) => u.startsWith(scope));
  const cache = await caches.open("edgefleet-app");
  await cache.addAll([...new Set(urls)]);
  await navigator.serviceWorker.ready;
  app.offlineReady = true;
  note(`offline copy ready (${urls.length} files)`);
}

async function boot() {
  clearPad();
  const t0 = performance.now();
  app.timings = {};
  const config = await (await fetch("config.json")).json();
  // the wasm runtime starts before Pyodide has finished loading
  const runtime = loadRuntime().then((rt) => {
    app.timings.wasm = performance.now() - t0;
    app.rt = rt;
    return rt;
  });
  const [rt, samples, py] = await Promise.all([
    runtime,
    config.samples ? fetch(config.samples).then((r) => r.json()) : null,
    startDevice(config, t0, runtime),
  ]);
  app.samples = samples;
  app.py = py;
  $("runtime").textContent = `wasm (${rt.variant} build)`;
  app.timings.ready = performance.now() - t0;
  app.ready = true;
  $("predict").disabled = false;
  $("sample").disabled = !samples;
  $("status").textContent = `ready in ${(app.timings.ready / 1000).toFixed(1)} s`;
  cacheForOffline().catch((e) => note(`offline copy not made: ${e.message}`));
  await sync();
  setInterval(() => sync().catch((e) => message(`sync failed: ${e.message}`)), config.sync_ms || 5000);
}

boot().catch((e) => {
  const text = String(e.message || e);
  const refused = /BundleError|signature|sha256|digest|truncated|untrusted/.test(text);
  $("status").textContent = refused ? "bundle refused" : "failed to start";
  message(refused ? `The model bundle failed verification and was not loaded: ${text.split("\n").filter(Boolean).pop()}`
    : `The page could not start: ${text.split("\n").filter(Boolean).pop()}`);
  app.failed = text;
});
