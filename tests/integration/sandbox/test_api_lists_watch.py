"""Selectors, paging, watch and the namespace lifecycle, through the official client."""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from .rawhttp import send
from .waiting import wait_until


def make_namespaces(core, specs: dict[str, dict[str, str]]) -> None:
    for name, labels in specs.items():
        core.create_namespace({"metadata": {"name": name, "labels": labels}})


@pytest.fixture
def labelled(core):
    make_namespaces(
        core,
        {
            "a1": {"pool": "a", "env": "prod"},
            "a2": {"pool": "a", "env": "dev"},
            "b1": {"pool": "b"},
            "c1": {"gpu": "yes", "env": "dev"},
        },
    )


def names(items) -> set[str]:
    return {i.metadata.name for i in items}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("pool=a", {"a1", "a2"}),
        ("pool==a", {"a1", "a2"}),
        ("pool=a,env!=prod", {"a2"}),
        ("env!=prod,pool", {"a2", "b1"}),
        ("pool in (a, b)", {"a1", "a2", "b1"}),
        ("pool notin (a),pool", {"b1"}),
        ("gpu", {"c1"}),
        ("!pool,!gpu", {"default", "kube-system", "kube-public", "kube-node-lease"}),
    ],
)
def test_label_selectors(core, labelled, selector, expected):
    assert names(core.list_namespace(label_selector=selector).items) == expected


def test_bad_label_selector_is_400(core):
    with pytest.raises(ApiException) as err:
        core.list_namespace(label_selector="a in b")
    assert err.value.status == 400


def test_field_selectors(core, labelled):
    assert names(core.list_namespace(field_selector="metadata.name=b1").items) == {"b1"}
    assert "b1" not in names(core.list_namespace(field_selector="metadata.name!=b1").items)
    assert names(core.list_namespace(field_selector="status.phase=Active,metadata.name=a1").items) == {"a1"}
    core.create_namespaced_config_map("a1", {"metadata": {"name": "x"}})
    found = core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=a1")
    assert names(found.items) == {"x", "kube-root-ca.crt"}
    with pytest.raises(ApiException) as err:
        core.list_namespace(field_selector="spec.colour=blue")
    assert err.value.status == 400
    assert "field label not supported: spec.colour" in err.value.body


def test_paging_with_limit_and_continue(core):
    core.create_namespace({"metadata": {"name": "paged"}})
    for i in range(7):
        core.create_namespaced_config_map("paged", {"metadata": {"name": f"cm-{i}"}})
    seen: list[str] = []
    page = core.list_namespaced_config_map("paged", limit=3)
    first_rv = page.metadata.resource_version
    assert page.metadata.remaining_item_count == 5
    while True:
        seen += [i.metadata.name for i in page.items]
        if not page.metadata._continue:
            break
        assert page.metadata.resource_version == first_rv
        page = core.list_namespaced_config_map("paged", limit=3, _continue=page.metadata._continue)
    assert seen == sorted(seen) and len(seen) == 8  # 7 + kube-root-ca.crt


def test_watch_streams_added_modified_deleted(core):
    events: list[tuple[str, str]] = []
    done = threading.Event()
    rv = core.list_namespace().metadata.resource_version

    def consume():
        w = watch.Watch()
        for event in w.stream(
            core.list_namespace, resource_version=rv, label_selector="watched=yes", timeout_seconds=5
        ):
            events.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    core.create_namespace({"metadata": {"name": "w1", "labels": {"watched": "yes"}}})
    core.create_namespace({"metadata": {"name": "ignored"}})
    core.patch_namespace("w1", {"metadata": {"labels": {"extra": "1"}}})
    core.delete_namespace("w1")
    assert done.wait(10)
    thread.join()
    kinds = [t for t, n in events if n == "w1"]
    assert kinds[0] == "ADDED" and "MODIFIED" in kinds and kinds[-1] == "DELETED"
    assert all(n == "w1" for _, n in events)


def test_watch_without_resource_version_lists_first(core):
    w = watch.Watch()
    seen = set()
    for event in w.stream(core.list_namespace, timeout_seconds=5):
        assert event["type"] == "ADDED"
        seen.add(event["object"].metadata.name)
        if {"default", "kube-system"} <= seen:
            w.stop()


def test_watch_reports_objects_leaving_the_selector(core):
    core.create_namespace({"metadata": {"name": "leaver", "labels": {"watched": "yes"}}})
    rv = core.read_namespace("leaver").metadata.resource_version
    core.patch_namespace("leaver", {"metadata": {"labels": {"watched": None}}})
    w = watch.Watch()
    for event in w.stream(
        core.list_namespace, resource_version=rv, label_selector="watched=yes", timeout_seconds=5
    ):
        assert (event["type"], event["object"].metadata.name) == ("DELETED", "leaver")
        w.stop()


