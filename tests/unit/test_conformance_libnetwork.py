"""The libnetwork conformance suite spoken to podnet-docker (a real agent on a fake kernel) with no dockerd:
podnet passes every protocol rule, and each mutant (tests/conformance/lnwproxy.py) fails exactly its own.
The docker CLI rules need a real dockerd: tests/integration/test_conformance_libnetwork.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from lab.conformance.libnetwork.context import Post, Subject
from lab.conformance.libnetwork.subjects import post_to
from lab.conformance.libnetwork.suite import RULES, run_subject
from lab.conformance.model import Status
from podnet.api.client import AgentClient
from podnet.docker.libnetwork import Handlers
from podnet.docker.server import PluginServer
from tests.agent_harness import RunningAgent, running_agent
from tests.conformance.lnwproxy import MUTANTS, Mutant
from tests.fakes import FakeDatapath


@dataclass
class FakeSide:
    datapath: FakeDatapath
    image: str = ""

    def links(self) -> set[str]:
        return {"lo", *self.datapath.links}

    def docker(self, *args: str, timeout: float = 120.0) -> None:
        return None


@contextmanager
def podnet_docker(tmp: Path) -> Iterator[tuple[RunningAgent, str]]:
    with running_agent(tmp, pod_cidr="10.44.0.0/24") as env:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        sock = str(tmp / "podnet-docker.sock")

        async def start() -> web.BaseRunner:
            runner = PluginServer(Handlers(AgentClient(env.socket))).runner()
            await runner.setup()
            await web.UnixSite(runner, sock).start()
            return runner

        runner = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        try:
            yield env, sock
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def judged(tmp: Path, rule: str | None = None) -> dict[str, Any]:
    with podnet_docker(tmp) as (env, sock):
        post: Post = Mutant(sock, rule, tmp / "state").handle if rule else post_to(sock)
        subject = Subject(rule or "podnet", "podnet-docker", "in-process", post, "podnet", settle_s=0.5)
        result = run_subject(subject, FakeSide(env.datapath))
        if rule is None:  # (a mutant may well leak)
            assert not [n for n in env.datapath.links if n.startswith(("lxc", "tmp"))], "the suite left endpoints"
    return {r.id: r for r in result.rules}


def test_every_rule_has_a_mutant() -> None:
    assert sorted(MUTANTS) == sorted(r.id for r in RULES)


def test_podnet_passes_every_protocol_rule_and_the_docker_ones_need_dockerd(tmp_path: Path) -> None:
    results = judged(tmp_path)
    assert {i: r.message for i, r in results.items() if r.status != Status.PASS and not i.startswith("docker.")} == {}
    assert {r.status for i, r in results.items() if i.startswith("docker.")} == {Status.CANNOT}


@pytest.mark.parametrize("rule", sorted(MUTANTS))
def test_each_mutant_fails_its_rule_and_passes_the_others(tmp_path: Path, rule: str) -> None:
    results = judged(tmp_path, rule)
    if rule.startswith("docker."):  # judged through dockerd: the integration tests run it
        assert results[rule].status == Status.CANNOT
    else:
        assert results[rule].status == Status.FAIL, (MUTANTS[rule], results[rule])
    others = {i: r.message for i, r in results.items() if r.status == Status.FAIL and i != rule}
    assert others == {}, f"the mutant '{MUTANTS[rule]}' also fails {others}"
