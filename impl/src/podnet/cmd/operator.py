"""podnet-operator: hands every registered node a pod CIDR from the cluster pool.

podnet-operator --store URL --cluster-cidr CIDR [--cluster-cidr CIDR …] --mask-size N
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from podnet.errors import PodnetError
from podnet.ipam import ClusterPool
from podnet.kvstore import open_store
from podnet.operator.reconcile import Operator

log = logging.getLogger("podnet.operator")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="podnet-operator", description="cluster-pool IPAM across nodes")
    p.add_argument("--store", required=True, metavar="URL", help="the cluster's kvstore (etcd://HOST:PORT)")
    p.add_argument("--cluster-cidr", dest="cluster_cidrs", action="append", required=True, metavar="CIDR")
    p.add_argument("--mask-size", type=int, required=True, metavar="N")
    p.add_argument("--interval", type=float, default=0.5, metavar="SECONDS", help="how often to look for changes")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        operator = Operator(open_store(args.store), ClusterPool(args.cluster_cidrs, args.mask_size))
        log.info("cluster pool %s: %d node CIDRs", operator.pool.pool.describe(), operator.pool.pool.capacity)
        operator.run(stop.is_set, args.interval)
    except PodnetError as err:
        print(f"podnet-operator: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
