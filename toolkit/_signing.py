"""ed25519 signing of canonical manifest bytes. Signing needs the ``cryptography`` package; verifying
uses it where installed and a pure-Python verifier (``_ed25519``) elsewhere (Pyodide)."""

from __future__ import annotations

import base64

from ._errors import BundleError

ALGORITHM = "ed25519"


def _crypto():
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from cryptography.hazmat.primitives import serialization
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise BundleError("bundle signing needs the 'cryptography' package: pip install 'edgefleet[server]'") from e
    return ed25519, serialization


def generate_key() -> bytes:
    """A new raw 32-byte ed25519 private key."""
    ed25519, serialization = _crypto()
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def public_key(private_key: bytes) -> bytes:
    ed25519, serialization = _crypto()
    key = ed25519.Ed25519PrivateKey.from_private_bytes(private_key)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign_bytes(data: bytes, private_key: bytes) -> dict:
    ed25519, _ = _crypto()
    key = ed25519.Ed25519PrivateKey.from_private_bytes(private_key)
    return {"algorithm": ALGORITHM, "public_key": base64.b64encode(public_key(private_key)).decode(),
            "value": base64.b64encode(key.sign(data)).decode()}


def verify_bytes(data: bytes, signature: dict) -> bool:
    if signature.get("algorithm") != ALGORITHM:
        raise BundleError(f"unsupported signature algorithm {signature.get('algorithm')!r}")
    try:
        ed25519, _ = _crypto()
        from cryptography.exceptions import InvalidSignature
    except BundleError:  # no cryptography here (a browser): the pure-Python verifier
        from . import _ed25519
        try:
            return _ed25519.verify(base64.b64decode(signature["public_key"]), base64.b64decode(signature["value"]), data)
        except ValueError:
            return False
    try:
        pub = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(signature["public_key"]))
        pub.verify(base64.b64decode(signature["value"]), data)
    except (InvalidSignature, ValueError):
        return False
    return True
