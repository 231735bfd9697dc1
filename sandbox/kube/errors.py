"""API errors as the Kubernetes API server reports them: `kind: Status` bodies.

Every module of the stand-in raises `ApiError`; the HTTP layer turns it into the JSON body.
Messages follow the real server's wording so clients (and people reading logs) see what
they would see against a real cluster.
"""

from __future__ import annotations

from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


# Cause types of field errors and their machine-readable reasons (apimachinery field.ErrorType).
CAUSE_REASONS = {
    "Invalid value": "FieldValueInvalid",
    "Required value": "FieldValueRequired",
    "Unsupported value": "FieldValueNotSupported",
    "Forbidden": "FieldValueForbidden",
    "Duplicate value": "FieldValueDuplicate",
    "Too long": "FieldValueTooLong",
}


class ApiError(Exception):
    """An error response of the API server, carried up to the HTTP layer."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason if reason is not None else REASONS.get(code, "")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        """Return the `kind: Status` body of this error."""
        return status_body(self.code, self.message, reason=self.reason, details=self.details)


def status_body(
    code: int, message: str, *, reason: str = "", details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return a failure `Status` object as the API server serialises it."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    if not reason:
        del body["reason"]
    return body


def qualified(resource: str, group: str) -> str:
    """Return `resource.group` (or `resource` for the core group), as in error messages."""
    return f"{resource}.{group}" if group else resource


def _details(name: str, resource: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return details


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    """404 NotFound for a named object."""
    return ApiError(
        404,
        f'{qualified(resource, group)} "{name}" not found',
        details=_details(name, resource, group),
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    """409 AlreadyExists for a create of an existing name."""
    return ApiError(
        409,
        f'{qualified(resource, group)} "{name}" already exists',
        reason="AlreadyExists",
        details=_details(name, resource, group),
    )


def conflict(resource: str, name: str, group: str = "", why: str = "") -> ApiError:
    """409 Conflict, by default the optimistic-concurrency wording."""
    why = why or (
        "the object has been modified; please apply your changes to the latest version and try again"
    )
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        details=_details(name, resource, group),
    )


def forbidden(resource: str, name: str, why: str, group: str = "") -> ApiError:
    """403 Forbidden as admission plugins and RBAC report it."""
    return ApiError(
        403,
        f'{qualified(resource, group)} "{name}" is forbidden: {why}',
        details=_details(name, resource, group),
    )


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, message)


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> ApiError:
    """422 Invalid with one cause per field, worded like the real validation errors.

    Each cause is {"field": ..., "type": "Invalid value"|"Required value"|..., "message": ...,
    "value": optional rendered value}.
    """
    parts = []
    status_causes = []
    for cause in causes:
        text = f"{cause['field']}: {cause['type']}"
        if "value" in cause:
            text += f": {cause['value']}"
        if cause.get("message"):
            text += f": {cause['message']}"
        parts.append(text)
        status_causes.append(
            {
                "reason": CAUSE_REASONS.get(cause["type"], "FieldValueInvalid"),
                "message": text[len(cause["field"]) + 2 :],
                "field": cause["field"],
            }
        )
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": status_causes}
    if group:
        details["group"] = group
    return ApiError(422, f'{qualified(kind, group)} "{name}" is invalid: {joined}', details=details)


def method_not_allowed(method: str) -> ApiError:
    """405 for a verb the resource does not support."""
    return ApiError(405, f"the server does not allow this method on the requested resource ({method})")
