"""The libnetwork plugin (podnet-docker's server, its after_call included) in front of a real agent,
given requests shaped like dockerd's (issue 13)."""

from __future__ import annotations

from typing import Any, TypeVar

from hypothesis import example, given

from podnet.agent.service import Agent
from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.libnetwork import RECORDED, PluginCase, Resolver, plugin_sequences, to_http, translate
from tests.fuzz.node import FuzzNode
from tests.fuzz.outcomes import ENDPOINT_CHANGES, Outcome, Verdict, after_request, json_or_none, judge
from tests.fuzz.probes import LIBNETWORK as SEEDS
from tests.fuzz.verdicts import plugin
from tests.fuzz.wire import send

T = TypeVar("T")
DEADLINE_S = 5.0
INTERFACE = "libnetwork plugin"
ALLOWED = {
    "/IpamDriver.RequestAddress": frozenset({"ips"}),
    "/IpamDriver.ReleaseAddress": frozenset({"ips"}),
    "/NetworkDriver.CreateNetwork": frozenset({"networks"}),
    "/NetworkDriver.DeleteNetwork": frozenset({"networks"}),
    "/NetworkDriver.CreateEndpoint": ENDPOINT_CHANGES,
    "/NetworkDriver.DeleteEndpoint": ENDPOINT_CHANGES,
    "/NetworkDriver.Join": frozenset({"endpoints"}),  # the sandbox key
}


def semantics(agent: Agent, path: str, body: Any, reply: Any) -> str:
    """What an accepted call must have done: '' or what it did not."""
    if not isinstance(body, dict) or not isinstance(reply, dict):
        return ""
    held = {str(a.ip): a.owner for a in agent.ipam.allocations()}
    if path == "/IpamDriver.RequestAddress":
        ip = str(reply.get("Address", "")).split("/")[0]
        if held.get(ip) is None:
            return f"answered {reply.get('Address')} but the node does not hold {ip}"
    if path == "/NetworkDriver.CreateEndpoint":
        endpoints = [e for e in agent.endpoints.list() if e.docker_endpoint_id == body.get("EndpointID")]
        ip = str((body.get("Interface") or {}).get("Address", "")).split("/")[0]
        if not endpoints or held.get(ip) != f"endpoint:{endpoints[0].id}":
            return f"created, but no endpoint {body.get('EndpointID')} owns {ip} ({held.get(ip)})"
    deleted = path == "/NetworkDriver.DeleteEndpoint"
    if deleted and any(e.docker_endpoint_id == body.get("EndpointID") for e in agent.endpoints.list()):
        return f"deleted, but endpoint {body.get('EndpointID')} is still there"
    return ""


def try_one(node: FuzzNode, plugin_socket: str, case: PluginCase, resolver: Resolver) -> None:
    http, body = to_http(case, resolver)
    before = node.snapshot()
    reply = send(plugin_socket, http, DEADLINE_S)
    verdict = plugin(reply, DEADLINE_S)
    data = json_or_none(reply.body)
    if verdict.outcome == Outcome.fine:
        resolver.learn(case.path, body, data)
        problem = semantics(node.running.agent, case.path, body, data)
        if problem:
            verdict = Verdict(Outcome.unsafe, problem)
    allowed = ALLOWED.get(case.path, frozenset()) if case.method == "POST" else frozenset()
    verdict = after_request(node.running.agent, before, node.snapshot(), verdict, allowed)
    judge(INTERFACE, verdict, f"{case.method} {case.path} {http.body[:300]!r}")
    if verdict.outcome == Outcome.unsafe:
        node.restart()
        return
    problem = node.tidy()
    if problem:
        judge(INTERFACE, Verdict(Outcome.unsafe, problem), "clearing the node")
        node.restart()


def with_seeds(test: T) -> T:
    # The whole recording as dockerd sent it (what podnet cannot honour it refuses in libnetwork's form),
    # and the probes.
    test = example(cases=[PluginCase(r["path"], translate(r["request"], r["path"]), replayed=True) for r in RECORDED])(
        test
    )
    for seed in SEEDS:
        test = example(cases=seed)(test)
    return test


@with_seeds
@fuzz_settings("libnetwork")
@given(cases=plugin_sequences())
def test_the_plugin_answers_any_request_in_libnetwork_form_and_keeps_the_node_safe(
    node: FuzzNode, plugin: str, cases: list[PluginCase]
) -> None:
    resolver = Resolver()
    for case in cases:
        try_one(node, plugin, case, resolver)
