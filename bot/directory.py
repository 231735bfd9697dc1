"""Who is in which Slack user group, and users' emails: cached reads of the Slack directory.

Authorisation (approvers, admins) and team membership name Slack user groups in the policy;
Slack only tells members per group (usergroups.users.list, a Tier 2 method), so members of
each group the policy names are cached for a few minutes. Emails (users.info, needs the
users:read.email scope) become the requester's Kubernetes identity. When Slack cannot be
asked, the last known answer is used and a warning logged; a group never read counts as
empty, which can only refuse, never grant. Imported by bot modules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from config.policy import Policy

logger = logging.getLogger(__name__)

GROUP_TTL_S = 300.0
EMAIL_TTL_S = 3600.0


def policy_groups(policy: Policy) -> frozenset[str]:
    """Return every Slack user group the policy refers to (approvers, admins, teams)."""
    groups = set(policy.approvals.approvers.usergroups) | set(policy.admins.usergroups)
    for tier in policy.tiers:
        if tier.approvers:
            groups |= set(tier.approvers.usergroups)
    groups |= {team.slack_usergroup for team in policy.teams if team.slack_usergroup}
    return frozenset(groups)


class _Cache:
    """Values with an expiry; an expired value is still handed out when a refresh fails."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl, self._clock = ttl, clock
        self._values: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, load: Callable[[], object], *, default: object) -> object:
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            return hit[1]
        try:
            value = load()
        except (SlackApiError, SlackClientError) as exc:
            logger.warning("directory.lookup_failed key=%s error=%s (using %s)", key, exc,
                           "the last known value" if hit else "nothing",
                           extra={"event": "directory.lookup_failed", "key": key})
            return hit[1] if hit else default
        with self._lock:
            self._values[key] = (self._clock(), value)
        return value


class Directory:
    """Cached user-group membership and emails, read through the bot's WebClient."""

    def __init__(self, client: WebClient, groups: Iterable[str], *, clock: Callable[[], float] = time.monotonic,
                 group_ttl: float = GROUP_TTL_S, email_ttl: float = EMAIL_TTL_S) -> None:
        self._client = client
        self._groups = frozenset(groups)
        self._members = _Cache(group_ttl, clock)
        self._emails = _Cache(email_ttl, clock)

    def members(self, group: str) -> frozenset[str]:
        """Return the user ids in a Slack user group."""
        def load() -> frozenset[str]:
            return frozenset(self._client.usergroups_users_list(usergroup=group).get("users") or ())

        return self._members.get(group, load, default=frozenset())  # type: ignore[return-value]

    def groups_of(self, user: str) -> frozenset[str]:
        """Return the policy's user groups `user` belongs to."""
        return frozenset(g for g in self._groups if user in self.members(g))

    def email_of(self, user: str) -> str | None:
        """Return a user's email (None when Slack does not say, e.g. without users:read.email)."""
        def load() -> str | None:
            profile = (self._client.users_info(user=user).get("user") or {}).get("profile") or {}
            return profile.get("email") or None

        return self._emails.get(user, load, default=None)  # type: ignore[return-value]
