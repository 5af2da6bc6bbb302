import json
import shutil

import pytest

from edgefleet import Bundle, BundleError, pack, unpack
from edgefleet._manifest import validate_manifest


@pytest.fixture
def bundle_copy(tmp_path, digits_bundle):
    dest = tmp_path / "b"
    shutil.copytree(digits_bundle, dest)
    return dest


def _edit_manifest(path, fn):
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_real_bundle_has_the_contract(digits_bundle):
    b = Bundle.open(digits_bundle)
    assert {"onnx-fp32", "onnx-int8"} <= set(b.targets)
    assert b.fallback_chain[-1] == "onnx-fp32"  # the safest last
    assert (digits_bundle / "card.md").read_text().startswith("# Model card")
    html = (digits_bundle / "report.html").read_text()
    assert html.count("<svg") >= 4
    mon = b.manifest["monitoring"]
    assert sum(mon["class_counts"]) == mon["reference_size"]
    assert len(mon["projection"]["components"]) == 4
    assert sum(mon["confidence"]["counts"]) == mon["reference_size"]
    for a in b.manifest["artifacts"]:
        assert a["bytes"] > 0 and len(a["sha256"]) == 64
        assert "test_accuracy" in a["metrics"] and "parity" in a["metrics"]


def test_hash_mismatch_is_refused(bundle_copy):
    art = bundle_copy / "model.int8.onnx"
    data = bytearray(art.read_bytes())
    data[len(data) // 2] ^= 0xFF
    art.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="onnx-int8.*sha256 mismatch"):
        Bundle.open(bundle_copy)


def test_truncated_artifact_is_refused(bundle_copy):
    art = bundle_copy / "model.onnx"
    art.write_bytes(art.read_bytes()[:1000])
    with pytest.raises(BundleError, match="onnx-fp32.*1000 bytes.*truncated"):
        Bundle.open(bundle_copy)


def test_missing_artifact_is_refused(bundle_copy):
    (bundle_copy / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx is missing"):
        Bundle.open(bundle_copy)


def test_unknown_schema_version_is_refused(bundle_copy):
    _edit_manifest(bundle_copy, lambda m: m.update(schema_version=99))
    with pytest.raises(BundleError, match="unknown schema version 99"):
        Bundle.open(bundle_copy)


def test_not_json_and_not_a_bundle(tmp_path, bundle_copy):
    with pytest.raises(BundleError, match="no manifest.json"):
        Bundle.open(tmp_path)
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.open(bundle_copy)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["model"].pop("version"), r"manifest.model.version: missing"),
    (lambda m: m["artifacts"][0].update(sha256="xyz"), r"artifacts\[0\].sha256"),
    (lambda m: m["artifacts"][0].update(file="../evil"), r"plain file name"),
    (lambda m: m["inputs"][0].update(shape=[1, 1, 8, 8]), r"dynamic batch axis"),
    (lambda m: m.update(fallback_chain=["coreml-int8"]), r"fallback_chain\[0\].*not an artifact"),
    (lambda m: m["monitoring"]["confidence"].update(counts=[1]), r"monitoring.confidence"),
    (lambda m: m["monitoring"].update(class_counts=[1, 2]), r"one per label"),
    (lambda m: m["task"].update(kind="detector"), r"unknown task kind"),
    (lambda m: m["artifacts"][0].update(bytes=True), r"got bool"),
])
def test_manifest_validation_names_the_field(digits_bundle, edit, message):
    m = json.loads((digits_bundle / "manifest.json").read_text())
    edit(m)
    with pytest.raises(BundleError, match=message):
        validate_manifest(m)


def test_pack_is_deterministic_and_unpacks(tmp_path, digits_bundle):
    a, b = pack(digits_bundle, tmp_path / "a.tar.gz"), pack(digits_bundle, tmp_path / "b.tar.gz")
    assert a.read_bytes() == b.read_bytes()
    restored = unpack(a, tmp_path / "restored")
    assert restored.digest == Bundle.open(digits_bundle).digest


def test_truncated_archive_is_refused(tmp_path, digits_bundle):
    a = pack(digits_bundle, tmp_path / "a.tar.gz")
    a.write_bytes(a.read_bytes()[:2000])
    with pytest.raises(BundleError):
        unpack(a, tmp_path / "x")


def test_signature_roundtrip_and_tamper(tmp_path, digits_bundle):
    from edgefleet import BundleWriter
    from edgefleet._signing import generate_key, public_key

    key = generate_key()
    src = Bundle.open(digits_bundle)
    w = BundleWriter(tmp_path / "signed")
    for a in src.manifest["artifacts"]:
        w.add_artifact(a["target"], src.path / a["file"], runtime=a["runtime"], precision=a["precision"], metrics=a["metrics"])
    fields = {k: v for k, v in src.manifest.items() if k not in ("artifacts", "schema_version", "signature")}
    signed = w.finish(fields, signing_key=key)
    assert signed.verify_signature(public_key(key))
    with pytest.raises(BundleError, match="untrusted key"):
        signed.verify_signature(public_key(generate_key()))
    _edit_manifest(signed.path, lambda m: m["model"].update(version="2"))
    with pytest.raises(BundleError, match="signature does not match"):
        Bundle.open(signed.path).verify_signature(public_key(key))
