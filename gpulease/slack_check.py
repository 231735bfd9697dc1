"""Check the Slack bot token with auth.test before anything is built on it.

Bolt's App runs auth.test when it is built, so a wrong token or API URL would otherwise end in
a traceback inside each gunicorn worker (or the Socket Mode process). `gpulease doctor` and the
services' pre-flight both call this, so they say the same thing. Only gpulease/ modules import it.
"""

from __future__ import annotations

import re
from typing import Any

from config.settings import Settings, SettingsError

# Slack's error codes are identifiers (invalid_auth, token_revoked); anything else came from
# something that is not Slack's Web API (an HTML page, a proxy).
_SLACK_ERROR = re.compile(r"[a-z][a-z0-9_]*")


class SlackUnusable(SettingsError):
    """Slack refused the bot token or could not be reached; `problem` and `fix` say which."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix


def check_slack_token(settings: Settings, *, timeout: int = 5) -> dict[str, Any]:
    """Run auth.test with GPULEASE_SLACK_BOT_TOKEN and return its answer (SlackUnusable if it fails)."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    if settings.slack_bot_token is None:
        raise SlackUnusable("GPULEASE_SLACK_BOT_TOKEN is not set", "set it to the Slack app's bot token (xoxb-...)")
    url = settings.slack_api_url
    client = WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=url, timeout=timeout)
    try:
        answer = client.auth_test()
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "")
        if _SLACK_ERROR.fullmatch(error):
            raise SlackUnusable(
                f"auth.test refused: {error} (GPULEASE_SLACK_BOT_TOKEN)",
                "install the app from deploy/slack-app-manifest.yaml and use its bot token (xoxb-...)",
            ) from None
        raise SlackUnusable(
            f"the Slack Web API at {url} (GPULEASE_SLACK_API_URL) gave no Slack answer to auth.test "
            f"(HTTP {exc.response.status_code})",
            "check GPULEASE_SLACK_API_URL (default https://slack.com/api/)",
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure to reach Slack is the finding
        raise SlackUnusable(
            f"cannot reach Slack at {url} (GPULEASE_SLACK_API_URL): {exc}",
            "check the network or GPULEASE_SLACK_API_URL",
        ) from None
    return answer.data if isinstance(answer.data, dict) else {}
