"""The one retry policy for Kubernetes API calls, and the errors it turns failures into.

Transient failures are retried with tenacity, bounded in attempts and in seconds, with
exponential backoff and jitter: connection errors (refused, dropped, reset, also when the
connection drops during TLS), timeouts, 429 (honouring Retry-After), 500/502/503/504, and 409
Conflict on an update. A refusal fails at once as a `KubeApiError` (a `PermanentError`) that
names the verb, the object and the API server's message. `KubeNotFound` and
`KubeAlreadyExists` are the two refusals callers act on (absent → create; a create answered
AlreadyExists → adopt). Anything else that fails before the server answers (a certificate
not trusted, a TLS set-up the server does not speak, a bad address) fails at once as a
`KubeClientError`, also a `PermanentError`, that says what to check.

Exhausted retries become `TemporaryError`, so a workflow step can be retried later as a whole.
Callers see only these two families, never the client's own exceptions.

With urllib3's retries off, a TLS failure reaches us as urllib3's `SSLError`, which the
kubernetes client turns into an `ApiException` with status 0 (the SSLError as its context):
both are classified by the ssl error inside, since an EOF or reset mid-handshake is a dropped
connection (a restarting API server, a load balancer's idle timeout) and a failed
certificate check is not.

Part of provisioners.kube; imported by provisioners and (through it) workflows.
"""

from __future__ import annotations

import email.utils
import functools
import http.client
import json
import logging
import random
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception

from config.settings import Settings
from leases.errors import DomainError, InfrastructureError, PermanentError, TemporaryError
from provisioners.kube.metrics import KUBE_FAILURES, KUBE_RETRIES

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
# A 409 is worth retrying only when it is an optimistic-concurrency conflict on an update:
# someone wrote in between, and the next attempt sends a fresh request. On a create it means
# the object exists already, which no retry can change: the caller adopts it instead.
CONFLICT_RETRIED_VERBS = frozenset({"apply", "patch", "update", "replace"})
_TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.ProtocolError,  # connection dropped or reset mid-request
    urllib3.exceptions.TimeoutError,  # ReadTimeoutError, ConnectTimeoutError, NewConnectionError
    urllib3.exceptions.MaxRetryError,  # what urllib3 raises when its own retries are on
    http.client.HTTPException,  # RemoteDisconnected and friends, should urllib3 not wrap them
    ConnectionError,
    TimeoutError,
)
# What an ssl error says when the connection was dropped mid-TLS: an EOF, a reset or a
# closed socket (ssl.SSLEOFError and friends; the words, for errors that come as text only).
_DROPPED_TLS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ConnectionError, TimeoutError)
_DROPPED_TLS_WORDS = re.compile(r"\beof\b|unexpected_eof|connection reset|reset by peer|broken pipe|timed out", re.I)
_CERTIFICATE_WORDS = re.compile(r"certificate", re.I)
_METHOD_OF_VERB = {
    "get": "GET",
    "list": "GET",
    "watch": "GET",
    "create": "POST",
    "apply": "PATCH",
    "patch": "PATCH",
    "update": "PUT",
    "replace": "PUT",
    "delete": "DELETE",
}


