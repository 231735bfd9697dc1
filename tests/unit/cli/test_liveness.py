"""`gpulease serve`'s liveness route: /livez answers without touching the store, which /healthz
and /metrics both query, so a hung database does not get every bot replica restarted."""

from __future__ import annotations

import contextlib
import json
import threading
from types import SimpleNamespace
from wsgiref.util import setup_testing_defaults

from slack_bolt import App

from gpulease.cli_serve import LIVENESS_PATH, Bot, http_app


def call(application, path: str) -> tuple[str, bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    seen: list[str] = []
    body = b"".join(application(environ, lambda status, headers, exc_info=None: seen.append(status)))
    return seen[0], body


class HungEngine:
    """A store that never answers: every connection attempt waits until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.asked = threading.Event()

    def raw_connection(self):
        self.asked.set()
        self.release.wait(30)
        raise ConnectionError("the database never answered")


def hung_bot() -> tuple[Bot, HungEngine]:
    engine = HungEngine()
    app = App(token="xoxb-unit", signing_secret="secret", token_verification_enabled=False)
    return Bot(app, SimpleNamespace(engine=engine), contextlib.ExitStack()), engine


def test_livez_answers_while_the_store_hangs():
    bot, engine = hung_bot()
    application = http_app(bot)
    answered: list[tuple[str, bytes]] = []
    probe = threading.Thread(target=lambda: answered.append(call(application, LIVENESS_PATH)), daemon=True)
    probe.start()
    probe.join(5)
    engine.release.set()
    assert answered, "/livez waited on something"
    status, body = answered[0]
    assert status == "200 OK" and json.loads(body) == {"status": "ok"}
    assert not engine.asked.is_set(), "/livez asked the store"


def test_the_other_routes_are_the_bot_app():
    bot, engine = hung_bot()
    engine.release.set()
    application = http_app(bot)
    status, body = call(application, "/healthz")
    assert status.startswith("503") and "never answered" in json.loads(body)["checks"]["store"]
    assert engine.asked.is_set()
    assert call(application, "/metrics")[0] == "200 OK"
    assert call(application, "/livez/more")[0].startswith("404")
