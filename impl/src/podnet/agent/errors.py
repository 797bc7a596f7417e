"""Errors of the agent's own making (the store, IPAM and the datapath have theirs)."""

from __future__ import annotations

from podnet.errors import PodnetError, Reason


class BadRequestError(PodnetError):
    """The request is malformed, or asks for what this node cannot do."""

    reason = Reason.bad_request


class NotFoundError(PodnetError):
    """No such endpoint, policy rule or docker network."""

    reason = Reason.not_found


class NotReadyError(PodnetError):
    """The node has no pod CIDR yet (operator mode)."""

    reason = Reason.agent_not_ready
