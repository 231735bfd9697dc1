"""Who is in which Slack user group, and users' emails: cached reads of the Slack directory.

Authorisation (approvers, admins) and team membership name Slack user groups in the policy;
Slack only tells members per group (usergroups.users.list, a Tier 2 method), so members of
each group the policy names are cached for a few minutes. Emails (users.info, needs the
users:read.email scope) become the requester's Kubernetes identity.

Two kinds of reader:
- work after an ack (`wait=True`) may wait for Slack: an expired answer is read again through
  the bot's client, which honours 429 Retry-After;
- a check before an ack (`wait=False`, e.g. a view_submission) has Slack's 3 s: it is served
  the last answer even when expired and Slack is asked again in the background; only a group
  never read (or read too long ago) is looked up then, all at once, through a quick client
  (no 429 sleep, short timeout), for at most LOOKUP_BUDGET_S.

When Slack cannot be asked, the last answer stands in for at most STALE_LIMIT_S; after that,
or for a group never read, the group is *unknown*: it grants nothing, and callers that would
refuse because of it say that Slack did not answer (DirectoryUnavailable) instead of
refusing as if the user were not in it. A group Slack says does not exist has no members.
Imported by bot modules.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from config.policy import Policy
from leases.errors import DomainError

logger = logging.getLogger(__name__)

GROUP_TTL_S = 300.0
STALE_LIMIT_S = 3600.0  # how long a group's last answer may stand in while Slack cannot be asked
EMAIL_TTL_S = 3600.0
LOOKUP_BUDGET_S = 1.0  # longest a check before an ack waits for groups it never read
LOOKUP_THREADS = 4
# usergroups.users.list's answer for a group that does not exist (any more): a fact, not a failure.
NO_SUCH_GROUP = frozenset({"no_such_subteam", "subteam_not_found"})


def policy_groups(policy: Policy) -> frozenset[str]:
    """Return every Slack user group the policy refers to (approvers, admins, teams)."""
    groups = set(policy.approvals.approvers.usergroups) | set(policy.admins.usergroups)
    for tier in policy.tiers:
        if tier.approvers:
            groups |= set(tier.approvers.usergroups)
    groups |= {team.slack_usergroup for team in policy.teams if team.slack_usergroup}
    return frozenset(groups)


class DirectoryUnavailable(DomainError):
    """Slack did not say who is in some user groups, and what the user may do depends on them."""

    def __init__(self, groups: Iterable[str], *, purpose: str, field: str | None = None) -> None:
        self.groups = frozenset(groups)
        names = ", ".join(sorted(self.groups))
        super().__init__(
            f"Slack did not tell me who is in the user group {names}, so I cannot check {purpose}; "
            "nothing changed. Try again in a few minutes, and tell the platform team if it keeps happening.",
            field=field,
        )


@dataclass(frozen=True)
class Membership:
    """The policy's user groups a user is in, and those Slack could not tell about."""

    groups: frozenset[str]
    unknown: frozenset[str] = frozenset()


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
        except (SlackClientError, OSError) as exc:
            logger.warning("directory.lookup_failed key=%s error=%s (using %s)", key, exc,
                           "the last known value" if hit else "nothing",
                           extra={"event": "directory.lookup_failed", "key": key})
            return hit[1] if hit else default
        with self._lock:
            self._values[key] = (self._clock(), value)
        return value


