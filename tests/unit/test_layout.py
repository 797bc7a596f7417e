"""The code's shape: the store's key layout in one module, no import cycle in impl/, modules kept small."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from podnet.kvstore import keys
from tests import imports

SRC = Path(__file__).resolve().parents[2] / "impl" / "src"
PACKAGE = SRC / "podnet"
MAX_LINES = 400


def test_key_layout_is_the_stored_format() -> None:
    """The exact keys stored today: a change here breaks every existing store."""
    cidr = ipaddress.ip_network("10.0.0.0/24")
    assert keys.pod_ips(cidr) == "podnet/ipam/pods/10.0.0.0_24/"
    assert keys.pod_ip(cidr, ipaddress.ip_address("10.0.0.5")) == "podnet/ipam/pods/10.0.0.0_24/10.0.0.5"
    assert keys.node_cidr(ipaddress.ip_network("10.1.0.0/16")) == "podnet/ipam/nodecidrs/10.1.0.0_16"
    assert keys.endpoint("node1", "ep1") == "podnet/nodes/node1/endpoints/ep1"
    assert keys.endpoints("node1") == "podnet/nodes/node1/endpoints/"
    assert keys.docker_network("node1", "n1") == "podnet/nodes/node1/docker-networks/n1"
    assert keys.identity_by_labels("id=app1;role=web") == "podnet/identities/labels/id=app1;role=web"
    assert keys.identity_by_id(256) == "podnet/identities/ids/256"
    assert keys.identity_number("podnet/identities/ids/256") == 256
    assert keys.identity_by_labelset('["id=app1","role=web"]') == 'podnet/identities/labelsets/["id=app1","role=web"]'
    assert keys.IDENTITY_NEXT == "podnet/identities/next"
    assert keys.identity_ref(256, "node1") == "podnet/identities/refs/256/node1"
    assert keys.identity_refs(25) == "podnet/identities/refs/25/"
    assert keys.identity_ref_number("podnet/identities/refs/256/node1") == 256
    assert keys.cluster_node("node1") == "podnet/cluster/nodes/node1"
    assert keys.cluster_status("node1") == "podnet/cluster/status/node1"
    assert keys.cluster_status_name("podnet/cluster/status/node1") == "node1"
    assert keys.policy("allow-web") == "podnet/policies/allow-web"
    assert keys.is_endpoint("podnet/nodes/node2/endpoints/ep1")
    assert not keys.is_endpoint("podnet/nodes/node2/docker-networks/n1")


def test_no_key_is_written_outside_the_keys_module() -> None:
    literal = re.compile(r"""(["'])podnet/(ipam|nodes|identities|cluster|policies)\b""")
    offenders = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "keys.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert offenders == [], "use podnet.kvstore.keys"


def test_no_import_cycle_in_impl() -> None:
    assert imports.cycles(imports.graph(PACKAGE, SRC, nested=False)) == []


def test_modules_are_small_or_say_why() -> None:
    assert imports.too_big(PACKAGE, SRC, MAX_LINES) == []
