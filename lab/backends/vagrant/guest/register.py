"""Register the workers with the cluster store, in topology order, in one process: each
`podnet node register` would pay podnet's start-up again (seconds of emulated CPU).

    /opt/podnet/bin/python register.py STORE_URL < register    # lines: NAME NODE_IP
"""

from __future__ import annotations

import sys

from podnet.kvstore import open_store
from podnet.operator.registry import register_node


def main() -> int:
    with open_store(sys.argv[1]) as store:
        for line in sys.stdin:
            if line.strip():
                name, node_ip = line.split()
                registration = register_node(store, name, node_ip)
                print(f"registered {registration.name} ({registration.node_ip})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
