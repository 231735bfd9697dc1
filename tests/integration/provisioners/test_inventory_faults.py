"""Inventory reads over a connection that drops in the middle of a list response's body: the
read is retried like any dropped connection, and ends as a TemporaryError, never as urllib3's
own error.

The server is a plain socket on 127.0.0.1 that answers with the headers and the start of the
body, then closes; the client is the platform's own (make_api_client, urllib3 retries off).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import pytest

from config.settings import Settings
from leases.errors import TemporaryError
from provisioners.inventory import list_nodes_and_pods
from provisioners.kube import RetryPolicy, make_api_client
from tests.integration.provisioners.conftest import RecordedSleep
from tests.integration.provisioners.test_tls_faults import Server

NODE = {"metadata": {"name": "gpu-1", "labels": {"gpulease.io/tier": "h100-1g"}}}
POD = {"metadata": {"name": "p", "namespace": "ml-alice-1"}, "spec": {"nodeName": "gpu-1"}}


def read_request_line(conn: socket.socket) -> str:
    """Read a request's head and return its request line ("GET /api/v1/nodes?... HTTP/1.1")."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            break
        head += chunk
    return head.split(b"\r\n", 1)[0].decode()


def answer(conn: socket.socket, body: dict, *, cut: bool) -> None:
    """Send a 200 with a JSON body, or only its headers and first bytes when `cut`."""
    data = json.dumps(body).encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    conn.sendall(head + (data[: len(data) // 2] if cut else data))


def cutting(drops: int) -> Callable[[socket.socket], None]:
    """A handler that cuts the first `drops` responses mid-body and answers the rest whole."""
    served = 0

    def handle(conn: socket.socket) -> None:
        nonlocal served
        line = read_request_line(conn)
        served += 1
        kind, items = ("PodList", [POD]) if " /api/v1/pods" in line else ("NodeList", [NODE])
        body = {"kind": kind, "apiVersion": "v1", "metadata": {}, "items": items * 50}
        answer(conn, body, cut=served <= drops)

    return handle


@pytest.fixture
def serve() -> Iterator[Callable[[int], tuple[Server, Settings]]]:
    servers: list[Server] = []

    def start(drops: int) -> tuple[Server, Settings]:
        server = Server(cutting(drops))
        servers.append(server)
        settings = Settings(_env_file=None, kube_api_url=f"http://127.0.0.1:{server.port}", kube_request_timeout=5)
        return server, settings

    yield start
    for server in servers:
        server.close()


def test_a_list_cut_mid_body_is_retried_and_read_whole(serve) -> None:
    server, settings = serve(1)
    slept = RecordedSleep()
    retry = RetryPolicy(attempts=3, seconds=30, base_delay=0.01, max_delay=0.05, sleep=slept)
    with make_api_client(settings=settings) as api:
        nodes, pods = list_nodes_and_pods(api, retry=retry)
    assert [n["metadata"]["name"] for n in nodes] == ["gpu-1"] * 50
    assert [p["metadata"]["name"] for p in pods] == ["p"] * 50
    # The cut nodes page, its retry, and the pods page.
    assert server.accepted == 3 and len(slept.calls) == 1


def test_a_list_cut_mid_body_every_time_ends_as_a_temporary_error(serve) -> None:
    server, settings = serve(100)
    slept = RecordedSleep()
    retry = RetryPolicy(attempts=3, seconds=30, base_delay=0.01, max_delay=0.05, sleep=slept)
    with make_api_client(settings=settings) as api, pytest.raises(TemporaryError) as raised:
        list_nodes_and_pods(api, retry=retry)
    assert server.accepted == 3 and len(slept.calls) == 2
    text = str(raised.value)
    assert text.startswith("list nodes: still failing after 3 attempt(s)")
    assert "IncompleteRead" in text
