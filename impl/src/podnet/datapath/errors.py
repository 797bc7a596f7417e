from __future__ import annotations

from podnet.errors import PodnetError


class DatapathError(PodnetError):
    """A kernel operation failed; the message names the device and the step."""
