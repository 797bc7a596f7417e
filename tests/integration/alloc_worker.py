"""A child process for the concurrency tests: allocate N pod IPs, print each.

    python -m tests.integration.alloc_worker STORE_URL POD_CIDR OWNER COUNT

Prints "ready", waits for a line on stdin (so all workers start together),
then prints one allocated IP per line.
"""

from __future__ import annotations

import sys

from podnet.ipam import DurableNodeAllocator
from podnet.kvstore import open_store


def main() -> None:
    url, cidr, owner, count = sys.argv[1:5]
    store = open_store(url)
    alloc = DurableNodeAllocator(store, cidr)
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(count)):
        print(alloc.allocate(owner).ip, flush=True)
    store.close()


if __name__ == "__main__":
    main()
