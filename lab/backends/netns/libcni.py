"""A libcni runtime for the lab: `lab/libcni/main.go`, built against Debian's libcni.

cnitool is not packaged in Debian, but libcni is (golang-github-appc-cni-dev),
so the lab builds its own few-line runtime on it (GOPATH mode, offline) and
caches the binary by the source's hash. Through it the lab calls plugins the
way containerd, CRI-O and podman do: conflist, VERSION checks, prevResult
chaining, and the result cache CHECK and DEL read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from lab.backends.netns.cniexec import REFERENCE, link_plugin
from lab.backends.netns.node import NetnsNode
from lab.deploy import CACHE

SOURCE = Path(__file__).resolve().parent / "libcni" / "main.go"
GOPATH = Path("/usr/share/gocode")


class LibCNIError(RuntimeError):
    pass


def build_libcni() -> Path:
    """The runtime binary, built once per source change."""
    key = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    binary = CACHE / f"podnet-libcni-{key}"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/github.com/containernetworking/cni/libcni").is_dir():
        raise LibCNIError(
            "building podnet-libcni needs Debian's golang-go and golang-github-appc-cni-dev (ci/bootstrap)"
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOCACHE": str(CACHE / "gocache")}
    tmp = binary.with_suffix(".tmp")
    proc = subprocess.run([go, "build", "-o", str(tmp), str(SOURCE)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LibCNIError(f"go build {SOURCE}: {proc.stderr.strip()}")
    tmp.rename(binary)
    return binary


class LibCNI:
    """One node's CNI set-up: a conflist dir, a plugin dir where `podnet` is the node's podnet-cni, a cache."""

    def __init__(self, node: NetnsNode, cni_plugin: Path):
        self.node = node
        self.binary = build_libcni()
        self.conf_dir = node.path("cni", "net.d")
        self.bin_dir = node.path("cni", "bin")
        self.cache_dir = node.path("cni", "cache")
        for d in (self.conf_dir, self.cache_dir):
            d.mkdir(parents=True, exist_ok=True)
        link_plugin(self.bin_dir, cni_plugin)

    def write_conflist(self, name: str, plugins: list[dict[str, Any]], cni_version: str = "1.0.0") -> Path:
        """libcni 1.1 (Debian 12) speaks CNI up to 1.0.0."""
        path = self.conf_dir / f"{name}.conflist"
        path.write_text(json.dumps({"cniVersion": cni_version, "name": name, "plugins": plugins}, indent=2))
        return path

    def call(
        self, action: str, network: str, netns: str, container_id: str, *, ifname: str = "eth0", pod: str = ""
    ) -> tuple[int, Any, float]:
        """(exit status, decoded stdout or None, seconds), in the node's network namespace."""
        env = {
            "NETCONFPATH": str(self.conf_dir),
            "CNI_PATH": f"{self.bin_dir}:{REFERENCE}",
            "CNI_CACHE_DIR": str(self.cache_dir),
            "CNI_CONTAINERID": container_id,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod or container_id[:8]}",
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        }
        t0 = time.perf_counter()
        proc = self.node.cmd(str(self.binary), action, network, netns, check=False, timeout=60, env=env)
        elapsed = time.perf_counter() - t0
        out = proc.stdout.strip()
        try:
            return proc.returncode, json.loads(out) if out else None, elapsed
        except json.JSONDecodeError:
            return proc.returncode, {"code": 999, "msg": out or proc.stderr.strip()}, elapsed
