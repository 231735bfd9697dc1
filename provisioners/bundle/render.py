"""Render a lease's namespace bundle as plain Kubernetes objects (dicts), in apply order.

A pure function of the BundleSpec: no clock, no cluster, no randomness, so the same spec always
renders the same objects (which the GitOps renderer and the idempotency of apply rely on).

Order, and why:
- the cluster-wide MutatingAdmissionPolicy and its binding first (mutating-admission-policy
  pinning only): pinning must be in force before the namespace exists, or a pod created in
  between would escape it;
- Namespace (enforcing a Pod Security Standard through its labels), then the ResourceQuotas,
  LimitRange and NetworkPolicy: limits and isolation in place...
- ...before the RoleBinding, which is what lets the requester in.

Two ResourceQuotas: the lease's own (GPU units, CPU, memory, pods), and one that admits no pod
with a critical system priority class, which would otherwise let a tenant preempt other
tenants' pods on the shared GPU nodes.

Part of provisioners.bundle; imported by provisioners and workflows.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from config.policy import PinningMechanism
from config.quantity import scale_quantity
from provisioners.bundle.spec import BundleSpec

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "gpulease"
LEASE_LABEL = "gpulease.io/lease"
TIER_LABEL = "gpulease.io/tier"
TEAM_LABEL = "gpulease.io/team"
OWNER_ANNOTATION = "gpulease.io/owner"
OWNER_EMAIL_ANNOTATION = "gpulease.io/owner-email"
EXPIRES_ANNOTATION = "gpulease.io/expires-at"
UNITS_ANNOTATION = "gpulease.io/units"
PINNING_ANNOTATION = "gpulease.io/pinning"
NODE_SELECTOR_ANNOTATION = "scheduler.alpha.kubernetes.io/node-selector"
DEFAULT_TOLERATIONS_ANNOTATION = "scheduler.alpha.kubernetes.io/defaultTolerations"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
POD_SECURITY_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
POD_SECURITY_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
# The priority classes every cluster has, above any a tenant may use: pods with them preempt
# ordinary pods, so a lease namespace may run none.
CRITICAL_PRIORITY_CLASSES = ("system-cluster-critical", "system-node-critical")
GPU_RESOURCE = "nvidia.com/gpu"
PINNING_POLICY_NAME = "gpulease-tier-pinning"
ADMISSION_API = "admissionregistration.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"

# Containers that state no requests get a quarter of a unit, so a few helper containers fit
# beside the GPU workload; their limits default to one whole unit.
DEFAULT_REQUEST_SHARE = Fraction(1, 4)

# Sets the pod's nodeSelector key gpulease.io/tier from the tier label of its namespace and
# keeps the pod's other nodeSelector keys. A JSON patch, not an apply configuration: a pod's
# nodeSelector is an atomic map, which an apply configuration may not set (the API server
# refuses the pod: "may not mutate atomic arrays, maps or structs: .spec.nodeSelector").
_TIER_OF_NAMESPACE = f'namespaceObject.metadata.labels["{TIER_LABEL}"]'
PINNING_EXPRESSION = (
    "has(object.spec.nodeSelector)"
    f' ? [JSONPatch{{op: "add", path: "/spec/nodeSelector/" + jsonpatch.escapeKey("{TIER_LABEL}"),'
    f" value: {_TIER_OF_NAMESPACE}}}]"
    f' : [JSONPatch{{op: "add", path: "/spec/nodeSelector", value: {{"{TIER_LABEL}": {_TIER_OF_NAMESPACE}}}}}]'
)


def render(spec: BundleSpec) -> list[dict[str, Any]]:
    """Return every object of the lease's bundle, in apply order."""
    by_policy = spec.pinning is PinningMechanism.MUTATING_ADMISSION_POLICY
    cluster_wide = render_cluster_objects() if by_policy else []
    return [
        *cluster_wide,
        namespace(spec),
        resource_quota(spec),
        critical_priority_quota(spec),
        limit_range(spec),
        network_policy(spec),
        role_binding(spec),
    ]


def render_cluster_objects() -> list[dict[str, Any]]:
    """Return the cluster-wide pinning policy and its binding (one per cluster, not per lease)."""
    labels = {MANAGED_BY: MANAGER}
    policy = {
        "apiVersion": ADMISSION_API,
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": PINNING_POLICY_NAME, "labels": labels},
        "spec": {
            "failurePolicy": "Fail",
            "reinvocationPolicy": "IfNeeded",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                # Only namespaces the platform manages, and only once they carry a tier: the
                # selector keeps the CEL expression from ever seeing a namespace without one.
                "namespaceSelector": {
                    "matchLabels": {MANAGED_BY: MANAGER},
                    "matchExpressions": [{"key": TIER_LABEL, "operator": "Exists"}],
                },
            },
            "mutations": [
                {"patchType": "JSONPatch", "jsonPatch": {"expression": PINNING_EXPRESSION}}
            ],
        },
    }
    binding = {
        "apiVersion": ADMISSION_API,
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": PINNING_POLICY_NAME, "labels": labels},
        "spec": {"policyName": PINNING_POLICY_NAME},
    }
    return [policy, binding]


