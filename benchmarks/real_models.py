"""The deployable families through edgefleet, against the peers, in one run.

    .venv/bin/python benchmarks/real_models.py            # every family, teachers on Fashion-MNIST
    .venv/bin/python benchmarks/real_models.py --smoke    # small widths and inputs, seconds per model
    .venv/bin/python benchmarks/real_models.py --models mobilenet_v2,resnet18 --image 64 --kernels avx2

Per model: a teacher of the zoo family is trained here on Fashion-MNIST (the 28 x 28 grey images
scaled up by pixel repetition to ``--image`` and given 3 channels; 32 x 32 by default, so that two
epochs of 6,000 images train in minutes on 2 cores), its batch-norm statistics recomputed on training
images (after a short run the running averages lag the weights and eval-mode accuracy collapses), and
its weights cached under ``bench-results/teachers/`` for the next run with the same settings; then
captured, quantized once and exported to every target. Peers in the same run: torch fp32, onnxruntime fp32 (our fp32 ONNX of the
same graph) and onnxruntime ``quantize_static`` (QDQ, per-channel, 7-bit weights so its AVX2 kernels
are exact, calibrated on the same samples). For all-MiniLM-L6-v2 (when its package is installed) the
peer is ``quantize_dynamic`` (per-channel, 7-bit weights) and the fidelity is the cosine to the fp32
embeddings, plus the F1 of a logistic regression on frozen embeddings of Reuters-21578 Grain (weka's
ARFF examples; see ``edgefleet.compress.data.load_reuters``). With ``--recipe`` (default ``transformer``)
MiniLM is also run through that recipe's passes (attention heads and FFN neurons pruned, factorised
word embedding, a shallower student distilled from hidden states on unlabelled Reuters training
texts) and quantized like the other int8 rows; its bytes are given as a percentage of fp32.

Columns: bytes; fidelity (top-1 agreement with torch fp32 on the test images, and test accuracy;
cosine for MiniLM); latency at batch 1 and 32 (single thread; min and median of per-call wall time,
and median CPU time, every variant timed round by round in turn). The machine, its ISA flags and the
native kernel table that ran are printed and written to ``bench-results/real_models.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json, write_json_to  # noqa: E402

FAMILIES = ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet18", "vit_tiny")
MINILM = "all_minilm_l6_v2"


def fashion_images(size: int, n_train: int, n_test: int, seed: int = 0):
    """Fashion-MNIST as 3-channel ``size`` x ``size`` images: pixel repetition, then zero padding."""
    from edgefleet.compress.data import load_fashion_mnist

    data = load_fashion_mnist(seed)
    factor = max(1, size // 28)
    pad = size - 28 * factor

    def convert(x):
        x = x.repeat(factor, axis=2).repeat(factor, axis=3)
        x = np.pad(x, ((0, 0), (0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
        return np.ascontiguousarray(np.repeat(x, 3, axis=1), dtype=np.float32)

    rng = np.random.default_rng(seed)
    tr = np.sort(rng.choice(len(data.x_train), n_train, replace=False))
    return (convert(data.x_train[tr]), data.y_train[tr], convert(data.x_test[:n_test]), data.y_test[:n_test])


def interleaved(variants: dict, inputs: dict, *, rounds: int, budget_s: float) -> dict:
    """Per variant and batch size: min/median wall ms and median CPU ms per call, timed round by
    round (A, B, C, A, B, C, ...) so that machine noise hits every variant alike."""
    wall = {(v, b): [] for v in variants for b in inputs}
    cpu = {(v, b): [] for v in variants for b in inputs}
    for fn in variants.values():
        for x in inputs.values():
            fn(x)  # warm-up
    for _ in range(rounds):
        for b, x in inputs.items():
            for name, fn in variants.items():
                start = time.perf_counter()
                while True:
                    t0, c0 = time.perf_counter(), time.process_time()
                    fn(x)
                    wall[(name, b)].append(time.perf_counter() - t0)
                    cpu[(name, b)].append(time.process_time() - c0)
                    if time.perf_counter() - start > budget_s / rounds:
                        break
    return {(v, b): {"min_ms": min(wall[(v, b)]) * 1e3, "median_ms": statistics.median(wall[(v, b)]) * 1e3,
                     "cpu_median_ms": statistics.median(cpu[(v, b)]) * 1e3, "calls": len(wall[(v, b)])}
            for v in variants for b in inputs}


def _ort(path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return lambda x: sess.run(None, dict(zip(names, x if isinstance(x, tuple) else (x,))))[0]


def _quantize_static(fp32_path: Path, out: Path, calib: np.ndarray) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(fp32_path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=True)
    return out


def recalibrate_batchnorm(model, x: np.ndarray, batch: int = 100) -> None:
    """Replace every batch norm's running statistics by their exact average over ``x`` (train-mode
    forward passes, no gradients). After a short training run the running averages lag far behind
    the weights: MobileNetV2 at 8 % top-1 in eval mode against 51 % in train mode after one epoch."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the passes below
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            model(torch.from_numpy(x[i:i + batch]))
    for m in norms:
        m.momentum = 0.1
    model.eval()


