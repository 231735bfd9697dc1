"""Plain HTTP requests for cases the official client refuses to send (it validates bodies
with pydantic before sending)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def send(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    text: bool = False,
) -> tuple[int, dict[str, str], Any]:
    """Return (status, headers, parsed JSON body, or text when asked or not JSON)."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, response_headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        status, raw, response_headers = err.code, err.read(), dict(err.headers)
    if text:
        return status, response_headers, raw.decode()
    try:
        return status, response_headers, json.loads(raw) if raw else None
    except ValueError:
        return status, response_headers, raw.decode()
