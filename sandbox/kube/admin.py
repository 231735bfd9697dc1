"""Admin endpoints under /_sandbox (a prefix no Kubernetes path uses), for tests and
tools that drive the stand-in over HTTP. Each maps onto a `KubeSandbox` method:

    GET    /_sandbox/healthz
    POST   /_sandbox/reset                       faults, request log and deny rules cleared
    GET    /_sandbox/faults                      list rules (with matched/fired counters)
    POST   /_sandbox/faults                      add a rule: {"kind": "status", "status": 503, ...}
    DELETE /_sandbox/faults[/ID]                 remove one or all rules
    GET    /_sandbox/requests?method=&path=&pathPrefix=
    DELETE /_sandbox/requests
    GET    /_sandbox/access                      deny rules
    POST   /_sandbox/access                      {"verb": "delete", "resource": "namespaces", ...}
    DELETE /_sandbox/access
    POST   /_sandbox/compact                     forget watch history (410 for older versions)
    GET    /_sandbox/operator                    {"delay": seconds}
    PUT    /_sandbox/operator                    {"delay": seconds}
    GET    /_sandbox/quota                       the quota controller: {"delay": seconds, "stopped": false}
    PUT    /_sandbox/quota                       {"delay": seconds} and/or {"stopped": true}
    POST   /_sandbox/nodes                       add a node: one node entry of the cluster file
    PUT    /_sandbox/nodes/NAME/faulty           {"faulty": true}
    PUT    /_sandbox/nodes/NAME/hang             {"hang": true}
    GET    /_sandbox/nodes/NAME/reconfigure-error  why the last reconfiguration failed
    PUT    /_sandbox/pods/NAMESPACE/NAME/phase   {"phase": "Succeeded"}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ApiError
from .transport import Request, Response

if TYPE_CHECKING:
    from .control import KubeSandbox


def make_admin(kube: KubeSandbox) -> Callable[[Request], Response]:
    """Return the handler of /_sandbox requests for this sandbox."""

    def body(req: Request) -> dict[str, Any]:
        try:
            data = json.loads(req.body or b"{}")
        except ValueError as exc:
            raise ApiError(400, f"invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "expected a JSON object")
        return data

    def handle(req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p][1:]
        method = req.method
        head = parts[0] if parts else ""
        if head == "healthz":
            return Response(200, {"ok": True})
        if head == "reset" and method == "POST":
            kube.reset()
            return Response(200, {"ok": True})
        if head == "faults":
            if method == "GET":
                return Response(200, {"items": [r.to_json() for r in kube.faults.rules()]})
            if method == "POST":
                try:
                    data = body(req)
                    rule = kube.add_fault(**data)
                except (TypeError, ValueError) as exc:
                    raise ApiError(400, f"invalid fault rule: {exc}") from exc
                return Response(201, rule.to_json())
            if method == "DELETE":
                if len(parts) > 1:
                    if not kube.remove_fault(parts[1]):
                        raise ApiError(404, f"no fault rule {parts[1]}")
                else:
                    kube.clear_faults()
                return Response(200, {"ok": True})
        if head == "requests":
            if method == "GET":
                items = kube.requests(
                    req.param("method"), req.param("path"), path_prefix=req.param("pathPrefix")
                )
                return Response(200, {"items": [e.to_json() for e in items]})
            if method == "DELETE":
                kube.clear_requests()
                return Response(200, {"ok": True})
        if head == "access":
            if method == "GET":
                return Response(200, {"items": kube.access.rules()})
            if method == "POST":
                data = body(req)
                try:
                    kube.deny(data.pop("verb"), data.pop("resource"), **data)
                except (KeyError, TypeError) as exc:
                    raise ApiError(400, f"invalid deny rule: {exc}") from exc
                return Response(201, {"ok": True})
            if method == "DELETE":
                kube.clear_denials()
                return Response(200, {"ok": True})
        if head == "compact" and method == "POST":
            return Response(200, {"oldestResourceVersion": kube.compact()})
        if head == "operator":
            if method == "PUT":
                data = body(req)
                if not isinstance(data.get("delay"), int | float) or data["delay"] < 0:
                    raise ApiError(400, 'expected {"delay": seconds >= 0}')
                kube.operator_delay = float(data["delay"])
            if method in ("GET", "PUT"):
                return Response(200, {"delay": kube.operator_delay})
        if head == "quota" and method in ("GET", "PUT"):
            return _quota(kube, req, body)
        if head == "nodes":
            return _nodes(kube, req, parts[1:], body)
        if head == "pods" and len(parts) == 4 and parts[3] == "phase" and method == "PUT":
            phase = body(req).get("phase")
            try:
                pod = kube.set_pod_phase(parts[1], parts[2], str(phase))
            except KeyError as exc:
                raise ApiError(404, str(exc.args[0])) from None
            return Response(200, pod)
        raise ApiError(404, f"no admin endpoint {method} {req.path}")

    return handle


def _quota(kube: KubeSandbox, req: Request, body: Callable[[Request], dict[str, Any]]) -> Response:
    if req.method == "PUT":
        data = body(req)
        delay, stopped = data.get("delay"), data.get("stopped")
        if (delay is not None and (not isinstance(delay, int | float) or delay < 0)) or (
            stopped is not None and not isinstance(stopped, bool)
        ) or (delay is None and stopped is None):
            raise ApiError(400, 'expected {"delay": seconds >= 0} and/or {"stopped": true|false}')
        if delay is not None:
            kube.quota_delay = float(delay)
        if stopped is not None:
            kube.set_quota_stopped(stopped)
    return Response(200, {"delay": kube.quota_delay, "stopped": kube.quota.stopped})


def _nodes(
    kube: KubeSandbox, req: Request, parts: list[str], body: Callable[[Request], dict[str, Any]]
) -> Response:
    if not parts and req.method == "POST":
        try:
            created = kube.add_node(body(req))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return Response(201, {"items": created})
    if len(parts) == 2 and req.method == "PUT" and parts[1] in ("faulty", "hang"):
        flag = bool(body(req).get(parts[1], True))
        try:
            if parts[1] == "faulty":
                kube.set_faulty(parts[0], flag)
            else:
                kube.set_hang(parts[0], flag)
        except KeyError as exc:
            raise ApiError(404, str(exc.args[0])) from None
        return Response(200, {"node": parts[0], parts[1]: flag})
    if len(parts) == 2 and req.method == "GET" and parts[1] == "reconfigure-error":
        try:
            return Response(200, kube.reconfigure_error(parts[0]))
        except KeyError as exc:
            raise ApiError(404, str(exc.args[0])) from None
    raise ApiError(404, f"no admin endpoint {req.method} {req.path}")
