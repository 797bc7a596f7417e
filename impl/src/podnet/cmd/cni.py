"""podnet-cni: the CNI plugin binary (installed as `podnet` in the CNI bin dir).

Reads CNI_* from the environment and the network configuration from stdin,
writes the result or a CNI error as JSON to stdout. Imports only the standard
library and podnet's stdlib-only pieces, so an exec costs little more than
the interpreter's start.
"""

from __future__ import annotations

import json
import sys

from podnet.api.client import AgentClient
from podnet.cni import plugin, spec
from podnet.cni.spec import CNIError, Environment, NetConf


def run(stdin: bytes, env: dict[str, str] | None = None) -> tuple[int, dict[str, object] | None]:
    version = spec.CURRENT_VERSION
    try:
        environment = Environment.from_env(env)
        if environment.command == "VERSION":
            return 0, {"cniVersion": version, "supportedVersions": spec.SUPPORTED_VERSIONS}
        conf = NetConf.parse(stdin)
        version = conf.cni_version
        client = AgentClient(conf.socket, timeout=60)
        command = environment.command
        if command == "ADD":
            return 0, plugin.add(conf, environment, client)
        if command == "DEL":
            plugin.delete(conf, environment, client)
        elif command == "CHECK":
            plugin.check(conf, environment, client)
        elif command == "STATUS":
            plugin.status(conf, client)
        elif command == "GC":
            plugin.gc(conf, client)
        else:
            raise CNIError(spec.INVALID_ENVIRONMENT, f"unknown CNI_COMMAND {command!r}")
        return 0, None
    except CNIError as err:
        return 1, err.to_json(version)


def main() -> int:
    status, output = run(sys.stdin.buffer.read())
    if output is not None:
        sys.stdout.write(json.dumps(output) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
