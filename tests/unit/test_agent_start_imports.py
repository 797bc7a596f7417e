"""What podnet-agent and podnet-docker import before they serve (issue 17 item 7: their start is
their imports): nothing they do not use on the way to serving.

- not pyroute2 (podnet.datapath.rtnl serves the hot path), not h11 (the agent's own HTTP client
  code is imported for its errors, never used to send);
- an agent without BGP peers: not the BGP speaker; nobody asked for the OpenAPI document yet: not
  the schema generator;
- an agent waiting for the operator's pod CIDR serves its healthz before it imports the agent
  proper (service, datapath, policy, BGP) or the etcd client (etcd3gw and requests, imported by
  its first store call, after the socket serves);
- podnet-docker: not the docker SDK nor requests (used to ask dockerd for a container's labels
  after a Join, and by the periodic reconcile; imported then).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# As bench/lab_up.py times them: podnet.cmd.agent imports the rest once it runs.
AGENT_MODULES = (
    "podnet.cmd.agent, podnet.agent.service, podnet.agent.server, podnet.agent.waiting, podnet.datapath.ebpf"
)
NOT_NEEDED = ("pyroute2", "h11", "podnet.bgp.bird", "podnet.api.openapi", "etcd3gw", "requests", "docker")
# Operator mode before the pod CIDR: what main() has run by the time the waiting healthz answers.
WAITING = (
    "import podnet.cmd.agent, podnet.agent.waiting; from podnet.kvstore import open_store; "
    "open_store('etcd://127.0.0.1:2379')"
)
NOT_WHILE_WAITING = (
    "podnet.agent.service",
    "podnet.agent.server",
    "podnet.datapath.protocol",
    "podnet.datapath.bpf.maps",
    "podnet.policy.compile",
    "podnet.bgp.bird",
    "etcd3gw",
    "requests",
    "urllib3",
)
PLUGIN_NOT_NEEDED = ("docker", "requests", "urllib3", "etcd3gw", "pyroute2")


def imported(statement: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of `candidates` are in sys.modules after `statement`, in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint(' '.join(m for m in {candidates!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def test_the_agent_imports_no_library_it_does_not_use() -> None:
    assert imported(f"import {AGENT_MODULES}", NOT_NEEDED) == []


def test_an_agent_waiting_for_its_pod_cidr_serves_without_importing_the_agent_proper() -> None:
    assert imported(WAITING, NOT_WHILE_WAITING) == []


def test_the_docker_plugin_imports_the_docker_sdk_only_when_it_asks_dockerd() -> None:
    assert imported("import podnet.cmd.docker", PLUGIN_NOT_NEEDED) == []


def test_the_lazily_imported_parts_are_there_when_used() -> None:
    """The other side: what was made lazy still comes in when its user runs, and its errors are
    still told apart (an etcd nobody answers on is the store's own error, naming the store)."""
    code = (
        "import sys\n"
        "from podnet.kvstore import KVStoreError, open_store\n"
        "store = open_store('etcd://127.0.0.1:1')\n"
        "try:\n    store.get('k')\nexcept KVStoreError as err:\n    print('store error:', err)\n"
        "from podnet.docker.reconcile import DockerWatcher, dockerd_errors\n"
        "from podnet.api.client import AgentClient\n"
        "watcher = DockerWatcher(AgentClient('/nonexistent.sock'), 'unix:///nonexistent.sock')\n"
        "try:\n    watcher.client.api.containers()\nexcept dockerd_errors()[1] as err:\n"
        "    print('dockerd error:', type(err).__name__)\n"
        "print(' '.join(m for m in ('etcd3gw', 'requests', 'docker') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith("store error: kvstore etcd://127.0.0.1:1 is unreachable"), out
    assert lines[1].startswith("dockerd error: "), out
    assert lines[2].split() == ["etcd3gw", "requests", "docker"]


def test_aiohttp_is_imported_without_parsing_the_ca_bundle_and_the_environment_is_restored() -> None:
    """podnet.aiohttp_import: aiohttp's import-time client contexts hold no CA (they are never used:
    podnet serves unix sockets), and the process's own CA settings are as they were."""
    code = (
        "import os\n"
        "os.environ['SSL_CERT_FILE'] = '/etc/ssl/mine.pem'\n"
        "from podnet.aiohttp_import import import_aiohttp\n"
        "import_aiohttp()\n"
        "import aiohttp.connector as c\n"
        "print(c._SSL_CONTEXT_VERIFIED.cert_store_stats()['x509_ca'], c._SSL_CONTEXT_UNVERIFIED.cert_store_stats()['x509_ca'])\n"
        "print(os.environ.get('SSL_CERT_FILE'), os.environ.get('SSL_CERT_DIR'))\n"
        "import ssl\n"
        "print(ssl.create_default_context().cert_store_stats()['x509_ca'] > 0 or 'no system bundle')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.splitlines()[:2] == ["0 0", "/etc/ssl/mine.pem None"]


def test_podnet_agent_imports_aiohttp_without_the_ca_bundle() -> None:
    """podnet-agent's main() imports aiohttp through podnet.aiohttp_import, before anything else does
    (here it stops at a store URL it cannot open, after that import)."""
    code = (
        "import sys\n"
        "from podnet.cmd.agent import main\n"
        "assert 'aiohttp' not in sys.modules\n"
        "code = main(['--node-name', 'n1', '--datapath', 'routes', '--store', 'nosuch://store', '--log-level', 'error'])\n"
        "import aiohttp.connector as c\n"
        "print(code, c._SSL_CONTEXT_VERIFIED.cert_store_stats()['x509_ca'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "0"], out.stderr


def test_podnet_docker_serves_without_the_docker_sdk(tmp_path: Path) -> None:
    """podnet-docker serving its socket has not imported the docker SDK yet (it does once the plugin
    asks dockerd something)."""
    sock = tmp_path / "plugin.sock"
    code = f"""
import argparse, asyncio, os, sys
from podnet.cmd import docker as cmd

async def main():
    args = argparse.Namespace(socket={str(sock)!r}, agent_socket={str(tmp_path / "agent.sock")!r},
                              docker_host="unix:///nonexistent.sock", gc_interval=3600.0, gc_grace=60.0)
    task = asyncio.create_task(cmd.run(args))
    for _ in range(1000):
        if os.path.exists({str(sock)!r}):
            break
        await asyncio.sleep(0.01)
    print([m for m in ("docker", "requests") if m in sys.modules])
    task.cancel()

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_since_exec_counts_from_the_process_start() -> None:
    """The start lines' "… s after exec" (podnet.timing.since_exec): a fresh interpreter is seconds old at most."""
    code = "import time; time.sleep(0.3); from podnet.timing import since_exec; print(since_exec())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 0.25 <= float(out) < 10
