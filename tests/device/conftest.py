"""The device tests share the coordinator tests' fixtures (test bundles, a real server, PostgreSQL)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent / "coordinator"))
_spec = importlib.util.spec_from_file_location("edgefleet_test_fixtures", _HERE.parent / "coordinator" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

ADMIN = _fixtures.ADMIN
signing_key, public_key, bundles, archives = (_fixtures.signing_key, _fixtures.public_key, _fixtures.bundles,
                                              _fixtures.archives)
server, admin = _fixtures.server, _fixtures.admin
