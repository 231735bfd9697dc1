"""Celery app, queues, tasks and canvases; `workflows.api` is the enqueue facade.

May import provisioners, leases and config. The bot imports `workflows.api` only.
"""
