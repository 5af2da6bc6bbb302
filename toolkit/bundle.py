"""Read, write, verify and pack bundles: a directory with ``manifest.json`` and its artifacts.

>>> from edgefleet import Bundle
>>> bundle = Bundle.open("out/digits")          # doctest: +SKIP
>>> bundle.artifact_path("onnx-int8")           # doctest: +SKIP
PosixPath('out/digits/model.int8.onnx')

Opening a bundle validates the manifest (schema version, every field a consumer relies on) and,
unless ``verify=False``, the size and sha256 of every artifact, so a truncated or altered file is
refused with the artifact's name. Signing (ed25519) covers the canonical JSON of the manifest, which
holds every artifact's digest; so one signature covers the whole bundle.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import BundleError
from ._manifest import SCHEMA_VERSION, TARGET_FILES, validate_manifest

MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(obj: Any) -> bytes:
    """The byte form that is hashed and signed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Artifact:
    """One artifact entry of a manifest, with its resolved path."""

    target: str
    path: Path
    sha256: str
    bytes: int
    runtime: str
    precision: str
    metrics: dict

    @classmethod
    def from_entry(cls, root: Path, entry: dict) -> "Artifact":
        return cls(entry["target"], root / entry["file"], entry["sha256"], entry["bytes"],
                   entry["runtime"], entry["precision"], entry.get("metrics", {}))


class Bundle:
    """A validated bundle directory. Use :meth:`open`; never construct directly."""

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | os.PathLike, *, verify: bool = True) -> "Bundle":
        root = Path(path)
        if root.is_file() and tarfile.is_tarfile(root):
            raise BundleError(f"{root}: is an archive; unpack it first with edgefleet.bundle.unpack()")
        manifest_path = root / MANIFEST_NAME
        try:
            raw = manifest_path.read_bytes()
        except FileNotFoundError as e:
            raise BundleError(f"{root}: not a bundle (no {MANIFEST_NAME})") from e
        try:
            manifest = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{manifest_path}: not valid JSON ({e})") from e
        bundle = cls(root, validate_manifest(manifest))
        if verify:
            bundle.verify_artifacts()
        return bundle

    # -- views -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def version(self) -> str:
        return self.manifest["model"]["version"]

    @property
    def targets(self) -> list[str]:
        return [a["target"] for a in self.manifest["artifacts"]]

    @property
    def fallback_chain(self) -> list[str]:
        return list(self.manifest["fallback_chain"])

    def artifact(self, target: str) -> Artifact:
        for entry in self.manifest["artifacts"]:
            if entry["target"] == target:
                return Artifact.from_entry(self.path, entry)
        raise BundleError(f"{self.path}: no artifact for target {target!r}; it has {', '.join(self.targets) or 'none'}")

    def artifact_path(self, target: str) -> Path:
        return self.artifact(target).path

    @property
    def digest(self) -> str:
        """sha256 of the canonical manifest (which holds every artifact's digest): the bundle's identity."""
        return hashlib.sha256(canonical_json(self.manifest)).hexdigest()

    # -- verification ------------------------------------------------------------------------
    def verify_artifacts(self) -> None:
        for entry in self.manifest["artifacts"]:
            path = self.path / entry["file"]
            if not path.is_file():
                raise BundleError(f"{self.path}: artifact {entry['target']} file {entry['file']} is missing")
            size = path.stat().st_size
            if size != entry["bytes"]:
                raise BundleError(
                    f"{self.path}: artifact {entry['target']} ({entry['file']}) is {size} bytes, manifest says "
                    f"{entry['bytes']} (truncated or replaced)")
            actual = sha256_file(path)
            if actual != entry["sha256"]:
                raise BundleError(
                    f"{self.path}: artifact {entry['target']} ({entry['file']}) sha256 mismatch: "
                    f"manifest {entry['sha256'][:16]}..., file {actual[:16]}...")

    def verify_signature(self, public_key: bytes | str | None = None) -> bool:
        """Check the ed25519 signature. Pass the trusted public key (raw 32 bytes or base64);
        without one only self-consistency is checked. Raises BundleError when it does not hold."""
        sig = self.manifest.get("signature")
        if sig is None:
            raise BundleError(f"{self.path}: bundle is not signed")
        if public_key is not None:
            trusted = public_key if isinstance(public_key, bytes) else base64.b64decode(public_key)
            if base64.b64decode(sig["public_key"]) != trusted:
                raise BundleError(f"{self.path}: signed by an untrusted key")
        from ._signing import verify_bytes
        unsigned = {k: v for k, v in self.manifest.items() if k != "signature"}
        if not verify_bytes(canonical_json(unsigned), sig):
            raise BundleError(f"{self.path}: signature does not match the manifest")
        return True


