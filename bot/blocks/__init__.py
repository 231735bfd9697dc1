"""Block Kit builders: plain functions from typed inputs to message and view payloads.

Listeners and the notifier render through these; no handler builds Block Kit by hand.
"""
