"""Every service logs as GPULEASE_LOG_FORMAT and GPULEASE_LOG_LEVEL say: the bot's commands
set the root handler from the settings, and the Celery worker leaves that handler in place."""

from __future__ import annotations

import logging

import pytest

from gpulease import cli_serve
from gpulease.logs import JsonFormatter
from workflows.celery_app import app, configure


@pytest.fixture
def root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_serve_and_socket_log_in_the_configured_format_and_level(monkeypatch, tmp_path, root_logging):
    monkeypatch.setenv("GPULEASE_LOG_FORMAT", "json")
    monkeypatch.setenv("GPULEASE_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("GPULEASE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    cli_serve._settings()
    [handler] = root_logging.handlers
    assert isinstance(handler.formatter, JsonFormatter)
    assert root_logging.level == logging.DEBUG


def test_the_worker_keeps_the_root_handler_it_was_given():
    configure(broker_url="memory://")
    assert app.conf.worker_hijack_root_logger is False
