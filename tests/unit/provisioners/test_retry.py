"""The retry policy: what is retried, how long it waits, its bounds, and the errors it raises."""

from __future__ import annotations

import http.client
import json
import logging
import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from leases.errors import PermanentError, TemporaryError
from provisioners.kube import KubeAlreadyExists, KubeApiError, KubeNotFound, RetryPolicy, is_transient
from provisioners.kube.retry import KubeClientError, retry_after


def api_error(
    status: int, *, reason: str = "", message: str = "", headers: dict | None = None
) -> ApiException:
    exc = ApiException(status=status, reason=reason or "Error")
    exc.body = json.dumps(
        {"kind": "Status", "status": "Failure", "reason": reason, "message": message, "code": status}
    )
    exc.headers = headers or {}
    return exc


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock: FakeClock, **kwargs) -> RetryPolicy:
    kwargs.setdefault("attempts", 6)
    kwargs.setdefault("seconds", 60.0)
    return RetryPolicy(sleep=clock.sleep, clock=clock, jitter=lambda: 0.5, **kwargs)


class Flaky:
    """Fails with the given exceptions in turn, then returns "ok"; counts calls."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self, *args, **kwargs) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def as_the_client_raises(error: urllib3.exceptions.SSLError) -> ApiException:
    """Return the ApiException the kubernetes client raises for a urllib3 SSLError: status 0,
    the error's text as reason, the error itself as context (kubernetes/client/rest.py)."""
    try:
        try:
            raise error
        except urllib3.exceptions.SSLError as e:
            raise ApiException(status=0, reason="\n".join([type(e).__name__, str(e)]))  # noqa: B904
    except ApiException as raised:
        return raised


TLS_EOF = urllib3.exceptions.SSLError(
    ssl.SSLEOFError(8, "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol (_ssl.c:1006)")
)
TLS_UNTRUSTED = urllib3.exceptions.SSLError(ssl.SSLCertVerificationError(
    1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1006)"
))
TLS_NOT_SPOKEN = urllib3.exceptions.SSLError(
    ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
)

RETRIED = [
    ("429", api_error(429, reason="TooManyRequests"), "get"),
    ("500", api_error(500, reason="InternalError"), "get"),
    ("502", api_error(502), "apply"),
    ("503", api_error(503, reason="ServiceUnavailable"), "create"),
    ("504", api_error(504, reason="Timeout"), "delete"),
    ("409 conflict on apply", api_error(409, reason="Conflict"), "apply"),
    ("409 conflict on patch", api_error(409, reason="Conflict"), "patch"),
    ("409 conflict on replace", api_error(409, reason="Conflict"), "replace"),
    ("dropped connection",
     urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError()), "get"),
    ("read timeout", urllib3.exceptions.ReadTimeoutError(None, "/api/v1", "Read timed out."), "apply"),
    ("connect timeout", urllib3.exceptions.ConnectTimeoutError("timed out"), "get"),
    ("refused", urllib3.exceptions.NewConnectionError(None, "Connection refused"), "create"),
    ("max retries", urllib3.exceptions.MaxRetryError(None, "/api/v1", "refused"), "get"),
    ("remote disconnected", http.client.RemoteDisconnected("closed"), "get"),
    ("builtin connection error", ConnectionResetError("reset"), "delete"),
    ("builtin timeout", TimeoutError("timed out"), "get"),
    # A connection dropped mid-TLS: urllib3's SSLError, raw or as the client re-raises it.
    ("tls eof", TLS_EOF, "get"),
    ("tls eof from the client", as_the_client_raises(TLS_EOF), "apply"),
    ("tls reset", urllib3.exceptions.SSLError(ConnectionResetError(104, "Connection reset by peer")), "delete"),
    ("tls eof as text", urllib3.exceptions.SSLError("eof"), "get"),
    ("tls eof after urllib3 retries", urllib3.exceptions.MaxRetryError(None, "/api/v1", TLS_EOF), "get"),
]
NOT_RETRIED = [
    ("400", api_error(400, reason="BadRequest"), "apply"),
    ("401", api_error(401, reason="Unauthorized"), "get"),
    ("403", api_error(403, reason="Forbidden"), "create"),
    ("404", api_error(404, reason="NotFound"), "get"),
    ("422", api_error(422, reason="Invalid"), "apply"),
    ("409 on create", api_error(409, reason="AlreadyExists"), "create"),
    ("409 conflict on create", api_error(409, reason="Conflict"), "create"),
    ("409 AlreadyExists on apply", api_error(409, reason="AlreadyExists"), "apply"),
    ("409 on delete", api_error(409, reason="Conflict"), "delete"),
    ("501", api_error(501), "get"),
    ("ssl (status 0)", ApiException(status=0, reason="SSLError"), "get"),
    ("untrusted certificate", TLS_UNTRUSTED, "get"),
    ("untrusted certificate from the client", as_the_client_raises(TLS_UNTRUSTED), "create"),
    ("untrusted certificate after urllib3 retries",
     urllib3.exceptions.MaxRetryError(None, "/api/v1", TLS_UNTRUSTED), "get"),
    ("tls the server does not speak", as_the_client_raises(TLS_NOT_SPOKEN), "get"),
    ("bad address", urllib3.exceptions.LocationParseError("http://[::1"), "get"),
    ("programming error", ValueError("bad"), "get"),
]


