"""deploy/probe.py, the containers' health checks: each can pass and fail, and the beat check
holds against a real `gpulease beat`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.deploy.commands import load_probe

probe = load_probe()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200 if self.path == "/healthz" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_http_passes_on_2xx_and_fails_otherwise(server: str) -> None:
    assert probe.check_http(f"{server}/healthz", timeout=3) is None
    assert "503" in probe.check_http(f"{server}/other", timeout=3)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert "did not answer" in probe.check_http(f"http://127.0.0.1:{closed}/healthz", timeout=3)
    assert probe.main(["http", f"{server}/healthz"]) == 0
    assert probe.main(["http", f"{server}/other"]) == 1


def test_broker_needs_an_established_connection_to_the_brokers_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        url = f"redis://:secret@127.0.0.1:{port}/0"
        assert "no established connection" in probe.check_broker(url)
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = listener.accept()
            with accepted:
                assert probe.check_broker(url) is None
                assert probe.main(["broker", "--url", url]) == 0


def test_broker_reads_proc_net_tcp(tmp_path: Path) -> None:
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (tmp_path / "tcp").write_text(
        header
        + "   0: 0100007F:D431 0A000005:18EB 01 00000000:00000000 00:00000000 00000000 10001 0 1 1\n"  # 6379 established
        + "   1: 0100007F:D432 0A000005:1538 06 00000000:00000000 00:00000000 00000000 10001 0 2 1\n"  # 5432 TIME_WAIT
    )
    assert probe.established_remote_ports(tmp_path) == {6379}
    assert probe.check_broker("redis://redis:6379/0", proc=tmp_path) is None
    assert probe.check_broker("redis://redis/0", proc=tmp_path) is None  # the default port
    assert "5432" in probe.check_broker("redis://redis:5432/0", proc=tmp_path)
    assert probe.check_broker("memory://", proc=tmp_path) is None  # embedded: nothing to connect to
    assert "GPULEASE_BROKER_URL" in probe.check_broker("", proc=tmp_path)


def test_fresh_looks_at_every_file_of_the_schedule(tmp_path: Path) -> None:
    base = tmp_path / "celerybeat-schedule"
    assert "no file" in probe.check_fresh(str(base), max_age=60)
    shelf = tmp_path / "celerybeat-schedule.dat"  # dbm.dumb; gdbm writes the bare name, ndbm .db
    shelf.write_text("x")
    now = time.time()
    os.utime(shelf, (now - 100, now - 100))
    assert probe.check_fresh(str(base), max_age=360, now=now) is None
    assert "100s ago" in probe.check_fresh(str(base), max_age=60, now=now)
    assert probe.main(["fresh", str(base), "--max-age", "360"]) == 0
    assert probe.main(["fresh", str(base), "--max-age", "1"]) == 1


def test_a_real_beat_passes_the_fresh_probe(tmp_path: Path) -> None:
    schedule = tmp_path / "beat" / "celerybeat-schedule"
    schedule.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
    env["GPULEASE_BROKER_URL"] = "memory://"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpulease", "beat", "--schedule-file", str(schedule), "-l", "DEBUG"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        assert probe.check_fresh(str(schedule), max_age=360) is not None
        # Beat logs its tick interval right after opening and syncing the schedule.
        for line in proc.stderr:
            if "Ticking with max interval" in line:
                break
        else:
            pytest.fail("beat exited before it started ticking")
        assert probe.check_fresh(str(schedule), max_age=360) is None
        assert probe.check_fresh(str(schedule), max_age=360, now=time.time() + 361) is not None
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(30)
