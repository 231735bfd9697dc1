"""What a lease's namespace bundle is made of: a frozen, self-contained description.

`BundleSpec` holds every value the rendered objects depend on, so rendering is a pure function
of it and needs neither the store nor the policy. `spec_from` builds one from the policy and
the lease's own values. A plain dataclass on purpose: the bundle does not depend on the ORM.

Part of provisioners.bundle; imported by provisioners and workflows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from config.policy import PerUnit, PinningMechanism, Policy

# DNS-1123 label: namespace names, and (being also a valid label value) lease ids.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
# Object names are "gpulease-<lease id>", which must stay a DNS label of at most 63 chars.
MAX_LEASE_ID = 63 - len("gpulease-")
# Pod Security Standards a namespace can enforce (pod-security.kubernetes.io/enforce).
POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")
# baseline refuses host namespaces, privileged containers and hostPath volumes, the ways out
# of a pod onto a node shared with other tenants, and still runs ordinary GPU images.
DEFAULT_POD_SECURITY = "baseline"


@dataclass(frozen=True)
class Toleration:
    """A toleration pods in the namespace get by default (PodTolerationRestriction)."""

    key: str
    operator: str = "Exists"
    value: str | None = None
    effect: str | None = None

    def as_dict(self) -> dict[str, str]:
        """Return the toleration as it appears in a pod spec."""
        out = {"key": self.key, "operator": self.operator}
        if self.value is not None:
            out["value"] = self.value
        if self.effect is not None:
            out["effect"] = self.effect
        return out


@dataclass(frozen=True)
class BundleSpec:
    """Everything the objects of one lease's namespace are rendered from."""

    lease_id: str
    namespace: str
    cluster: str
    tier: str
    team: str
    requester: str  # Slack user id
    email: str
    units: int
    expires_at: datetime
    cpu_per_unit: str
    memory_per_unit: str
    pods_per_unit: int
    subject_kind: str  # User or Group
    subject_name: str
    cluster_role: str
    allow_from_namespaces: tuple[str, ...]
    pinning: PinningMechanism
    tier_label: str  # value of gpulease.io/tier on the tier's nodes
    tolerations: tuple[Toleration, ...] = field(default=())
    # Pod Security Standard the namespace enforces; None: no label, the cluster's default applies.
    pod_security: str | None = DEFAULT_POD_SECURITY

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.namespace) or len(self.namespace) > 63:
            raise ValueError(f"namespace {self.namespace!r} is not a DNS-1123 label")
        if not _DNS_LABEL.match(self.lease_id) or len(self.lease_id) > MAX_LEASE_ID:
            raise ValueError(
                f"lease id {self.lease_id!r} must be lowercase letters, digits and '-', "
                f"at most {MAX_LEASE_ID} characters (it names objects and labels them)"
            )
        for name, value in (("tier", self.tier_label), ("team", self.team), ("cluster", self.cluster)):
            if not _LABEL_VALUE.match(value) or len(value) > 63:
                raise ValueError(f"{name} {value!r} is not a valid label value")
        if self.units < 1:
            raise ValueError(f"units must be at least 1, not {self.units}")
        if self.expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        if self.tolerations and self.pinning is not PinningMechanism.NODE_SELECTOR_ANNOTATIONS:
            # Only PodTolerationRestriction reads per-namespace default tolerations; the
            # cluster-wide admission policy is keyed on the tier label alone.
            raise ValueError("tolerations need the node-selector-annotations pinning mechanism")
        if self.subject_kind not in ("User", "Group"):
            raise ValueError(f"subject_kind must be User or Group, not {self.subject_kind!r}")
        if self.pod_security is not None and self.pod_security not in POD_SECURITY_LEVELS:
            raise ValueError(
                f"pod_security must be one of {', '.join(POD_SECURITY_LEVELS)}, not {self.pod_security!r}"
            )

    @property
    def object_name(self) -> str:
        """Return the name of every namespaced object of the bundle (derived from the lease)."""
        return f"gpulease-{self.lease_id}"

    @property
    def critical_quota_name(self) -> str:
        """Return the name of the quota that keeps critical priority classes out."""
        return f"{self.object_name}-critical"

    @property
    def expires_at_rfc3339(self) -> str:
        """Return the expiry as RFC 3339 in UTC with second precision."""
        return self.expires_at.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_from(
    policy: Policy,
    *,
    lease_id: str,
    namespace: str,
    cluster: str,
    tier: str,
    team: str,
    requester: str,
    email: str,
    units: int,
    expires_at: datetime,
    tolerations: tuple[Toleration, ...] = (),
    for_removal: bool = False,
) -> BundleSpec:
    """Build the bundle spec of a lease from the policy (tier sizes, identity, network, pinning).

    A tier the policy does not have raises KeyError, unless the spec is `for_removal`: deleting,
    exporting or re-labelling a namespace needs only its name and the lease's, and a lease whose
    tier was taken out of the policy while it ran must still be reclaimed; its sizes are then
    the defaults, which none of these reads (the namespace's own labels and annotations do not
    depend on them)."""
    per_unit = _per_unit(policy, tier, for_removal=for_removal)
    identity = policy.identity
    subject = identity.name_template.format(
        email=email, username=email.split("@", 1)[0], slack_user=requester, team=team
    )
    return BundleSpec(
        lease_id=lease_id,
        namespace=namespace,
        cluster=policy.cluster(cluster).name,
        tier=tier,
        team=team,
        requester=requester,
        email=email,
        units=units,
        expires_at=expires_at,
        cpu_per_unit=per_unit.cpu,
        memory_per_unit=per_unit.memory,
        pods_per_unit=per_unit.pods,
        subject_kind=identity.subject_kind,
        subject_name=subject,
        cluster_role=identity.cluster_role,
        allow_from_namespaces=tuple(policy.network.allow_from_namespaces),
        pinning=policy.pinning_for(cluster),
        tier_label=tier,
        tolerations=tuple(tolerations),
        pod_security=policy.namespaces.pod_security,
    )


def _per_unit(policy: Policy, tier: str, *, for_removal: bool) -> PerUnit:
    """Return the tier's per-unit sizes; the defaults for a removal when the policy lost the tier."""
    try:
        return policy.tier(tier).per_unit
    except KeyError:
        if not for_removal:
            raise
        return PerUnit()
