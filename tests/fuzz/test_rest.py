"""The agent REST API, every route of its OpenAPI document, given generated requests (issue 13)."""

from __future__ import annotations

from typing import TypeVar

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.cni import AGENT
from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.node import FuzzNode
from tests.fuzz.outcomes import Outcome, Verdict, after_request, judge
from tests.fuzz.probes import REST as SEEDS
from tests.fuzz.rest import allowed_changes, rest_requests
from tests.fuzz.verdicts import rest
from tests.fuzz.wire import HTTPCase, send

T = TypeVar("T")
DEADLINE_S = 5.0
INTERFACE = "agent REST"


def try_one(node: FuzzNode, case: HTTPCase) -> None:
    case.body = case.body.replace(AGENT.encode(), node.socket.encode())
    before = node.snapshot()
    node.routes.take()
    reply = send(node.socket, case, DEADLINE_S)
    served = node.routes.take()
    verdict = rest(case, reply, DEADLINE_S, routed=bool(served))
    allowed = allowed_changes(*served[0]) if served else frozenset()
    nested = served and served[0] == ("POST", "/v1/cni")  # the CNI logic calls the API itself
    if len(served) > 1 and not nested and case.framing != "malformed":
        verdict = Verdict(Outcome.unsafe, f"one request, {len(served)} served: {served}")
    verdict = after_request(node.running.agent, before, node.snapshot(), verdict, allowed)
    judge(INTERFACE, verdict, case.describe())
    if verdict.outcome == Outcome.unsafe:  # (a survey goes on) from a node in order again
        node.restart()
        return
    problem = node.tidy()
    if problem:
        judge(INTERFACE, Verdict(Outcome.unsafe, problem), "clearing the node")
        node.restart()


def with_seeds(test: T) -> T:
    for seed in SEEDS:
        test = example(cases=seed)(test)
    return test


@with_seeds
@fuzz_settings("rest")
@given(cases=st.lists(rest_requests(), min_size=1, max_size=3))
def test_every_route_answers_any_request_in_its_form_and_keeps_the_node_safe(
    node: FuzzNode, cases: list[HTTPCase]
) -> None:
    for case in cases:
        try_one(node, case)