def _teacher(name: str, options: dict, args, x_train: np.ndarray, y_train: np.ndarray):
    """The zoo family trained on ``x_train`` (then batch-norm statistics recomputed), or its weights
    cached in ``--teachers`` by an earlier run with the same settings. Returns
    ``(model, training seconds or "cached")``."""
    import torch

    from edgefleet.compress import zoo
    from edgefleet.compress.train import fit

    model = getattr(zoo, name)(**options)
    key = "-".join([name, *(f"{k}{v}" for k, v in sorted(options.items())), f"img{args.image}", f"ep{args.epochs}",
                    f"n{args.train_samples}", f"lr{args.lr}"])
    cache = Path(args.teachers) / f"{key}.pt" if args.teachers else None
    if cache is not None and cache.is_file():
        model.load_state_dict(torch.load(cache, weights_only=True))
        return model.eval(), "cached"
    t0 = time.perf_counter()
    model = fit(model, x_train, y_train, epochs=args.epochs, lr=args.lr, seed=0, desc=name)
    recalibrate_batchnorm(model, x_train[:args.bn_samples])
    seconds = round(time.perf_counter() - t0, 1)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), cache)
    return model, seconds


def bench_cnn(name: str, args, workdir: Path) -> list[dict]:
    import torch

    from edgefleet import runtimes
    from edgefleet.compress.capture import capture
    from edgefleet.compress.ir import quantize_graph
    from edgefleet.compress.train import predict_logits, seed_everything
    from edgefleet.runtimes import exporters

    seed_everything(0)
    options = {"width": args.width, "num_classes": 10}
    if name == "vit_tiny":
        options.update(image_size=args.image, patch=max(4, args.image // 8), depth=2 if args.smoke else 6)
    if name == "efficientnet_b0" and args.smoke:
        options["depth"] = 0.34
    x_train, y_train, x_test, y_test = fashion_images(args.image, args.train_samples, args.test_samples)
    model, train_s = _teacher(name, options, args, x_train, y_train)
    ref = predict_logits(model, x_test)
    rows = []
    info = {"model": name, "options": options, "image": args.image, "train_seconds": train_s,
            "params": sum(p.numel() for p in model.parameters()), "teacher_test_accuracy": float((ref.argmax(1) == y_test).mean() * 100)}
    try:
        t0 = time.perf_counter()
        graph = capture(model, (3, args.image, args.image))
        calib = x_train[:args.calibration_samples]
        qgraph = quantize_graph(graph, [calib[i:i + 32] for i in range(0, len(calib), 32)])
        info["capture_quantize_seconds"] = round(time.perf_counter() - t0, 1)
    except Exception as e:  # an op the IR lacks: say so in the table, keep benchmarking the others
        return [{**info, "variant": "edgefleet", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}]

    def torch_fp32(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    paths, runners = {}, {"torch fp32": torch_fp32}
    for target in ("onnx-fp32", "onnx-int8", "tflite-int8", "efm-int8"):
        exporter = exporters.get(target)()
        try:
            paths[target] = exporter.export(qgraph if exporter.precision == "int8" else graph, workdir / f"{name}.{target}")
        except Exception as e:
            rows.append({**info, "variant": f"edgefleet {target}", "error": f"{type(e).__name__}: {e}"})
            continue
        options_rt = {"kernels": args.kernels} if exporter.runtime == "native" and args.kernels != "best" else {}
        if exporter.runtime == "native" and options_rt:
            from edgefleet import _native
            m = _native.Model(str(paths[target]), kernels=args.kernels)
            runners[f"edgefleet {target}"] = lambda x, m=m: m.run([x])[0]
        else:
            rt = runtimes.load(exporter.runtime, paths[target], threads=1)
            runners[f"edgefleet {target}"] = lambda x, rt=rt: rt.run(x)[rt.output_names[0]]
    runners["ort fp32"] = runners.pop("edgefleet onnx-fp32", None) or runners.get("ort fp32")
    paths["ort fp32"] = paths.pop("onnx-fp32", None)
    try:
        paths["ort quantize_static"] = _quantize_static(paths["ort fp32"], workdir / f"{name}.ort_static.onnx",
                                                        calib[:args.calibration_samples])
        runners["ort quantize_static"] = _ort(paths["ort quantize_static"])
    except Exception as e:
        rows.append({**info, "variant": "ort quantize_static", "error": f"{type(e).__name__}: {e}"})
    runners = {k: v for k, v in runners.items() if v is not None}
    lat = interleaved(runners, {1: x_test[:1], 32: np.ascontiguousarray(np.resize(x_test, (32, *x_test.shape[1:])))},
                      rounds=args.rounds, budget_s=args.seconds)
    for variant, fn in runners.items():
        out = np.concatenate([fn(x_test[i:i + 32]) for i in range(0, len(x_test), 32)])
        path = paths.get(variant.replace("edgefleet ", ""), paths.get(variant))
        rows.append({**info, "variant": variant,
                     "bytes": path.stat().st_size if path else None,
                     "fidelity": float((out.argmax(1) == ref.argmax(1)).mean() * 100), "fidelity_kind": "top-1 agree %",
                     "test_accuracy": float((out.argmax(1) == y_test).mean() * 100),
                     "latency": {f"batch{b}": lat[(variant, b)] for b in (1, 32)}})
    return rows


def _ort_fp32_minilm(model, ids, mask, path: Path) -> Path:
    import torch

    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    torch.onnx.export(model, (torch.from_numpy(ids[:2]), torch.from_numpy(mask[:2])), str(path), dynamo=True,
                      external_data=False, input_names=["input_ids", "attention_mask"],
                      dynamic_shapes=({0: batch}, {0: batch}))
    return path


def _compressed_minilm(model, tok, tr_text: list[str], te_text: list[str], args):
    """MiniLM through ``--recipe``'s passes before quantization (heads/FFN pruning, factorised embedding,
    shallower student distilled from hidden states) on unlabelled Reuters *training* texts (never the
    test texts); returns the float model and each pass's report."""
    import copy

    from edgefleet.compress.data import Dataset
    from edgefleet.compress.passes import get_pass
    from edgefleet.compress.recipe import Recipe
    from edgefleet.compress.state import State
    from edgefleet.compress.zoo import minilm

    rng = np.random.default_rng(1)
    pick = rng.permutation(len(tr_text))[:args.distill_texts + 64]
    ids, mask = tok.encode([tr_text[i] for i in pick], minilm.SEQ_LEN)
    x = {"input_ids": ids[64:], "attention_mask": mask[64:]}
    val = {"input_ids": ids[:64], "attention_mask": mask[:64]}
    state = State.start(copy.deepcopy(model), Dataset("reuters-grain-train", x, None, val, None, val, None, task="embedding"))
    stages = []
    for p in Recipe.from_toml(args.recipe).passes:
        if p.name == "quantize":
            continue  # quantized below like the other int8 rows, on the same calibration texts
        if p.name == "distill_hidden" and args.distill_epochs:
            p = get_pass(p.name)(**{**p.params_dict(), "epochs": args.distill_epochs})
        print(f"   pass {p!r}", file=sys.stderr, flush=True)
        result = p.run(state)
        stages.append({"pass": repr(p), "seconds": result.seconds,
                       **{k: v for k, v in result.changed.items() if k != "layers"}})
    return state.model, stages


def bench_minilm(args, workdir: Path) -> list[dict]:
    """all-MiniLM-L6-v2 (real weights) on Reuters Grain: cosine to torch fp32, downstream F1 of a
    logistic regression on frozen embeddings, bytes, latency."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from edgefleet import runtimes
    from edgefleet.compress.batch import InputSpec
    from edgefleet.compress.data import load_reuters
    from edgefleet.compress.ir import islands, run_float
    from edgefleet.compress.ir.quantize import quantize_graph
    from edgefleet.compress.state import capture_model
    from edgefleet.compress.tasks import cosine_rows
    from edgefleet.compress.zoo import minilm
    from edgefleet.runtimes import exporters

    try:
        model, tok = minilm.all_minilm_l6_v2(), minilm.tokenizer()
        tr_text, tr_y, te_text, te_y = load_reuters("Grain")
    except Exception as e:
        return [{"model": MINILM, "variant": "-", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}]
    rng = np.random.default_rng(0)
    tr = np.sort(rng.choice(len(tr_text), min(args.text_train, len(tr_text)), replace=False))
    te = np.sort(rng.choice(len(te_text), min(args.text_test, len(te_text)), replace=False))
    tr_ids, tr_mask = tok.encode([tr_text[i] for i in tr], minilm.SEQ_LEN)
    te_ids, te_mask = tok.encode([te_text[i] for i in te], minilm.SEQ_LEN)
    tr_y, te_y = tr_y[tr], te_y[te]
    info = {"model": MINILM, "params": sum(p.numel() for p in model.parameters()), "seq_len": minilm.SEQ_LEN,
            "texts": {"train": len(tr), "test": len(te), "corpus": "Reuters-21578 Grain (weka)"}}

    def torch_fp32(x):
        with torch.no_grad():
            return model(torch.from_numpy(x[0]), torch.from_numpy(x[1])).numpy()

    runners, paths, rows = {"torch fp32": torch_fp32}, {}, []
    try:
        paths["ort fp32"] = _ort_fp32_minilm(model, tr_ids, tr_mask, workdir / "minilm.onnx")
        runners["ort fp32"] = _ort(paths["ort fp32"])
        paths["ort quantize_dynamic"] = workdir / "minilm.dynamic.onnx"
        quantize_dynamic(str(paths["ort fp32"]), str(paths["ort quantize_dynamic"]), weight_type=QuantType.QInt8,
                         per_channel=True, reduce_range=True)
        runners["ort quantize_dynamic"] = _ort(paths["ort quantize_dynamic"])
    except Exception as e:
        rows.append({**info, "variant": "ort fp32 / quantize_dynamic", "error": f"{type(e).__name__}: {str(e)[:160]}"})
    try:
        specs = [InputSpec("input_ids", "int64", (minilm.SEQ_LEN,)), InputSpec("attention_mask", "int64", (minilm.SEQ_LEN,))]
        graph = capture_model(model, specs)
        calib = [{"input_ids": tr_ids[i:i + 16], "attention_mask": tr_mask[i:i + 16]}
                 for i in range(0, min(len(tr), args.calibration_samples), 16)]
        qgraph = quantize_graph(graph, calib)
        graphs = {"": qgraph}
        if args.island_texts:
            # precision islands chosen on training texts (not the test texts the table scores)
            batches = [{"input_ids": tr_ids[i:i + 8], "attention_mask": tr_mask[i:i + 8]}
                       for i in range(0, min(len(tr), args.island_texts), 8)]
            reference = np.concatenate([run_float(graph, b)[graph.outputs[0]] for b in batches])
            graphs[" +islands"] = islands.choose_islands(qgraph, islands.scorer(batches, reference),
                                                         lambda s: s[0] >= args.island_mean and s[1] >= args.island_p1,
                                                         allowed=exporters.island_ops())
            info["islands"] = islands.summary(graphs[" +islands"])
            print("# islands: " + "; ".join(f"{r['group']} x{len(r['nodes'])} (+{r['gain']:.4f})"
                                            for r in info["islands"]), file=sys.stderr)
        for suffix, qg in graphs.items():
            for target in ("onnx-int8", "tflite-int8", "efm-int8"):
                variant = f"edgefleet {target}{suffix}"
                try:
                    exporter = exporters.get(target)()
                    paths[variant] = exporter.export(qg, workdir / f"minilm{suffix.strip()}.{target}")
                except Exception as e:  # efm-int8 refuses islands (int8 kernels only)
                    rows.append({**info, "variant": variant, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"})
                    continue
                rt = runtimes.load(exporter.runtime, paths[variant], threads=1)
                runners[variant] = lambda x, rt=rt: rt.run({"input_ids": x[0], "attention_mask": x[1]})[rt.output_names[0]]
    except Exception as e:
        rows.append({**info, "variant": "edgefleet", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"})
    if args.recipe:
        try:
            small, stages = _compressed_minilm(model, tok, tr_text, te_text, args)
            graph = capture_model(small, specs)
            qgraph = quantize_graph(graph, calib)
            recipe_name = Path(args.recipe).stem
            for target in ("onnx-int8", "efm-int8"):
                variant = f"edgefleet {recipe_name} {target}"
                exporter = exporters.get(target)()
                paths[variant] = exporter.export(qgraph, workdir / f"minilm.{recipe_name}.{target}")
                rt = runtimes.load(exporter.runtime, paths[variant], threads=1)
                runners[variant] = lambda x, rt=rt: rt.run({"input_ids": x[0], "attention_mask": x[1]})[rt.output_names[0]]
            info["recipe"] = {"name": args.recipe, "stages": stages}
        except Exception as e:
            rows.append({**info, "variant": f"edgefleet {args.recipe}", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"})

    def embed(fn, ids, mask):
        return np.concatenate([fn((ids[i:i + 32], mask[i:i + 32])) for i in range(0, len(ids), 32)])

    ref_tr, ref_te = embed(torch_fp32, tr_ids, tr_mask), embed(torch_fp32, te_ids, te_mask)
    lat = interleaved(runners, {1: (te_ids[:1], te_mask[:1]), 32: (np.resize(te_ids, (32, minilm.SEQ_LEN)),
                                                                    np.resize(te_mask, (32, minilm.SEQ_LEN)))},
                      rounds=args.rounds, budget_s=args.seconds)
    for variant, fn in runners.items():
        e_tr, e_te = (ref_tr, ref_te) if variant == "torch fp32" else (embed(fn, tr_ids, tr_mask), embed(fn, te_ids, te_mask))
        cos = cosine_rows(e_te, ref_te)
        norm = lambda e: e / np.linalg.norm(e, axis=1, keepdims=True)  # noqa: E731
        head = LogisticRegression(max_iter=2000, C=10.0).fit(norm(e_tr), tr_y)
        path = paths.get(variant)
        fp32 = paths.get("ort fp32")
        rows.append({**info, "variant": variant, "bytes": path.stat().st_size if path else None,
                     "bytes_pct_fp32": 100.0 * path.stat().st_size / fp32.stat().st_size if path and fp32 else None,
                     "fidelity": float(cos.mean()), "fidelity_p1": float(np.percentile(cos, 1)),
                     "fidelity_kind": "cosine to torch fp32",
                     "f1": float(f1_score(te_y, head.predict(norm(e_te))) * 100),
                     "latency": {f"batch{b}": lat[(variant, b)] for b in (1, 32)}})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="small widths, 32 x 32 inputs, few samples: a quick check")
    ap.add_argument("--models", default=",".join((*FAMILIES, MINILM)), help="comma-separated zoo families")
    ap.add_argument("--width", type=float, help="width multiplier (default 1.0; 0.25 with --smoke)")
    ap.add_argument("--image", type=int, help="input side in pixels (default 32; 32 with --smoke)")
    ap.add_argument("--epochs", type=int, help="teacher epochs (default 2; 1 with --smoke)")
    ap.add_argument("--teachers", default=str(Path(__file__).resolve().parents[1] / "bench-results" / "teachers"),
                    help="folder caching trained teacher weights between runs (empty: no cache)")
    ap.add_argument("--lr", type=float, default=2e-3, help="teacher learning rate (one-cycle AdamW)")
    ap.add_argument("--bn-samples", type=int, default=2000, help="training images over which the teacher's batch-norm "
                    "statistics are recomputed after training")
    ap.add_argument("--train-samples", type=int, help="Fashion-MNIST training images (default 6000; 256 with --smoke)")
    ap.add_argument("--test-samples", type=int, help="test images for fidelity (default 1000; 64 with --smoke)")
    ap.add_argument("--calibration-samples", type=int, default=64, help="calibration images (shared by all quantizers)")
    ap.add_argument("--rounds", type=int, help="timing rounds (default 5; 2 with --smoke)")
    ap.add_argument("--seconds", type=float, help="timing budget per variant and batch (default 2; 0.2 with --smoke)")
    ap.add_argument("--text-train", type=int, help="Reuters training texts for the F1 head (default 400; 48 with --smoke)")
    ap.add_argument("--text-test", type=int, help="Reuters test texts (default 200; 32 with --smoke)")
    ap.add_argument("--recipe", default="transformer",
                    help="MiniLM: also the recipe's pruned, distilled student in int8 ('' to skip)")
    ap.add_argument("--distill-texts", type=int, help="MiniLM: unlabelled Reuters training texts to distil on "
                    "(default 1000; 32 with --smoke)")
    ap.add_argument("--distill-epochs", type=int, help="MiniLM: distillation epochs (default: the recipe's)")
    ap.add_argument("--island-texts", type=int, default=16,
                    help="MiniLM: training texts that choose the precision islands (0: no island variants)")
    ap.add_argument("--island-mean", type=float, default=0.99, help="MiniLM islands: mean-cosine target on those texts")
    ap.add_argument("--island-p1", type=float, default=0.97, help="MiniLM islands: 1st-percentile cosine target")
    ap.add_argument("--kernels", default="best", help="native kernel table: best, portable, avx2, avxvnni, avx512vnni")
    ap.add_argument("--out", help="JSON file to write (default: bench-results/real_models[_smoke].json)")
    args = ap.parse_args(argv)
    smoke = args.smoke
    for key, full, small in (("width", 1.0, 0.25), ("image", 32, 32), ("epochs", 2, 1), ("train_samples", 6000, 256),
                             ("test_samples", 1000, 64), ("rounds", 5, 2), ("seconds", 2.0, 0.2),
                             ("text_train", 400, 48), ("text_test", 200, 32), ("distill_texts", 1000, 32)):
        if getattr(args, key) is None:
            setattr(args, key, small if smoke else full)

    import torch

    from edgefleet import _native
    from edgefleet.compress.verify import machine_info

    torch.set_num_threads(1)
    machine = machine_info()
    kernels = _native.kernel_path() if args.kernels == "best" else args.kernels
    print(f"# {machine['cpu']} ({', '.join(machine['cpu_flags'])}); native kernel table: {kernels}; 1 thread")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            print(f"== {name}", file=sys.stderr, flush=True)
            rows += bench_minilm(args, Path(tmp)) if name == MINILM else bench_cnn(name, args, Path(tmp))
    table = []
    for r in rows:
        lat = r.get("latency", {})
        fmt = lambda b, k: f"{lat[f'batch{b}'][k]:.3f}" if lat else "-"  # noqa: E731
        table.append([r["model"], r["variant"], f"{r['bytes']:,}" if r.get("bytes") else "-",
                      f"{r['bytes_pct_fp32']:.1f}" if r.get("bytes_pct_fp32") else "-",
                      (f"{r['fidelity']:.4f}/{r['fidelity_p1']:.4f}" if "fidelity_p1" in r else f"{r['fidelity']:.1f}")
                      if "fidelity" in r else "-",
                      f"{r['test_accuracy']:.1f}" if "test_accuracy" in r else (f"F1 {r['f1']:.1f}" if "f1" in r else "-"),
                      fmt(1, "min_ms"), fmt(1, "median_ms"), fmt(32, "min_ms"), fmt(32, "median_ms"),
                      r.get("error", "")[:70]])
    print_table(["model", "variant", "bytes", "% fp32", "agree % | cos mean/p1", "acc % | F1", "b1 min", "b1 med", "b32 min", "b32 med", "note"], table)
    payload = {"machine": machine, "native_kernels": kernels, "threads": 1, "args": vars(args), "results": rows}
    if args.out:
        write_json_to(args.out, payload)
    else:
        write_json("real_models" + ("_smoke" if smoke else ""), payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
