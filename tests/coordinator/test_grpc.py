"""The gRPC service on a real server (127.0.0.1, ephemeral port): auth, validation, idempotency,
limits, TLS, bundle fetch and policy watch."""

from __future__ import annotations

import datetime
import hashlib

import grpc
import pytest

from edgefleet.bundle import Bundle
from edgefleet.proto import fleet_pb2 as pb
from edgefleet.proto import fleet_pb2_grpc as pb_grpc
from edgefleet.coordinator.wire import window_from_dict
from edgefleet.device import Window

from bundle_factory import ADMIN


def make_window(bundle_dir, n=5, version=None):
    bundle = Bundle.open(bundle_dir)
    w = Window(bundle.manifest["monitoring"], version or bundle.version, "onnx-int8", now_ms=1000)
    k = len(bundle.manifest["monitoring"]["projection"]["histograms"])
    for i in range(n):
        w.observe([3.0 if c == i % 10 else 0.0 for c in range(10)], [0.0] * k, 1.5)
    return w.close(2000)


@pytest.fixture
def enrolled(server, admin, archives):
    admin.publish_bundle(archives["1.0"])
    admin.set_baseline("eu", "1.0")
    token = admin.create_enrollment_token("eu", uses=2)
    channel = grpc.insecure_channel(server.grpc_target)
    stub = pb_grpc.FleetStub(channel)
    r1 = stub.Enroll(pb.EnrollRequest(enrollment_token=token, hardware="test"))
    r2 = stub.Enroll(pb.EnrollRequest(enrollment_token=token))
    yield stub, r1, r2
    channel.close()


def md(token):
    return (("authorization", f"Bearer {token}"),)


def code_of(fn):
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value.code()


def test_enrollment_token_is_single_use_per_count(enrolled, server, admin):
    stub, r1, r2 = enrolled
    assert r1.cohort == "eu" and r1.device_id != r2.device_id
    token = admin.create_enrollment_token("eu", uses=1)
    stub.Enroll(pb.EnrollRequest(enrollment_token=token))
    assert code_of(lambda: stub.Enroll(pb.EnrollRequest(enrollment_token=token))) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: stub.Enroll(pb.EnrollRequest(enrollment_token=""))) == grpc.StatusCode.UNAUTHENTICATED


def test_every_device_call_is_authenticated(enrolled):
    stub = enrolled[0]
    calls = [lambda m: stub.Report(pb.ReportRequest(), metadata=m), lambda m: stub.GetPolicy(pb.PolicyRequest(), metadata=m),
             lambda m: stub.Feedback(pb.FeedbackRequest(), metadata=m),
             lambda m: stub.ReportEvent(pb.EventRequest(kind="x"), metadata=m),
             lambda m: list(stub.FetchBundle(pb.FetchBundleRequest(digest="x"), metadata=m))]
    for call in calls:
        assert code_of(lambda: call(())) == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(lambda: call(md("forged"))) == grpc.StatusCode.UNAUTHENTICATED


def test_admin_calls_need_the_admin_token(server, enrolled):
    stub = pb_grpc.AdminStub(grpc.insecure_channel(server.grpc_target))
    device_token = enrolled[1].device_token
    for metadata in ((), md(device_token), md("wrong")):
        assert code_of(lambda: stub.ListDecisions(pb.ListDecisionsRequest(), metadata=metadata)) == \
            grpc.StatusCode.UNAUTHENTICATED


def test_report_is_durable_and_idempotent(enrolled, bundles, server):
    stub, r1, _ = enrolled
    windows = [make_window(bundles["1.0"]) for _ in range(3)]
    req = pb.ReportRequest(windows=[window_from_dict(w) for w in windows])
    first = stub.Report(req, metadata=md(r1.device_token))
    assert sorted(first.acknowledged) == sorted(w["report_id"] for w in windows) and first.duplicates == 0
    again = stub.Report(req, metadata=md(r1.device_token))
    assert again.duplicates == 3 and server.store.count_windows() == 3


def test_a_device_reports_only_for_itself(enrolled, bundles, server):
    stub, r1, r2 = enrolled
    req = pb.ReportRequest(windows=[window_from_dict(make_window(bundles["1.0"]))], device_id=r2.device_id)
    assert code_of(lambda: stub.Report(req, metadata=md(r1.device_token))) == grpc.StatusCode.PERMISSION_DENIED
    req.device_id = r1.device_id
    stub.Report(req, metadata=md(r1.device_token))
    assert server.store.window_ids()[0][0] == r1.device_id


@pytest.mark.parametrize("mutate, message", [
    (lambda w: w["class_counts"].pop(), "class_counts: expected 10 bins"),
    (lambda w: w["confidence"].append(0), "confidence: expected"),
    (lambda w: w["projections"][0].pop(), "projections[0]: expected"),
    (lambda w: w["projections"].pop(), "projections: expected 4 projections"),
    (lambda w: w["class_counts"].__setitem__(0, -1), "class_counts"),
    (lambda w: w.update(model_version="9.9"), "unknown model version '9.9'"),
    (lambda w: w.update(artifact="tflite-int8"), "not an artifact of version"),
    (lambda w: w.update(count=w["count"] + 1), "counts sum to"),
    (lambda w: w.update(report_id=""), "report_id"),
    (lambda w: w.update(confidence_sum=float("nan")), "confidence_sum"),
    (lambda w: w.update(shadow_agree=3, shadow_count=1), "shadow_agree"),
    (lambda w: w.update(end_ms=-5), "end_ms"),
])
def test_invalid_reports_are_refused_and_nothing_is_stored(enrolled, bundles, server, mutate, message):
    stub, r1, _ = enrolled
    good, bad = make_window(bundles["1.0"]), make_window(bundles["1.0"])
    mutate(bad)
    req = pb.ReportRequest(windows=[window_from_dict(good), window_from_dict(bad)])
    with pytest.raises(grpc.RpcError) as info:
        stub.Report(req, metadata=md(r1.device_token))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details() and "windows[1]" in info.value.details()
    assert server.store.count_windows() == 0


