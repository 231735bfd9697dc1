"""Rendering of the namespace bundle: official schemas, contents, order and the spec's checks."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from fractions import Fraction

import kubernetes_validate
import pytest

from config.policy import PinningMechanism, Policy
from provisioners.bundle import Toleration, render, render_cluster_objects
from provisioners.bundle.render import scale_quantity
from tests.unit.provisioners.conftest import LEASE_ID, make_spec

# 1.36 is the first release with MutatingAdmissionPolicy in admissionregistration.k8s.io/v1;
# node-selector bundles use only long-stable kinds and are checked from 1.34 on as well.
MAP_VERSIONS = ["1.36", "1.37"]
ALL_VERSIONS = ["1.34", "1.35", *MAP_VERSIONS]
MECHANISMS = list(PinningMechanism)


def of_kind(spec, kind: str) -> dict:
    """Return the first rendered object of a kind."""
    return next(o for o in render(spec) if o["kind"] == kind)


def _bundles(policy: Policy):
    for tier in policy.tiers:
        for mechanism in MECHANISMS:
            spec = dataclasses.replace(make_spec(policy, tier=tier.name, units=3), pinning=mechanism)
            yield tier.name, mechanism, spec


def test_every_object_of_every_tier_validates_against_the_official_schemas(policy: Policy) -> None:
    checked = set()
    for tier, mechanism, spec in _bundles(policy):
        versions = MAP_VERSIONS if mechanism is PinningMechanism.MUTATING_ADMISSION_POLICY else ALL_VERSIONS
        for obj in render(spec):
            for version in versions:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    pytest.fail(f"{tier}/{mechanism}: {obj['kind']} invalid for {version}: {exc.message}")
                checked.add((tier, mechanism, obj["kind"]))
    kinds = {k for _, _, k in checked}
    assert kinds == {
        "Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "RoleBinding",
        "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
    }
    assert {t for t, _, _ in checked} == {t.name for t in policy.tiers}


def test_schema_check_catches_a_broken_object(policy: Policy) -> None:
    quota = render(make_spec(policy))[1]
    quota["spec"]["hardd"] = quota["spec"].pop("hard")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(quota, "1.36", strict=True)


def test_objects_come_in_apply_order(policy: Policy) -> None:
    spec = make_spec(policy)
    assert [o["kind"] for o in render(spec)] == [
        "Namespace", "ResourceQuota", "ResourceQuota", "LimitRange", "NetworkPolicy", "RoleBinding",
    ]
    by_policy = dataclasses.replace(spec, pinning=PinningMechanism.MUTATING_ADMISSION_POLICY)
    assert [o["kind"] for o in render(by_policy)][:3] == [
        "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "Namespace",
    ]


def test_namespace_labels_and_annotations(policy: Policy) -> None:
    ns = render(make_spec(policy))[0]
    assert ns["metadata"]["name"] == "ml-alice-1"
    assert ns["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "gpulease",
        "gpulease.io/lease": LEASE_ID,
        "gpulease.io/tier": "h100-1g",
        "gpulease.io/team": "ml-research",
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    annotations = ns["metadata"]["annotations"]
    assert annotations["gpulease.io/owner"] == "U0ALICE"
    assert annotations["gpulease.io/owner-email"] == "alice@example.com"
    assert annotations["gpulease.io/expires-at"] == "2030-01-02T03:04:05Z"
    assert annotations["gpulease.io/pinning"] == "node-selector-annotations"
    assert annotations["scheduler.alpha.kubernetes.io/node-selector"] == "gpulease.io/tier=h100-1g"
    assert "scheduler.alpha.kubernetes.io/defaultTolerations" not in annotations


def test_namespace_enforces_a_pod_security_standard(policy: Policy) -> None:
    spec = make_spec(policy)
    assert spec.pod_security == "baseline"
    restricted = dataclasses.replace(spec, pod_security="restricted")
    labels = of_kind(restricted, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"
    with pytest.raises(ValueError, match="pod_security must be one of privileged, baseline, restricted"):
        dataclasses.replace(spec, pod_security="strict")


def test_the_policy_chooses_the_pod_security_standard_or_none(policy: Policy) -> None:
    for level in ("restricted", None):
        chosen = policy.model_copy(update={"namespaces": policy.namespaces.model_copy(update={"pod_security": level})})
        spec = make_spec(chosen)
        assert spec.pod_security == level
        labels = of_kind(spec, "Namespace")["metadata"]["labels"]
        if level is None:  # the cluster's default applies
            assert not any(key.startswith("pod-security.kubernetes.io/") for key in labels)
        else:
            assert labels["pod-security.kubernetes.io/enforce"] == level


def test_no_pod_may_use_a_critical_priority_class(policy: Policy) -> None:
    spec = make_spec(policy)
    quotas = [o for o in render(spec) if o["kind"] == "ResourceQuota"]
    assert [q["metadata"]["name"] for q in quotas] == [f"gpulease-{LEASE_ID}", f"gpulease-{LEASE_ID}-critical"]
    critical = quotas[1]
    assert critical["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "gpulease", "gpulease.io/lease": LEASE_ID}
    assert critical["spec"] == {
        "hard": {"pods": "0"},
        "scopeSelector": {"matchExpressions": [{
            "scopeName": "PriorityClass", "operator": "In",
            "values": ["system-cluster-critical", "system-node-critical"],
        }]},
    }


def test_expiry_is_rendered_in_utc(policy: Policy) -> None:
    local = datetime.fromisoformat("2030-06-01T12:00:00+02:00")
    ns = render(make_spec(policy, expires_at=local))[0]
    assert ns["metadata"]["annotations"]["gpulease.io/expires-at"] == "2030-06-01T10:00:00Z"


def test_tolerations_become_the_default_tolerations_annotation(policy: Policy) -> None:
    spec = make_spec(
        policy,
        tolerations=(Toleration(key="nvidia.com/gpu", effect="NoSchedule"),
                     Toleration(key="pool", operator="Equal", value="h100")),
    )
    annotations = render(spec)[0]["metadata"]["annotations"]
    assert json.loads(annotations["scheduler.alpha.kubernetes.io/defaultTolerations"]) == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "pool", "operator": "Equal", "value": "h100"},
    ]


def test_admission_policy_pinning_uses_the_cluster_wide_policy_not_annotations(policy: Policy) -> None:
    spec = dataclasses.replace(make_spec(policy), pinning=PinningMechanism.MUTATING_ADMISSION_POLICY)
    objects = render(spec)
    annotations = objects[2]["metadata"]["annotations"]
    assert annotations["gpulease.io/pinning"] == "mutating-admission-policy"
    assert "scheduler.alpha.kubernetes.io/node-selector" not in annotations
    policy_obj, binding = objects[:2]
    assert policy_obj["spec"]["matchConstraints"]["namespaceSelector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "gpulease"
    }
    # A JSON patch: an apply configuration may not set the pod's nodeSelector (an atomic map).
    (mutation,) = policy_obj["spec"]["mutations"]
    assert mutation["patchType"] == "JSONPatch"
    assert 'namespaceObject.metadata.labels["gpulease.io/tier"]' in mutation["jsonPatch"]["expression"]
    assert binding["spec"]["policyName"] == policy_obj["metadata"]["name"]
    # Cluster-wide: nothing lease-specific in them, identical for every lease.
    other = dataclasses.replace(make_spec(policy, lease_id="ffff", namespace="other", tier="h100-full"),
                                pinning=PinningMechanism.MUTATING_ADMISSION_POLICY)
    assert render(other)[:2] == objects[:2] == render_cluster_objects()


def test_tolerations_are_refused_with_admission_policy_pinning(policy: Policy) -> None:
    spec = make_spec(policy)
    with pytest.raises(ValueError, match="node-selector-annotations"):
        dataclasses.replace(spec, pinning=PinningMechanism.MUTATING_ADMISSION_POLICY,
                            tolerations=(Toleration(key="x"),))


@pytest.mark.parametrize(
    ("tier", "units", "cpu", "memory", "pods"),
    [
        ("h100-1g", 3, "12", "72Gi", "30"),
        ("h100-shared", 2, "4", "32Gi", "10"),
        ("h100-full", 1, "16", "128Gi", "10"),
    ],
)
def test_quota_is_the_tier_per_unit_times_units(policy: Policy, tier, units, cpu, memory, pods) -> None:
    quota = render(make_spec(policy, tier=tier, units=units))[1]
    assert quota["spec"]["hard"] == {
        "requests.nvidia.com/gpu": str(units),
        "requests.cpu": cpu,
        "limits.cpu": cpu,
        "requests.memory": memory,
        "limits.memory": memory,
        "pods": pods,
    }


def test_limit_range_defaults_containers_to_one_unit(policy: Policy) -> None:
    limits = of_kind(make_spec(policy, tier="h100-shared"), "LimitRange")["spec"]["limits"]
    assert limits == [{
        "type": "Container",
        "default": {"cpu": "2", "memory": "16Gi"},
        "defaultRequest": {"cpu": "500m", "memory": "4Gi"},
    }]


def test_network_policy_admits_only_the_namespace_and_system_namespaces(policy: Policy) -> None:
    netpol = of_kind(make_spec(policy), "NetworkPolicy")
    assert netpol["spec"]["policyTypes"] == ["Ingress"]
    assert netpol["spec"]["podSelector"] == {}
    assert netpol["spec"]["ingress"] == [{"from": [
        {"podSelector": {}},
        {"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["kube-system", "monitoring"]}
        ]}},
    ]}]
    alone = dataclasses.replace(make_spec(policy), allow_from_namespaces=())
    assert of_kind(alone, "NetworkPolicy")["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_role_binding_binds_the_requester_identity(policy: Policy) -> None:
    binding = of_kind(make_spec(policy), "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "User", "name": "oidc:alice@example.com", "apiGroup": "rbac.authorization.k8s.io"}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"
    }


def test_identity_template_placeholders(policy: Policy) -> None:
    identity = policy.identity.model_copy(
        update={"subject_kind": "Group", "name_template": "{team}:{username}:{slack_user}",
                "cluster_role": "view"}
    )
    spec = make_spec(policy.model_copy(update={"identity": identity}))
    assert (spec.subject_kind, spec.subject_name, spec.cluster_role) == (
        "Group", "ml-research:alice:U0ALICE", "view",
    )


def test_object_names_and_labels_derive_from_the_lease(policy: Policy) -> None:
    for obj in render(make_spec(policy))[1:]:
        assert obj["metadata"]["name"] in (f"gpulease-{LEASE_ID}", f"gpulease-{LEASE_ID}-critical")
        assert obj["metadata"]["namespace"] == "ml-alice-1"
        assert obj["metadata"]["labels"]["gpulease.io/lease"] == LEASE_ID


def test_rendering_is_deterministic(policy: Policy) -> None:
    assert render(make_spec(policy)) == render(make_spec(policy))


def test_cluster_pinning_comes_from_the_policy(policy: Policy) -> None:
    clusters = [policy.clusters[0].model_copy(update={"pinning": PinningMechanism.MUTATING_ADMISSION_POLICY})]
    spec = make_spec(policy.model_copy(update={"clusters": clusters}))
    assert spec.pinning is PinningMechanism.MUTATING_ADMISSION_POLICY
    assert make_spec(policy).pinning is PinningMechanism.NODE_SELECTOR_ANNOTATIONS


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"namespace": "Bad_Name"}, "DNS-1123"),
        ({"lease_id": "x" * 60}, "lease id"),
        ({"lease_id": "UPPER"}, "lease id"),
        ({"units": 0}, "units"),
        ({"expires_at": datetime(2030, 1, 1)}, "timezone"),
    ],
)
def test_spec_refuses_values_that_cannot_be_rendered(policy: Policy, overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_spec(policy, **overrides)


def test_spec_from_refuses_unknown_tier_and_cluster(policy: Policy) -> None:
    with pytest.raises(KeyError, match="unknown tier"):
        make_spec(policy, tier="nope")
    with pytest.raises(KeyError, match="unknown cluster"):
        make_spec(policy, cluster="nope")


@pytest.mark.parametrize(
    ("quantity", "factor", "expected"),
    [
        ("4", 3, "12"), ("24Gi", 2, "48Gi"), ("500m", 3, "1500m"), ("2", Fraction(1, 4), "500m"),
        ("10Gi", Fraction(1, 4), "2560Mi"), ("1.5", 2, "3"), ("0.5", 1, "500m"),
        ("1k", Fraction(1, 3), "333334m"),
        ("1m", Fraction(1, 3), "1m"),
    ],
)
def test_scale_quantity_is_exact(quantity: str, factor, expected: str) -> None:
    assert scale_quantity(quantity, factor) == expected


def test_scale_quantity_refuses_unknown_forms() -> None:
    with pytest.raises(ValueError, match="unsupported quantity"):
        scale_quantity("4 cores", 2)
