"""Slack's request signature, computed here rather than borrowed, to keep the sandbox
independent of the library it is used to test.

    X-Slack-Signature: "v0=" + hex(HMAC-SHA256(signing_secret, f"v0:{timestamp}:{raw_body}"))

Part of sandbox.slack.
"""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """Return the X-Slack-Signature value for a raw body sent at `timestamp` (epoch seconds)."""
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