def test_oversized_messages_are_refused(server, enrolled):
    stub, r1, _ = enrolled
    big = pb.EventRequest(kind="x", detail="y" * (server.config.max_message_bytes + 10))
    assert code_of(lambda: stub.ReportEvent(big, metadata=md(r1.device_token))) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_fetch_bundle_in_chunks_with_digest(enrolled, archives, server):
    stub, r1, _ = enrolled
    digest = server.store.bundle_by_version("1.0")[0]
    chunks = list(stub.FetchBundle(pb.FetchBundleRequest(digest=digest), metadata=md(r1.device_token)))
    data = b"".join(c.data for c in chunks)
    assert data == archives["1.0"] and chunks[0].archive_sha256 == hashlib.sha256(data).hexdigest()
    assert len(chunks) == -(-len(data) // (64 * 1024))
    tail = list(stub.FetchBundle(pb.FetchBundleRequest(digest=digest, offset=len(data) - 10),
                                 metadata=md(r1.device_token)))
    assert b"".join(c.data for c in tail) == data[-10:]
    assert code_of(lambda: list(stub.FetchBundle(pb.FetchBundleRequest(digest="0" * 64),
                                                 metadata=md(r1.device_token)))) == grpc.StatusCode.NOT_FOUND


def test_watch_policy_streams_changes(enrolled, admin):
    stub, r1, _ = enrolled
    stream = stub.WatchPolicy(pb.PolicyRequest(), metadata=md(r1.device_token), timeout=20)
    first = next(stream)
    assert first.baseline.version == "1.0" and first.fallback_artifact == ""
    admin.set_fallback("eu", artifact="onnx-fp32", reason="test")
    second = next(stream)
    assert second.revision > first.revision and second.fallback_artifact == "onnx-fp32"
    stream.cancel()


def test_publish_refuses_conflicts_and_untrusted_bundles(admin, archives, tmp_path, bundles):
    from edgefleet._signing import generate_key
    from edgefleet.bundle import pack
    from edgefleet.device import Rejected
    from bundle_factory import make_bundle
    admin.publish_bundle(archives["1.0"])
    assert admin.publish_bundle(archives["1.0"])["version"] == "1.0"  # republishing the same is a no-op
    other = pack(make_bundle(tmp_path / "o", version="1.0", signing_key=generate_key()), tmp_path / "o.tgz")
    with pytest.raises(Rejected, match="INVALID_ARGUMENT.*untrusted key"):
        admin.publish_bundle(other.read_bytes())
    with pytest.raises(Rejected, match="INVALID_ARGUMENT"):
        admin.publish_bundle(b"not an archive")


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    import ipaddress
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_tls_with_a_self_signed_certificate(tmp_path, archives):
    from edgefleet.coordinator import AdminClient, Server, ServerConfig
    from edgefleet.device import Offline
    import ssl
    import urllib.request
    cert, key = _self_signed(tmp_path)
    with Server(ServerConfig(store=f"sqlite:///{tmp_path / 'f.db'}", admin_token=ADMIN, tls_cert=cert, tls_key=key,
                             evaluate_interval_s=None)) as srv:
        admin = AdminClient(srv.grpc_target, ADMIN, root_cert=cert)
        assert admin.publish_bundle(archives["1.0"])["signed"]
        admin.close()
        plain = AdminClient(srv.grpc_target, ADMIN, timeout_s=3)
        with pytest.raises(Offline):
            plain.list_decisions()  # a plaintext client cannot talk to the TLS port
        plain.close()
        ctx = ssl.create_default_context(cafile=cert)
        assert srv.http_url.startswith("https://")
        with urllib.request.urlopen(srv.http_url + "/metrics", context=ctx, timeout=10) as r:
            assert b"edgefleet_rpc_total" in r.read()


def test_assign_cohort_moves_a_device(enrolled, admin, archives, bundles, server):
    stub, r1, _ = enrolled
    admin.set_fallback("us", artifact="onnx-fp32", reason="us policy")
    admin.assign_cohort(r1.device_id, "us")
    policy = stub.GetPolicy(pb.PolicyRequest(), metadata=md(r1.device_token))
    assert policy.cohort == "us" and policy.fallback_artifact == "onnx-fp32"
    stub.Report(pb.ReportRequest(windows=[window_from_dict(make_window(bundles["1.0"]))]), metadata=md(r1.device_token))
    assert len(server.store.recent_windows("us", "1.0", 10)) == 1
    from edgefleet.device import Rejected
    with pytest.raises(Rejected, match="NOT_FOUND"):
        admin.assign_cohort("dev-nope", "us")


def test_policy_watches_are_capped(enrolled, server):
    stub, r1, _ = enrolled
    limit = server.fleet.max_watches
    streams = [stub.WatchPolicy(pb.PolicyRequest(), metadata=md(r1.device_token), timeout=20) for _ in range(limit)]
    for s in streams:
        next(s)  # each holds a slot now
    extra = stub.WatchPolicy(pb.PolicyRequest(), metadata=md(r1.device_token), timeout=20)
    with pytest.raises(grpc.RpcError) as info:
        next(extra)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "poll GetPolicy" in info.value.details()
    assert stub.GetPolicy(pb.PolicyRequest(), metadata=md(r1.device_token)).cohort == "eu"  # polling still works
    for s in streams:
        s.cancel()
