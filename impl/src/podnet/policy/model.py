"""Policy rules, Cilium-like: which endpoints a rule selects, and who may reach them on which ports.

    {"name": "app1-from-app2",
     "endpointSelector": {"matchLabels": {"id": "app1"}},
     "ingress": [{"fromEndpoints": [{"matchLabels": {"id": "app2"}}],
                  "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]}

An endpoint no rule selects accepts everything. Once any rule selects it, it
accepts only what some rule's ingress allows (an empty `ingress` denies all).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items())


class PortProtocol(Model):
    port: int = Field(ge=0, le=65535, description="0: any port")
    protocol: Literal["TCP", "UDP", "ANY"] = "ANY"

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.isdigit():
                raise ValueError(f"port {value!r} is not a number (named ports are not supported)")
            return int(value)
        return value

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class PortRule(Model):
    ports: list[PortProtocol] = Field(min_length=1)


class IngressRule(Model):
    from_endpoints: list[LabelSelector] | None = Field(
        default=None, alias="fromEndpoints", description="absent: from any source"
    )
    to_ports: list[PortRule] | None = Field(default=None, alias="toPorts", description="absent: every port")


class PolicyRule(Model):
    name: str
    description: str | None = None
    endpoint_selector: LabelSelector = Field(alias="endpointSelector")
    ingress: list[IngressRule] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"policy name {value!r} must be lowercase letters, digits, '-' or '.' (at most 63)")
        return value