def namespace_labels(spec: BundleSpec) -> dict[str, str]:
    """Return the labels the platform sets on a lease's namespace."""
    labels = {
        MANAGED_BY: MANAGER,
        LEASE_LABEL: spec.lease_id,
        TIER_LABEL: spec.tier_label,
        TEAM_LABEL: spec.team,
    }
    if spec.pod_security is not None:
        labels[POD_SECURITY_ENFORCE_LABEL] = spec.pod_security
        # "latest": the standard as the cluster's own version defines it, kept current.
        labels[POD_SECURITY_VERSION_LABEL] = "latest"
    return labels


def namespace_annotations(spec: BundleSpec) -> dict[str, str]:
    """Return the annotations the platform sets on a lease's namespace."""
    annotations = {
        OWNER_ANNOTATION: spec.requester,
        OWNER_EMAIL_ANNOTATION: spec.email,
        EXPIRES_ANNOTATION: spec.expires_at_rfc3339,
        UNITS_ANNOTATION: str(spec.units),
        PINNING_ANNOTATION: str(spec.pinning),
    }
    if spec.pinning is PinningMechanism.NODE_SELECTOR_ANNOTATIONS:
        annotations[NODE_SELECTOR_ANNOTATION] = f"{TIER_LABEL}={spec.tier_label}"
        if spec.tolerations:
            annotations[DEFAULT_TOLERATIONS_ANNOTATION] = json.dumps(
                [t.as_dict() for t in spec.tolerations], separators=(",", ":"), sort_keys=True
            )
    return annotations


def namespace(spec: BundleSpec) -> dict[str, Any]:
    """Return the Namespace object."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": spec.namespace,
            "labels": namespace_labels(spec),
            "annotations": namespace_annotations(spec),
        },
    }


def resource_quota(spec: BundleSpec) -> dict[str, Any]:
    """Return the ResourceQuota: the leased GPU units, plus CPU, memory and pods per unit."""
    cpu = scale_quantity(spec.cpu_per_unit, spec.units)
    memory = scale_quantity(spec.memory_per_unit, spec.units)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata(spec),
        "spec": {
            "hard": {
                # Extended resources may only be quota'd by requests (no overcommit).
                f"requests.{GPU_RESOURCE}": str(spec.units),
                "requests.cpu": cpu,
                "limits.cpu": cpu,
                "requests.memory": memory,
                "limits.memory": memory,
                "pods": str(spec.pods_per_unit * spec.units),
            }
        },
    }


def critical_priority_quota(spec: BundleSpec) -> dict[str, Any]:
    """Return the ResourceQuota that admits no pod with a critical system priority class."""
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {**_metadata(spec), "name": spec.critical_quota_name},
        "spec": {
            "hard": {"pods": "0"},
            "scopeSelector": {
                "matchExpressions": [
                    {
                        "scopeName": "PriorityClass",
                        "operator": "In",
                        "values": list(CRITICAL_PRIORITY_CLASSES),
                    }
                ]
            },
        },
    }


def limit_range(spec: BundleSpec) -> dict[str, Any]:
    """Return the LimitRange giving containers default requests and limits."""
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata(spec),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": spec.cpu_per_unit, "memory": spec.memory_per_unit},
                    "defaultRequest": {
                        "cpu": scale_quantity(spec.cpu_per_unit, DEFAULT_REQUEST_SHARE),
                        "memory": scale_quantity(spec.memory_per_unit, DEFAULT_REQUEST_SHARE),
                    },
                }
            ]
        },
    }


def network_policy(spec: BundleSpec) -> dict[str, Any]:
    """Return the NetworkPolicy admitting ingress only from the namespace and system namespaces."""
    peers: list[dict[str, Any]] = [{"podSelector": {}}]
    if spec.allow_from_namespaces:
        peers.append(
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": NAMESPACE_NAME_LABEL,
                            "operator": "In",
                            "values": sorted(set(spec.allow_from_namespaces)),
                        }
                    ]
                }
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(spec),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": peers}]},
    }


def role_binding(spec: BundleSpec) -> dict[str, Any]:
    """Return the RoleBinding of the requester's identity to the configured ClusterRole."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(spec),
        "subjects": [{"kind": spec.subject_kind, "name": spec.subject_name, "apiGroup": RBAC_GROUP}],
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": spec.cluster_role},
    }


def _metadata(spec: BundleSpec) -> dict[str, Any]:
    return {
        "name": spec.object_name,
        "namespace": spec.namespace,
        "labels": {MANAGED_BY: MANAGER, LEASE_LABEL: spec.lease_id},
    }
