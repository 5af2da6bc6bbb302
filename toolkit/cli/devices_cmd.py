"""Manage device identities on a running coordinator: revoke a device.

The admin token comes from --admin-token or EDGEFLEET_ADMIN_TOKEN; --root-cert for a TLS coordinator.
"""

from __future__ import annotations

import os


def add_arguments(p) -> None:
    p.add_argument("action", choices=("revoke",))
    p.add_argument("device_id")
    p.add_argument("--target", default="127.0.0.1:50051", help="coordinator gRPC address")
    # no default here: help prints defaults, and a token must never appear in it
    p.add_argument("--admin-token", help="token for the admin calls (else $EDGEFLEET_ADMIN_TOKEN)")
    p.add_argument("--root-cert", help="PEM certificate to trust (TLS coordinator)")


def run(args) -> int:
    from edgefleet._errors import ConfigError
    from edgefleet.coordinator import AdminClient
    args.admin_token = args.admin_token or os.environ.get("EDGEFLEET_ADMIN_TOKEN", "")
    if not args.admin_token:
        raise ConfigError("devices: an admin token is required (--admin-token or EDGEFLEET_ADMIN_TOKEN)")
    admin = AdminClient(args.target, args.admin_token, root_cert=args.root_cert)
    try:
        revoked = admin.revoke_device(args.device_id)
    finally:
        admin.close()
    print(f"{args.device_id}: {'revoked' if revoked else 'was already revoked'}")
    return 0
