"""`podnet cni install`: put the podnet CNI plugin and its conflist where runtimes look.

Copies the compiled podnet-cni into the CNI bin dir as `podnet` and writes
`<conf-dir>/10-podnet.conflist` naming the agent's socket. Refuses to
overwrite a conflist that differs unless --force.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from podnet.api.client import DEFAULT_SOCKET
from podnet.cni.shim import binary
from podnet.errors import PodnetError


def register(commands: Any) -> None:
    cni = commands.add_parser("cni", help="the CNI plugin")
    sub = cni.add_subparsers(dest="cni_command", metavar="SUBCOMMAND", required=True)
    install = sub.add_parser("install", help="install the plugin binary and a conflist")
    install.add_argument("--bin-dir", default="/opt/cni/bin", help="CNI plugin dir (default /opt/cni/bin)")
    install.add_argument("--conf-dir", default="/etc/cni/net.d", help="CNI config dir (default /etc/cni/net.d)")
    install.add_argument("--network", default="podnet", help="network name in the conflist (default podnet)")
    install.add_argument("--socket", default=os.environ.get("PODNET_SOCKET", DEFAULT_SOCKET), help="agent socket")
    install.add_argument("--cni-version", default="1.0.0", help="conflist cniVersion (default 1.0.0)")
    install.add_argument("--force", action="store_true", help="replace a different existing conflist")
    install.set_defaults(handler=_install)


def conflist(network: str, socket: str, cni_version: str) -> dict[str, Any]:
    return {
        "cniVersion": cni_version,
        "name": network,
        "plugins": [{"type": "podnet", "agentSocket": socket}],
    }


def _install(args: argparse.Namespace) -> int:
    bin_dir, conf_dir = Path(args.bin_dir), Path(args.conf_dir)
    conf_path = conf_dir / f"10-{args.network}.conflist"
    text = json.dumps(conflist(args.network, args.socket, args.cni_version), indent=2) + "\n"
    if conf_path.exists() and conf_path.read_text() != text and not args.force:
        raise PodnetError(f"{conf_path} exists with other contents: compare it, then use --force to replace it")
    try:
        bin_dir.mkdir(parents=True, exist_ok=True)
        conf_dir.mkdir(parents=True, exist_ok=True)
        target = bin_dir / "podnet"
        tmp = bin_dir / ".podnet.tmp"
        shutil.copyfile(binary(), tmp)
        tmp.chmod(0o755)
        tmp.replace(target)  # atomic: a runtime never execs a half-written plugin
        conf_path.write_text(text)
    except OSError as err:
        raise PodnetError(f"installing the CNI plugin: {err.strerror}: {err.filename}") from None
    print(f"installed {target} and {conf_path} (agent socket {args.socket})")
    return 0
