"""The project signing key: made once with ``edgefleet keys init``, kept outside every bundle.

``edgefleet export`` signs each bundle with it; ``serve``, ``predict`` and ``inspect`` trust its
public half by default. The key lives in ``.edgefleet/`` of the working directory, or in
``$EDGEFLEET_KEY_DIR``: ``signing.key`` (raw 32-byte ed25519 private key, mode 0600) and
``signing.pub`` (base64 public key, safe to hand to devices and coordinators).

>>> key_path, pub_path = init_key(Path("/tmp/project/.edgefleet"))      # doctest: +SKIP
>>> status(Bundle.open("out/digits"), load_public(pub_path))            # doctest: +SKIP
'signed by the trusted key'
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from ._errors import BundleError, ConfigError
from ._signing import generate_key, public_key

__all__ = ["key_dir", "init_key", "load_private", "load_public", "project_private_key", "project_public_key",
           "status", "require_trusted"]

PRIVATE, PUBLIC = "signing.key", "signing.pub"


def key_dir() -> Path:
    return Path(os.environ.get("EDGEFLEET_KEY_DIR") or Path.cwd() / ".edgefleet")


def init_key(directory: Path | None = None) -> tuple[Path, Path]:
    """Create the project key pair; refuses to replace an existing key (bundles signed with it would
    no longer be trusted)."""
    d = Path(directory) if directory else key_dir()
    private, public = d / PRIVATE, d / PUBLIC
    if private.exists():
        raise ConfigError(f"keys init: {private} already exists; a project key is made once (remove it "
                          "yourself to start over: bundles signed with it will no longer be trusted)")
    d.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    public.write_text(base64.b64encode(public_key(key)).decode() + "\n")
    return private, public


def load_private(path: str | os.PathLike) -> bytes:
    try:
        key = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"signing key {path}: {e}") from e
    if len(key) != 32:
        raise ConfigError(f"signing key {path}: expected a raw 32-byte ed25519 private key, got {len(key)} bytes")
    return key


def load_public(path: str | os.PathLike) -> bytes:
    """A public key file: raw 32 bytes or base64."""
    try:
        raw = Path(path).read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"trusted key {path}: {e}") from e
    try:
        key = raw if len(raw) == 32 else base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigError(f"trusted key {path}: neither 32 raw bytes nor base64") from e
    if len(key) != 32:
        raise ConfigError(f"trusted key {path}: expected a 32-byte ed25519 public key, got {len(key)} bytes")
    return key


def project_private_key() -> tuple[bytes, Path] | None:
    path = key_dir() / PRIVATE
    return (load_private(path), path) if path.exists() else None


def signing_key(path: str | os.PathLike | None, who: str) -> tuple[bytes, Path]:
    """The private key ``who`` signs bundles with: ``path`` when given, else the project key (which
    must exist: nothing ships unsigned)."""
    if path:
        return load_private(path), Path(path)
    found = project_private_key()
    if found is None:
        raise ConfigError(f"{who} signs every bundle, and there is no project key in {key_dir()}: run "
                          "`edgefleet keys init` once (or pass --sign-key FILE)")
    return found


def project_public_key() -> bytes | None:
    path = key_dir() / PUBLIC
    return load_public(path) if path.exists() else None


def status(bundle, trusted: bytes | None) -> str:
    """One of: 'signed by the trusted key', 'unsigned', 'signature invalid', 'signed by an untrusted
    key', 'signature valid, but no trusted key to check the signer against'."""
    if bundle.manifest.get("signature") is None:
        return "unsigned"
    try:
        bundle.verify_signature(None)
    except BundleError:
        return "signature invalid"
    if trusted is None:
        return "signature valid, but no trusted key to check the signer against"
    try:
        bundle.verify_signature(trusted)
    except BundleError:
        return "signed by an untrusted key"
    return "signed by the trusted key"


def require_trusted(bundle, trusted: bytes | None, *, allow_unsigned: bool, what: str, label: str = "") -> str:
    """Raise BundleError unless ``bundle`` is signed by ``trusted`` (or ``allow_unsigned``); ``label``
    names the bundle in the message (default: its path)."""
    found = status(bundle, trusted)
    if found == "signed by the trusted key" or allow_unsigned:
        return found
    hint = ("run `edgefleet keys init` and export again, or pass --trusted-key"
            if trusted is None else "sign it with the project key (`edgefleet export`)")
    raise BundleError(f"{what}: bundle {label or bundle.path} is refused: {found.upper()} ({hint}; --allow-unsigned "
                      "skips this check)")
