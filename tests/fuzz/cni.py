"""CNI calls as a runtime makes them, and as no runtime should: the CNI_* environment and the network
configuration on stdin.

The configuration names the agent's socket as AGENT (replaced when the call is made), or not at all:
the suite's shim is built with the test agent's socket as its default, and the CNI logic's default is
patched to it, so that no generated call ever reaches a node's real agent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from podnet.cni.spec import SUPPORTED_VERSIONS
from tests.fuzz import values as v

AGENT = "@AGENT_SOCKET@"
env_text = v.hostile_text.filter(lambda s: "\x00" not in s)  # an environment cannot carry NUL

# Each CNI_* variable: (what a runtime sends, what it should not).
VARIABLES: dict[str, tuple[st.SearchStrategy[str], st.SearchStrategy[str]]] = {
    "CNI_COMMAND": (
        st.sampled_from(["ADD", "ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"]),
        st.sampled_from(["add", "", "DELETE", "ADD "]) | env_text,
    ),
    "CNI_CONTAINERID": (st.sampled_from(v.CONTAINER_IDS), st.sampled_from(["-x", "a" * 124]) | env_text),
    "CNI_NETNS": (
        st.sampled_from(["/var/run/netns/pod1", "/run/netns/pod2"]),
        st.sampled_from(["/proc/1/ns/net", "relative/ns", "/etc/shadow", "/dev/zero", ""]) | env_text,
    ),
    "CNI_IFNAME": (
        st.sampled_from(["eth0", "net1"]),
        st.sampled_from(["é1", "net@1", "eth0123456789abc", "é" * 8, "a:b", "a b", ".", "..", "lo"]) | env_text,
    ),
    "CNI_ARGS": (
        st.sampled_from(
            [
                "",
                "K8S_POD_NAMESPACE=default;K8S_POD_NAME=app1",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=app2;K8S_POD_INFRA_CONTAINER_ID=c0ffee01",
            ]
        ),
        st.sampled_from(
            ["K8S_POD_NAME=app1\r\nX: 1", "bogus", "a=b;;c=d", "K8S_POD_NAME=", "K8S_POD_NAMESPACE=endpoint:x"]
        )
        | env_text,
    ),
}
LABEL_ITEMS = [{"key": "id", "value": "app1"}, {"key": "role", "value": "web"}, {"key": "id", "value": "app2;role=x"}]
PREV_RESULTS = [
    {"cniVersion": "1.1.0", "ips": [{"address": f"{v.HOSTS[0]}/32"}]},
    {"ips": []},
    "a string",
    [1, 2],
    {"ips": "10.44.0.2"},
    {"ips": [1]},
    {"ips": [{"address": 10}]},
]
ATTACHMENT = st.fixed_dictionaries(
    {"containerID": st.sampled_from(v.CONTAINER_IDS), "ifname": st.sampled_from(["eth0", "net1"])}
)
# Each configuration key: (what a runtime writes, what it should not).
KEYS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "cniVersion": (st.sampled_from(SUPPORTED_VERSIONS), st.sampled_from(["0.1.0", "2.0.0", "", 1, None])),
    "name": (st.sampled_from(["podnet", "pn-net"]), st.sampled_from(["", None, 7]) | v.json_text),
    "agentSocket": (
        st.just(AGENT),
        st.sampled_from(["relative.sock", "", "/nonexistent/podnet.sock", "/" + "x" * 110, 42, ["/x"], "/a\u0000b"]),
    ),
    "agentTimeout": (st.sampled_from([10, 5.5]), st.sampled_from([1e-9, 0, -1, "30", True, 3601, None])),
    "mtu": (st.just(1500), st.sampled_from([575, 65536, "1500", None, 1.5])),
    "args": (
        st.lists(st.sampled_from(LABEL_ITEMS), max_size=2).map(lambda labels: {"cni": {"labels": labels}}),
        st.lists(st.fixed_dictionaries({"key": v.json_text, "value": v.json_text}), min_size=1, max_size=2).map(
            lambda labels: {"cni": {"labels": labels}}
        )
        | v.json_values,
    ),
    "prevResult": (st.sampled_from(PREV_RESULTS[:2]), st.sampled_from(PREV_RESULTS[2:]) | v.json_values),
    "cni.dev/valid-attachments": (st.lists(ATTACHMENT, max_size=3), st.lists(v.json_values, min_size=1, max_size=3)),
}


@st.composite
def environments(draw: st.DrawFn, odd: str | None) -> dict[str, str]:
    env = {name: draw(bad if odd == name else good) for name, (good, bad) in VARIABLES.items()}
    env["CNI_PATH"] = "/opt/cni/bin"
    if odd == "missing":
        del env[draw(st.sampled_from(sorted(env)))]  # a runtime that forgot one
    return env


@st.composite
def configurations(draw: st.DrawFn, odd: bool) -> Any:
    """A network configuration: every key a runtime writes plausible, or one key odd, or one part mutated."""
    odd_key = draw(st.sampled_from([*KEYS, "mutated"])) if odd else None
    conf: dict[str, Any] = {"type": "podnet"}
    for key, (good, bad) in KEYS.items():
        if key == odd_key:
            conf[key] = draw(bad)
        elif key in ("cniVersion", "name") or not draw(st.sampled_from([True, False, False])):
            conf[key] = draw(good)  # required; the others now and then
    if odd_key == "mutated":
        return draw(v.mutated(conf))
    return conf


@st.composite
def stdins(draw: st.DrawFn, odd: str | None) -> tuple[bytes, bool]:
    """(stdin, whether its slashes are escaped `\\/`, as JSON allows: the shim reads it as JSON does)."""
    if odd == "stdin-bytes":
        return draw(v.hostile_bodies), False
    text = json.dumps(draw(configurations(odd == "conf")))
    if odd == "stdin-escaped":
        return text.replace("/", "\\/").encode(), True
    return text.encode(), False


@dataclass
class CNICase:
    env: dict[str, str]
    stdin: bytes
    escaped: bool = False
    not_utf8: str | None = None  # the name of a variable sent with an invalid UTF-8 byte appended

    def for_agent(self, socket_path: str) -> tuple[dict[str, str | bytes], bytes]:
        env: dict[str, str | bytes] = dict(self.env)
        if self.not_utf8 in env:
            env[self.not_utf8] = str(env[self.not_utf8]).encode() + b"\xff"
        path = socket_path.replace("/", "\\/") if self.escaped else socket_path
        return env, self.stdin.replace(AGENT.encode(), path.encode())

    def describe(self) -> str:
        shown = {k.removeprefix("CNI_"): val for k, val in self.env.items() if k != "CNI_PATH"}
        bad = f" ({self.not_utf8} not UTF-8)" if self.not_utf8 else ""
        return f"{shown}{bad} stdin={self.stdin[:200]!r}"


@st.composite
def cni_cases(draw: st.DrawFn) -> CNICase:
    """A call with everything plausible, or all but one thing: a variable, a missing one, one that is not
    UTF-8, the configuration, or stdin."""
    odd = draw(
        st.sampled_from(
            [None, None, None, *VARIABLES, "missing", "not-utf8", "conf", "conf", "stdin-bytes", "stdin-escaped"]
        )
    )
    env = draw(environments(odd))
    not_utf8 = draw(st.sampled_from(sorted(env))) if odd == "not-utf8" else None
    stdin, escaped = draw(stdins(odd))
    return CNICase(env, stdin, escaped, not_utf8)


@st.composite
def cni_calls(draw: st.DrawFn) -> dict[str, Any]:
    """POST /v1/cni bodies: what the shim forwards."""
    case = draw(cni_cases())
    return {"env": case.env, "stdin": case.stdin.decode("utf-8", "replace")}
