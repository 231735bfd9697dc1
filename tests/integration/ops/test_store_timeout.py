"""A PostgreSQL server that accepts connections and never answers (a hung database, a
blackholed route) costs a bounded wait, not a thread held for minutes: engines connect with
a timeout, so /healthz, doctor and the metrics scrape fail quickly and say why."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError

from gpulease.store_access import StoreUnusable, require_current, store_errors
from leases import store


@pytest.fixture
def hung_postgres() -> Iterator[str]:
    """A port whose listener completes TCP handshakes and then says nothing, ever."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"postgresql+psycopg://gpulease:s3cret@127.0.0.1:{listener.getsockname()[1]}/gpulease"


def within(seconds: float, fn) -> BaseException | None:
    """Run fn on a thread; return what it raised, failing if it is still running after `seconds`."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
            raised.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still waiting for the database after {seconds} s"
    return raised[0]


def test_an_engine_gives_up_on_a_database_that_never_answers(hung_postgres, monkeypatch):
    monkeypatch.setattr(store, "POSTGRES_CONNECT_TIMEOUT_S", 1)
    engine = store.make_engine(hung_postgres)
    started = time.monotonic()
    try:
        raised = within(15, lambda: engine.connect().close())
    finally:
        engine.dispose()
    assert isinstance(raised, OperationalError) and "timeout" in str(raised)
    assert time.monotonic() - started < 15


def test_the_url_own_connect_timeout_wins(hung_postgres, monkeypatch):
    monkeypatch.setattr(store, "POSTGRES_CONNECT_TIMEOUT_S", 600)
    engine = store.make_engine(f"{hung_postgres}?connect_timeout=1")
    try:
        raised = within(15, lambda: engine.connect().close())
    finally:
        engine.dispose()
    assert isinstance(raised, OperationalError)


def test_the_store_check_says_what_failed_without_the_password(hung_postgres, monkeypatch):
    monkeypatch.setattr(store, "POSTGRES_CONNECT_TIMEOUT_S", 1)

    def check() -> None:
        with store_errors(url=hung_postgres, doing="read the schema revision of {store}"):
            require_current(hung_postgres)

    raised = within(15, check)
    assert isinstance(raised, StoreUnusable)
    assert "timeout" in raised.problem and "s3cret" not in str(raised)
    assert "GPULEASE_DATABASE_URL" in raised.fix
