"""podnet-operator: hands every registered node a pod CIDR from the cluster pool.

podnet-operator --store URL --cluster-cidr CIDR [--cluster-cidr CIDR …] --mask-size N
                [--identity-gc-grace SECONDS] [--identity-gc-interval SECONDS]
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
    p.add_argument(
        "--identity-gc-grace",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="remove identities no endpoint in the cluster used for this long (default 600)",
    )
    p.add_argument(
        "--identity-gc-interval", type=float, default=60.0, metavar="SECONDS", help="how often to collect identities"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        if args.identity_gc_grace < 0 or args.identity_gc_interval <= 0:
            raise PodnetError("--identity-gc-grace must be >= 0 and --identity-gc-interval > 0 (seconds)")
        operator = Operator(
            open_store(args.store),
            ClusterPool(args.cluster_cidrs, args.mask_size),
            identity_grace_s=args.identity_gc_grace,
            identity_interval_s=args.identity_gc_interval,
        )
        log.info("cluster pool %s: %d node CIDRs", operator.pool.pool.describe(), operator.pool.pool.capacity)
        operator.run(stop.is_set, args.interval)
    except PodnetError as err:
        print(f"podnet-operator: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
