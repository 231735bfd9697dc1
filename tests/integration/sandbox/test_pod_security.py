"""PodSecurity admission: the namespace's `pod-security.kubernetes.io/enforce` label holds its
pods to the baseline or restricted Pod Security Standard, refused with the real server's 403
wording (every failing check, in the registry's order); unlabelled namespaces are privileged;
invalid labels are 422; and a namespace provisioned for a lease refuses a privileged pod."""

from __future__ import annotations

import copy
import json

import pytest
from kubernetes.client.rest import ApiException

from sandbox.kube import KubeSandbox

ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"

# The classic escape onto a shared node: host namespaces, a privileged container, the host's /.
ESCAPE_POD = {
    "metadata": {"name": "escape"},
    "spec": {
        "hostNetwork": True,
        "hostPID": True,
        "containers": [
            {
                "name": "c",
                "image": "busybox",
                "securityContext": {"privileged": True},
                "volumeMounts": [{"name": "host", "mountPath": "/host"}],
            }
        ],
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
    },
}
ESCAPE_BASELINE = (
    'pods "escape" is forbidden: violates PodSecurity "baseline:latest": '
    "host namespaces (hostNetwork=true, hostPID=true), "
    'hostPath volumes (volume "host"), '
    'privileged (container "c" must not set securityContext.privileged=true)'
)

# What the restricted standard asks of every pod, and nothing more.
RESTRICTED_POD = {
    "metadata": {"name": "hardened"},
    "spec": {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "train",
                "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                "resources": {"limits": {"nvidia.com/gpu": "1"}},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                },
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            }
        ],
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "config", "configMap": {"name": "settings"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        ],
    },
}


def namespace(core, name: str, level: str | None = None, **labels: str) -> None:
    if level is not None:
        labels[ENFORCE] = level
    core.create_namespace({"metadata": {"name": name, "labels": labels}})


def pod(name: str = "p", *, container: dict | None = None, metadata: dict | None = None, **spec) -> dict:
    """A plain pod (baseline-compliant) with extra container fields and pod spec fields."""
    c = {"name": "c", "image": "busybox", **(container or {})}
    return {"metadata": {"name": name, **(metadata or {})}, "spec": {"containers": [c], **spec}}


def refused(core, ns: str, body: dict, **kwargs) -> ApiException:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, body, **kwargs)
    return err.value


def message(err: ApiException) -> str:
    return json.loads(err.body)["message"]


def violations(core, ns: str, body: dict) -> str:
    """Return what follows `violates PodSecurity "LEVEL:latest": ` in the 403."""
    err = refused(core, ns, body)
    assert err.status == 403, err.body
    return message(err).split(':latest": ', 1)[1]


# -- baseline ----------------------------------------------------------------------------------
def test_privileged_host_path_pod_is_forbidden_in_a_baseline_namespace(kube: KubeSandbox, core):
    namespace(core, "tenant", "baseline")
    err = refused(core, "tenant", ESCAPE_POD)
    assert err.status == 403
    body = json.loads(err.body)
    assert body["reason"] == "Forbidden"
    assert body["details"] == {"name": "escape", "kind": "pods"}
    assert body["message"] == ESCAPE_BASELINE
    assert kube.get("pods", "escape", namespace="tenant") is None
    # A dry run is admitted (or not) exactly like the real request.
    assert message(refused(core, "tenant", ESCAPE_POD, dry_run="All")) == ESCAPE_BASELINE


def test_the_same_pod_is_admitted_where_no_standard_is_enforced(core):
    namespace(core, "unlabelled")
    namespace(core, "open", "privileged")
    for ns in ("unlabelled", "open"):
        created = core.create_namespaced_pod(ns, ESCAPE_POD)
        assert created.spec.host_network is True
        assert created.spec.containers[0].security_context.privileged is True


def test_a_plain_gpu_pod_passes_baseline(core):
    namespace(core, "tenant", "baseline")
    gpu = pod("train", container={"resources": {"limits": {"nvidia.com/gpu": "1"}}})
    assert core.create_namespaced_pod("tenant", gpu).metadata.name == "train"


