"""Run the fleet coordinator (gRPC + HTTP/1.1 Connect, /metrics, dashboard).

The admin token comes from --admin-token or the EDGEFLEET_ADMIN_TOKEN environment variable.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

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
    p.add_argument("--trusted-key", help="file with the ed25519 public key (raw or base64) bundles must be signed by "
                                         "(default: the project key made by `edgefleet keys init`)")
    p.add_argument("--allow-unsigned", action="store_true",
                   help="accept unsigned bundles and bundles signed by any key (not for production)")
    p.add_argument("--max-message-bytes", type=int, default=8 * 1024 * 1024, help="largest accepted message")
    p.add_argument("--evaluate-interval", type=float, default=10.0, help="seconds between policy evaluations")
    p.add_argument("--read-token", help="token that reads /metrics and /dashboard (the admin token does too; "
                                        "else $EDGEFLEET_READ_TOKEN)")
    p.add_argument("--app-dir", default="default",
                   help="static files served under /app/ (default: the repository's wasm/web/ when present; '' disables)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="an origin (scheme://host[:port]) whose pages may call the HTTP port; repeatable, no wildcard")
    p.add_argument("--max-connections-per-address", type=int, default=128,
                   help="open HTTP connections one client address may hold")
    p.add_argument("--init", action="store_true",
                   help="create the store when it does not exist (without it a missing database is refused)")
    p.add_argument("--insecure-plaintext", action="store_true",
                   help="allow a non-loopback --host without TLS (tokens and telemetry travel in the clear)")
    p.add_argument("--token-ttl", type=float, default=30 * 86400, help="seconds a device token lives (rotated by devices)")
    p.add_argument("--enrollment-ttl", type=float, default=7 * 86400, help="seconds an enrollment token lives")
    p.add_argument("--device-rate", type=float, default=20.0, help="calls per second one device may make (burst 2x, at least one call)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info",
                   help="JSON-lines log on stderr at this level")


def config_from_args(args):
    from edgefleet.coordinator import ServerConfig, load_rules
    args.admin_token = args.admin_token or os.environ.get("EDGEFLEET_ADMIN_TOKEN", "")
    args.read_token = args.read_token or os.environ.get("EDGEFLEET_READ_TOKEN", "")
    if not args.admin_token:
        raise ConfigError("serve: an admin token is required (--admin-token or EDGEFLEET_ADMIN_TOKEN)")
    from edgefleet.keys import load_public, project_public_key
    trusted = load_public(args.trusted_key) if args.trusted_key else project_public_key()
    from edgefleet.coordinator._guard import Limits
    from edgefleet.coordinator.web import check_cors_origins
    if args.max_connections_per_address < 1:
        raise ConfigError("serve: --max-connections-per-address must be at least 1")
    return ServerConfig(store=args.store, admin_token=args.admin_token, host=args.host, port=args.port,
                        http_port=None if args.http_port < 0 else args.http_port, tls_cert=args.tls_cert,
                        tls_key=args.tls_key, rules=load_rules(args.rules), trusted_key=trusted,
                        max_message_bytes=args.max_message_bytes, evaluate_interval_s=args.evaluate_interval or None,
                        read_token=args.read_token, app_dir=args.app_dir or None,
                        cors_origins=tuple(check_cors_origins(args.cors_origin)),
                        http_limits=Limits(per_address=args.max_connections_per_address), init=args.init,
                        allow_unsigned=args.allow_unsigned, token_ttl_s=args.token_ttl,
                        enrollment_ttl_s=args.enrollment_ttl, device_rate=args.device_rate,
                        insecure_plaintext=args.insecure_plaintext)


def run(args) -> int:
    from edgefleet.coordinator import Server
    from edgefleet.coordinator.logs import configure_logging
    configure_logging(args.log_level)
    server = Server(config_from_args(args)).start()
    print(f"edgefleet serve: gRPC {server.grpc_target}" + (f", HTTP {server.http_url}" if server.http_url else ""),
          flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop(grace=2.0)
    return 0
