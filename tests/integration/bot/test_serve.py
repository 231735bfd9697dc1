"""`gpulease serve` as it runs in production: gunicorn, the app built in its worker, an
embedded Celery worker on the in-memory broker, the Slack notifier. A request goes from the
slash command to an active lease; /healthz and /metrics answer; bad settings fail fast."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from leases.store import upgrade
from sandbox.kube import KubeSandbox
from sandbox.slack import DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN, SignedClient, SlackSandbox

from . import flows
from .conftest import eventually

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(tmp_path: Path, slack: SlackSandbox, kube: KubeSandbox) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    upgrade(url)
    keep = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
    return {**keep, "GPULEASE_DATABASE_URL": url, "GPULEASE_SLACK_BOT_TOKEN": DEFAULT_TOKEN,
            "GPULEASE_SLACK_SIGNING_SECRET": DEFAULT_SIGNING_SECRET, "GPULEASE_SLACK_API_URL": slack.url,
            "GPULEASE_KUBE_API_URL": kube.url, "GPULEASE_LOG_LEVEL": "WARNING"}


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


@pytest.fixture
def served(tmp_path, slack, kube) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gpulease", "serve", "--host", "127.0.0.1", "--port", str(port), "--threads", "8"],
        env=environment(tmp_path, slack, kube), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: get(f"{base}/healthz")[0] == 200 or process.poll() is not None, timeout=30,
                   what="gpulease serve to answer /healthz")
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_serve_runs_a_request_to_an_active_lease(served, slack, kube):
    status, body = get(f"{served}/healthz")
    assert status == 200 and '"store": "ok"' in body
    to_bot = SignedClient(f"{served}/slack/events", DEFAULT_SIGNING_SECRET, slack.url)
    assert to_bot.slash_command("/gpu-namespace", user_id="U0ALICE", stale=True).status == 401
    ready = flows.active(to_bot, slack, "U0ALICE", "alice-served")
    assert "kubectl" in str(ready["blocks"])
    assert kube.get("namespaces", "alice-served") is not None
    status, metrics = get(f"{served}/metrics")
    assert status == 200
    assert 'gpulease_slack_requests_total{type="view_submission"} 1.0' in metrics
    assert 'gpulease_http_request_seconds_count{path="/slack/events",status="401"} 1.0' in metrics
    assert 'gpulease_leases{state="active"} 1.0' in metrics  # read from the store at scrape time
    assert 'gpulease_pool_units{cluster="sandbox",kind="reserved",tier="h100-1g"} 1.0' in metrics
    assert get(f"{served}/nowhere")[0] == 0  # 404 (urllib raises): only the three paths exist


@pytest.mark.parametrize(("command", "unset", "named"), [
    ("serve", "GPULEASE_SLACK_BOT_TOKEN", "GPULEASE_SLACK_BOT_TOKEN"),
    ("serve", "GPULEASE_SLACK_SIGNING_SECRET", "GPULEASE_SLACK_SIGNING_SECRET"),
    ("socket", None, "GPULEASE_SLACK_APP_TOKEN"),
])
def test_missing_slack_settings_fail_fast_with_the_variable_named(tmp_path, slack, kube, command, unset, named):
    env = environment(tmp_path, slack, kube)
    env.pop(unset or "", None)
    done = subprocess.run([sys.executable, "-m", "gpulease", command], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and named in done.stderr
