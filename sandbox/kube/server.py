"""The API server's front door: routes a request to discovery, OpenAPI, the admin
endpoints or a resource, records it in the request log, applies injected faults, and turns
errors into `kind: Status` responses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import discovery, openapi
from .errors import ApiError, status_body
from .faults import Faults
from .incoming import Target
from .requestlog import RequestLog
from .resources import RESOURCE_TYPES, lookup
from .rest import Api
from .transport import DropConnection, Request, Response, Result

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_sandbox"
NOT_FOUND = "the server could not find the requested resource"


def _not_found() -> ApiError:
    return ApiError(404, NOT_FOUND, details={})


def route(path: str) -> Target | None:
    """Parse a resource URL; None when it names no served resource."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 3:
        return None
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if rest and rest[0] == "watch":  # legacy /watch/ paths
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = lookup(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    rt = lookup(group, version, rest[0])
    if rt is None:
        return None
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in rt.subresources:
        return None
    if rt.namespaced and name and not namespace:
        return None
    return Target(rt, version, namespace, name, sub)


class ApiServer:
    """Callable by the HTTP layer: request -> (result, completion callback)."""

    def __init__(
        self, api: Api, *, faults: Faults, requests: RequestLog, admin: Callable[[Request], Response]
    ):
        self.api = api
        self.faults = faults
        self.requests = requests
        self.admin = admin
        self.address = "127.0.0.1:0"

    def __call__(self, req: Request) -> tuple[Result, Callable[[int], None]]:
        if req.path == ADMIN_PREFIX or req.path.startswith(ADMIN_PREFIX + "/"):
            return self._safely(lambda: self.admin(req)), lambda status: None
        entry = self.requests.record(req)

        def done(status: int) -> None:
            self.requests.finish(entry, status)

        fault = self.faults.match(req, entry)
        if fault is not None:
            outcome = fault.apply(req, target=route(req.path))
            if outcome is not None:
                return outcome, done
        return self._safely(lambda: self.dispatch(req)), done

    def _safely(self, fn: Callable[[], Result]) -> Result:
        try:
            return fn()
        except ApiError as exc:
            return Response(exc.code, exc.status(), exc.headers)
        except Exception as exc:  # report like the real server instead of dropping the connection
            log.exception("kube.sandbox.request.failed")
            return Response(500, status_body(500, f"Internal error occurred: {exc}", reason="InternalError"))

    def dispatch(self, req: Request) -> Result:
        path = req.path.rstrip("/") or "/"
        static = self._static(path, req)
        if static is not None:
            return static
        target = route(path)
        if target is None:
            raise _not_found()
        return self.api.handle(req, target)

    def _static(self, path: str, req: Request) -> Result | None:
        if req.method not in ("GET", "HEAD"):
            return None
        body: Any = None
        parts = path.strip("/").split("/")
        if path == "/version":
            body = discovery.VERSION
        elif path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", content_type="text/plain")
        elif path == "/api":
            body = discovery.api_versions(self.address)
        elif path == "/apis":
            body = discovery.api_group_list()
        elif parts[0] == "api" and len(parts) == 2:
            body = discovery.resource_list("", parts[1])
            if body is None:
                raise _not_found()
        elif parts[0] == "apis" and len(parts) == 2:
            body = discovery.api_group(parts[1])
            if body is None:
                raise _not_found()
        elif parts[0] == "apis" and len(parts) == 3:
            body = discovery.resource_list(parts[1], parts[2])
            if body is None:
                raise _not_found()
        elif path == "/openapi/v3":
            body = openapi.v3_root()
        elif path.startswith("/openapi/v3/"):
            rest = parts[2:]
            if rest[:1] == ["api"] and len(rest) == 2:
                body = openapi.group_version_document("", rest[1])
            elif rest[:1] == ["apis"] and len(rest) == 3:
                body = openapi.group_version_document(rest[1], rest[2])
            if body is None:
                raise _not_found()
        elif path == "/openapi/v2":
            accept = req.headers.get("accept", "")
            if accept and "json" not in accept and "*/*" not in accept:
                raise ApiError(406, "only application/json is served for /openapi/v2", reason="NotAcceptable")
            body = openapi.v2_document()
        return Response(200, body) if body is not None else None


def resource_names() -> list[str]:
    """Return every served plural (for the admin summary)."""
    return sorted({rt.plural for rt in RESOURCE_TYPES})


__all__ = ["ApiServer", "DropConnection", "route"]
