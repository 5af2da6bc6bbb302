"""Two coordinator replicas sharing one PostgreSQL store; the serve and simulate commands."""

from __future__ import annotations

import json


from edgefleet.cli import main
from edgefleet.coordinator import AdminClient, Server, ServerConfig
from edgefleet.device import Device, GrpcTransport

from bundle_factory import digits
from bundle_factory import ADMIN


def test_two_replicas_share_one_postgres_store(pg_database, archives, bundles, public_key, tmp_path):
    config = dict(init=True, trusted_key=public_key, store=pg_database, admin_token=ADMIN, http_port=None, evaluate_interval_s=None)
    with Server(ServerConfig(**config)) as a, Server(ServerConfig(**config)) as b:
        admin_a, admin_b = AdminClient(a.grpc_target, ADMIN), AdminClient(b.grpc_target, ADMIN)
        admin_a.publish_bundle(archives["1.0"])
        admin_b.set_baseline("eu", "1.0")
        token = admin_a.create_enrollment_token("eu", uses=2)
        dev_a = Device(bundles["1.0"], tmp_path / "a", transport=GrpcTransport(a.grpc_target), enrollment_token=token,
                       trusted_key=public_key, window_size=10)
        dev_b = Device(bundles["1.0"], tmp_path / "b", transport=GrpcTransport(b.grpc_target), enrollment_token=token,
                       trusted_key=public_key, window_size=10)
        for dev in (dev_a, dev_b):
            dev.predict(digits()[2][:50])
            assert dev.sync(close_window=True)["delivered"] == 1
        admin_b.set_fallback("eu", artifact="onnx-fp32", reason="replica b")
        dev_a.sync()  # replica a serves the policy replica b set
        assert dev_a.artifact == "onnx-fp32"
        assert a.store.count_windows() == b.store.count_windows() == 2
        assert [d["evidence"]["why"] for d in admin_a.list_decisions("eu")][-1] == "replica b"
        for c in (admin_a, admin_b):
            c.close()
        dev_a.close()
        dev_b.close()


def test_serve_refuses_a_missing_admin_token(capsys, monkeypatch):
    monkeypatch.delenv("EDGEFLEET_ADMIN_TOKEN", raising=False)
    assert main(["serve", "--port", "0", "--http-port", "-1"]) == 2
    assert "admin token is required" in capsys.readouterr().err


def test_simulate_command(bundles, tmp_path, capsys):
    out = tmp_path / "summary.json"
    assert main(["simulate", str(bundles["1.0"]), "--devices", "4", "--cohorts", "2", "--rounds", "3",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cohort-1" in text and "decisions:" in text
    summary = json.loads(out.read_text())
    assert [d["cohort"] for d in summary["decisions"] if d["kind"] == "drift_detected"] == ["cohort-1"]


def test_simulate_without_a_bundle_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "--devices", "2"]) == 2
    assert "run `edgefleet demo` first" in capsys.readouterr().err
