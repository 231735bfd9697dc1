"""Fault injection and the request log, through the official client and the admin API."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from .rawhttp import send

NODES = "/api/v1/nodes"


def test_status_faults_answer_with_status_bodies(kube, core):
    for code, reason in [
        (500, "InternalError"),
        (502, "BadGateway"),
        (503, "ServiceUnavailable"),
        (504, "Timeout"),
    ]:
        rule = kube.add_fault("status", status=code, method="GET", path=NODES, times=1)
        with pytest.raises(ApiException) as err:
            core.list_node()
        assert err.value.status == code
        body = json.loads(err.value.body)
        assert body["kind"] == "Status" and body["code"] == code
        if code != 502:
            assert body["reason"] == reason
        assert rule.fired == 1
        core.list_node()  # the rule is spent


def test_429_carries_retry_after(kube, core):
    kube.add_fault("status", status=429, retry_after=7, method="GET", path=NODES, nth=1)
    with pytest.raises(ApiException) as err:
        core.list_node()
    assert err.value.status == 429
    assert err.value.headers["Retry-After"] == "7"
    assert json.loads(err.value.body)["reason"] == "TooManyRequests"


def test_client_default_retries_honour_retry_after_on_get(kube):
    kube.add_fault("status", status=503, retry_after=0, method="GET", path=NODES, times=2)
    configuration = client.Configuration(host=kube.url)  # default urllib3 retries
    with client.ApiClient(configuration) as api:
        client.CoreV1Api(api).list_node()
    assert [r.status for r in kube.requests("GET", NODES)] == [503, 503, 200]


def test_nth_every_and_times(kube, core):
    second = kube.add_fault("status", status=500, method="GET", path=NODES, nth=2)
    core.list_node()
    with pytest.raises(ApiException):
        core.list_node()
    core.list_node()
    assert (second.matched, second.fired) == (3, 1)
    kube.clear_faults()
    every = kube.add_fault("status", status=503, method="GET", path=NODES, every=3, times=2)
    outcomes = []
    for _ in range(9):
        try:
            core.list_node()
            outcomes.append(200)
        except ApiException as err:
            outcomes.append(err.status)
    assert outcomes == [200, 200, 503, 200, 200, 503, 200, 200, 200]
    assert every.fired == 2


def test_probability_is_reproducible_with_a_seed(kube, core):
    def run() -> list[int]:
        kube.clear_faults()
        kube.add_fault("status", status=500, method="GET", path=NODES, probability=0.5, seed=42)
        result = []
        for _ in range(20):
            try:
                core.list_node()
                result.append(200)
            except ApiException as err:
                result.append(err.status)
        return result

    first, second = run(), run()
    assert first == second
    assert 0 < first.count(500) < 20


def test_path_regex_and_method(kube, core):
    core.create_namespace({"metadata": {"name": "a"}})
    kube.add_fault("status", status=503, method="PATCH", path_regex=r"^/api/v1/namespaces/[^/]+$")
    core.read_namespace("a")  # GET is not matched
    with pytest.raises(ApiException) as err:
        core.patch_namespace("a", {"metadata": {"labels": {"x": "y"}}})
    assert err.value.status == 503


def test_delay_makes_client_time_out(kube, core):
    kube.add_fault("delay", seconds=0.5, method="GET", path=NODES, times=1)
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.list_node(_request_timeout=0.1)
    assert core.list_node().items  # next request is not delayed


def test_dropped_connection(kube, core):
    kube.add_fault("drop", method="GET", path=NODES, nth=1)
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.list_node()
    assert kube.requests("GET", NODES)[-1].status == 0
    assert core.list_node().items


def test_forced_conflict_on_update_only(kube, core):
    core.create_namespace({"metadata": {"name": "c"}})
    rule = kube.add_fault("conflict", path="/api/v1/namespaces/c", times=1)
    core.read_namespace("c")
    with pytest.raises(ApiException) as err:
        core.patch_namespace("c", {"metadata": {"labels": {"x": "y"}}})
    body = json.loads(err.value.body)
    assert (err.value.status, body["reason"]) == (409, "Conflict")
    assert body["message"].startswith('Operation cannot be fulfilled on namespaces "c"')
    assert rule.matched == 1  # the GET did not count
    core.patch_namespace("c", {"metadata": {"labels": {"x": "y"}}})


def test_faults_over_http(kube, core):
    status, _, rule = send(
        kube.url,
        "POST",
        "/_sandbox/faults",
        {"kind": "status", "status": 503, "method": "GET", "path": NODES, "nth": 1},
    )
    assert status == 201 and rule["id"]
    with pytest.raises(ApiException):
        core.list_node()
    status, _, listing = send(kube.url, "GET", "/_sandbox/faults")
    assert listing["items"][0]["fired"] == 1
    status, _, _ = send(kube.url, "DELETE", f"/_sandbox/faults/{rule['id']}")
    assert status == 200 and kube.faults.rules() == []
    status, _, body = send(kube.url, "POST", "/_sandbox/faults", {"kind": "explode"})
    assert status == 400 and "unknown fault kind" in body["message"]


def test_request_log(kube, core):
    core.create_namespace({"metadata": {"name": "logged"}})
    core.patch_namespace("logged", {"metadata": {"labels": {"a": "b"}}}, field_manager="me")
    core.list_namespace(label_selector="a=b")
    post = kube.requests("POST")[-1]
    assert (post.path, post.json()["metadata"]["name"], post.status) == ("/api/v1/namespaces", "logged", 201)
    patch = kube.requests("PATCH", "/api/v1/namespaces/logged")[-1]
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.param("fieldManager") == "me"
    assert patch.json() == {"metadata": {"labels": {"a": "b"}}}
    get = kube.requests("GET", path_prefix="/api/v1/namespaces")[-1]
    assert get.query == {"labelSelector": ["a=b"]}
    status, _, listing = send(kube.url, "GET", "/_sandbox/requests?method=PATCH")
    assert [r["path"] for r in listing["items"]] == ["/api/v1/namespaces/logged"]
    assert all(not r.path.startswith("/_sandbox") for r in kube.requests())
    send(kube.url, "DELETE", "/_sandbox/requests")
    assert kube.requests() == []


def test_reset_and_access_over_http(kube):
    send(kube.url, "POST", "/_sandbox/access", {"verb": "create", "resource": "namespaces"})
    status, _, body = send(kube.url, "POST", "/api/v1/namespaces", {"metadata": {"name": "x"}})
    assert status == 403
    send(kube.url, "POST", "/_sandbox/reset")
    status, _, _ = send(kube.url, "POST", "/api/v1/namespaces", {"metadata": {"name": "x"}})
    assert status == 201


def test_admin_pod_phase_and_compact(kube, core):
    core.create_namespace({"metadata": {"name": "w"}})
    core.create_namespaced_pod(
        "w", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    )
    status, _, pod = send(kube.url, "PUT", "/_sandbox/pods/w/p/phase", {"phase": "Failed"})
    assert status == 200 and pod["status"]["phase"] == "Failed"
    status, _, body = send(kube.url, "POST", "/_sandbox/compact")
    assert status == 200 and int(body["oldestResourceVersion"]) > 0


def test_command_line_server(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.kube", "--port", "0", "--operator-delay", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        url = banner.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/version", timeout=5) as response:
            assert json.load(response)["gitVersion"] == "v1.36.0"
    finally:
        process.terminate()
        process.wait(timeout=10)
