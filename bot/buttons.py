"""What a button carries (its `value`), as a typed model: which lease, and what the message
knew when it was posted.

`extensions` is the lease's extension count when the message was rendered: a click on an
Extend (or approve-extension) button whose count no longer matches was answered already,
so a second click changes nothing. `request` names the extension request an approval card
answers (its audit event), so a decision on one request never answers another. Values come back from Slack and may be forged by a
forwarded payload: they only name things, and every action is authorised again by
workflows.api.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from leases.errors import DomainError


@dataclass(frozen=True)
class LeaseButton:
    lease_id: str
    extensions: int | None = None
    by_seconds: int | None = None
    tier: str | None = None
    request: int | None = None

    def encode(self) -> str:
        """Return the compact JSON put into the button's value (well under 2,000 chars)."""
        data = {"l": self.lease_id, "x": self.extensions, "b": self.by_seconds, "t": self.tier, "r": self.request}
        return json.dumps({k: v for k, v in data.items() if v is not None}, separators=(",", ":"))

    @property
    def by(self) -> timedelta | None:
        return timedelta(seconds=self.by_seconds) if self.by_seconds is not None else None


def decode(value: str | None) -> LeaseButton:
    """Parse a button value; DomainError when it is not one of ours."""
    try:
        data = json.loads(value or "")
        return LeaseButton(
            lease_id=str(data["l"]),
            extensions=_int(data.get("x")),
            by_seconds=_int(data.get("b")),
            tier=str(data["t"]) if data.get("t") is not None else None,
            request=_int(data.get("r")),
        )
    except (ValueError, KeyError, TypeError):
        raise DomainError("this button is out of date; use /gpu-namespace list") from None


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