class KubeApiError(PermanentError):
    """The API server refused a request in a way no retry can change."""

    def __init__(self, message: str, *, status: int, reason: str, verb: str, what: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.verb = verb
        self.what = what


class KubeClientError(PermanentError):
    """A call failed before the API server answered, in a way no retry can change (a TLS
    certificate not trusted, an address the client cannot use)."""

    def __init__(self, message: str, *, verb: str, what: str) -> None:
        super().__init__(message)
        self.verb = verb
        self.what = what


class KubeNotFound(KubeApiError):
    """The object (or its namespace) does not exist."""


class KubeAlreadyExists(KubeApiError):
    """A create found the object there already; the caller decides whether to adopt it."""


def verb_of(what: str) -> str:
    """Return the verb of a `what` description: its first word, lower-cased."""
    return what.split(maxsplit=1)[0].lower() if what.strip() else ""


def status_reason(exc: ApiException) -> str:
    """Return the `reason` of the Status object in an API error body (e.g. AlreadyExists)."""
    return str(_status_body(exc).get("reason") or "")


def api_message(exc: ApiException) -> str:
    """Return the API server's own message from an error, or the HTTP reason phrase."""
    body = _status_body(exc)
    if body.get("message"):
        return str(body["message"])
    if exc.body and not body:
        return str(exc.body)[:300]
    return str(exc.reason or "")


def is_transient(exc: BaseException, *, verb: str) -> bool:
    """Tell whether a failed call with this verb is worth another attempt."""
    tls = tls_failure(exc)
    if tls is not None:
        return _dropped(tls)
    if isinstance(exc, ApiException):
        status = exc.status or 0
        if status in RETRIED_STATUSES:
            return True
        if status == 409:
            return verb in CONFLICT_RETRIED_VERBS and status_reason(exc) != "AlreadyExists"
        return False
    return isinstance(exc, _TRANSIENT_EXCEPTIONS)


def tls_failure(exc: BaseException) -> BaseException | None:
    """Return the TLS error behind a failed call, if it is one: urllib3's SSLError, raw or in the
    status-0 ApiException the kubernetes client turns it into, or the reason of a MaxRetryError."""
    if isinstance(exc, urllib3.exceptions.SSLError | ssl.SSLError):
        return exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return tls_failure(exc.reason)
    if isinstance(exc, ApiException) and not exc.status:
        inner = exc.__cause__ or exc.__context__
        if isinstance(inner, urllib3.exceptions.SSLError | ssl.SSLError):
            return inner
        if str(exc.reason or "").startswith("SSLError"):
            return exc  # the client's text of the SSLError is all there is
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """Return exc and the exceptions inside it: its exception arguments, cause and context."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return seen


def _text(exc: BaseException) -> str:
    return " ".join(str(e.reason if isinstance(e, ApiException) else e) for e in _chain(exc))


def _certificate_refused(exc: BaseException) -> bool:
    chain = _chain(exc)
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        return True
    return bool(_CERTIFICATE_WORDS.search(_text(exc)))


def _dropped(tls: BaseException) -> bool:
    """Tell whether a TLS error is the connection dropped or reset, not a TLS set-up refused."""
    if _certificate_refused(tls):
        return False
    if any(isinstance(e, _DROPPED_TLS) for e in _chain(tls)):
        return True
    return bool(_DROPPED_TLS_WORDS.search(_text(tls)))


def retry_after(exc: BaseException, *, now: Callable[[], datetime] | None = None) -> float | None:
    """Return the seconds a Retry-After header on an API error asks for, if it has one."""
    headers = getattr(exc, "headers", None) if isinstance(exc, ApiException) else None
    if not headers:
        return None
    value = _header(headers, "Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = now() if now else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries for API calls; sleep, clock and jitter are injectable for tests."""

    attempts: int = 6
    seconds: float = 60.0
    base_delay: float = 0.2
    max_delay: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random

    def call(self, fn: Callable[..., T], /, *args: Any, what: str, **kwargs: Any) -> T:
        """Call `fn(*args, **kwargs)`, retrying transient failures; `what` is "verb kind name"."""
        verb = verb_of(what)
        start = self.clock()

        def remaining() -> float:
            return self.seconds - (self.clock() - start)

        def stop(state: RetryCallState) -> bool:
            return state.attempt_number >= self.attempts or remaining() <= 0

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = retry_after(exc) if exc is not None else None
            if asked is None:
                ceiling = min(self.max_delay, self.base_delay * 2 ** (state.attempt_number - 1))
                # Equal jitter: at least half the backoff, so retries never bunch up at zero.
                asked = ceiling / 2 + ceiling / 2 * self.jitter()
            return max(0.0, min(asked, remaining()))

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            fields = {
                "event": "kube.retry",
                "method": _METHOD_OF_VERB.get(verb, verb.upper()),
                "object": what,
                "status": _status_of(exc),
                "attempt": state.attempt_number,
                "delay": round(state.upcoming_sleep, 3),
            }
            KUBE_RETRIES.labels(verb, fields["status"]).inc()
            logger.warning(
                "kube.retry method=%s object=%r status=%s attempt=%d delay=%.3fs",
                fields["method"], what, fields["status"], state.attempt_number, state.upcoming_sleep,
                extra=fields,
            )

        retrying = Retrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(lambda exc: is_transient(exc, verb=verb)),
            sleep=self.sleep,
            before_sleep=log_retry,
            reraise=False,
        )
        try:
            return retrying(fn, *args, **kwargs)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            attempts = exc.last_attempt.attempt_number
            elapsed = self.clock() - start
            KUBE_FAILURES.labels(verb, _status_of(last)).inc()
            raise TemporaryError(
                f"{what}: still failing after {attempts} attempt(s) in {elapsed:.1f}s: {_describe(last)}",
                delay=retry_after(last) if last is not None else None,
            ) from last
        except (InfrastructureError, DomainError):
            raise  # ours already, from a call made inside fn
        except ApiException as exc:
            KUBE_FAILURES.labels(verb, _status_of(exc)).inc()
            raise (api_error(exc, what=what) if exc.status else client_error(exc, what=what)) from exc
        except Exception as exc:
            KUBE_FAILURES.labels(verb, _status_of(exc)).inc()
            raise client_error(exc, what=what) from exc

    def wrap(self, *, what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Return a decorator that runs a function under this policy."""

        def decorate(fn: Callable[..., T]) -> Callable[..., T]:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> T:
                return self.call(fn, *args, what=what, **kwargs)

            return wrapper

        return decorate


def retry_policy(*, settings: Settings, **overrides: Any) -> RetryPolicy:
    """Build the retry policy from settings (attempts and seconds), with test overrides."""
    return RetryPolicy(
        attempts=settings.kube_retry_attempts, seconds=settings.kube_retry_seconds, **overrides
    )


def api_error(exc: ApiException, *, what: str) -> KubeApiError:
    """Turn a refused API call into a PermanentError naming the verb, object and API message."""
    status = int(exc.status or 0)
    reason = status_reason(exc) or str(exc.reason or "")
    verb = verb_of(what)
    message = f"{what}: refused by the API server ({status} {reason}): {api_message(exc)}"
    if status == 404:
        return KubeNotFound(message, status=status, reason=reason, verb=verb, what=what)
    if status == 409 and (reason == "AlreadyExists" or verb == "create"):
        return KubeAlreadyExists(message, status=status, reason=reason, verb=verb, what=what)
    return KubeApiError(message, status=status, reason=reason, verb=verb, what=what)


def client_error(exc: BaseException, *, what: str) -> KubeClientError:
    """Turn a call that failed before the API server answered, and that no retry can change,
    into a PermanentError naming the object, what went wrong and what to check."""
    verb = verb_of(what)
    tls = tls_failure(exc)
    if tls is not None and _certificate_refused(tls):
        message = (
            f"{what}: the API server's TLS certificate was not accepted ({_describe(tls)}): check that "
            "the kubeconfig's certificate-authority-data (or the service account's ca.crt) is the "
            "cluster's CA, and that the server address is one the certificate names"
        )
    elif tls is not None:
        message = (
            f"{what}: TLS with the API server failed ({_describe(tls)}): check the server address in "
            "the kubeconfig or the API URL (https, and the API server's port) and its TLS settings"
        )
    else:
        message = (
            f"{what}: the call failed in the client ({_describe(exc)}); not retried: check the "
            "cluster's API URL or kubeconfig"
        )
    return KubeClientError(message, verb=verb, what=what)


def _status_body(exc: ApiException) -> dict[str, Any]:
    if not exc.body:
        return {}
    try:
        body = json.loads(exc.body)
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _header(headers: Mapping[str, str] | Any, name: str) -> str | None:
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    if value is not None:
        return str(value)
    # Plain dicts are case-sensitive; urllib3's HTTPHeaderDict is not.
    for key in headers:
        if str(key).lower() == name.lower():
            return str(headers[key])
    return None


def _status_of(exc: BaseException | None) -> str:
    if isinstance(exc, ApiException) and exc.status:
        return str(exc.status)
    if exc is not None and (tls := tls_failure(exc)) is not None and tls is not exc:
        return type(tls).__name__  # the SSLError inside a status-0 ApiException
    return type(exc).__name__ if exc is not None else "-"


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, ApiException) and exc.status:
        return f"{exc.status} {status_reason(exc) or exc.reason}: {api_message(exc)}"
    if isinstance(exc, ApiException):  # no answer: the client's reason, e.g. "SSLError\n[SSL: ...]"
        inner = tls_failure(exc)
        if inner is not None and inner is not exc:
            return _describe(inner)
        return ": ".join(str(exc.reason or "no response").splitlines())
    return f"{type(exc).__name__}: {exc}" if exc is not None else "no error recorded"
