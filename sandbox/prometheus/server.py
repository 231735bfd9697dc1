"""The HTTP side of the Prometheus stand-in: `/api/v1/query`, plus `/_sandbox/series`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .promql import QueryError, Series, evaluate


class PrometheusSandbox:
    """Holds series and answers instant queries over HTTP on 127.0.0.1."""

    def __init__(self, *, port: int = 0) -> None:
        self._series: Series = {}
        self._lock = threading.Lock()
        self.queries: list[str] = []
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _params(self) -> dict[str, str]:
                parts = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                if self.command == "POST":
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length).decode()
                    if "json" in (self.headers.get("Content-Type") or ""):
                        params.update(json.loads(body or "{}"))
                    else:
                        params.update({k: v[-1] for k, v in parse_qs(body).items()})
                return params

            def _reply(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._route()

            def do_POST(self) -> None:
                self._route()

            def _route(self) -> None:
                path = urlsplit(self.path).path
                params = self._params()
                if path == "/api/v1/query":
                    self._reply(*sandbox._query(params))
                elif path == "/_sandbox/series" and self.command == "POST":
                    for item in params.get("series", []):
                        sandbox.add_samples(item["labels"], [tuple(p) for p in item["points"]])
                    self._reply(200, {"status": "success"})
                elif path == "/-/ready":
                    self._reply(200, {"status": "success"})
                else:
                    self._reply(404, {"status": "error", "errorType": "not_found", "error": path})

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> PrometheusSandbox:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> PrometheusSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_samples(self, labels: Mapping[str, str], points: list[tuple[float, float]]) -> None:
        """Add (timestamp, value) points to the series with these labels (`__name__` included)."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._series.setdefault(key, [])
            series.extend(points)
            series.sort()

    def clear(self) -> None:
        """Forget every series."""
        with self._lock:
            self._series.clear()

    def _query(self, params: dict[str, str]) -> tuple[int, dict]:
        query = params.get("query")
        if not query:
            return 400, {"status": "error", "errorType": "bad_data", "error": "query parameter is missing"}
        self.queries.append(query)
        at = float(params.get("time") or time.time())
        try:
            with self._lock:
                samples = evaluate(query, dict(self._series), at)
        except QueryError as exc:
            return 400, {"status": "error", "errorType": "bad_data", "error": str(exc)}
        result = [{"metric": dict(s.labels), "value": [at, repr(float(s.value))]} for s in samples]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}
