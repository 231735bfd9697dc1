"""Slack's request signature, computed here rather than borrowed, to keep the sandbox
independent of the library it is used to test.

    X-Slack-Signature: "v0=" + hex(HMAC-SHA256(signing_secret, f"v0:{timestamp}:{raw_body}"))

`signed_headers` gives the headers for a body, e.g. to hand a test's request straight to
`App.dispatch(BoltRequest(body=body, headers=headers))` without any network. Part of
sandbox.slack.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """Return the X-Slack-Signature value for a raw body sent at `timestamp` (epoch seconds)."""
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes | str, *, content_type: str = "application/x-www-form-urlencoded",
                   timestamp: int | None = None) -> dict[str, str]:
    """Return the headers Slack sends with a body: content type, timestamp (now by default), signature."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": sign(secret, timestamp, body),
    }
