"""The CNI plugin's entry: `run()` is what the agent's `POST /v1/cni` calls for the C shim
(podnet.cni.shim), and `podnet-cni` the same as a Python command.

Reads CNI_* from the environment and the network configuration from stdin,
returns (exit status, what to print): a result, nothing, or a CNI error —
never an exception. Every agent call of one operation shares one deadline,
the network config's agentTimeout.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

from podnet import timing
from podnet.api.client import AgentClient
from podnet.cni import plugin, spec
from podnet.cni.plugin import AgentCalls
from podnet.cni.spec import CNIError, Environment, NetConf

log = logging.getLogger("podnet.cni")

#: (agent socket, timeout, deadline) -> how the plugin reaches the agent.
Connect = Callable[[str, float, float], AgentCalls]


def over_socket(socket_path: str, timeout: float, deadline: float) -> AgentCalls:
    return AgentClient(socket_path, timeout=timeout, deadline=deadline)


def budget_of(conf: NetConf) -> float:
    """One deadline for every agent call of an operation, a little before the shim's own (agentTimeout
    too), so that the runtime gets the plugin's error rather than the shim's."""
    return conf.timeout - min(1.0, conf.timeout / 10)


def run(
    stdin: bytes, env: dict[str, str] | None = None, connect: Connect = over_socket, *, conf: NetConf | None = None
) -> tuple[int, dict[str, object] | None]:
    """(exit status, what to print): a result, nothing, or a CNI error — never an exception.

    `connect` gives the agent to call: over its socket (the Python plugin), or the agent itself
    (its `POST /v1/cni`, for the C shim). `conf`: `stdin` already parsed (by the agent)."""
    version = spec.CURRENT_VERSION
    started = time.monotonic()
    try:
        environment = Environment.from_env(env)
        if environment.command == "VERSION":
            return 0, spec.version_reply(stdin)
        conf = conf if conf is not None else NetConf.parse(stdin)
        timing.mark("plugin: parse")
        version = conf.cni_version
        budget = budget_of(conf)
        client = connect(conf.socket, budget, started + budget)
        command = environment.command
        if command == "ADD":
            added = plugin.add(conf, environment, client)
            timing.mark("plugin: result")
            return 0, added
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
    except Exception as err:  # a bug: still a CNI error, and the traceback in the log
        log.exception("CNI %s failed", (env or {}).get("CNI_COMMAND", "?"))
        return 1, CNIError(
            spec.AGENT_ERROR, f"internal error in the podnet CNI plugin: {type(err).__name__}: {err}"
        ).to_json(version)


def main() -> int:
    status, output = run(sys.stdin.buffer.read())
    if output is not None:
        sys.stdout.write(json.dumps(output) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