@pytest.mark.parametrize(("case", "exc", "verb"), RETRIED, ids=[c[0] for c in RETRIED])
def test_transient_failures_are_retried(case: str, exc: BaseException, verb: str) -> None:
    assert is_transient(exc, verb=verb)
    clock = FakeClock()
    fn = Flaky(exc)
    assert policy(clock).call(fn, what=f"{verb} namespace ns-a") == "ok"
    assert fn.calls == 2


@pytest.mark.parametrize(("case", "exc", "verb"), NOT_RETRIED, ids=[c[0] for c in NOT_RETRIED])
def test_permanent_failures_fail_at_once(case: str, exc: BaseException, verb: str) -> None:
    assert not is_transient(exc, verb=verb)
    clock = FakeClock()
    fn = Flaky(exc)
    with pytest.raises(Exception) as raised:
        policy(clock).call(fn, what=f"{verb} namespace ns-a")
    assert fn.calls == 1
    assert clock.sleeps == []
    # Callers see the module's errors only, never the client's own exceptions.
    assert isinstance(raised.value, PermanentError)
    assert raised.value.__cause__ is exc


@pytest.mark.parametrize(("case", "exc", "verb"), RETRIED, ids=[c[0] for c in RETRIED])
def test_transient_failures_that_last_become_temporary_errors(case: str, exc: BaseException, verb: str) -> None:
    fn = Flaky(*[exc] * 3)
    with pytest.raises(TemporaryError) as raised:
        policy(FakeClock(), attempts=3).call(fn, what=f"{verb} namespace ns-a")
    assert fn.calls == 3
    assert str(raised.value).startswith(f"{verb} namespace ns-a: still failing after 3 attempt(s)")


def test_a_dropped_tls_connection_is_described_by_its_ssl_error() -> None:
    fn = Flaky(*[as_the_client_raises(TLS_EOF)] * 2)
    with pytest.raises(TemporaryError) as raised:
        policy(FakeClock(), attempts=2).call(fn, what="get namespace ns-a")
    assert "SSLError: [SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol" in str(raised.value)


def test_an_untrusted_certificate_says_to_check_the_ca() -> None:
    with pytest.raises(KubeClientError) as raised:
        policy(FakeClock()).call(Flaky(as_the_client_raises(TLS_UNTRUSTED)), what="get namespace ns-a")
    text = str(raised.value)
    assert text.startswith("get namespace ns-a: the API server's TLS certificate was not accepted")
    assert "certificate verify failed: self-signed certificate" in text
    assert "certificate-authority-data" in text and "kubeconfig" in text
    assert "refused by the API server" not in text  # the server never answered


def test_other_tls_and_client_failures_say_what_to_check() -> None:
    with pytest.raises(KubeClientError, match="TLS with the API server failed .*wrong version number.*check the "
                       "server address"):
        policy(FakeClock()).call(Flaky(as_the_client_raises(TLS_NOT_SPOKEN)), what="get namespace ns-a")
    with pytest.raises(KubeClientError, match="the call failed in the client .*LocationParseError.*check the "
                       "cluster's API URL or kubeconfig"):
        policy(FakeClock()).call(Flaky(urllib3.exceptions.LocationParseError("x")), what="get namespace ns-a")


def test_the_module_errors_raised_inside_a_call_pass_through() -> None:
    inner = TemporaryError("get namespace ns-a: still failing")
    with pytest.raises(TemporaryError) as raised:
        policy(FakeClock()).call(Flaky(inner), what="get namespace ns-a")
    assert raised.value is inner


def test_permanent_error_names_verb_object_and_api_message() -> None:
    exc = api_error(403, reason="Forbidden", message='namespaces "ns-a" is forbidden: user cannot create')
    with pytest.raises(KubeApiError) as raised:
        policy(FakeClock()).call(Flaky(exc), what="create namespace ns-a")
    text = str(raised.value)
    assert "create namespace ns-a" in text
    assert "403 Forbidden" in text
    assert 'namespaces "ns-a" is forbidden: user cannot create' in text
    assert raised.value.status == 403
    assert raised.value.verb == "create"


