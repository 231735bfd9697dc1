"""`gpulease serve` and `socket` check the Slack token with auth.test before they start: a
token Slack refuses, or an API URL that does not answer, ends in one error naming the setting
(the words doctor uses) and exit 1, not in tracebacks from every gunicorn worker's Bolt app."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from leases.store import upgrade
from sandbox.slack import DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN, SlackSandbox

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def env(tmp_path) -> Iterator[dict[str, str]]:
    url = f"sqlite:///{tmp_path / 'gpulease.db'}"
    upgrade(url)
    with SlackSandbox(port=0) as slack:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
        yield keep | {
            "GPULEASE_DATABASE_URL": url, "GPULEASE_SLACK_BOT_TOKEN": DEFAULT_TOKEN,
            "GPULEASE_SLACK_SIGNING_SECRET": DEFAULT_SIGNING_SECRET, "GPULEASE_SLACK_APP_TOKEN": "xapp-sandbox",
            "GPULEASE_SLACK_API_URL": slack.url, "GPULEASE_LOG_LEVEL": "WARNING",
        }


def start(command: str, env: dict[str, str]) -> tuple[int | None, str]:
    """Run the command until it exits (at most 60 s); return its exit code (None: still running) and stderr."""
    args = ["serve", "--host", "127.0.0.1", "--port", str(free_port())] if command == "serve" else [command]
    process = subprocess.Popen([sys.executable, "-m", "gpulease", *args], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=60)
        return process.returncode, stderr
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate(timeout=10)
        return None, stderr


@pytest.mark.parametrize("command", ["serve", "socket"])
def test_a_token_slack_refuses_stops_the_start(env, command):
    code, stderr = start(command, env | {"GPULEASE_SLACK_BOT_TOKEN": "xoxb-wrong"})
    assert "Traceback" not in stderr, stderr
    assert code == 1, stderr
    assert "auth.test refused: invalid_auth (GPULEASE_SLACK_BOT_TOKEN)" in stderr
    assert "deploy/slack-app-manifest.yaml" in stderr


@pytest.mark.parametrize("command", ["serve", "socket"])
def test_a_slack_api_url_that_does_not_answer_stops_the_start(env, command):
    code, stderr = start(command, env | {"GPULEASE_SLACK_API_URL": "http://127.0.0.1:1/api/"})
    assert "Traceback" not in stderr, stderr
    assert code == 1, stderr
    assert "cannot reach Slack at http://127.0.0.1:1/api/ (GPULEASE_SLACK_API_URL)" in stderr
