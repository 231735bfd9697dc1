"""Slack front end: the Bolt app, listeners by feature, Block Kit builders and the notifier.

May import workflows.api, leases and config. Imported by gpulease only.
"""
