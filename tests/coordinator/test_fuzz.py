"""Acceptance: fuzzing every gRPC endpoint with thousands of random byte strings and random-but-valid
messages with absurd values: no crash, no hang (every call has a deadline), each reply a deliberate
status code (never UNKNOWN or INTERNAL), and the server still serves afterwards."""

from __future__ import annotations

import random
import time

import grpc
import pytest

from edgefleet.proto import fleet_pb2 as pb
from edgefleet.proto.fleet_pb2_grpc import FleetStub

from bundle_factory import ADMIN

ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED,
           grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
           grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED}
METHODS = [(name, m) for name in ("Fleet", "Admin") for m in pb.DESCRIPTOR.services_by_name[name].methods]


@pytest.fixture
def fuzz_env(server, admin, archives):
    admin.publish_bundle(archives["1.0"])
    admin.set_baseline("eu", "1.0")
    channel = grpc.insecure_channel(server.grpc_target)
    stub = FleetStub(channel)
    device = stub.Enroll(pb.EnrollRequest(enrollment_token=admin.create_enrollment_token("eu")))
    yield channel, device.device_token
    channel.close()


def _call(channel, service, method, payload: bytes, token):
    path = f"/edgefleet.v1.{service}/{method.name}"
    md = (("authorization", f"Bearer {token}"),)
    try:
        if method.server_streaming:
            watch = method.name == "WatchPolicy"
            stream = channel.unary_stream(path)(payload, metadata=md, timeout=0.5 if watch else 10)
            for _ in stream:
                if method.name == "WatchPolicy":  # a watch never ends by itself: first message, then hang up
                    stream.cancel()
                    break
        else:
            channel.unary_unary(path)(payload, metadata=md, timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        if method.name == "WatchPolicy" and e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return grpc.StatusCode.OK  # the watch correctly waited: nothing changed since known_revision
        return e.code()


def _absurd(rng, field):
    from google.protobuf.descriptor import FieldDescriptor as F
    if field.type in (F.TYPE_INT64, F.TYPE_INT32):
        bound = 2 ** 63 - 1 if field.type == F.TYPE_INT64 else 2 ** 31 - 1
        return rng.choice([0, -1, 1, bound, -bound - 1, rng.randint(-bound, bound)])
    if field.type == F.TYPE_DOUBLE:
        return rng.choice([0.0, -1.0, 1e308, -1e308, float("nan"), float("inf"), rng.random()])
    if field.type == F.TYPE_FLOAT:
        return rng.choice([0.0, -1.0, 3e38, -3e38, float("nan"), float("inf"), rng.random()])
    if field.type == F.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type == F.TYPE_BYTES:
        return rng.randbytes(rng.choice([0, 10, 5000]))
    return rng.choice(["", "1.0", "onnx-int8", "eu", "x" * 5000, "\x00\uffff", "../../etc", "*"])


def _repeated(field) -> bool:
    flag = getattr(field, "is_repeated", None)
    return bool(flag) if flag is not None else field.label == field.LABEL_REPEATED


def _random_message(rng, cls, depth=0):
    msg = cls()
    for field in cls.DESCRIPTOR.fields:
        if rng.random() < 0.3:
            continue
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                getattr(msg, field.name).update({str(rng.randint(0, 99)): rng.randint(-5, 5) for _ in range(rng.randint(0, 20))})
            elif _repeated(field):
                for _ in range(rng.choice([0, 1, 3, 50]) if depth < 2 else 0):
                    getattr(msg, field.name).add().CopyFrom(_random_message(rng, getattr(pb, field.message_type.name), depth + 1))
            elif depth < 3:
                getattr(msg, field.name).CopyFrom(_random_message(rng, getattr(pb, field.message_type.name), depth + 1))
        elif _repeated(field):
            getattr(msg, field.name).extend(_absurd(rng, field) for _ in range(rng.choice([0, 1, 10, 2000])))
        else:
            setattr(msg, field.name, _absurd(rng, field))
    return msg


def test_random_bytes_get_status_codes(fuzz_env, server):
    channel, token = fuzz_env
    rng = random.Random(0)
    seen = {}
    for i in range(3000):
        service, method = METHODS[i % len(METHODS)]
        payload = rng.randbytes(rng.choice([0, 1, 7, 64, 1000]))
        code = _call(channel, service, method, payload, token if service == "Fleet" else ADMIN)
        assert code in ALLOWED, (method.name, payload[:40], code)
        seen[code] = seen.get(code, 0) + 1
    assert grpc.StatusCode.INVALID_ARGUMENT in seen
    assert server.store.count_windows() == 0


def test_valid_messages_with_absurd_values_get_status_codes(fuzz_env, server, admin):
    channel, token = fuzz_env
    rng = random.Random(1)
    for i in range(1500):
        service, method = METHODS[i % len(METHODS)]
        if method.name == "Enroll" and rng.random() < 0.5:
            continue
        msg = _random_message(rng, getattr(pb, method.input_type.name))
        code = _call(channel, service, method, msg.SerializeToString(), token if service == "Fleet" else ADMIN)
        assert code in ALLOWED, (method.name, str(msg)[:300], code)
    # still serving, and still sane. The loop calls faster than the device's per-call cap allows
    # (RESOURCE_EXHAUSTED is a deliberate answer); refusals take no token, so after 1/rate seconds the
    # device's bucket holds a call again
    assert admin.list_decisions() is not None
    time.sleep(1.5 / server.config.device_rate)
    try:
        FleetStub(channel).GetPolicy(pb.PolicyRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=10)
    except grpc.RpcError as e:
        raise AssertionError(f"GetPolicy after the fuzzing: {e.code()}: {e.details()}") from e
