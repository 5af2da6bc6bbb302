"""The pure-Python Ed25519 verifier (used where ``cryptography`` is missing: Pyodide) agrees with
``cryptography`` on valid signatures and refuses every tampered key, message and signature."""

import base64
import os

import pytest

from edgefleet import _ed25519, _signing

ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")


def raw_pub(key):
    from cryptography.hazmat.primitives import serialization
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_agrees_with_cryptography_on_valid_and_tampered_signatures():
    for i in range(12):
        key = ed25519.Ed25519PrivateKey.generate()
        pub, msg = raw_pub(key), os.urandom(i * 37)
        sig = key.sign(msg)
        assert _ed25519.verify(pub, sig, msg)
        flipped = bytearray(sig)
        flipped[i * 5 % 64] ^= 1 << (i % 8)
        assert not _ed25519.verify(pub, bytes(flipped), msg)
        assert not _ed25519.verify(pub, sig, msg + b"x")
        other = raw_pub(ed25519.Ed25519PrivateKey.generate())
        assert not _ed25519.verify(other, sig, msg)


def test_malformed_inputs_are_refused_not_raised():
    key = ed25519.Ed25519PrivateKey.generate()
    pub, sig = raw_pub(key), key.sign(b"m")
    assert not _ed25519.verify(pub[:31], sig, b"m")
    assert not _ed25519.verify(pub, sig[:63], b"m")
    big_s = sig[:32] + (2**253).to_bytes(32, "little")  # s >= group order
    assert not _ed25519.verify(pub, big_s, b"m")
    assert not _ed25519.verify(b"\xff" * 32, sig, b"m")  # not a point


def test_signing_module_falls_back_to_it_without_cryptography(monkeypatch):
    key = _signing.generate_key()
    sig = _signing.sign_bytes(b"manifest", key)

    def missing():
        raise _signing.BundleError("no cryptography")
    monkeypatch.setattr(_signing, "_crypto", missing)
    assert _signing.verify_bytes(b"manifest", sig)
    assert not _signing.verify_bytes(b"manifest!", sig)
    assert not _signing.verify_bytes(b"manifest", {**sig, "value": base64.b64encode(b"\0" * 64).decode()})
