"""Run the fleet coordinator (gRPC + HTTP/1.1 Connect, /metrics, dashboard).

The admin token comes from --admin-token or the EDGEFLEET_ADMIN_TOKEN environment variable.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import threading
from pathlib import Path

from edgefleet._errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default="sqlite:///edgefleet-coordinator.db",
                   help="sqlite:///path.db (default) or postgresql://user@host/db")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (a non-loopback one needs TLS)")
    p.add_argument("--port", type=int, default=50051, help="gRPC port (0: any free port)")
    p.add_argument("--http-port", type=int, default=8080, help="Connect/metrics/dashboard port; -1 disables")
    # no default here: help prints defaults, and a token must never appear in it
    p.add_argument("--admin-token", help="token for the admin calls (else $EDGEFLEET_ADMIN_TOKEN)")
    p.add_argument("--tls-cert", help="PEM certificate (with --tls-key)")
    p.add_argument("--tls-key", help="PEM private key")
    p.add_argument("--rules", help="policy rules TOML (default: the embedded rules)")
    p.add_argument("--trusted-key", help="file with the ed25519 public key (raw or base64) bundles must be signed by")
    p.add_argument("--max-message-bytes", type=int, default=8 * 1024 * 1024, help="largest accepted message")
    p.add_argument("--evaluate-interval", type=float, default=10.0, help="seconds between policy evaluations")


def config_from_args(args):
    from edgefleet.coordinator import ServerConfig, load_rules
    args.admin_token = args.admin_token or os.environ.get("EDGEFLEET_ADMIN_TOKEN", "")
    if not args.admin_token:
        raise ConfigError("serve: an admin token is required (--admin-token or EDGEFLEET_ADMIN_TOKEN)")
    trusted = None
    if args.trusted_key:
        try:
            raw = Path(args.trusted_key).read_bytes().strip()
        except OSError as e:
            raise ConfigError(f"serve: --trusted-key {args.trusted_key}: {e}") from e
        trusted = raw if len(raw) == 32 else base64.b64decode(raw)
    return ServerConfig(store=args.store, admin_token=args.admin_token, host=args.host, port=args.port,
                        http_port=None if args.http_port < 0 else args.http_port, tls_cert=args.tls_cert,
                        tls_key=args.tls_key, rules=load_rules(args.rules), trusted_key=trusted,
                        max_message_bytes=args.max_message_bytes, evaluate_interval_s=args.evaluate_interval or None)


def run(args) -> int:
    from edgefleet.coordinator import Server
    server = Server(config_from_args(args)).start()
    print(f"edgefleet serve: gRPC {server.grpc_target}" + (f", HTTP {server.http_url}" if server.http_url else ""),
          flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop(grace=2.0)
    return 0
