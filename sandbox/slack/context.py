"""What a Web API method handler gets: the parsed arguments and the sandbox's state.

Part of sandbox.slack; used by the methods_* modules and the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .directory import Directory
from .errors import ApiError, missing
from .state import Bot, Conversations
from .surfaces import Surfaces
from .webhooks import ResponseUrls


@dataclass(frozen=True)
class World:
    """Everything the methods read and change."""

    directory: Directory
    conversations: Conversations
    surfaces: Surfaces
    response_urls: ResponseUrls
    clock: Clock
    public_url: str


@dataclass(frozen=True)
class Request:
    """One call: arguments from the query string and the form or JSON body, and the caller's bot."""

    args: dict[str, Any]
    bot: Bot
    world: World

    def get(self, name: str, default: Any = None) -> Any:
        """Return an argument, or default when absent."""
        return self.args.get(name, default)

    def require(self, name: str, error: str | None = None) -> Any:
        """Return a non-empty argument, or refuse (with `error` when given, else invalid_arguments)."""
        value = self.args.get(name)
        if value is None or value == "":
            raise ApiError(error) if error else missing(name)
        return value

    def flag(self, name: str) -> bool:
        """Return a boolean argument: JSON true, or "1"/"true" in a form body."""
        value = self.args.get(name)
        return value is True or str(value).lower() in ("1", "true")
