"""Workflow steps as plain functions of (runtime, ids): what the Celery tasks run.

Each step reloads the lease, does nothing if its work is already done (so a redelivered or
repeated task is harmless), and writes state, audit and outbox messages in one transaction.
Tests call these directly, without a broker.
"""
