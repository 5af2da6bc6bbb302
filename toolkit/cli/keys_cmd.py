"""Create the project signing key (once): every bundle `edgefleet export` writes is signed with it.

The key is written to .edgefleet/ in the working directory (or $EDGEFLEET_KEY_DIR, or --dir), never
into a bundle; give signing.pub to coordinators (--trusted-key) and devices (trusted_key=).
"""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("action", choices=("init", "show"), help="init: create the key pair; show: print the public key")
    p.add_argument("--dir", help="key directory (default: $EDGEFLEET_KEY_DIR or ./.edgefleet)")


def run(args) -> int:
    from pathlib import Path

    from edgefleet._errors import ConfigError
    from edgefleet.keys import PUBLIC, init_key, key_dir, load_public
    import base64

    directory = Path(args.dir) if args.dir else key_dir()
    if args.action == "init":
        private, public = init_key(directory)
        print(f"signing key {private} (keep it private), public key {public}")
        return 0
    path = directory / PUBLIC
    if not path.exists():
        raise ConfigError(f"keys show: no {path}; run `edgefleet keys init` first")
    print(base64.b64encode(load_public(path)).decode())
    return 0
