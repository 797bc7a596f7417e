"""Security identities: one number per distinct set of labels, the same on every node.

Cilium's model: an endpoint's identity comes from its labels, not its IP, so
policy follows a workload wherever it runs. Layout in the kvstore
(podnet.kvstore.keys):

    podnet/identities/ids/<N>               '["id=app1","role=web"]'
    podnet/identities/labelsets/<JSON>      "N"     (canonical JSON of the sorted label list)
    podnet/identities/next                  "N"     (the next number; only grows)
    podnet/identities/refs/<N>/<node>       {"node", "in_use", "since"}

Numbers below 256 are reserved (see podnet.datapath.bpf.maps). A number is
never given to other labels within a cluster, so a node still holding an old
mapping can never apply it to new labels.

Label-set keys cannot collide: version 1 (podnet before issue 13) joined the
labels with ';' under ``podnet/identities/labels/``, so ``["id=app2;role=x"]``
and ``["id=app2", "role=x"]`` shared one identity, and a rule allowing
``id=app2`` admitted the impostor.

Migration and upgrade. The ``ids/<N>`` records keep their format, so both
versions read each other's identities, and both take numbers by creating
``ids/<N>`` only if absent, so they never hand out one number twice. Version-1
keys are never written again, and deleted only with their identity; this
version reads one only when its own key is missing, and adopts its number
only if ``ids/<N>`` holds exactly the wanted labels (then writes its own key
for it): a collided key is never trusted, the impostor gets a new number (and
an upgraded agent's restore re-resolves each endpoint whose number names other
labels). During a rolling upgrade the version-1 agents still give colliding
label sets one number (the hole closes once every agent is upgraded), and the
two versions may give one label set two numbers (both carry the same labels,
so policy treats them alike). Version-1 agents keep no references: the
collector keeps what their endpoint records carry, and never removes the
highest number (they pick the highest + 1). A version-1 agent may still hand
a cached number the collector removed to a new endpoint; that endpoint matches
no allow rule (fail closed) until its agent is upgraded, whose restore
re-creates the identity from the endpoint's labels. Raise the grace period for
the duration of an upgrade to avoid that.

Collection (podnet.identity.collect): the operator, or each agent when there
is no operator, removes identities no endpoint in the cluster has used for a
grace period (10 minutes by default); agents mark their references in use
before handing a number to an endpoint and unused when their last endpoint
with it goes.
"""

from podnet.identity.allocator import IdentityAllocator
from podnet.identity.collect import DEFAULT_GRACE_S, Collection, IdentityCollector
from podnet.identity.labels import (
    FIRST_IDENTITY,
    IDENTITY_ANY,
    IDENTITY_HOST,
    IDENTITY_INIT,
    IDENTITY_WORLD,
    NOT_SECURITY_RELEVANT,
    RESERVED_IDENTITIES,
    IdentityError,
    UnreadableIdentityError,
    encode_labels,
    labels_dict,
    security_labels,
)

__all__ = [
    "DEFAULT_GRACE_S",
    "FIRST_IDENTITY",
    "IDENTITY_ANY",
    "IDENTITY_HOST",
    "IDENTITY_INIT",
    "IDENTITY_WORLD",
    "NOT_SECURITY_RELEVANT",
    "RESERVED_IDENTITIES",
    "Collection",
    "IdentityAllocator",
    "IdentityCollector",
    "IdentityError",
    "UnreadableIdentityError",
    "encode_labels",
    "labels_dict",
    "security_labels",
]
