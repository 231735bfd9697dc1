"""How a Slack Web API method refuses a call: `{"ok": false, "error": ...}`.

Slack answers almost every refusal with HTTP 200 and an error name; schema problems add
`response_metadata.messages` such as "[ERROR] must be less than 25 characters
[json-pointer:/view/title/text]". Part of sandbox.slack.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A method refused the call with `error`, optionally explaining why in `messages`."""

    def __init__(self, error: str, *messages: str, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.messages = list(messages)
        self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """Return the JSON body Slack sends for this refusal."""
        body: dict[str, Any] = {"ok": False, "error": self.error, **self.extra}
        if self.messages:
            body["response_metadata"] = {"messages": self.messages}
        return body


def missing(name: str) -> ApiError:
    """Return the refusal for a missing required argument."""
    return ApiError("invalid_arguments", f"[ERROR] missing required field: {name}")