def test_a_generated_name_is_the_one_refused(core):
    namespace(core, "tenant", "baseline")
    body = copy.deepcopy(ESCAPE_POD)
    body["metadata"] = {"generateName": "escape-"}
    text = message(refused(core, "tenant", body))
    assert (
        text.startswith('pods "escape-')
        and '" is forbidden: violates PodSecurity "baseline:latest": ' in text
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            pod(
                container={"securityContext": {"capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_ADMIN"]}}}
            ),
            'non-default capabilities (container "c" must not include "NET_ADMIN", "SYS_ADMIN" in '
            "securityContext.capabilities.add)",
        ),
        (pod(hostIPC=True), "host namespaces (hostIPC=true)"),
        (
            pod(
                container={
                    "ports": [
                        {"containerPort": 8080, "hostPort": 8080},
                        {"containerPort": 80, "hostPort": 80},
                    ]
                }
            ),
            'hostPort (container "c" uses hostPorts 80, 8080)',
        ),
        (
            pod(container={"readinessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}),
            'probe or lifecycle host (container "c" uses probe or lifecycle host "10.0.0.1")',
        ),
        (
            pod(container={"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
            'forbidden AppArmor profile (container "c" must not set AppArmor profile type to "Unconfined")',
        ),
        (
            pod(metadata={"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}}),
            "forbidden AppArmor profile (annotation must not set AppArmor profile type to "
            # joinQuote does not escape the %q-quoted value inside: quotes within quotes.
            '"container.apparmor.security.beta.kubernetes.io/c="unconfined"")',
        ),
        (
            pod(
                container={"securityContext": {"seLinuxOptions": {"type": "spc_t"}}},
                securityContext={"seLinuxOptions": {"user": "system_u"}},
            ),
            'seLinuxOptions (pod and container "c" set forbidden securityContext.seLinuxOptions: '
            'type "spc_t"; user may not be set)',
        ),
        (
            pod(container={"securityContext": {"procMount": "Unmasked"}}),
            'procMount (container "c" must not set securityContext.procMount to "Unmasked")',
        ),
        (
            pod(securityContext={"seccompProfile": {"type": "Unconfined"}}),
            'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")',
        ),
        (
            pod(
                securityContext={
                    "sysctls": [
                        {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                        {"name": "kernel.msgmax", "value": "65536"},
                        {"name": "net.core.somaxconn", "value": "1024"},
                    ]
                }
            ),
            "forbidden sysctls (kernel.msgmax, net.core.somaxconn)",
        ),
        (
            pod(securityContext={"windowsOptions": {"hostProcess": True}}),
            "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)",
        ),
    ],
    ids=[
        "capabilities",
        "hostIPC",
        "hostPorts",
        "probe-host",
        "apparmor-field",
        "apparmor-annotation",
        "selinux",
        "procMount",
        "seccomp",
        "sysctls",
        "hostProcess",
    ],
)
def test_each_baseline_check_names_what_it_refuses(core, body, expected):
    namespace(core, "tenant", "baseline")
    assert violations(core, "tenant", body) == expected


def test_baseline_allows_what_the_standard_allows(core):
    namespace(core, "tenant", "baseline")
    allowed = pod(
        container={
            "securityContext": {
                "capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["NET_RAW"]},
                "seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"},
                "appArmorProfile": {"type": "RuntimeDefault"},
                "procMount": "Default",
                "privileged": False,
            },
            "ports": [{"containerPort": 8080}],
        },
        securityContext={
            "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/gpu.json"},
            "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"}],
        },
        metadata={"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "runtime/default"}},
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    core.create_namespaced_pod("tenant", allowed)


# -- restricted --------------------------------------------------------------------------------
def test_a_compliant_pod_passes_restricted(kube: KubeSandbox, core):
    namespace(core, "locked", "restricted")
    created = core.create_namespaced_pod("locked", RESTRICTED_POD)
    assert created.metadata.name == "hardened"
    assert kube.get("pods", "hardened", namespace="locked") is not None


def test_restricted_lists_every_violation_baseline_first(core):
    namespace(core, "locked", "restricted")
    err = refused(core, "locked", ESCAPE_POD)
    assert err.status == 403
    # hostPathVolumes gives way to restrictedVolumes, which names the volume's type.
    assert message(err) == (
        'pods "escape" is forbidden: violates PodSecurity "restricted:latest": '
        "host namespaces (hostNetwork=true, hostPID=true), "
        'privileged (container "c" must not set securityContext.privileged=true), '
        'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
        'restricted volume types (volume "host" uses restricted volume type "hostPath"), '
        'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )


def _restricted(**changes) -> dict:
    """RESTRICTED_POD with its first container's securityContext / the pod's spec changed."""
    body = copy.deepcopy(RESTRICTED_POD)
    body["spec"]["containers"][0]["securityContext"].update(changes.pop("container", {}))
    body["spec"]["securityContext"].update(changes.pop("pod", {}))
    body["spec"].update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            _restricted(container={"capabilities": {"drop": ["ALL"], "add": ["SYS_TIME", "CHOWN"]}}),
            'unrestricted capabilities (container "train" must not include "CHOWN", "SYS_TIME" in '
            "securityContext.capabilities.add)",
        ),
        (
            _restricted(container={"capabilities": {"drop": ["NET_RAW"]}}),
            'unrestricted capabilities (container "train" must set securityContext.capabilities.drop=["ALL"])',
        ),
        (
            _restricted(container={"allowPrivilegeEscalation": True}),
            'allowPrivilegeEscalation != false (container "train" must set securityContext.allowPrivilegeEscalation=false)',
        ),
        (
            _restricted(container={"runAsNonRoot": False, "runAsUser": 0}),
            'runAsNonRoot != true (container "train" must not set securityContext.runAsNonRoot=false), '
            'runAsUser=0 (container "train" must not set runAsUser=0)',
        ),
        (
            _restricted(pod={"runAsNonRoot": None, "runAsUser": 0}),
            'runAsNonRoot != true (pod or container "train" must set securityContext.runAsNonRoot=true), '
            "runAsUser=0 (pod must not set runAsUser=0)",
        ),
        (
            _restricted(container={"seccompProfile": {"type": "Unconfined"}}),
            'seccompProfile (container "train" must not set securityContext.seccompProfile.type to "Unconfined")',
        ),
        (
            _restricted(
                volumes=[
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "share", "nfs": {"server": "nas", "path": "/x"}},
                    {"name": "repo", "gitRepo": {"repository": "https://example.com/r.git"}},
                ]
            ),
            'restricted volume types (volumes "share", "repo" use restricted volume types "gitRepo", "nfs")',
        ),
    ],
    ids=["caps-add", "caps-drop", "escalation", "root-container", "root-pod", "seccomp", "volumes"],
)
def test_each_restricted_check_names_what_it_refuses(core, body, expected):
    namespace(core, "locked", "restricted")
    assert violations(core, "locked", body) == expected


