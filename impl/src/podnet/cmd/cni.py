"""Entry point of podnet-cni (not implemented yet: issue 5)."""

import sys


def main() -> int:
    print("podnet-cni (the CNI plugin binary): not implemented yet (tracked in issue 5)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