class BundleWriter:
    """Stage artifacts in a temporary directory and move the finished bundle into place at once.

    >>> w = BundleWriter("out/digits")                                  # doctest: +SKIP
    >>> w.add_artifact("onnx-fp32", "/tmp/model.onnx", runtime="onnxruntime", precision="fp32")  # doctest: +SKIP
    >>> w.finish(manifest_fields)                                       # doctest: +SKIP
    """

    def __init__(self, dest: str | os.PathLike):
        self.dest = Path(dest)
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self._stage = Path(tempfile.mkdtemp(prefix=".bundle-", dir=self.dest.parent))
        self._artifacts: list[dict] = []

    @property
    def stage(self) -> Path:
        return self._stage

    def add_artifact(self, target: str, source: str | os.PathLike | bytes, *, runtime: str, precision: str,
                     metrics: dict | None = None, requires: dict | None = None) -> dict:
        if target not in TARGET_FILES:
            raise BundleError(f"unknown artifact target {target!r}; expected one of {', '.join(TARGET_FILES)}")
        file = TARGET_FILES[target]
        dest = self._stage / file
        if isinstance(source, bytes):
            dest.write_bytes(source)
        elif Path(source).resolve() != dest.resolve():
            shutil.copyfile(source, dest)
        entry = {"target": target, "file": file, "sha256": sha256_file(dest), "bytes": dest.stat().st_size,
                 "runtime": runtime, "precision": precision, "metrics": metrics or {}, "requires": requires or {}}
        self._artifacts.append(entry)
        return entry

    def add_file(self, name: str, content: str | bytes) -> None:
        data = content.encode() if isinstance(content, str) else content
        (self._stage / name).write_bytes(data)

    def finish(self, fields: dict, *, signing_key: bytes | None = None) -> Bundle:
        manifest = {"schema_version": SCHEMA_VERSION, **fields, "artifacts": self._artifacts}
        manifest.setdefault("signature", None)
        manifest.pop("signature")
        if signing_key is not None:
            from ._signing import sign_bytes
            manifest["signature"] = sign_bytes(canonical_json(manifest), signing_key)
        validate_manifest(manifest)
        (self._stage / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if self.dest.exists():
            old = self.dest.with_name(f".{self.dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.dest, old)
            os.replace(self._stage, self.dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._stage, self.dest)
        return Bundle.open(self.dest)

    def abort(self) -> None:
        shutil.rmtree(self._stage, ignore_errors=True)


def pack(bundle_dir: str | os.PathLike, archive: str | os.PathLike) -> Path:
    """Write a bundle directory as one deterministic ``.tar.gz`` (sorted names, zeroed times and owners)."""
    bundle = Bundle.open(bundle_dir)
    out = Path(archive)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in bundle.path.iterdir() if p.is_file()):
            info = tarfile.TarInfo(path.name)
            info.size = path.stat().st_size
            info.mode = 0o644
            with open(path, "rb") as f:
                tar.addfile(info, f)
    import gzip
    with open(out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue())
    return out


def unpack(archive: str | os.PathLike, dest: str | os.PathLike) -> Bundle:
    """Unpack an archive written by :func:`pack` and open (verify) the bundle."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                if not member.isfile() or "/" in member.name or member.name.startswith("."):
                    raise BundleError(f"{archive}: unexpected entry {member.name!r} (a bundle archive is flat)")
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BundleError(f"{archive}: not a readable bundle archive ({e})") from e
    return Bundle.open(dest)