def test_watch_too_old_resource_version_is_410(kube, core):
    old = core.list_namespace().metadata.resource_version
    core.create_namespace({"metadata": {"name": "newer"}})
    kube.compact()
    w = watch.Watch()
    with pytest.raises(ApiException) as err:
        list(w.stream(core.list_namespace, resource_version=old, timeout_seconds=1))
    assert err.value.status == 410
    assert "too old resource version" in err.value.reason


def test_watch_raw_stream_has_bookmarks_and_410_event(kube, core):
    rv = core.list_namespace().metadata.resource_version
    status, _, body = send(
        kube.url,
        "GET",
        f"/api/v1/namespaces?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=0.3",
        text=True,
    )
    assert status == 200
    assert '"type": "BOOKMARK"' in body
    kube.compact()
    status, _, body = send(kube.url, "GET", "/api/v1/namespaces?watch=1&resourceVersion=1&timeoutSeconds=0.3")
    assert status == 200
    assert body["type"] == "ERROR"
    assert body["object"]["code"] == 410 and body["object"]["reason"] == "Expired"


def test_send_initial_events_end_with_a_marked_bookmark(kube):
    status, _, body = send(
        kube.url,
        "GET",
        "/api/v1/namespaces?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
        "&allowWatchBookmarks=true&timeoutSeconds=0.2",
        text=True,
    )
    lines = [line for line in body.splitlines() if line]
    assert '"ADDED"' in lines[0]
    assert any("k8s.io/initial-events-end" in line for line in lines)


def test_namespace_lifecycle(kube, core):
    kube.namespace_controller.delay = 0.05
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "c"}})
    core.create_namespaced_resource_quota(
        "doomed", {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}}
    )
    status, _, body = send(kube.url, "DELETE", "/api/v1/namespaces/doomed")
    assert status == 200
    assert body["kind"] == "Namespace"
    assert body["metadata"]["deletionTimestamp"]
    assert body["status"]["phase"] == "Terminating"
    wait_until(lambda: kube.get("namespaces", "doomed") is None)
    assert kube.list("configmaps", namespace="doomed") == []
    assert kube.list("resourcequotas", namespace="doomed") == []
    with pytest.raises(ApiException) as err:
        core.read_namespace("doomed")
    assert err.value.status == 404


def test_namespace_waits_for_content_finalizers(kube, core):
    core.create_namespace({"metadata": {"name": "held"}})
    core.create_namespaced_config_map("held", {"metadata": {"name": "c", "finalizers": ["example.com/x"]}})
    core.delete_namespace("held")
    wait_until(lambda: kube.get("configmaps", "c", namespace="held")["metadata"].get("deletionTimestamp"))
    with pytest.raises(ApiException) as err:
        core.delete_namespace("held")
    assert err.value.status == 409
    assert "The system is ensuring all content is removed" in err.value.body
    core.patch_namespaced_config_map(
        "c", "held", {"metadata": {"finalizers": None}}, _content_type="application/merge-patch+json"
    )
    wait_until(lambda: kube.get("namespaces", "held") is None)


def test_system_namespaces_cannot_be_deleted(core):
    for name in ("default", "kube-system", "kube-public"):
        with pytest.raises(ApiException) as err:
            core.delete_namespace(name)
        assert err.value.status == 403
        message = json.loads(err.value.body)["message"]
        assert message == f'namespaces "{name}" is forbidden: this namespace may not be deleted'


def test_delete_of_plain_object_returns_success_status(core):
    core.create_namespace({"metadata": {"name": "del"}})
    core.create_namespaced_config_map("del", {"metadata": {"name": "c"}})
    status = core.delete_namespaced_config_map("c", "del")  # the client returns the raw dict
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "c"


def test_delete_collection(core):
    core.create_namespace({"metadata": {"name": "coll"}})
    for i in range(3):
        core.create_namespaced_config_map(
            "coll", {"metadata": {"name": f"c{i}", "labels": {"g": "1" if i else "0"}}}
        )
    core.delete_collection_namespaced_config_map("coll", label_selector="g=1")
    assert names(core.list_namespaced_config_map("coll").items) == {"c0", "kube-root-ca.crt"}


def test_mutating_admission_policy_served_in_both_versions(api_client):
    v1 = client.AdmissionregistrationV1Api(api_client)
    beta = client.AdmissionregistrationV1beta1Api(api_client)
    policy = {
        "metadata": {"name": "noop"},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ]
            },
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "mutations": [
                {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": "Object{}"}}
            ],
        },
    }
    created = beta.create_mutating_admission_policy(policy)
    assert created.api_version == "admissionregistration.k8s.io/v1beta1"
    read = v1.read_mutating_admission_policy("noop")
    assert read.api_version == "admissionregistration.k8s.io/v1"
    assert read.spec.mutations[0].patch_type == "ApplyConfiguration"