# -- namespace labels ----------------------------------------------------------------------------
def test_invalid_pod_security_labels_are_refused(core):
    with pytest.raises(ApiException) as err:
        namespace(core, "typo", "strict", **{ENFORCE_VERSION: "1.30"})
    assert err.value.status == 422
    body = json.loads(err.value.body)
    assert body["message"] == (
        'Namespace "typo" is invalid: ['
        'metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": '
        "must be one of privileged, baseline, restricted, "
        'metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "1.30": '
        'must be "latest" or "v1.x"]'
    )
    assert [c["field"] for c in body["details"]["causes"]] == [
        "metadata.labels[pod-security.kubernetes.io/enforce]",
        "metadata.labels[pod-security.kubernetes.io/enforce-version]",
    ]
    namespace(core, "tenant", "baseline")
    with pytest.raises(ApiException) as err:
        core.patch_namespace("tenant", {"metadata": {"labels": {"pod-security.kubernetes.io/warn": "loud"}}})
    assert err.value.status == 422
    assert core.read_namespace("tenant").metadata.labels[ENFORCE] == "baseline"


def test_a_pinned_version_is_named_in_the_refusal(core):
    namespace(core, "pinned", "baseline", **{ENFORCE_VERSION: "v1.30"})
    assert message(refused(core, "pinned", ESCAPE_POD)).startswith(
        'pods "escape" is forbidden: violates PodSecurity "baseline:v1.30": host namespaces'
    )


def test_raising_the_level_holds_later_significant_updates(core):
    namespace(core, "tenant")
    core.create_namespaced_pod("tenant", ESCAPE_POD)  # admitted while the namespace is privileged
    core.patch_namespace("tenant", {"metadata": {"labels": {ENFORCE: "baseline"}}})
    # An update the policy does not care about (labels) goes through...
    core.patch_namespaced_pod("escape", "tenant", {"metadata": {"labels": {"seen": "yes"}}})
    # ...a new image is evaluated against the namespace's standard now.
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod(
            "escape", "tenant", {"spec": {"containers": [{"name": "c", "image": "alpine"}]}}
        )
    assert err.value.status == 403
    assert message(err.value) == ESCAPE_BASELINE


def test_the_plugin_can_be_turned_off(kube: KubeSandbox, core):
    namespace(core, "tenant", "baseline")
    kube.disable_admission("PodSecurity")
    core.create_namespaced_pod("tenant", ESCAPE_POD)


# -- the product ---------------------------------------------------------------------------------
def test_a_lease_namespace_refuses_a_privileged_pod(kube: KubeSandbox):
    """The namespace the provisioner makes for a lease carries the policy's standard (baseline
    by default), and the API server holds the tenant's pods to it."""
    from config.policy import load_policy
    from config.settings import EXAMPLE_POLICY, Settings
    from provisioners.bundle import apply
    from provisioners.kube import RetryPolicy, make_api_client, request
    from tests.integration.provisioners.conftest import make_spec

    spec = make_spec(load_policy(EXAMPLE_POLICY))
    assert spec.pod_security == "baseline"
    settings = Settings(_env_file=None, kube_api_url=kube.url, kube_request_timeout=0.5)
    retry = RetryPolicy(attempts=3, seconds=10.0, base_delay=0.01, max_delay=0.05, sleep=lambda _: None)
    with make_api_client(settings=settings) as api:
        apply(api, spec, retry=retry)
        path = f"/api/v1/namespaces/{spec.namespace}/pods"
        with pytest.raises(ApiException) as err:
            request(api, "POST", path, body=ESCAPE_POD)
        assert err.value.status == 403
        assert message(err.value) == ESCAPE_BASELINE
        # An ordinary GPU pod is still welcome.
        gpu = pod("train", container={"resources": {"limits": {"nvidia.com/gpu": "1"}}})
        assert request(api, "POST", path, body=gpu)["metadata"]["name"] == "train"
    assert kube.get("pods", "escape", namespace=spec.namespace) is None
