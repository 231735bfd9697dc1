"""The Slack app manifest's instructions match the manifest: as many request URLs as it says."""

from __future__ import annotations

import yaml

from tests.integration.deploy.conftest import DEPLOY

MANIFEST = DEPLOY / "slack-app-manifest.yaml"
PLACEHOLDER = "https://gpulease.example.com/slack/events"
WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def urls(node) -> list[str]:
    """Every URL field of the manifest (slash commands' `url`, settings' `request_url`)."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("url", "request_url") and isinstance(v, str)]
        return found + [u for v in node.values() for u in urls(v)]
    if isinstance(node, list):
        return [u for v in node for u in urls(v)]
    return []


def test_the_comment_counts_the_request_urls_there_are():
    text = MANIFEST.read_text()
    found = urls(yaml.safe_load(text))
    assert found and set(found) == {PLACEHOLDER}
    comment = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    count = WORDS[len(found)]
    assert f"all {count} URLs" in comment
    assert f"delete the {count} URLs" in comment
