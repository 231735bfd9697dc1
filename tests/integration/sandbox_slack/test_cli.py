"""python -m sandbox.slack serves the sandbox in its own process, usable over HTTP only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import DEFAULT_TOKEN, RemoteSandbox

REPO = Path(__file__).resolve().parents[3]


def test_the_sandbox_runs_as_its_own_process(tmp_path: Path) -> None:
    directory = tmp_path / "directory.yaml"
    directory.write_text("users:\n  - {id: U0ZED, name: zed}\nchannels:\n  - {id: C0OPS, name: ops}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.slack", "--port", "0", "--token", "xoxb-cli", "--directory", str(directory)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        banner = process.stdout.readline()  # printed once the port is bound
        api_url = re.search(r"http://\S+/api/", banner).group(0)
        client = WebClient(token="xoxb-cli", base_url=api_url)

        client.chat_postMessage(channel="#ops", text="from another process")

        remote = RemoteSandbox(api_url)
        assert [m["text"] for m in remote.messages("C0OPS")] == ["from another process"]
        assert remote.calls("chat.postMessage")[0]["ok"] is True
        assert client.users_info(user="U0ZED")["user"]["profile"]["email"] == "zed@example.com"
        with pytest.raises(SlackApiError, match="invalid_auth"):  # only --token tokens are accepted
            WebClient(token=DEFAULT_TOKEN, base_url=api_url).auth_test()
    finally:
        process.terminate()
        process.wait(timeout=10)
