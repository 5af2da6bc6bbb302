"""The device SDK over HTTP/1.1 (Connect) with neither grpcio, protobuf nor numpy importable: the
browser's situation. Enrol, report, feedback, policy, and a canary bundle fetched as a Connect stream."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from edgefleet.bundle import Bundle


def test_device_over_connect_without_grpc_protobuf_or_numpy(server, admin, archives, bundles, public_key, tmp_path):
    for v in ("1.0", "1.1"):
        admin.publish_bundle(archives[v])
    admin.set_baseline("web", "1.0")
    token = admin.create_enrollment_token("web")
    import onnx
    from onnx import numpy_helper
    from bundle_factory import digits
    weights = {}
    for v in ("1.0", "1.1"):
        model = onnx.load(str(Bundle.open(bundles[v]).artifact_path("onnx-fp32")))
        weights[v] = {t.name: numpy_helper.to_array(t).tolist() for t in model.graph.initializer}
    x = digits()[2][:60].tolist()
    script = textwrap.dedent(f"""
        import sys, json, base64
        for blocked in ("numpy", "grpc", "google.protobuf", "google"):
            sys.modules[blocked] = None
        from edgefleet import Device
        from edgefleet.device import ConnectTransport
        WEIGHTS = {weights!r}
        def factory(target, path):
            import json, pathlib
            version = json.loads((pathlib.Path(path).parent / "manifest.json").read_text())["model"]["version"]
            W, B = WEIGHTS[version]["W"], WEIGHTS[version]["B"]
            return lambda rows: [[sum(r[i] * W[i][j] for i in range(64)) + B[j] for j in range(10)] for r in rows]
        dev = Device({str(bundles["1.0"])!r}, {str(tmp_path / "dev")!r}, transport=ConnectTransport({server.http_url!r}),
                     enrollment_token={token!r}, trusted_key=base64.b64decode({__import__("base64").b64encode(public_key).decode()!r}),
                     runner_factory=factory, window_size=20)
        X = {x!r}
        preds = [p for i in range(3) for p in dev.predict(X[i * 20:(i + 1) * 20])]  # three windows
        dev.feedback(preds[0].prediction_id, 3)
        first = dev.sync(close_window=True)
        print(json.dumps({{"first": first, "version": dev.model_version, "device": dev.device_id}}))
        sys.stdout.flush()
        input()  # the parent starts a canary, then we sync again
        second = dev.sync()
        print(json.dumps({{"second": second, "version": dev.model_version, "artifact": dev.artifact}}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        first = json.loads(line)
        assert first["first"]["online"] and first["first"]["delivered"] == 3 and first["version"] == "1.0"
        assert server.store.count_windows() == 3
        assert server.store.label_stats("web", "1.0")[0] == 1
        admin.start_canary("web", "1.1", share=1.0)
        admin.set_fallback("web", artifact="onnx-fp32", reason="test")
        out, err = proc.communicate("\n", timeout=60)
        second = json.loads(out.strip().splitlines()[-1])
        assert second["second"]["policy_applied"], err
        assert second["version"] == "1.1" and second["artifact"] == "onnx-fp32"
    finally:
        proc.kill()
        proc.wait(30)
