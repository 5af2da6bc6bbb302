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
