"""What podnet creates on disk only root may use: 0600 files and sockets, 0700 directories (issue 13, item 13)."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from podnet.errors import PodnetError
from podnet.kvstore import open_store
from tests.agent_harness import running_agent


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def test_the_store_file_and_its_wal_and_shm_are_0600(tmp_path: Path) -> None:
    with umask(0o022), open_store(f"sqlite://{tmp_path}/state.db") as store:
        store.put("k", "v")
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            assert mode(tmp_path / name) == 0o600, name


def test_a_store_file_others_could_read_is_tightened(tmp_path: Path) -> None:
    with umask(0o022), open_store(f"sqlite://{tmp_path}/state.db") as store:
        store.put("k", "v")
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        if (tmp_path / name).exists():
            os.chmod(tmp_path / name, 0o644)  # as an older podnet left them
    with open_store(f"sqlite://{tmp_path}/state.db") as store:
        entry = store.get("k")
        assert entry is not None and entry.value == b"v"
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            if (tmp_path / name).exists():
                assert mode(tmp_path / name) == 0o600, name


def test_state_directories_are_created_0700_and_existing_ones_kept(tmp_path: Path) -> None:
    from podnet.cmd import agent as cmd_agent

    existing = tmp_path / "var-lib"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    with umask(0o022):
        cmd_agent._ensure_store_dir(f"sqlite://{existing}/podnet/nested/state.db")
    assert mode(existing) == 0o755  # an administrator's directory is theirs
    assert mode(existing / "podnet") == 0o700
    assert mode(existing / "podnet" / "nested") == 0o700


def test_the_agent_socket_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    sock = tmp_path / "run" / "podnet" / "agent.sock"
    with umask(0o022), running_agent(tmp_path, socket=str(sock)) as env:
        assert env.client.healthz()["node"] == "node1"
        assert mode(sock) == 0o600
        assert mode(sock.parent) == 0o700 and mode(sock.parent.parent) == 0o700


def test_a_socket_is_0600_from_the_moment_it_is_bound(tmp_path: Path) -> None:
    from podnet.private import bind_socket

    with umask(0):  # even so: the mode is set before bind(), not by a chmod after it
        sock = bind_socket(tmp_path / "s.sock", "test")
    try:
        assert mode(tmp_path / "s.sock") == 0o600
    finally:
        sock.close()


def test_the_operator_mode_waiting_socket_is_0600(tmp_path: Path) -> None:
    from podnet.agent.config import AgentConfig
    from podnet.agent.waiting import wait_for_pod_cidr

    sock = tmp_path / "agent.sock"
    config = AgentConfig(
        node_name="n1", socket=str(sock), store=f"sqlite://{tmp_path}/s.db", ipam_mode="operator", node_ip="10.0.0.1"
    )
    store = open_store(config.store)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    result: list[object] = []
    thread = threading.Thread(
        target=lambda: result.append(loop.run_until_complete(wait_for_pod_cidr(config, store, stop, 0.05)))
    )
    with umask(0o022):
        thread.start()
        try:
            deadline = time.monotonic() + 5
            while not sock.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert mode(sock) == 0o600
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(5)
            loop.close()
            store.close()
    assert result == [None]


@pytest.mark.parametrize("kind", ["file", "directory", "fifo", "symlink"])
def test_a_path_that_is_not_a_socket_is_never_removed_for_one(tmp_path: Path, kind: str) -> None:
    from podnet.private import bind_socket

    path = tmp_path / "podnet.sock"
    if kind == "file":
        path.write_text("precious")
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PodnetError, match="not a socket: refusing to remove it"):
        bind_socket(path, "docker plugin")
    assert os.path.lexists(path)
    if kind == "file":
        assert path.read_text() == "precious"


def test_a_live_socket_is_not_taken_over_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    from podnet.private import bind_socket

    path = tmp_path / "podnet.sock"
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(path))
    live.listen(1)
    with pytest.raises(PodnetError, match="another docker plugin is already serving"):
        bind_socket(path, "docker plugin")
    live.close()  # the file stays: a dead socket
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    bind_socket(path, "docker plugin").close()


def test_podnet_docker_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "plugins" / "podnet.sock"
    path.parent.mkdir()
    path.write_text("not a socket")
    proc = subprocess.run(
        [sys.executable, "-m", "podnet.cmd.docker", "--socket", str(path), "--agent-socket", str(tmp_path / "a.sock")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "is a regular file, not a socket: refusing to remove it" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert path.read_text() == "not a socket"
