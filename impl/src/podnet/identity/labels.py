"""Identity numbers, the labels that make them, and a label set's canonical form."""

from __future__ import annotations

import json
from collections.abc import Callable

from podnet.errors import PodnetError, Reason

IDENTITY_ANY = 0  # a policy wildcard, never an endpoint's identity
IDENTITY_HOST = 1
IDENTITY_WORLD = 2
IDENTITY_INIT = 5  # an endpoint whose labels are not known yet
# The same numbers are in podnet/datapath/bpf/podnet.h.
RESERVED_IDENTITIES = {
    IDENTITY_HOST: ["reserved:host"],
    IDENTITY_WORLD: ["reserved:world"],
    IDENTITY_INIT: ["reserved:init"],
}
FIRST_IDENTITY = 256  # numbers below are reserved (see podnet.datapath.bpf.maps)
# Per-pod labels a runtime passes along that say which pod, not what it is:
# an identity made from them would be one per pod, and no policy could select it.
NOT_SECURITY_RELEVANT = ("K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID")


class IdentityError(PodnetError):
    pass


class UnreadableIdentityError(IdentityError):
    """A stored identity record cannot be read: it is left as it is (quarantined), never overwritten."""

    reason = Reason.quarantined

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def security_labels(labels: list[str]) -> list[str]:
    """The labels an identity is made of: sorted, each once, per-pod ones left out."""
    return sorted({label for label in labels if label.split("=", 1)[0] not in NOT_SECURITY_RELEVANT})


def labels_dict(labels: list[str]) -> dict[str, str]:
    pairs = (label.partition("=") for label in labels)
    return {key: value for key, _, value in pairs}


def encode_labels(labels: list[str]) -> str:
    """A label list's canonical form: JSON, ASCII only, no spaces.

    JSON decodes back to the very list it encoded, so two different lists never
    share a form (version 1 joined the labels with ';': ``["a;b"]`` and
    ``["a", "b"]`` collided). Give it `security_labels` (sorted, each once)."""
    return json.dumps(labels, ensure_ascii=True, separators=(",", ":"))


def legacy_canonical(labels: list[str]) -> str:
    """Version 1's form of a label set: ambiguous, trusted only after checking ids/<N>."""
    return ";".join(labels)


def parse_labels(value: bytes) -> list[str] | None:
    """An ids/<N> record's labels, or None when it is not a JSON list of strings."""
    try:
        labels = json.loads(value)
    except ValueError:
        return None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        return None
    return labels


def parse_number(value: bytes | str) -> int | None:
    """An identity number stored as text, or None."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    return int(text) if text.isascii() and text.isdigit() else None


def number_in_key(parse: Callable[[str], int], key: str) -> int | None:
    """`parse(key)` (a podnet.kvstore.keys parser), or None when `key` holds no number."""
    try:
        return parse(key)
    except ValueError:
        return None
