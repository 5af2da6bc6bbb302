"""Fixtures: a real test bundle (signed), a real coordinator on 127.0.0.1, PostgreSQL when installed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bundle_factory import ADMIN, make_bundle  # noqa: E402,F401




@pytest.fixture(scope="session")
def signing_key():
    """The session's project key (tests/conftest.py made it with ``keys init``): ``edgefleet serve``
    subprocesses trust it by default, like a real project's coordinator."""
    from edgefleet.keys import project_private_key
    return project_private_key()[0]


@pytest.fixture(scope="session")
def public_key(signing_key):
    from edgefleet._signing import public_key
    return public_key(signing_key)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, signing_key):
    """{"1.0": good, "1.1": good, "2.0-bad": worse} bundle dirs, all signed."""
    root = tmp_path_factory.mktemp("bundles")
    return {"1.0": make_bundle(root / "v1.0", version="1.0", signing_key=signing_key),
            "1.1": make_bundle(root / "v1.1", version="1.1", signing_key=signing_key),
            "2.0-bad": make_bundle(root / "v2.0", version="2.0-bad", signing_key=signing_key, quality="bad")}


@pytest.fixture(scope="session")
def archives(bundles, tmp_path_factory):
    from edgefleet.bundle import pack
    root = tmp_path_factory.mktemp("archives")
    return {v: pack(p, root / f"{v}.tar.gz").read_bytes() for v, p in bundles.items()}


@pytest.fixture
def server(tmp_path, public_key):
    from edgefleet.coordinator import Server, ServerConfig
    srv = Server(ServerConfig(init=True, store=f"sqlite:///{tmp_path / 'fleet.db'}", admin_token=ADMIN,
                              trusted_key=public_key, evaluate_interval_s=None, watch_interval_s=0.2)).start()
    yield srv
    srv.stop(0)


@pytest.fixture
def admin(server):
    from edgefleet.coordinator import AdminClient
    client = AdminClient(server.grpc_target, ADMIN)
    yield client
    client.close()


# -- PostgreSQL ---------------------------------------------------------------------------------
def _pg_bin(name):
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (initdb in a temp dir), torn down at the end."""
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    if not initdb or not postgres:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not installed; .ci/run installs them")
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg not installed (pip install 'psycopg[binary]')")
    root = Path(tempfile.mkdtemp(prefix="edgefleet-pg-"))
    as_user = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        os.chmod(root, 0o777)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    subprocess.run(as_user + [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    log = open(root / "log", "wb")
    proc = subprocess.Popen(as_user + [postgres, "-D", str(data), "-p", str(port), "-k", str(root),
                                       "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"PostgreSQL did not start: {(root / 'log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_database(postgres_url):
    """A fresh database per test."""
    import uuid

    import psycopg
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
