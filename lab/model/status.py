"""`lab status --json`: what a running lab is, as data (its JSON Schema: `lab schema status`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ProcessStatus(BaseModel):
    name: str = Field(description="dockerd, podnet-agent, podnet-docker, bird, etcd or podnet-operator")
    running: bool
    pid: int | None = Field(description="its main PID while it runs")
    unit: str | None = Field(description="its systemd unit (VMs), None on namespaces")
    detail: str = Field(description="why it is not running (e.g. 'killed by SIGKILL'), or 'paused'; empty otherwise")


class AgentStatus(BaseModel):
    state: str = Field(description="ok, degraded, failure (from its healthz), or unreachable")
    message: str


class NodeStatus(BaseModel):
    name: str
    role: Literal["tor", "leaf", "spine", "worker", "control"]
    where: str = Field(description="where the node lives, e.g. 'netns pn-1a2b3c-node1' or 'VM node1 (ssh)'")
    underlay_ip: str | list[str] = Field(
        description="the node's underlay address (its node IP); a router's, one per link"
    )
    pod_cidr: str | None = Field(description="a worker's pod CIDR (None while it has none)")
    processes: list[ProcessStatus]
    agent: AgentStatus | None = Field(description="a worker's agent health; None for the ToR and control node")


class LabStatus(BaseModel):
    run_id: str
    topology: str
    backend: str
    store: str = Field(description="the cluster's store URL")
    up_seconds: float
    nodes: list[NodeStatus]
