"""The etcd store's HTTP side against a fake gateway on 127.0.0.1 (the contract itself runs against a
real etcd in tests/integration/test_kvstore_etcd.py): keep-alive, a connection etcd closed while idle,
etcd's refusals and garbled replies, reconnect."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from podnet.kvstore import KVStoreError
from podnet.kvstore.etcd import EtcdStore


class Gateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[int, str, dict[str, Any]]] = []  # (client port, path, body)
        self.reply: tuple[int, bytes] | None = None  # the next reply instead of a good one
        self.close_after = False  # drop the connection after replying, without saying so


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Gateway

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.client_address[1], self.path, body))
        status, data = self.server.reply or (200, json.dumps({"header": {"revision": "7"}, "kvs": []}).encode())
        self.server.reply = None
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.server.close_after:
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server = Gateway()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def store(gateway: Gateway) -> Iterator[EtcdStore]:
    s = EtcdStore([("127.0.0.1", gateway.server_address[1])], timeout_s=5)
    try:
        yield s
    finally:
        s.close()


def test_calls_are_json_posts_on_one_kept_alive_connection(gateway: Gateway, store: EtcdStore) -> None:
    assert store.put("a", "1") == 7
    assert store.get("a") is None
    assert [(path, body.get("key")) for _port, path, body in gateway.requests] == [
        ("/v3/kv/put", "YQ=="),
        ("/v3/kv/range", "YQ=="),
    ]
    assert len({port for port, _path, _body in gateway.requests}) == 1


def test_a_connection_etcd_closed_while_idle_is_opened_again_and_the_call_goes_on(
    gateway: Gateway, store: EtcdStore
) -> None:
    gateway.close_after = True
    assert store.put("a", "1") == 7
    assert store.put("a", "2") == 7  # the kept connection is gone: the call is sent once, anew
    assert len(gateway.requests) == 2 and gateway.requests[0][0] != gateway.requests[1][0]


def test_what_etcd_refuses_is_a_store_error_with_its_message(gateway: Gateway, store: EtcdStore) -> None:
    message = "etcdserver: mvcc: required revision has been compacted"
    gateway.reply = (400, json.dumps({"error": message, "code": 11, "message": message}).encode())
    with pytest.raises(KVStoreError, match=r"refused /kv/range: HTTP 400: etcdserver: mvcc: required revision"):
        store.get("a")
    gateway.reply = (200, b"<html>not etcd</html>")
    with pytest.raises(KVStoreError, match=r"refused /kv/put: HTTP 200: <html>not etcd</html>"):
        store.put("a", "1")
    assert store.put("a", "1") == 7  # and the store goes on


def test_an_etcd_nobody_answers_on_is_unreachable(gateway: Gateway) -> None:
    port = gateway.server_address[1]
    gateway.shutdown()
    gateway.server_close()
    with pytest.raises(KVStoreError, match=rf"kvstore etcd://127.0.0.1:{port} is unreachable \(/kv/range\)"):
        EtcdStore([("127.0.0.1", port)], timeout_s=2).get("a")


def test_reconnect_opens_a_new_connection_for_the_next_call(gateway: Gateway, store: EtcdStore) -> None:
    store.put("a", "1")
    store.reconnect()
    store.put("a", "2")
    assert gateway.requests[0][0] != gateway.requests[1][0]


def test_each_thread_has_its_own_connection(gateway: Gateway, store: EtcdStore) -> None:
    threads = [threading.Thread(target=store.put, args=("a", str(i))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({port for port, _path, _body in gateway.requests}) == 3
