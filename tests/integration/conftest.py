from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator

import pytest

from tests.integration.etcd_server import EtcdServer


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture
def etcd_url(etcd: EtcdServer) -> str:
    """The session's etcd, emptied for this test."""
    body = json.dumps({"key": base64.b64encode(b"\0").decode(), "range_end": base64.b64encode(b"\0").decode()})
    request = urllib.request.Request(
        f"http://127.0.0.1:{etcd.client_port}/v3/kv/deleterange", data=body.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
    return etcd.url
