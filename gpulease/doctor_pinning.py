"""`gpulease doctor`'s pinning probe: does the cluster really pin a lease namespace's pods?

With node-selector-annotations pinning, pods reach their tier's nodes only through the
PodNodeSelector admission plugin, which kube-apiserver leaves off unless it is enabled (and
some managed clusters cannot enable it). Without it every lease would run on any node, and
nothing would fail. The probe asks the API server itself: it creates a short-lived namespace
annotated the way a lease namespace is, creates a pod in it as a server-side dry run (nothing
is stored or scheduled), checks that the pod came back with the tier's nodeSelector, and
deletes the namespace.

The dry run is authorised like a real create, so it needs `create pods`, which gpulease's own
ClusterRole deliberately lacks: run with the worker's credentials the probe reports itself
unverified, and says to run doctor with an administrator's kubeconfig.

Imported by gpulease.doctor only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from kubernetes.client import ApiClient

from config.policy import PinningMechanism, Policy
from provisioners.bundle.render import NODE_SELECTOR_ANNOTATION, TIER_LABEL
from provisioners.kube import KubeApiError, RetryPolicy, request

PROBE_PREFIX = "gpulease-doctor-"
PROBE_LABEL = "gpulease.io/doctor-probe"
# A pod any Pod Security level admits (restricted included), so a cluster-wide default level
# cannot refuse the probe for reasons that have nothing to do with pinning.
PROBE_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "pinning-probe"},
    "spec": {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65535,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "probe",
            "image": "registry.k8s.io/pause:3.10",
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }],
    },
}
ENABLE_FIX = (
    "enable the PodNodeSelector and PodTolerationRestriction admission plugins "
    "(kube-apiserver --enable-admission-plugins), or set the policy's pinning to "
    "mutating-admission-policy for this cluster"
)


@dataclass(frozen=True)
class Finding:
    """The probe's verdict, in the shape of a doctor check."""

    ok: bool
    detail: str
    fix: str | None = None
    skipped: bool = False


def probe_pinning(api_client: ApiClient, *, policy: Policy, retry: RetryPolicy, cluster: str | None = None) -> Finding:
    """Check with a dry-run pod that a lease namespace's pods on `cluster` get their tier's nodeSelector."""
    mechanism = policy.pinning_for(cluster)
    if mechanism is not PinningMechanism.NODE_SELECTOR_ANNOTATIONS:
        return Finding(True, f"not probed for {mechanism} pinning: the probe checks the PodNodeSelector "
                             "annotation that node-selector-annotations pinning relies on", skipped=True)
    tier = policy.tiers[0].name
    # A name chosen here, not by the server (generateName): a POST retried after a lost answer
    # then meets its own namespace (409) instead of leaving a second one behind.
    name = PROBE_PREFIX + secrets.token_hex(4)
    try:
        retry.call(request, api_client, "POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {PROBE_LABEL: "pinning"},
                         "annotations": {NODE_SELECTOR_ANNOTATION: f"{TIER_LABEL}={tier}"}},
        }, what="create namespace for the pinning probe")
    except KubeApiError as exc:
        if exc.status != 409:
            raise
    namespace = retry.call(request, api_client, "GET", f"/api/v1/namespaces/{name}", what=f"get namespace {name}")
    if PROBE_LABEL not in (namespace["metadata"].get("labels") or {}):
        return Finding(False, f"namespace {name} exists and is not the probe's; left alone", "run doctor again")
    uid = namespace["metadata"]["uid"]
    try:
        pod = _dry_run_pod(api_client, namespace=name, retry=retry)
    finally:
        retry.call(request, api_client, "DELETE", f"/api/v1/namespaces/{name}",
                   body={"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}},
                   what=f"delete namespace {name}")
    if isinstance(pod, Finding):
        return pod
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if selector.get(TIER_LABEL) != tier:
        return Finding(
            False,
            f"a pod created (dry run) in a namespace annotated {NODE_SELECTOR_ANNOTATION}="
            f"{TIER_LABEL}={tier} came back with nodeSelector {selector or 'none'}: the PodNodeSelector "
            "admission plugin is off, so pods of every lease would run on any node",
            ENABLE_FIX,
        )
    return Finding(True, f"PodNodeSelector in force: a dry-run pod got nodeSelector {TIER_LABEL}={tier}")


def _dry_run_pod(api_client: ApiClient, *, namespace: str, retry: RetryPolicy) -> dict | Finding:
    try:
        return retry.call(request, api_client, "POST", f"/api/v1/namespaces/{namespace}/pods",
                          query=[("dryRun", "All")], body=PROBE_POD,
                          what=f"create pod {namespace}/pinning-probe (dry run)")
    except KubeApiError as exc:
        if exc.status != 403:
            raise
        if "cannot create resource" not in str(exc):  # refused by admission, not by RBAC
            return Finding(False, f"the dry-run probe pod was refused, so pinning is not verified: {exc}",
                           "see the API server's message above; the probe pod asks for nothing but a pause image")
        return Finding(True, f"pinning not verified: this credential may not create pods, even as a dry run ({exc})",
                       "run `gpulease doctor` with an administrator's kubeconfig to verify pinning", skipped=True)