def test_not_found_and_already_exists_have_their_own_types() -> None:
    with pytest.raises(KubeNotFound):
        policy(FakeClock()).call(Flaky(api_error(404, reason="NotFound")), what="get namespace ns-a")
    with pytest.raises(KubeAlreadyExists):
        policy(FakeClock()).call(Flaky(api_error(409, reason="AlreadyExists")), what="create namespace ns-a")


def test_retry_after_seconds_is_honoured() -> None:
    clock = FakeClock()
    fn = Flaky(api_error(429, headers={"Retry-After": "7"}), api_error(503, headers={"retry-after": "2"}))
    assert policy(clock).call(fn, what="apply resourcequota ns-a/q") == "ok"
    assert clock.sleeps == [7.0, 2.0]


def test_retry_after_http_date_is_honoured() -> None:
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    exc = api_error(429, headers={"Retry-After": format_datetime(now + timedelta(seconds=30), usegmt=True)})
    assert retry_after(exc, now=lambda: now) == pytest.approx(30.0)


def test_retry_after_is_capped_by_the_remaining_time_budget() -> None:
    clock = FakeClock()
    fn = Flaky(*[api_error(429, headers={"Retry-After": ra}) for ra in ("3", "500", "500", "500")])
    with pytest.raises(TemporaryError) as raised:
        policy(clock, seconds=20.0).call(fn, what="get namespace ns-a")
    # 3 s as asked, then only the 17 s left of the budget, one last attempt, and no more.
    assert clock.sleeps == [3.0, 17.0]
    assert fn.calls == 3
    assert raised.value.delay == 500.0


def test_backoff_is_exponential_with_jitter_and_bounded_by_attempts() -> None:
    clock = FakeClock()
    fn = Flaky(*[api_error(500) for _ in range(10)])
    with pytest.raises(TemporaryError) as raised:
        policy(clock, attempts=5, base_delay=1.0, max_delay=5.0).call(fn, what="get namespace ns-a")
    assert fn.calls == 5
    # jitter 0.5 → three quarters of 1, 2, 4, then the 5 s cap.
    assert clock.sleeps == [0.75, 1.5, 3.0, 3.75]
    assert "get namespace ns-a" in str(raised.value)
    assert "5 attempt(s)" in str(raised.value)
    assert isinstance(raised.value.__cause__, ApiException)


def test_jitter_spreads_delays_between_half_and_all_of_the_backoff() -> None:
    delays = []
    for jitter in (0.0, 0.999):
        clock = FakeClock()
        RetryPolicy(sleep=clock.sleep, clock=clock, jitter=lambda j=jitter: j, base_delay=2.0).call(
            Flaky(api_error(502)), what="get namespace ns-a"
        )
        delays += clock.sleeps
    assert delays[0] == pytest.approx(1.0)
    assert delays[1] == pytest.approx(1.999)


def test_time_budget_stops_retries_before_attempts_run_out() -> None:
    clock = FakeClock()
    fn = Flaky(*[api_error(503) for _ in range(20)])
    with pytest.raises(TemporaryError):
        policy(clock, attempts=20, seconds=3.0, base_delay=1.0, max_delay=1.0).call(
            fn, what="get namespace x"
        )
    assert sum(clock.sleeps) <= 3.0
    assert fn.calls < 20


def test_every_retry_is_logged_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="provisioners.kube.retry")
    clock = FakeClock()
    fn = Flaky(api_error(429, headers={"Retry-After": "1"}), urllib3.exceptions.ProtocolError("dropped"))
    policy(clock).call(fn, what="apply resourcequota ns-a/gpulease-1")
    records = [r for r in caplog.records if r.name == "provisioners.kube.retry"]
    assert [r.event for r in records] == ["kube.retry", "kube.retry"]
    first, second = records
    assert (first.method, first.object, first.status, first.attempt, first.delay) == (
        "PATCH", "apply resourcequota ns-a/gpulease-1", "429", 1, 1.0,
    )
    assert (second.status, second.attempt) == ("ProtocolError", 2)


def test_wrap_makes_a_retrying_decorator() -> None:
    clock = FakeClock()
    fn = Flaky(api_error(500))
    wrapped = policy(clock).wrap(what="list nodes")(fn)
    assert wrapped() == "ok"
    assert fn.calls == 2


def test_arguments_are_passed_through() -> None:
    seen = {}

    def fn(a, b, *, c):
        seen.update(a=a, b=b, c=c)
        return a + b + c

    assert policy(FakeClock()).call(fn, 1, 2, c=3, what="get x") == 6
    assert seen == {"a": 1, "b": 2, "c": 3}
