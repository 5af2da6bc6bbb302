"""Generated stubs are checked, never edited: regenerating from fleet.proto must give the committed files."""

from edgefleet.proto import stubs as protos


def test_committed_stubs_match_the_proto():
    assert protos.drifted() == [], "run: python -m edgefleet.proto.stubs --write"


def test_check_command_fails_on_drift(tmp_path, monkeypatch):
    stub = tmp_path / "fleet_pb2.py"
    stub.write_text("# edited by hand\n")
    monkeypatch.setattr(protos, "HERE", tmp_path)
    assert protos.main(["--check"]) == 1
