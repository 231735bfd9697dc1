"""What listeners need besides Slack's own arguments: the policy, the directory, who acts.

Built once by bot.app and handed to each listener module's `register(app, deps)`. The
authorisation helpers here only decide what to *show* (whether to open the Deny modal);
every decision is checked again by workflows.api, which is the authority.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from config.durations import format_duration
from config.policy import Policy, Team
from leases.errors import NotAuthorised
from leases.policy import teams_of

from .directory import Directory


@dataclass(frozen=True)
class Actor:
    """A Slack user and the policy's user groups they are in."""

    user: str
    groups: frozenset[str]


@dataclass(frozen=True)
class BotDeps:
    """Shared by every listener."""

    policy: Policy
    directory: Directory
    extend_step: timedelta = timedelta(days=1)  # what one click on Extend adds

    @property
    def step_text(self) -> str:
        """Return the Extend button's step as people read it, e.g. `1d`."""
        return format_duration(self.extend_step)

    def actor(self, user: str) -> Actor:
        """Return the user with their user groups (cached Slack lookups)."""
        return Actor(user, self.directory.groups_of(user))

    def teams(self, actor: Actor) -> list[Team]:
        """Return the teams the actor may request for."""
        return teams_of(self.policy, user=actor.user, groups=actor.groups)

    def require_approver(self, actor: Actor, *, tier: str, requester: str) -> None:
        """Raise NotAuthorised unless the actor may decide a request for `tier` by `requester`."""
        approvers = self.policy.approvers_for(tier)
        if actor.user not in approvers.users and not actor.groups & set(approvers.usergroups):
            raise NotAuthorised(f"<@{actor.user}> is not an approver for tier {tier}", field="approver")
        if actor.user == requester:
            raise NotAuthorised("you cannot approve or deny your own request", field="approver")
