"""Alembic migrations of the state store; run them with `leases.store.upgrade`."""
