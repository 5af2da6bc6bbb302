"""The same handlers over HTTP/1.1 (Connect protocol, JSON and binary), from a plain HTTP client;
``/metrics`` and the dashboard from the same origin."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from urllib.parse import urlparse

import pytest

from edgefleet.proto import fleet_pb2 as pb
from edgefleet.coordinator.wire import window_from_dict

from bundle_factory import ADMIN
from test_grpc import make_window


def post(url, path, body, token="", ctype="application/json"):
    data = json.dumps(body).encode() if ctype == "application/json" else body
    req = urllib.request.Request(url + path, data=data, method="POST",
                                 headers={"Content-Type": ctype, "Connect-Protocol-Version": "1",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if ctype == "application/json" else raw)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def device(server, admin, archives):
    admin.publish_bundle(archives["1.0"])
    admin.set_baseline("web", "1.0")
    token = admin.create_enrollment_token("web")
    status, body = post(server.http_url, "/edgefleet.v1.Fleet/Enroll", {"enrollmentToken": token, "hardware": "browser"})
    assert status == 200, body
    return body


def test_enroll_report_and_policy_over_connect_json(server, device, bundles):
    w = window_from_dict(make_window(bundles["1.0"]))
    from google.protobuf import json_format
    report = {"windows": [json_format.MessageToDict(w)]}
    status, body = post(server.http_url, "/edgefleet.v1.Fleet/Report", report, device["deviceToken"])
    assert status == 200 and body["acknowledged"] == [w.report_id]
    status, body = post(server.http_url, "/edgefleet.v1.Fleet/Report", report, device["deviceToken"])
    assert body["duplicates"] == 1 and server.store.count_windows() == 1
    status, policy = post(server.http_url, "/edgefleet.v1.Fleet/GetPolicy", {}, device["deviceToken"])
    assert status == 200 and policy["cohort"] == "web" and policy["baseline"]["version"] == "1.0"


def test_connect_binary_proto(server, device):
    status, raw = post(server.http_url, "/edgefleet.v1.Fleet/GetPolicy", pb.PolicyRequest().SerializeToString(),
                       device["deviceToken"], ctype="application/proto")
    assert status == 200 and pb.Policy.FromString(raw).cohort == "web"


def test_connect_errors_carry_codes(server, device, bundles):
    bad = make_window(bundles["1.0"])
    bad["class_counts"].append(1)
    from google.protobuf import json_format
    status, body = post(server.http_url, "/edgefleet.v1.Fleet/Report",
                        {"windows": [json_format.MessageToDict(window_from_dict(bad))]}, device["deviceToken"])
    assert (status, body["code"]) == (400, "invalid_argument") and "class_counts" in body["message"]
    assert server.store.count_windows() == 0
    assert post(server.http_url, "/edgefleet.v1.Fleet/GetPolicy", {}, "")[1]["code"] == "unauthenticated"
    assert post(server.http_url, "/edgefleet.v1.Admin/ListDecisions", {}, device["deviceToken"])[0] == 401
    assert post(server.http_url, "/edgefleet.v1.Admin/ListDecisions", {}, ADMIN)[0] == 200
    assert post(server.http_url, "/edgefleet.v1.Fleet/Nope", {}, "")[0] == 404
    assert post(server.http_url, "/edgefleet.v1.Fleet/GetPolicy", b"\xff\xff not proto", device["deviceToken"],
                ctype="application/proto")[0] == 400
    status, body = post(server.http_url, "/edgefleet.v1.Fleet/Report", {"windows": "nope"}, device["deviceToken"])
    assert (status, body["code"]) == (400, "invalid_argument")


def test_body_limit(server):
    u = urlparse(server.http_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.putrequest("POST", "/edgefleet.v1.Fleet/Report")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(server.config.max_message_bytes + 1))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 429 and json.loads(r.read())["code"] == "resource_exhausted"
    conn.close()


def test_metrics_and_dashboard_from_the_same_origin(server, device, admin, bundles):
    from google.protobuf import json_format
    for _ in range(2):  # two evaluations with data: two points on each plot
        windows = [json_format.MessageToDict(window_from_dict(make_window(bundles["1.0"], n=60))) for _ in range(5)]
        assert post(server.http_url, "/edgefleet.v1.Fleet/Report", {"windows": windows}, device["deviceToken"])[0] == 200
        admin.evaluate()
    with urllib.request.urlopen(get(server.http_url + "/metrics"), timeout=10) as r:
        text = r.read().decode()
    assert 'edgefleet_rpc_total{code="OK",method="Enroll"} 1.0' in text and "edgefleet_devices 1.0" in text
    admin.set_fallback("web", artifact="onnx-fp32", reason="manual test")
    with urllib.request.urlopen(get(server.http_url + "/dashboard"), timeout=10) as r:
        assert b"/dashboard/web" in r.read()
    with urllib.request.urlopen(get(server.http_url + "/dashboard/web"), timeout=10) as r:
        page = r.read().decode()
    # the accuracy timeline (estimate only: no labels, no line); look and snapshot evidence, effect,
    # estimate with its interval
    assert page.count("<svg") == 4 and page.count("<polyline") == 7 and "manual test" in page
    assert "accuracy timeline" in page
    assert "last verdicts" in page
    assert "<script" not in page
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(get(server.http_url + "/dashboard/nope"), timeout=10)


def get(url, token=ADMIN):
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})


def test_fetch_bundle_as_a_connect_stream(server, device, archives):
    digest = server.store.bundle_by_version("1.0")[0]
    body = json.dumps({"digest": digest}).encode()
    req = urllib.request.Request(server.http_url + "/edgefleet.v1.Fleet/FetchBundle",
                                 data=bytes([0]) + len(body).to_bytes(4, "big") + body, method="POST",
                                 headers={"Content-Type": "application/connect+json",
                                          "Authorization": f"Bearer {device['deviceToken']}"})
    raw = urllib.request.urlopen(req, timeout=10).read()
    frames, pos = [], 0
    while pos < len(raw):
        size = int.from_bytes(raw[pos + 1:pos + 5], "big")
        frames.append((raw[pos], json.loads(raw[pos + 5:pos + 5 + size])))
        pos += 5 + size
    import base64
    assert frames[-1] == (2, {}) and all(flags == 0 for flags, _ in frames[:-1])
    assert b"".join(base64.b64decode(f["data"]) for _, f in frames[:-1]) == archives["1.0"]
    req.remove_header("Authorization")
    raw = urllib.request.urlopen(req, timeout=10).read()
    assert raw[0] == 2 and json.loads(raw[5:])["error"]["code"] == "unauthenticated"