class Directory:
    """Cached user-group membership and emails, read through the bot's WebClient."""

    def __init__(self, client: WebClient, groups: Iterable[str], *, lookup_client: WebClient | None = None,
                 clock: Callable[[], float] = time.monotonic, group_ttl: float = GROUP_TTL_S,
                 stale_limit: float = STALE_LIMIT_S, email_ttl: float = EMAIL_TTL_S,
                 lookup_budget: float = LOOKUP_BUDGET_S) -> None:
        self._client = client
        self._lookup = lookup_client if lookup_client is not None else client
        self._groups = frozenset(groups)
        self._clock = clock
        self._ttl, self._stale_limit, self._budget = group_ttl, stale_limit, lookup_budget
        self._read: dict[str, tuple[float, frozenset[str]]] = {}
        self._refreshing: set[str] = set()
        self._reading: dict[str, concurrent.futures.Future] = {}  # one read per group at a time
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="directory")
        # Background refreshes have threads of their own: waiting on Slack there never holds
        # up a lookup someone is waiting for.
        self._background = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="directory-refresh")
        self._emails = _Cache(email_ttl, clock)

    def members(self, group: str, *, wait: bool = True) -> frozenset[str] | None:
        """Return the user ids in a Slack user group; None when Slack could not tell."""
        return self._members([group], wait=wait)[group]

    def membership(self, user: str, *, wait: bool = True) -> Membership:
        """Return the policy's user groups `user` is in, and those Slack could not tell about."""
        members = self._members(self._groups, wait=wait)
        return Membership(
            groups=frozenset(g for g, ids in members.items() if ids is not None and user in ids),
            unknown=frozenset(g for g, ids in members.items() if ids is None),
        )

    def groups_of(self, user: str, *, wait: bool = True) -> frozenset[str]:
        """Return the policy's user groups `user` is known to be in."""
        return self.membership(user, wait=wait).groups

    def email_of(self, user: str) -> str | None:
        """Return a user's email (None when Slack does not say, e.g. without users:read.email)."""
        def load() -> str | None:
            profile = (self._client.users_info(user=user).get("user") or {}).get("profile") or {}
            return profile.get("email") or None

        return self._emails.get(user, load, default=None)  # type: ignore[return-value]

    def _members(self, groups: Iterable[str], *, wait: bool) -> dict[str, frozenset[str] | None]:
        found: dict[str, frozenset[str] | None] = {}
        to_read: list[str] = []
        now = self._clock()
        with self._lock:
            for group in groups:
                hit = self._read.get(group)
                age = now - hit[0] if hit else None
                if hit and age is not None and age < self._ttl:
                    found[group] = hit[1]
                elif hit and age is not None and age < self._stale_limit and not wait:
                    found[group] = hit[1]
                    self._refresh_later(group)
                else:
                    to_read.append(group)
        if not to_read:
            return found
        client = self._client if wait else self._lookup
        # One lookup per group, side by side: a cold cache costs one round trip, not one per group.
        futures = {group: self._read_shared(group, client) for group in to_read}
        concurrent.futures.wait(futures.values(), timeout=None if wait else self._budget)
        for group, future in futures.items():
            # A lookup still running past the budget finishes in the background and fills the cache.
            found[group] = future.result() if future.done() else None
        return found

    def _read_shared(self, group: str, client: WebClient) -> concurrent.futures.Future:
        """Start reading a group, or join the read of it already under way: N clicks on a cold
        cache make one call to Slack, not N."""
        with self._lock:
            future = self._reading.get(group)
            if future is not None:
                return future
            hit = self._read.get(group)
            if hit and self._clock() - hit[0] < self._ttl:
                # A read that ended after the caller found the cache cold already answered.
                future = concurrent.futures.Future()
                future.set_result(hit[1])
                return future
            future = self._pool.submit(self._read_once, group, client)
            self._reading[group] = future
            return future

    def _read_once(self, group: str, client: WebClient) -> frozenset[str] | None:
        try:
            return self._read_group(group, client)
        finally:
            with self._lock:
                self._reading.pop(group, None)

    def _refresh_later(self, group: str) -> None:
        """Ask Slack for the group again in the background (caller holds the lock)."""
        if group in self._refreshing:
            return
        self._refreshing.add(group)

        def refresh() -> None:
            try:
                # The quick client: a 429 is not slept through here, the stale answer serves
                # meanwhile and the next use asks again.
                self._read_group(group, self._lookup)
            finally:
                with self._lock:
                    self._refreshing.discard(group)

        self._background.submit(refresh)

    def _read_group(self, group: str, client: WebClient) -> frozenset[str] | None:
        """Ask Slack for a group's members and remember the answer; on failure return the last
        answer if it is recent enough, else None."""
        try:
            members = frozenset(client.usergroups_users_list(usergroup=group).get("users") or ())
        except SlackApiError as exc:
            if exc.response.get("error") not in NO_SUCH_GROUP:
                return self._failed(group, exc)
            logger.warning("directory.no_such_group group=%s: the policy names a user group Slack does not know",
                           group, extra={"event": "directory.no_such_group", "group": group})
            members = frozenset()
        except (SlackClientError, OSError) as exc:  # OSError: timeouts and refused connections
            return self._failed(group, exc)
        with self._lock:
            self._read[group] = (self._clock(), members)
        return members

    def _failed(self, group: str, error: BaseException) -> frozenset[str] | None:
        with self._lock:
            hit = self._read.get(group)
        age = self._clock() - hit[0] if hit else None
        usable = hit is not None and age is not None and age < self._stale_limit
        logger.warning("directory.lookup_failed group=%s error=%s (using %s)", group, error,
                       f"the answer from {age:.0f}s ago" if usable else "nothing: the group counts as unknown",
                       extra={"event": "directory.lookup_failed", "group": group})
        return hit[1] if usable and hit else None
