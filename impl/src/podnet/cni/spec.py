"""CNI spec 1.1 pieces: versions, error codes, the environment, the network config.

Error codes (stdout JSON `{"cniVersion", "code", "msg", "details"}`, exit 1):

| code | meaning |
|---|---|
| 1 | incompatible CNI version |
| 4 | invalid or missing CNI_* environment variable |
| 6 | the network configuration on stdin is not JSON |
| 7 | invalid network configuration (a field says what) |
| 11 | try again later: the podnet agent is unreachable or busy |
| 50 | STATUS: not available (agent down, no pod CIDR, pod CIDR exhausted) |
| 100 | the node's pod CIDR is exhausted (the message names it and its usage) |
| 101 | the datapath could not set up the interface (e.g. it already exists in the netns) |
| 102 | any other error the agent reported |
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing and dataclasses cost an exec'd plugin ~15 ms to import
    from typing import Any

SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
CURRENT_VERSION = "1.1.0"
DEFAULT_AGENT_SOCKET = "/var/run/podnet/podnet.sock"

INCOMPATIBLE_VERSION = 1
INVALID_ENVIRONMENT = 4
DECODING_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
POD_CIDR_EXHAUSTED = 100
DATAPATH_FAILURE = 101
AGENT_ERROR = 102


class CNIError(Exception):
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details

    def to_json(self, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


class Environment:
    __slots__ = ("args", "command", "container_id", "ifname", "netns", "path")

    def __init__(
        self,
        command: str,
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        args: dict[str, str] | None = None,
        path: str = "",
    ):
        self.command, self.container_id, self.netns, self.ifname = command, container_id, netns, ifname
        self.args = args or {}
        self.path = path

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Environment:
        env = dict(os.environ if env is None else env)
        command = env.get("CNI_COMMAND", "")
        if not command:
            raise CNIError(INVALID_ENVIRONMENT, "CNI_COMMAND is not set (ADD, DEL, CHECK, STATUS, GC or VERSION)")
        args = {}
        for pair in filter(None, env.get("CNI_ARGS", "").split(";")):
            key, sep, value = pair.partition("=")
            if not sep:
                raise CNIError(INVALID_ENVIRONMENT, f"CNI_ARGS item {pair!r} is not KEY=VALUE")
            args[key] = value
        e = cls(
            command,
            env.get("CNI_CONTAINERID", ""),
            env.get("CNI_NETNS", ""),
            env.get("CNI_IFNAME", ""),
            args,
            env.get("CNI_PATH", ""),
        )
        required = {
            "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
            "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
            "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
        }.get(command, ())
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise CNIError(INVALID_ENVIRONMENT, f"{command} needs {', '.join(missing)} in the environment")
        if e.ifname and (len(e.ifname) > 15 or "/" in e.ifname or e.ifname in (".", "..")):
            raise CNIError(INVALID_ENVIRONMENT, f"CNI_IFNAME {e.ifname!r} is not a valid interface name")
        return e

    @property
    def owner(self) -> str:
        """Who holds the IP: `<namespace>/<pod>` from CNI_ARGS, as in Cilium."""
        pod = self.args.get("K8S_POD_NAME")
        if pod:
            return f"{self.args.get('K8S_POD_NAMESPACE', 'default')}/{pod}"
        return f"cni/{self.container_id[:12]}"

    @property
    def endpoint_id(self) -> str:
        return f"cni-{self.container_id}-{self.ifname}"


class NetConf:
    __slots__ = ("cni_version", "labels", "mtu", "name", "raw", "socket")

    def __init__(
        self,
        cni_version: str,
        name: str,
        socket: str,
        mtu: int | None,
        raw: dict[str, Any],
        labels: list[str] | None = None,
    ):
        self.cni_version, self.name, self.socket, self.mtu, self.raw = cni_version, name, socket, mtu, raw
        self.labels = labels or []

    @classmethod
    def parse(cls, data: bytes) -> NetConf:
        try:
            raw = json.loads(data or b"{}")
        except ValueError as err:
            raise CNIError(DECODING_FAILURE, f"network configuration on stdin is not JSON: {err}") from None
        if not isinstance(raw, dict):
            raise CNIError(INVALID_CONFIG, "network configuration must be a JSON object")
        version = raw.get("cniVersion", "")
        if not isinstance(version, str) or not version:
            raise CNIError(INVALID_CONFIG, "network configuration lacks cniVersion")
        if version not in SUPPORTED_VERSIONS:
            raise CNIError(
                INCOMPATIBLE_VERSION,
                f"cniVersion {version} is not supported",
                f"supported: {', '.join(SUPPORTED_VERSIONS)}",
            )
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise CNIError(INVALID_CONFIG, "network configuration lacks name")
        socket = raw.get("agentSocket", DEFAULT_AGENT_SOCKET)
        if not isinstance(socket, str) or not socket.startswith("/"):
            raise CNIError(INVALID_CONFIG, f"agentSocket {socket!r} must be an absolute path")
        mtu = raw.get("mtu")
        if mtu is not None and (not isinstance(mtu, int) or isinstance(mtu, bool) or not 576 <= mtu <= 65535):
            raise CNIError(INVALID_CONFIG, f"mtu {mtu!r} must be an integer from 576 to 65535")
        return cls(version, name, socket, mtu, raw, _labels(raw))


def _labels(raw: dict[str, Any]) -> list[str]:
    """Pod labels the runtime passes by the CNI convention `args.cni.labels: [{key, value}]`."""
    args = raw.get("args")
    labels = args.get("cni", {}).get("labels") if isinstance(args, dict) and isinstance(args.get("cni"), dict) else None
    if labels is None:
        return []
    if not isinstance(labels, list):
        raise CNIError(INVALID_CONFIG, "args.cni.labels must be a list of {key, value} objects")
    out = []
    for item in labels:
        key, value = (item.get("key"), item.get("value", "")) if isinstance(item, dict) else (None, None)
        if not isinstance(key, str) or not key or not isinstance(value, str) or "=" in key or " " in key + value:
            raise CNIError(INVALID_CONFIG, f"args.cni.labels: invalid label {item!r} (want {{key, value}} strings)")
        out.append(f"{key}={value}")
    return out
