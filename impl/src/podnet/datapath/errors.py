from __future__ import annotations

from podnet.errors import PodnetError, Reason


class DatapathError(PodnetError):
    """A kernel operation failed; the message names the device and the step."""

    reason = Reason.datapath_failed


class InterfaceExistsError(DatapathError):
    """An endpoint's interface (its host veth, or the peer's name where it is made) already exists."""

    reason = Reason.veth_exists
