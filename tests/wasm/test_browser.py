"""The browser device end to end, in headless Chromium (Debian's, via playwright-core): the
coordinator serves the page under /app/; the page runs the signed digits bundle through the wasm
runtime with the SDK in Pyodide, and reports telemetry over Connect. One Chromium session serves every
test here (they run in order); the screenshot lands in out/test-artifacts/browser.png."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ADMIN = "admin-token-browser-test"
ARTIFACTS = REPO / "out" / "test-artifacts"
N_SAMPLES = 12

pytestmark = pytest.mark.skipif(
    not (shutil.which("node") and Path("/usr/bin/chromium").exists()
         and (REPO / "wasm" / "node_modules" / "playwright-core").is_dir()
         and (REPO / "wasm" / "web" / "pyodide" / "pyodide.mjs").exists()),
    reason="needs node, /usr/bin/chromium and the npm packages (bash scripts/setup.sh)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self):
        self.proc = subprocess.Popen(["node", str(REPO / "wasm" / "node" / "browser.mjs")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __call__(self, op, **kw):
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"browser driver stopped: {self.proc.stderr.read()[-3000:]}")
        reply = json.loads(line)
        if not reply["ok"]:
            console = self("console") if op != "console" else []
            raise AssertionError(f"{op} {kw}: {reply['error']}\npage console:\n" + "\n".join(console))
        return reply["value"]

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"op": "close"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


class Fleet:
    """A coordinator on fixed ports (so it can be stopped and started again on the same store)."""

    def __init__(self, root: Path, app_dir: Path, public_key: bytes, token_ttl_s: float = 30 * 86400):
        self.root, self.app_dir, self.public_key, self.token_ttl_s = root, app_dir, public_key, token_ttl_s
        self.grpc_port, self.http_port = free_port(), free_port()
        self.server = None

    def start(self, init=False):
        from edgefleet.coordinator import Server, ServerConfig
        self.server = Server(ServerConfig(init=init, store=f"sqlite:///{self.root / 'fleet.db'}", admin_token=ADMIN,
                                          port=self.grpc_port, http_port=self.http_port, app_dir=str(self.app_dir),
                                          trusted_key=self.public_key, evaluate_interval_s=None,
                                          token_ttl_s=self.token_ttl_s)).start()
        return self

    def stop(self):
        self.server.stop(0)
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/app/"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, digits_export, digits_data):
    from edgefleet import _signing
    from edgefleet._webapp import sign_bundle, write_browser_app
    from edgefleet.bundle import Bundle, pack
    from edgefleet.coordinator import AdminClient

    root = tmp_path_factory.mktemp("browser")
    key = _signing.generate_key()
    pub = _signing.public_key(key)
    bundle = root / "bundle"
    shutil.copytree(digits_export.bundle.path, bundle)
    sign_bundle(bundle, key)
    assert "efm-int8" in Bundle.open(bundle).targets

    # known digits: test samples with the label the native runtime gives them (the browser must agree)
    from edgefleet import runtimes
    x, y = digits_data.x_test[:N_SAMPLES], digits_data.y_test[:N_SAMPLES]
    native = runtimes.load("native", Bundle.open(bundle).artifact_path("efm-int8"))
    expected = native.run(x)[native.output_names[0]].argmax(1)
    samples = {"x": x.reshape(len(x), -1).tolist(), "y": [int(v) for v in y]}

    fleet = Fleet(root, root / "app", pub)
    (root / "app").mkdir()  # filled below, once the coordinator has issued the enrollment token
    fleet.start(init=True)
    admin = AdminClient(f"127.0.0.1:{fleet.grpc_port}", ADMIN)
    admin.publish_bundle(pack(bundle, root / "bundle.tar.gz").read_bytes())
    admin.set_baseline("web", Bundle.open(bundle).version)
    token = admin.create_enrollment_token("web", uses=1)  # one use: a reload must keep the identity
    app = write_browser_app(root / "app", bundle, enrollment_token=token, trusted_key=pub, samples=samples,
                            sync_ms=600000, window_size=5)
    # the same page with a bundle whose .efm has one flipped byte, under /app/bad/
    bad = root / "bad-bundle"
    shutil.copytree(bundle, bad)
    efm = bad / Bundle.open(bundle).artifact("efm-int8").path.name
    data = bytearray(efm.read_bytes())
    data[len(data) // 2] ^= 0x01
    efm.write_bytes(bytes(data))
    write_browser_app(root / "bad-app", bundle, enrollment_token=token, trusted_key=pub)
    shutil.rmtree(root / "bad-app" / "bundle")
    shutil.copytree(bad, root / "bad-app" / "bundle")
    cfg = json.loads((root / "bad-app" / "config.json").read_text())
    (root / "bad-app" / "config.json").write_text(json.dumps({**cfg, "state_dir": "/state-bad"}))
    shutil.move(str(root / "bad-app"), str(app / "bad"))
    # a .efm with a corrupted header, for the page's file picker
    corrupt = root / "corrupt.efm"
    head = bytearray(Bundle.open(bundle).artifact_path("efm-int8").read_bytes())
    head[0:4] = b"XXXX"
    corrupt.write_bytes(bytes(head))

    browser = Browser()
    yield {"fleet": fleet, "admin": admin, "browser": browser, "expected": expected, "y": y, "corrupt": corrupt,
           "bundle": bundle, "public_key": pub, "samples": samples}
    browser.close()
    admin.close()
    if fleet.server:
        fleet.stop()


def wait_ready(b):
    b("wait", js="window.edgefleetApp && (window.edgefleetApp.ready || window.edgefleetApp.failed)", timeout_ms=180000)
    failed = b("eval", js="return window.edgefleetApp.failed || ''")
    assert not failed, failed


def predict_sample(b, n_before):
    b("click", selector="#sample")
    b("wait", js=f"(window.edgefleetApp.predictions || 0) > {n_before}")
    return int(b("eval", js="return document.getElementById('top').dataset.label"))


def test_page_predicts_known_digits_and_reports_telemetry(setup):
    b, fleet = setup["browser"], setup["fleet"]
    b("goto", url=fleet.url)
    wait_ready(b)
    info = b("eval", js="const a = window.edgefleetApp; return {variant: a.rt.variant, t: a.timings, "
                        "kernels: document.getElementById('kernels').textContent}")
    labels = [predict_sample(b, i) for i in range(N_SAMPLES)]
    assert labels == setup["expected"].tolist()  # the same answers as the native runtime
    assert np.mean(np.array(labels) == setup["y"]) >= 0.8
    assert info["variant"] == "simd128"
    assert b("eval", js="return document.getElementById('kernels').textContent") == "wasm-simd128"
    r = b("eval", js="return await window.edgefleetApp.sync()")
    assert r["sync"]["online"] and r["sync"]["delivered"] >= 2, r
    assert fleet.server.store.count_windows() >= 2  # windows of 5 predictions, in the coordinator's store
    # a policy decided at the coordinator shows on the page at the next sync
    setup["admin"].set_fallback("web", artifact="onnx-int8", reason="browser test")
    b("eval", js="return await window.edgefleetApp.sync()")
    assert "fallback to onnx-int8" in b("eval", js="return document.getElementById('policy').textContent")
    setup["admin"].set_fallback("web", artifact="", reason="browser test over")
    b("eval", js="return await window.edgefleetApp.sync()")
    assert b("blocked") == []  # nothing but 127.0.0.1 was requested
    lat = np.array(b("eval", js="return window.edgefleetApp.latencies"))
    print("browser start-up (ms from page load):", info["t"], "; per prediction, median ms: SDK call "
          f"{np.median(lat[:, 0]):.3f}, model {np.median(lat[:, 1]):.3f}, SDK overhead {np.median(lat[:, 0] - lat[:, 1]):.3f}")


def test_bad_input_gives_visible_messages_and_the_page_keeps_working(setup):
    b = setup["browser"]
    b("click", selector="#clear")
    b("click", selector="#predict")
    assert "canvas is empty" in b("eval", js="return document.getElementById('message').textContent")
    b("files", selector="#efmfile", path=str(setup["corrupt"]))
    b("wait", js="document.getElementById('message').textContent.includes('refused')")
    assert "magic" in b("eval", js="return document.getElementById('message').textContent")
    n = b("eval", js="return window.edgefleetApp.predictions || 0")
    assert predict_sample(b, n) in range(10)  # still predicting


def test_coordinator_outage_is_survived_across_a_reload(setup):
    b, fleet = setup["browser"], setup["fleet"]
    b("wait", js="window.edgefleetApp.offlineReady === true")  # the page's files are cached (service worker)
    before = fleet.server.store.count_windows()
    fleet.stop()
    n = b("eval", js="return window.edgefleetApp.predictions || 0")
    for i in range(10):  # two windows of 5
        predict_sample(b, n + i)
    r = b("eval", js="return await window.edgefleetApp.sync()")
    assert not r["sync"]["online"] and r["queued"] >= 2, r
    assert "unreachable" in b("eval", js="return document.getElementById('message').textContent")
    queued = r["queued"]
    b("reload")  # the queue and the identity live in IndexedDB
    wait_ready(b)
    r = b("eval", js="return await window.edgefleetApp.sync()")  # still down: the windows are still queued
    assert not r["sync"]["online"] and r["queued"] >= queued, r
    fleet.start()
    r = b("eval", js="return await window.edgefleetApp.sync()")
    assert r["sync"]["online"] and r["queued"] == 0, r
    assert fleet.server.store.count_windows() >= before + queued  # nothing lost
    predict_sample(b, b("eval", js="return window.edgefleetApp.predictions || 0"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    b("screenshot", path=str(ARTIFACTS / "browser.png"))


def test_bundle_with_a_flipped_byte_is_refused_visibly(setup):
    b, fleet = setup["browser"], setup["fleet"]
    b("goto", url=fleet.url + "bad/")
    b("wait", js="window.edgefleetApp && window.edgefleetApp.failed", timeout_ms=180000)
    text = b("eval", js="return document.getElementById('message').textContent")
    assert "failed verification" in text and "sha256" in text, text
    assert b("eval", js="return document.getElementById('status').textContent") == "bundle refused"
    b("screenshot", path=str(ARTIFACTS / "browser-refused.png"))


def test_the_page_rotates_its_token_before_it_expires_and_asks_the_cloud(setup, tmp_path):
    """FetchTransport in the page follows the SDK's one rotation rule (half the token's life): against
    a coordinator whose device tokens live 10 s, the page's device rotates on the first sync past 5 s
    (its old token is refused at once) and is still online after the first token's expiry; a cloud
    Predict over fetch answers with the model's logits."""
    import time

    import grpc

    from edgefleet._webapp import write_browser_app
    from edgefleet.bundle import Bundle, pack
    from edgefleet.coordinator import AdminClient
    from edgefleet.proto import fleet_pb2 as pb
    from edgefleet.proto.fleet_pb2_grpc import FleetStub

    b = setup["browser"]
    fleet = Fleet(tmp_path, tmp_path / "app", setup["public_key"], token_ttl_s=10.0)
    (tmp_path / "app").mkdir()
    fleet.start(init=True)
    admin = AdminClient(f"127.0.0.1:{fleet.grpc_port}", ADMIN)
    channel = grpc.insecure_channel(f"127.0.0.1:{fleet.grpc_port}")
    try:
        version = Bundle.open(setup["bundle"]).version
        admin.publish_bundle(pack(setup["bundle"], tmp_path / "bundle.tar.gz").read_bytes())
        admin.set_baseline("web", version)
        admin.set_privacy("web", True)
        write_browser_app(tmp_path / "app", setup["bundle"], enrollment_token=admin.create_enrollment_token("web"),
                          trusted_key=setup["public_key"], samples=setup["samples"], sync_ms=600000, window_size=5)
        b("goto", url=fleet.url)   # another origin: its own IndexedDB, so a new identity
        wait_ready(b)
        py = "return JSON.parse(await window.edgefleetApp.py.runPythonAsync({!r}))".format
        sync = lambda: b("eval", js="return await window.edgefleetApp.sync()")   # noqa: E731
        identity = lambda: b("eval", js=py("import json; json.dumps({**dev.identity, **dev.stats})"))   # noqa: E731
        assert sync()["sync"]["online"]
        first = identity()
        assert 9000 <= first["token_expires_ms"] - first["token_issued_ms"] <= 10500
        time.sleep(max(0.0, (first["token_issued_ms"] + 5200) / 1000 - time.time()))
        assert sync()["sync"]["online"]
        second = identity()
        assert second["token_rotations"] == 1 and second["device_token"] != first["device_token"]
        with pytest.raises(grpc.RpcError) as info:   # the old token stopped at once
            FleetStub(channel).GetPolicy(pb.PolicyRequest(), metadata=(("authorization", f"Bearer {first['device_token']}"),))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        time.sleep(max(0.0, (first["token_expires_ms"] + 300) / 1000 - time.time()))
        assert sync()["sync"]["online"]   # past the first token's expiry: the rotated one still works
        row = json.dumps(setup["samples"]["x"][0])
        logits = b("eval", js=py(f"import json; json.dumps(dev.transport.predict({row}, 1, {version!r}, 5.0))"))
        assert len(logits) == 10 and int(np.argmax(logits)) == setup["expected"][0]
        assert [a["kind"] for a in admin.list_audit("web")] == ["predict_inputs"]
    finally:
        channel.close()
        admin.close()
        fleet.stop()


def test_demo_serves_the_page_and_a_working_enrollment_token(digits_export, tmp_path):
    """`edgefleet demo --browser`'s server: the page, its runtime and config under /app/, and a token
    that enrols a device over Connect (no browser needed for this part)."""
    import urllib.request

    from edgefleet._webapp import serve_browser_demo
    from edgefleet.device import ConnectTransport

    server, url = serve_browser_demo(digits_export.bundle.path, tmp_path / "demo", http_port=free_port(), samples=5)
    try:
        page = urllib.request.urlopen(url, timeout=10).read().decode()
        assert "app.mjs" in page
        assert urllib.request.urlopen(url + "efm-simd128.wasm", timeout=10).read()[:4] == b"\0asm"
        config = json.loads(urllib.request.urlopen(url + "config.json", timeout=10).read())
        assert len(json.loads(urllib.request.urlopen(url + "samples.json", timeout=10).read())["y"]) == 5
        ident = ConnectTransport(server.http_url).enroll(config["enrollment_token"], "browser")
        assert ident["cohort"] == "web"
    finally:
        server.stop(0)
