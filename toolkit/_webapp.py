"""The browser device's files, as the coordinator serves them under ``/app/``: the page and runtime
(``wasm/web/``: page, loader, ``.wasm``, Pyodide, the pure-Python wheel, built by ``scripts/setup.sh``)
plus one bundle, test samples and ``config.json`` (enrollment token, trusted key). Used by
``edgefleet demo --browser`` and the browser tests.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

from ._errors import ConfigError
from .bundle import Bundle, canonical_json

WEB = Path(__file__).resolve().parents[1] / "wasm" / "web"


def sign_bundle(bundle_dir: Path, private_key: bytes) -> None:
    """(Re)sign a bundle directory's manifest in place with a raw ed25519 key."""
    from ._signing import sign_bytes

    path = Path(bundle_dir) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.pop("signature", None)
    manifest["signature"] = sign_bytes(canonical_json(manifest), private_key)
    path.write_text(json.dumps(manifest, indent=2))


def write_browser_app(dest: Path, bundle_dir: Path, *, enrollment_token: str, trusted_key: bytes | None,
                      samples: dict | None = None, sync_ms: int = 5000, window_size: int = 10) -> Path:
    """Fill ``dest`` with the page, its runtime and ``bundle_dir`` (copied to ``dest/bundle``)."""
    dest = Path(dest)
    wheels = sorted((WEB / "wheels").glob("edgefleet-*.whl"))
    missing = [p for p in ("index.html", "efm.mjs", "efm-simd128.wasm", "pyodide/pyodide.mjs") if not (WEB / p).exists()]
    if missing or not wheels:
        raise ConfigError(f"{WEB} is not built ({', '.join(missing) or 'no wheel'} missing): run bash scripts/setup.sh")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(WEB, dest, ignore=shutil.ignore_patterns(".*"))
    Bundle.open(bundle_dir)  # refuse to serve a broken bundle
    shutil.copytree(bundle_dir, dest / "bundle")
    config = {"bundle": "bundle/", "wheel": f"wheels/{wheels[-1].name}", "enrollment_token": enrollment_token,
              "trusted_key": base64.b64encode(trusted_key).decode() if trusted_key else "", "sync_ms": sync_ms,
              "window_size": window_size}
    if samples is not None:
        (dest / "samples.json").write_text(json.dumps(samples))
        config["samples"] = "samples.json"
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    return dest


def serve_browser_demo(bundle_dir: Path, workdir: Path, *, http_port: int = 8080, samples: int = 200):
    """Start a coordinator on 127.0.0.1 serving the browser device under ``/app/`` with ``bundle_dir``
    (signed here with a new key) as the web cohort's baseline. Returns ``(server, url)``."""
    import secrets

    from . import _signing
    from .bundle import pack
    from edgefleet.coordinator import AdminClient, Server, ServerConfig

    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    key = _signing.generate_key()
    pub = _signing.public_key(key)
    bundle = workdir / "bundle"
    shutil.copytree(bundle_dir, bundle)
    sign_bundle(bundle, key)
    admin_token = secrets.token_urlsafe(32)
    (workdir / "app").mkdir()
    server = Server(ServerConfig(init=True, store=f"sqlite:///{workdir / 'fleet.db'}", admin_token=admin_token,
                                 http_port=http_port, app_dir=str(workdir / "app"), trusted_key=pub)).start()
    try:
        admin = AdminClient(server.grpc_target, admin_token)
        admin.publish_bundle(pack(bundle, workdir / "bundle.tar.gz").read_bytes())
        admin.set_baseline("web", Bundle.open(bundle).version)
        token = admin.create_enrollment_token("web", uses=10000)
        admin.close()
        write_browser_app(workdir / "app", bundle, enrollment_token=token, trusted_key=pub,
                          samples=digits_samples(samples))
    except BaseException:
        server.stop(0)
        raise
    return server, f"{server.http_url}/app/"


def digits_samples(n: int) -> dict:
    """The first ``n`` held-out digits (8x8, values in [0, 1]) and their labels, for the page's picker."""
    from edgefleet.compress.data import load_dataset

    data = load_dataset("digits", seed=0)
    return {"x": data.x_test[:n].reshape(min(n, len(data.x_test)), -1).tolist(), "y": data.y_test[:n].tolist()}
