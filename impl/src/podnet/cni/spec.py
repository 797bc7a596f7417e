"""CNI spec 1.1 pieces: versions, error codes, the environment, the network config.

Error codes (stdout JSON `{"cniVersion", "code", "msg", "details"}`, exit 1):

| code | meaning |
|---|---|
| 1 | incompatible CNI version |
| 4 | invalid or missing CNI_* environment variable |
| 6 | the network configuration on stdin is not JSON |
| 7 | invalid network configuration (a field says what) |
| 11 | try again later: the podnet agent is unreachable, did not answer within agentTimeout, or its store is unavailable |
| 50 | STATUS: not available (agent down, no pod CIDR, pod CIDR exhausted) |
| 100 | the node's pod CIDR is exhausted (the message names it and its usage) |
| 101 | the datapath could not set up the interface (e.g. it already exists in the netns) |
| 102 | any other error the agent reported |
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from podnet import jsonsafe

if TYPE_CHECKING:
    from typing import Any

SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
CURRENT_VERSION = "1.1.0"
DEFAULT_AGENT_SOCKET = "/var/run/podnet/podnet.sock"
DEFAULT_TIMEOUT_S = 30.0  # the network config's "agentTimeout": one deadline for the whole call
MAX_TIMEOUT_S = 3600.0
IFNAMSIZ = 15  # bytes in a Linux interface name
MAX_ENDPOINT_ID = 128  # the agent's limit
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the NUL
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_ID_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")  # spec 1.0 on: the network name's characters

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
        for name, value in env.items():
            if not name.startswith("CNI_"):
                continue
            if _has_control(value):
                raise CNIError(INVALID_ENVIRONMENT, f"{name} {value!r} contains a control character")
            if not _is_unicode(value):
                raise CNIError(INVALID_ENVIRONMENT, f"{name} {value!r} is not valid UTF-8")
        command = env.get("CNI_COMMAND", "")
        if not command:
            raise CNIError(INVALID_ENVIRONMENT, "CNI_COMMAND is not set (ADD, DEL, CHECK, STATUS, GC or VERSION)")
        args = {}
        for pair in filter(None, env.get("CNI_ARGS", "").split(";")):
            key, sep, value = pair.partition("=")
            if not sep:
                raise CNIError(INVALID_ENVIRONMENT, f"CNI_ARGS item {pair!r} is not KEY=VALUE")
            args[key] = value
        check_pod_args(args)
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
        if e.container_id:
            check_container_id(e.container_id)
        if e.ifname:
            check_ifname(e.ifname)
        if e.container_id and e.ifname and len(e.endpoint_id) > MAX_ENDPOINT_ID:
            raise CNIError(
                INVALID_ENVIRONMENT,
                f"CNI_CONTAINERID and CNI_IFNAME are too long together: podnet's endpoint id for them "
                f"would have {len(e.endpoint_id)} characters (at most {MAX_ENDPOINT_ID})",
            )
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
        return endpoint_id(self.container_id, self.ifname)


# Names runtimes pass: Kubernetes' (DNS-1123) and podman's container names ([a-zA-Z0-9][a-zA-Z0-9_.-]*).
# Never '/' or ':': the IP's owner is "<namespace>/<pod>", and "endpoint:…" owners are the agent's.
POD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NAMESPACE = POD_NAME


def check_pod_args(args: dict[str, str]) -> None:
    """K8S_POD_NAME / K8S_POD_NAMESPACE from CNI_ARGS name the IP's owner: runtimes' names, or code 4."""
    name, namespace = args.get("K8S_POD_NAME"), args.get("K8S_POD_NAMESPACE")
    if name is not None and (len(name) > 253 or not POD_NAME.fullmatch(name)):
        raise CNIError(
            INVALID_ENVIRONMENT, f"CNI_ARGS K8S_POD_NAME {name!r} is not a pod name (letters, digits, _ . -; ≤ 253)"
        )
    if namespace is not None and (len(namespace) > 63 or not NAMESPACE.fullmatch(namespace)):
        raise CNIError(
            INVALID_ENVIRONMENT,
            f"CNI_ARGS K8S_POD_NAMESPACE {namespace!r} is not a namespace name (letters, digits, _ . -; ≤ 63)",
        )


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_container_id(value: str) -> str:
    """CNI_CONTAINERID as the spec has it: an alphanumeric, then alphanumerics, `_`, `.` and `-`."""
    if not _CONTAINER_ID.fullmatch(value):
        raise CNIError(
            INVALID_ENVIRONMENT,
            f"CNI_CONTAINERID {value!r} is not a valid container id: it must start with a letter or digit, "
            "followed by letters, digits, '_', '.' or '-'",
        )
    return value


def check_ifname(value: str) -> str:
    """CNI_IFNAME as Linux takes it: 1-15 bytes, no '/', ':' or whitespace, not '.' or '..'."""
    size = len(value.encode("utf-8", "surrogateescape"))
    if size > IFNAMSIZ:
        raise CNIError(
            INVALID_ENVIRONMENT,
            f"CNI_IFNAME {value!r} is not a valid interface name: {size} bytes (at most {IFNAMSIZ})",
        )
    if value in (".", "..") or any(c in "/:" or c.isspace() for c in value):
        raise CNIError(
            INVALID_ENVIRONMENT,
            f"CNI_IFNAME {value!r} is not a valid interface name: no '/', ':' or whitespace, and not '.' or '..'",
        )
    return value


def endpoint_id(container_id: str, ifname: str) -> str:
    """`cni-<container id>-<ifname>`; an interface name's bytes outside [A-Za-z0-9_.-] are written
    `:xx` (hex), which no interface name contains, so two names never share an endpoint id."""
    encoded = "".join(chr(b) if chr(b) in _ID_SAFE else f":{b:02x}" for b in ifname.encode("utf-8", "surrogateescape"))
    return f"cni-{container_id}-{encoded}"


class NetConf:
    __slots__ = ("cni_version", "labels", "mtu", "name", "raw", "socket", "timeout")

    def __init__(
        self,
        cni_version: str,
        name: str,
        socket: str,
        mtu: int | None,
        raw: dict[str, Any],
        labels: list[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ):
        self.cni_version, self.name, self.socket, self.mtu, self.raw = cni_version, name, socket, mtu, raw
        self.labels = labels or []
        self.timeout = timeout

    @classmethod
    def parse(cls, data: bytes) -> NetConf:
        try:
            raw = jsonsafe.loads(data or b"{}")
        except jsonsafe.JSONInputError as err:
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
        if not version.startswith("0.") and not _NETWORK_NAME.fullmatch(name):
            raise CNIError(
                INVALID_CONFIG,
                f"network name {name!r} is invalid: it must start with a letter or digit, "
                "followed by letters, digits, '_', '.' or '-'",
            )
        socket = raw.get("agentSocket", DEFAULT_AGENT_SOCKET)
        if not isinstance(socket, str) or not socket.startswith("/"):
            raise CNIError(INVALID_CONFIG, f"agentSocket {socket!r} must be an absolute path")
        timeout = raw.get("agentTimeout", DEFAULT_TIMEOUT_S)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TIMEOUT_S:
            raise CNIError(
                INVALID_CONFIG, f"agentTimeout {timeout!r} must be a number of seconds, more than 0 and at most 3600"
            )
        mtu = raw.get("mtu")
        if mtu is not None and (not isinstance(mtu, int) or isinstance(mtu, bool) or not 576 <= mtu <= 65535):
            raise CNIError(INVALID_CONFIG, f"mtu {mtu!r} must be an integer from 576 to 65535")
        if len(socket.encode("utf-8", "surrogateescape")) > MAX_SOCKET_PATH or "\0" in socket:
            raise CNIError(
                INVALID_CONFIG, f"agentSocket {socket!r} is not a usable unix socket path (at most 107 bytes)"
            )
        return cls(version, name, socket, mtu, raw, _labels(raw), float(timeout))


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


def version_reply(stdin: bytes) -> dict[str, Any]:
    """VERSION's answer: `cniVersion` is the one asked for on stdin (spec 1.0 on), when podnet speaks it."""
    try:
        asked = jsonsafe.loads(stdin or b"{}").get("cniVersion")
    except (jsonsafe.JSONInputError, AttributeError):
        asked = None
    version = asked if asked in SUPPORTED_VERSIONS else CURRENT_VERSION
    return {"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS}
