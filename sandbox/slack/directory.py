"""The workspace the sandbox pretends to be: team, users, user groups and channels.

Defaults match the ids used by config/examples/policy.yaml (U0ALICE, S0GPUAPPROVERS, ...),
so the embedded demo and tests need no setup. A directory can be changed from Python or
loaded from a YAML/JSON file:

    team: {id: T0SANDBOX, domain: sandbox, name: Sandbox}
    users:
      - {id: U0ALICE, name: alice, real_name: Alice Liddell, email: alice@example.com}
    usergroups:
      - {id: S0MLRESEARCH, handle: ml-research, users: [U0ALICE, U0BOB]}
    channels:
      - {id: C0APPROVALS, name: gpu-approvals}          # members: all users unless listed

Part of sandbox.slack; imports nothing of the product.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Team:
    """The single workspace every request and response belongs to."""

    id: str = "T0SANDBOX"
    domain: str = "sandbox"
    name: str = "Sandbox"


@dataclass(frozen=True)
class User:
    """A workspace member as users.info describes them."""

    id: str
    name: str
    real_name: str
    email: str
    is_admin: bool = False
    tz: str = "Europe/Berlin"

    def to_slack(self, team_id: str) -> dict[str, Any]:
        """Return the user object of users.info / users.lookupByEmail."""
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": False,
            "real_name": self.real_name,
            "tz": self.tz,
            "is_admin": self.is_admin,
            "is_owner": False,
            "is_bot": False,
            "is_app_user": False,
            "profile": {
                "real_name": self.real_name,
                "real_name_normalized": self.real_name,
                "display_name": self.name,
                "display_name_normalized": self.name,
                "email": self.email,
                "team": team_id,
            },
        }


@dataclass(frozen=True)
class UserGroup:
    """A user group (Slack calls them subteams, hence the S prefix)."""

    id: str
    handle: str
    users: tuple[str, ...]


@dataclass(frozen=True)
class Channel:
    """A public channel; `members` empty means every user of the directory."""

    id: str
    name: str
    members: tuple[str, ...] = ()


DEFAULT_USERS = (
    User("U0ALICE", "alice", "Alice Liddell", "alice@example.com"),
    User("U0BOB", "bob", "Bob Builder", "bob@example.com"),
    User("U0CAROL", "carol", "Carol Danvers", "carol@example.com"),
    User("U0APPROVER1", "approver1", "Ada Approver", "approver1@example.com"),
    User("U0APPROVER2", "approver2", "Abe Approver", "approver2@example.com"),
    User("U0ADMIN", "admin", "Grace Admin", "admin@example.com", is_admin=True),
)
DEFAULT_USERGROUPS = (
    UserGroup("S0MLRESEARCH", "ml-research", ("U0ALICE", "U0BOB")),
    UserGroup("S0GPUAPPROVERS", "gpu-approvers", ("U0APPROVER2",)),
)
DEFAULT_CHANNELS = (
    Channel("C0APPROVALS", "gpu-approvals"),
    Channel("C0GENERAL", "general"),
)


def dm_channel_id(user_id: str) -> str:
    """Return the stable id of the bot's DM with `user_id` (U0ALICE -> D0ALICE)."""
    # Deterministic rather than random so the signing client can name the DM channel of an
    # app_home_opened event without asking the server.
    return "D" + user_id[1:]


@dataclass
class Directory:
    """Users, user groups and channels, safe to change while the server runs."""

    team: Team = field(default_factory=Team)
    users: dict[str, User] = field(default_factory=lambda: {u.id: u for u in DEFAULT_USERS})
    usergroups: dict[str, UserGroup] = field(
        default_factory=lambda: {g.id: g for g in DEFAULT_USERGROUPS}
    )
    channels: dict[str, Channel] = field(default_factory=lambda: {c.id: c for c in DEFAULT_CHANNELS})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def empty(cls) -> Directory:
        """Return a directory with the default team and nobody in it."""
        return cls(users={}, usergroups={}, channels={})

    @classmethod
    def from_file(cls, path: str | Path) -> Directory:
        """Load a directory from YAML or JSON (chosen by the file extension)."""
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        return cls.from_dict(data or {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Directory:
        """Build a directory from the file format described in the module docstring."""
        directory = cls.empty()
        if "team" in data:
            directory.team = Team(**data["team"])
        for item in data.get("users", []):
            directory.add_user(**item)
        for item in data.get("usergroups", []):
            directory.add_usergroup(item["id"], item.get("handle", item["id"].lower()), item.get("users", []))
        for item in data.get("channels", []):
            directory.add_channel(item["id"], item["name"], item.get("members", ()))
        return directory

    def add_user(self, id: str, name: str, real_name: str = "", email: str = "", **extra: Any) -> User:
        """Add or replace a user; the email defaults to name@example.com."""
        user = User(id, name, real_name or name.title(), email or f"{name}@example.com", **extra)
        with self._lock:
            self.users[id] = user
        return user

    def add_usergroup(self, id: str, handle: str, users: list[str] | tuple[str, ...]) -> UserGroup:
        """Add or replace a user group with these member ids."""
        group = UserGroup(id, handle, tuple(users))
        with self._lock:
            self.usergroups[id] = group
        return group

    def add_channel(self, id: str, name: str, members: list[str] | tuple[str, ...] = ()) -> Channel:
        """Add or replace a public channel (no members listed: everyone is in it)."""
        channel = Channel(id, name, tuple(members))
        with self._lock:
            self.channels[id] = channel
        return channel

    def user(self, user_id: str) -> User | None:
        """Return the user with this id, or None."""
        with self._lock:
            return self.users.get(user_id)

    def user_by_email(self, email: str) -> User | None:
        """Return the user with this email (case-insensitive, as Slack matches), or None."""
        wanted = email.strip().lower()
        with self._lock:
            return next((u for u in self.users.values() if u.email.lower() == wanted), None)

    def usergroup(self, group_id: str) -> UserGroup | None:
        """Return the user group with this id, or None."""
        with self._lock:
            return self.usergroups.get(group_id)

    def channel(self, ref: str) -> Channel | None:
        """Return a public channel by id, name or #name, or None."""
        name = ref.removeprefix("#")
        with self._lock:
            if ref in self.channels:
                return self.channels[ref]
            return next((c for c in self.channels.values() if c.name == name), None)

    def is_member(self, channel: Channel, user_id: str) -> bool:
        """Say whether the user is in the public channel."""
        with self._lock:
            return user_id in channel.members if channel.members else user_id in self.users

    def to_dict(self) -> dict[str, Any]:
        """Return the directory in its file format (also served at /_sandbox/directory)."""
        with self._lock:
            return {
                "team": vars(self.team),
                "users": [vars(u) for u in self.users.values()],
                "usergroups": [
                    {"id": g.id, "handle": g.handle, "users": list(g.users)} for g in self.usergroups.values()
                ],
                "channels": [
                    {"id": c.id, "name": c.name, "members": list(c.members)} for c in self.channels.values()
                ],
            }
