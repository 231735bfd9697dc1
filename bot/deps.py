"""What listeners need besides Slack's own arguments: the policy, the directory, who acts.

Built once by bot.app and handed to each listener module's `register(app, deps)`. The
authorisation helpers here only decide what to *show* (whether to open the Deny modal);
every decision is checked again by workflows.api, which is the authority. When Slack did not
say who is in a user group a refusal would rest on, they say so (DirectoryUnavailable)
rather than refuse as if the user were not in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from slack_sdk import WebClient

from config.durations import format_duration
from config.policy import Policy, Team
from leases.errors import DomainError, NotAuthorised
from leases.policy import teams_of

from .directory import Directory, DirectoryUnavailable


@dataclass(frozen=True)
class Actor:
    """A Slack user, the policy's user groups they are in, and those Slack could not tell about."""

    user: str
    groups: frozenset[str]
    unknown: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BotDeps:
    """Shared by every listener."""

    policy: Policy
    directory: Directory
    quick_client: WebClient  # for calls made before an ack (bot.client.make_quick_client)
    extend_step: timedelta = timedelta(days=1)  # what one click on Extend adds

    @property
    def step_text(self) -> str:
        """Return the Extend button's step as people read it, e.g. `1d`."""
        return format_duration(self.extend_step)

    def actor(self, user: str, *, wait: bool = True) -> Actor:
        """Return the user with their user groups (cached Slack lookups); with `wait=False`
        (before an ack) Slack is asked only for groups never read, within a short bound."""
        membership = self.directory.membership(user, wait=wait)
        return Actor(user, membership.groups, membership.unknown)

    def require_readable(self, actor: Actor, *, groups: Iterable[str], purpose: str,
                         field: str | None = None) -> None:
        """Raise DirectoryUnavailable if Slack did not say who is in any of `groups`."""
        unknown = actor.unknown & set(groups)
        if unknown:
            raise DirectoryUnavailable(unknown, purpose=purpose, field=field)

    def teams(self, actor: Actor) -> list[Team]:
        """Return the teams the actor may request for; refuse when there are none."""
        teams = teams_of(self.policy, user=actor.user, groups=actor.groups)
        if not teams:
            self.require_readable(actor, groups={t.slack_usergroup for t in self.policy.teams if t.slack_usergroup},
                                  purpose="which teams you are in", field="team")
            raise DomainError("you are not in any team of the GPU policy; ask a platform admin to add you",
                              field="team")
        return teams

    def request_team(self, actor: Actor, *, chosen: str) -> str:
        """Return the team a request counts against: the one chosen, else the actor's only team."""
        team = next((t for t in self.policy.teams if t.name == chosen), None)
        if team is None and not chosen:
            # Submitted before the form showed the teams (it is filled in after it opens).
            teams = self.teams(actor)
            if len(teams) > 1:
                raise DomainError("you are in several teams: choose the one this counts against, then "
                                  "press Request again", field="team")
            return teams[0].name
        if team is not None and actor.user not in team.members and team.slack_usergroup:
            self.require_readable(actor, groups={team.slack_usergroup}, purpose=f"whether you are in team {chosen}",
                                  field="team")
        return chosen  # a name the policy does not know is refused by its check, on the team field

    def require_approver(self, actor: Actor, *, tier: str, requester: str) -> None:
        """Raise NotAuthorised unless the actor may decide a request for `tier` by `requester`."""
        approvers = self.policy.approvers_for(tier)
        if actor.user not in approvers.users and not actor.groups & set(approvers.usergroups):
            self.require_readable(actor, groups=approvers.usergroups,
                                  purpose=f"whether you may decide requests for tier {tier}", field="approver")
            raise NotAuthorised(f"<@{actor.user}> is not an approver for tier {tier}", field="approver")
        if actor.user == requester:
            raise NotAuthorised("you cannot approve or deny your own request", field="approver")
