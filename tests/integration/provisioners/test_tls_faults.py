"""TLS failures between the official client and an API server, on real sockets: a connection
dropped during the handshake is retried and ends as a TemporaryError; a certificate the
kubeconfig's CA does not vouch for fails at once as a PermanentError saying what to check.

The servers here are plain sockets on 127.0.0.1 that count the connections they accept; the
client is the platform's own (make_api_client from a kubeconfig, urllib3 retries off).
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from config.settings import Settings
from leases.errors import PermanentError, TemporaryError
from provisioners.bundle import teardown
from provisioners.kube import RetryPolicy, make_api_client, request
from tests.integration.provisioners.conftest import RecordedSleep


class Server:
    """Accepts connections on a free port and hands each to `handle`; counts them."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.accepted = 0
        self._handle = handle
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed: the test is over
            self.accepted += 1
            with conn, contextlib.suppress(OSError):  # OSError: the client gave up first
                self._handle(conn)

    def close(self) -> None:
        self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
        self._sock.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive()


def drop_after_client_hello(conn: socket.socket) -> None:
    """Read the client's whole first TLS record, then close cleanly: the client meets an EOF
    in the middle of the handshake, as when a load balancer or a restarting server drops it."""
    header = _read(conn, 5)
    _read(conn, int.from_bytes(header[3:5], "big"))
    conn.shutdown(socket.SHUT_WR)


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """Make a self-signed certificate for 127.0.0.1 with openssl; return (cert, key)."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a test certificate"
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def kubeconfig(directory: Path, *, port: int, ca: Path) -> Path:
    """Write a kubeconfig for https://127.0.0.1:port that trusts only `ca`."""
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {
            "server": f"https://127.0.0.1:{port}",
            "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
        }}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }))
    return path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("certificates")
    return {"server": self_signed(directory, "server"), "other": self_signed(directory, "other-ca")}


@pytest.fixture
def dropping(tmp_path: Path, certificates) -> Iterator[tuple[Server, Settings]]:
    server = Server(drop_after_client_hello)
    cert, _ = certificates["server"]
    settings = Settings(_env_file=None, kubeconfig=kubeconfig(tmp_path, port=server.port, ca=cert),
                        kube_request_timeout=5)
    yield server, settings
    server.close()


def test_a_connection_dropped_during_tls_is_retried_then_a_temporary_error(dropping) -> None:
    server, settings = dropping
    slept = RecordedSleep()
    retry = RetryPolicy(attempts=3, seconds=30, base_delay=0.01, max_delay=0.05, sleep=slept)
    with make_api_client(settings=settings) as api, pytest.raises(TemporaryError) as raised:
        retry.call(request, api, "GET", "/api/v1/namespaces/ml-alice-1", what="get namespace ml-alice-1")
    assert server.accepted == 3 and len(slept.calls) == 2
    assert "get namespace ml-alice-1: still failing after 3 attempt(s)" in str(raised.value)
    assert "EOF" in str(raised.value)


def test_a_teardown_over_a_dropping_connection_fails_as_temporary(dropping, policy) -> None:
    from tests.unit.provisioners.conftest import make_spec

    server, settings = dropping
    retry = RetryPolicy(attempts=2, seconds=30, base_delay=0.01, max_delay=0.05, sleep=RecordedSleep())
    with make_api_client(settings=settings) as api, pytest.raises(TemporaryError):
        teardown(api, make_spec(policy), retry=retry, timeout=1.0, poll=0.1, sleep=RecordedSleep())
    assert server.accepted == 2


def test_a_certificate_the_kubeconfig_does_not_trust_fails_at_once(tmp_path: Path, certificates) -> None:
    cert, key = certificates["server"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def handshake(conn: socket.socket) -> None:
        with contextlib.suppress(ssl.SSLError):  # the client refused our certificate, as expected
            context.wrap_socket(conn, server_side=True).close()

    server = Server(handshake)
    try:
        other_ca, _ = certificates["other"]
        settings = Settings(_env_file=None, kubeconfig=kubeconfig(tmp_path, port=server.port, ca=other_ca),
                            kube_request_timeout=5)
        slept = RecordedSleep()
        retry = RetryPolicy(attempts=3, seconds=30, base_delay=0.01, max_delay=0.05, sleep=slept)
        with make_api_client(settings=settings) as api, pytest.raises(PermanentError) as raised:
            retry.call(request, api, "GET", "/api/v1/namespaces/ml-alice-1", what="get namespace ml-alice-1")
    finally:
        server.close()
    assert server.accepted == 1 and slept.calls == []
    text = str(raised.value)
    assert text.startswith("get namespace ml-alice-1: the API server's TLS certificate was not accepted")
    assert "certificate verify failed" in text and "certificate-authority-data" in text
