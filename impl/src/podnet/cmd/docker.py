"""Entry point of podnet-docker (not implemented yet: issue 3)."""

import sys


def main() -> int:
    print("podnet-docker: not implemented yet (tracked in issue 3)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
