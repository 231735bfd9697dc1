"""Every Slack command name, callback id, block id and action id the bot uses, in one place.

Builders put these ids into views and messages; listeners match on them. Changing one here
changes both sides at once. Imported by bot modules only.
"""

from __future__ import annotations

# Slash commands (also declared in deploy/slack-app-manifest.yaml).
NAMESPACE_COMMAND = "/gpu-namespace"
ADMIN_COMMAND = "/gpu-admin"

# Modals (callback ids).
REQUEST_VIEW = "gpulease.request"
DENY_VIEW = "gpulease.deny"
NOTICE_VIEW = "gpulease.notice"  # what replaced a form that could not go on; never submitted

# Input blocks of the request modal. The names match the policy engine's FieldError fields,
# so a refusal maps onto the block it is about without a table.
NAMESPACE = "namespace"
TEAM = "team"
TIER = "tier"
UNITS = "units"
DURATION = "duration"
REASON = "reason"
REQUEST_BLOCKS = (NAMESPACE, TEAM, TIER, UNITS, DURATION, REASON)
INPUT = "value"  # action_id of the single element inside each input block

# Buttons.
APPROVE = "lease.approve"
DENY = "lease.deny"
APPROVE_EXTENSION = "extension.approve"
DENY_EXTENSION = "extension.deny"
EXTEND = "lease.extend"
RELEASE = "lease.release"
CANCEL = "lease.cancel"
ACCEPT_FALLBACK = "lease.accept_fallback"  # one button per tier: "lease.accept_fallback:<n>"
MARK_BUSY = "lease.mark_busy"
HOME_REQUEST = "home.request"

# Block ids of the action rows, so a message's buttons can be found (and replaced) together.
DECISION_BLOCK = "decision"
LEASE_ACTIONS_BLOCK = "lease_actions"
