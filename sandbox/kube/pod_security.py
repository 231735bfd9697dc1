"""PodSecurity admission: the Pod Security Standards (`baseline`, `restricted`) enforced per
namespace by its `pod-security.kubernetes.io/*` labels, as kube-apiserver has done by default
since 1.25 (k8s.io/pod-security-admission, with its default configuration: no exemptions,
every mode `privileged:latest` unless a namespace label says otherwise).

What it does, as the real plugin does it:

- Pod CREATE, and pod UPDATE when it is significant (an image, the container count or a
  seccomp annotation changes), in a namespace whose `enforce` level is baseline or restricted:
  every failing check is reported at once, 403 Forbidden,
  `pods "NAME" is forbidden: violates PodSecurity "baseline:latest": host namespaces
  (hostNetwork=true), hostPath volumes (volume "v"), privileged (container "c" must not set
  securityContext.privileged=true)`. Check order, reasons and detail wording follow
  policy/check_*.go; checks run in ID order, baseline IDs first (registry.go), and a restricted
  check replaces the baseline check it overrides (restrictedVolumes for hostPathVolumes,
  capabilities_restricted, seccompProfile_restricted, procMount_restricted). The `status`
  subresource is never checked. Dry-run requests are checked like any other.
- Namespace CREATE/UPDATE: an invalid level or version label is 422 Invalid
  (`Namespace "x" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid
  value: "strict": must be one of privileged, baseline, restricted`); an update is refused only
  when it changes the errors. A pod in a namespace whose enforce label is nonetheless invalid
  is held to `restricted` (the real plugin fails closed; an invalid version means latest).
- A namespace without the `enforce` label is `privileged`: anything goes.

Deliberately not done:

- Policy versions: `enforce-version` is validated and echoed in messages (`baseline:v1.30`) as
  the real server does, but every version is evaluated with the latest checks, those of the
  server's own version (v1.36: `/version`). The checks' older variants (seccomp annotations
  before 1.19, the smaller safe-sysctl sets before 1.32, no hostProbesAndHostLifecycle before
  1.34, ...) are not modelled.
- `warn` and `audit`: their labels are validated but have no effect. The real server sends
  `warn` violations as `Warning: 299` headers ("would violate PodSecurity ...") and lists
  existing violating pods when an enforce label is raised; the admission chain here has no
  way to hand warnings to the response, so they are left out rather than half done.
- Pod controllers (Deployment, Job, ...): the stand-in serves none.
- Exemptions (usernames, runtime classes, namespaces) from an admission configuration file:
  the default configuration has none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .admission import Attributes
from .errors import forbidden, invalid
from .store import Store

PREFIX = "pod-security.kubernetes.io/"
ENFORCE = PREFIX + "enforce"
ENFORCE_VERSION = PREFIX + "enforce-version"
AUDIT = PREFIX + "audit"
AUDIT_VERSION = PREFIX + "audit-version"
WARN = PREFIX + "warn"
WARN_VERSION = PREFIX + "warn-version"
LEVEL_LABELS = (ENFORCE, AUDIT, WARN)
VERSION_LABELS = (ENFORCE_VERSION, AUDIT_VERSION, WARN_VERSION)

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
LATEST = "latest"
_VERSION = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")
LEVEL_ERROR = f"must be one of {', '.join(LEVELS)}"
VERSION_ERROR = 'must be "latest" or "v1.x"'

# Pod subresources the real plugin lets through unchecked (admission.go).
IGNORED_POD_SUBRESOURCES = {"exec", "attach", "binding", "eviction", "log", "portforward", "proxy", "status"}
NS_KEY = ("", "namespaces")

SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


# -- namespace policy ------------------------------------------------------------------------
@dataclass(frozen=True)
class LevelVersion:
    level: str
    version: str  # "latest" or "v1.N"

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"


def parse_level(value: str) -> tuple[str, str | None]:
    """Return (level, error); an invalid level is evaluated as restricted."""
    return (value, None) if value in LEVELS else (RESTRICTED, LEVEL_ERROR)


def parse_version(value: str) -> tuple[str, str | None]:
    """Return (version, error); an invalid version is evaluated as latest."""
    if value == LATEST or _VERSION.match(value):
        return value, None
    return LATEST, VERSION_ERROR


def label_causes(labels: dict[str, str]) -> list[dict[str, str]]:
    """Return the 422 causes of invalid PodSecurity labels, in the real server's order."""
    causes = []
    for level_label, version_label in zip(LEVEL_LABELS, VERSION_LABELS, strict=True):
        for label, parse in ((level_label, parse_level), (version_label, parse_version)):
            if label not in labels:
                continue
            value = str(labels[label])
            _, error = parse(value)
            if error:
                causes.append(
                    {
                        "field": f"metadata.labels[{label}]",
                        "type": "Invalid value",
                        "value": json.dumps(value),
                        "message": error,
                    }
                )
    return causes


def enforce_policy(labels: dict[str, str]) -> LevelVersion:
    """Return the enforce level and version a namespace's labels select."""
    level, _ = parse_level(str(labels[ENFORCE])) if ENFORCE in labels else (PRIVILEGED, None)
    version, _ = parse_version(str(labels[ENFORCE_VERSION])) if ENFORCE_VERSION in labels else (LATEST, None)
    return LevelVersion(level, version)


# -- helpers shared by the checks ------------------------------------------------------------
Result = tuple[str, str]  # (forbidden reason, forbidden detail)
CheckFn = Callable[[dict[str, Any], dict[str, Any]], Result | None]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """initContainers, containers, then ephemeralContainers (visitor.go)."""
    found = []
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        found += [c for c in _list(spec.get(kind)) if isinstance(c, dict)]
    return found


def _name(container: dict[str, Any]) -> str:
    return str(container.get("name") or "")


def _sc(obj: dict[str, Any]) -> dict[str, Any]:
    return _dict(obj.get("securityContext"))


def _join_quote(items: Iterable[str]) -> str:
    items = list(items)
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _containers_phrase(names: list[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_join_quote(names)}"


def _setters(pod: bool, containers: list[str]) -> str:
    """`pod`, `container "a"`, or `pod and containers "a", "b"`."""
    parts = ["pod"] if pod else []
    if containers:
        parts.append(_containers_phrase(containers))
    return " and ".join(parts)


def _go_quote(text: str) -> str:
    """Quote a string as Go's %q does (printable characters kept, the rest escaped)."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _windows(spec: dict[str, Any]) -> bool:
    return _dict(spec.get("os")).get("name") == "windows"


def _user_namespaced(spec: dict[str, Any]) -> bool:
    # A pod in its own user namespace (hostUsers: false) is relaxed for some checks in 1.35+.
    return spec.get("hostUsers") is False


def _is_zero(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


# -- baseline checks -------------------------------------------------------------------------
def app_armor_profile(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    allowed = ("RuntimeDefault", "Localhost")
    setters: list[str] = []
    values: set[str] = set()
    pod_profile = _sc(spec).get("appArmorProfile")
    if isinstance(pod_profile, dict) and pod_profile.get("type") not in allowed:
        setters.append("pod")
        values.add(str(pod_profile.get("type") or ""))
    bad = []
    for c in _containers(spec):
        profile = _sc(c).get("appArmorProfile")
        if isinstance(profile, dict) and profile.get("type") not in allowed:
            bad.append(_name(c))
            values.add(str(profile.get("type") or ""))
    if bad:
        setters.append(_containers_phrase(bad))
    annotations = []
    for key, value in _dict(meta.get("annotations")).items():
        text = str(value or "")
        if key.startswith(APPARMOR_PREFIX) and not (
            text in ("", "runtime/default") or text.startswith("localhost/")
        ):
            annotations.append(f"{key}={_go_quote(text)}")
    bad_values = sorted(values) + sorted(annotations)
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return (
        _plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad_values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(bad_values)}",
    )


BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def capabilities_baseline(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad, extra = [], set()
    for c in _containers(spec):
        added = [str(cap) for cap in _list(_dict(_sc(c).get("capabilities")).get("add"))]
        beyond = [cap for cap in added if cap not in BASELINE_CAPABILITIES]
        if beyond:
            bad.append(_name(c))
            extra.update(beyond)
    if not bad:
        return None
    return (
        "non-default capabilities",
        f"{_containers_phrase(bad)} must not include {_join_quote(sorted(extra))} in securityContext.capabilities.add",
    )


def host_namespaces(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    shared = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field) is True]
    return ("host namespaces", ", ".join(shared)) if shared else None


def host_path_volumes(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    names = [
        str(v.get("name") or "")
        for v in _list(spec.get("volumes"))
        if isinstance(v, dict) and v.get("hostPath") is not None
    ]
    if not names:
        return None
    return "hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)}"


def host_ports(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad, ports = [], set()
    for c in _containers(spec):
        used = [p.get("hostPort") for p in _list(c.get("ports")) if isinstance(p, dict)]
        used = [str(port) for port in used if port not in (None, 0)]
        if used:
            bad.append(_name(c))
            ports.update(used)
    if not bad:
        return None
    listed = sorted(ports)  # as strings, like sets.String.List()
    return (
        "hostPort",
        f"{_containers_phrase(bad)} {_plural('uses', 'use', len(bad))} "
        f"{_plural('hostPort', 'hostPorts', len(listed))} {', '.join(listed)}",
    )


def _handler_hosts(handler: Any) -> list[str]:
    hosts = []
    for kind in ("httpGet", "tcpSocket"):
        host = _dict(_dict(handler).get(kind)).get("host")
        if host:
            hosts.append(str(host))
    return hosts


def host_probes_and_host_lifecycle(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad, hosts = set(), set()
    for c in _containers(spec):
        found = [
            h
            for probe in ("livenessProbe", "readinessProbe", "startupProbe")
            for h in _handler_hosts(c.get(probe))
        ]
        lifecycle = _dict(c.get("lifecycle"))
        found += [h for hook in ("postStart", "preStop") for h in _handler_hosts(lifecycle.get(hook))]
        if found:
            bad.add(_name(c))
            hosts.update(found)
    if not bad:
        return None
    return (
        "probe or lifecycle host",
        f"{_containers_phrase(sorted(bad))} {_plural('uses', 'use', len(bad))} "
        f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} {_join_quote(sorted(hosts))}",
    )


def privileged(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad = [_name(c) for c in _containers(spec) if _sc(c).get("privileged") is True]
    if not bad:
        return None
    return "privileged", f"{_containers_phrase(bad)} must not set securityContext.privileged=true"


def _proc_mount(spec: dict[str, Any]) -> Result | None:
    bad, types = [], set()
    for c in _containers(spec):
        mount = _sc(c).get("procMount")
        if mount is not None and mount != "Default":
            bad.append(_name(c))
            types.add(str(mount))
    if not bad:
        return None
    return (
        "procMount",
        f"{_containers_phrase(bad)} must not set securityContext.procMount to {_join_quote(sorted(types))}",
    )


def proc_mount_baseline(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    return None if _user_namespaced(spec) else _proc_mount(spec)


def proc_mount_restricted(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    return _proc_mount(spec)


SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})


def se_linux_options(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad_types: set[str] = set()
    flags = {"user": False, "role": False}

    def valid(options: dict[str, Any]) -> bool:
        ok = True
        kind = str(options.get("type") or "")
        if kind not in SELINUX_TYPES:
            ok = False
            bad_types.add(kind)
        for field in ("user", "role"):
            if options.get(field):
                ok = False
                flags[field] = True
        return ok

    pod_options = _sc(spec).get("seLinuxOptions")
    pod_bad = isinstance(pod_options, dict) and not valid(pod_options)
    bad = []
    for c in _containers(spec):
        options = _sc(c).get("seLinuxOptions")
        if isinstance(options, dict) and not valid(options):
            bad.append(_name(c))
    if not pod_bad and not bad:
        return None
    data = []
    if bad_types:
        data.append(f"{_plural('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
    data += [f"{field} may not be set" for field in ("user", "role") if flags[field]]
    return (
        "seLinuxOptions",
        f"{_setters(pod_bad, bad)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}",
    )


def _seccomp(spec: dict[str, Any], *, required: bool) -> Result | None:
    valid = ("RuntimeDefault", "Localhost")
    values: set[str] = set()
    pod_bad = pod_set = False
    pod_profile = _sc(spec).get("seccompProfile")
    if isinstance(pod_profile, dict):
        if pod_profile.get("type") in valid:
            pod_set = True
        else:
            pod_bad = True
            values.add(str(pod_profile.get("type") or ""))
    explicit, implicit = [], []
    for c in _containers(spec):
        profile = _sc(c).get("seccompProfile")
        if isinstance(profile, dict):
            if profile.get("type") not in valid:
                explicit.append(_name(c))
                values.add(str(profile.get("type") or ""))
        elif not pod_set:
            implicit.append(_name(c))
    if pod_bad or explicit:
        return (
            "seccompProfile",
            f"{_setters(pod_bad, explicit)} must not set securityContext.seccompProfile.type to "
            f"{_join_quote(sorted(values))}",
        )
    if required and implicit:
        return (
            "seccompProfile",
            f"pod or {_containers_phrase(implicit)} must set securityContext.seccompProfile.type to "
            '"RuntimeDefault" or "Localhost"',
        )
    return None


def seccomp_profile_baseline(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    return _seccomp(spec, required=False)


SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",  # 1.27
        "net.ipv4.tcp_keepalive_time",  # 1.29
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",  # 1.32
        "net.ipv4.tcp_wmem",
    }
)


def sysctls(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    names = [str(_dict(s).get("name") or "") for s in _list(_sc(spec).get("sysctls"))]
    bad = [name for name in names if name not in SAFE_SYSCTLS]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


def windows_host_process(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    def host_process(sc: dict[str, Any]) -> bool:
        return _dict(sc.get("windowsOptions")).get("hostProcess") is True

    bad = [_name(c) for c in _containers(spec) if host_process(_sc(c))]
    pod_bad = host_process(_sc(spec))
    if not pod_bad and not bad:
        return None
    return (
        "hostProcess",
        f"{_setters(pod_bad, bad)} must not set securityContext.windowsOptions.hostProcess=true",
    )


# -- restricted checks -----------------------------------------------------------------------
def allow_privilege_escalation(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    if _windows(spec):
        return None
    bad = [_name(c) for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    return (
        "allowPrivilegeEscalation != false",
        f"{_containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false",
    )


def capabilities_restricted(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    if _windows(spec):
        return None
    missing_drop, adding, extra = [], [], set()
    for c in _containers(spec):
        caps = _sc(c).get("capabilities")
        if not isinstance(caps, dict):
            missing_drop.append(_name(c))
            continue
        if "ALL" not in _list(caps.get("drop")):
            missing_drop.append(_name(c))
        beyond = [str(cap) for cap in _list(caps.get("add")) if cap != "NET_BIND_SERVICE"]
        if beyond:
            adding.append(_name(c))
            extra.update(beyond)
    details = []
    if missing_drop:
        details.append(
            f'{_containers_phrase(missing_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_containers_phrase(adding)} must not include {_join_quote(sorted(extra))} in securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


ALLOWED_VOLUME_SOURCES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
RESTRICTED_VOLUME_SOURCES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
)


def restricted_volumes(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    bad, types = [], set()
    for volume in _list(spec.get("volumes")):
        if not isinstance(volume, dict) or any(volume.get(s) is not None for s in ALLOWED_VOLUME_SOURCES):
            continue
        bad.append(str(volume.get("name") or ""))
        types.add(next((s for s in RESTRICTED_VOLUME_SOURCES if volume.get(s) is not None), "unknown"))
    if not bad:
        return None
    return (
        "restricted volume types",
        f"{_plural('volume', 'volumes', len(bad))} {_join_quote(bad)} {_plural('uses', 'use', len(bad))} "
        f"{_plural('restricted volume type', 'restricted volume types', len(types))} {_join_quote(sorted(types))}",
    )


def run_as_non_root(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    if _user_namespaced(spec):
        return None
    pod_value = _sc(spec).get("runAsNonRoot")
    pod_bad, pod_non_root = pod_value is False, pod_value is True
    explicit, implicit = [], []
    for c in _containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(_name(c))
        elif not pod_non_root:
            implicit.append(_name(c))
    if pod_bad or explicit:
        return (
            "runAsNonRoot != true",
            f"{_setters(pod_bad, explicit)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return (
            "runAsNonRoot != true",
            f"pod or {_containers_phrase(implicit)} must set securityContext.runAsNonRoot=true",
        )
    return None


def run_as_user(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    if _user_namespaced(spec):
        return None
    pod_bad = _is_zero(_sc(spec).get("runAsUser"))
    bad = [_name(c) for c in _containers(spec) if _is_zero(_sc(c).get("runAsUser"))]
    if not pod_bad and not bad:
        return None
    return "runAsUser=0", f"{_setters(pod_bad, bad)} must not set runAsUser=0"


def seccomp_profile_restricted(meta: dict[str, Any], spec: dict[str, Any]) -> Result | None:
    return None if _windows(spec) else _seccomp(spec, required=True)


# -- the registry ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    id: str
    level: str
    fn: CheckFn
    overrides: tuple[str, ...] = ()


# The latest version of each check in k8s.io/pod-security-admission (v1.36).
CHECKS: tuple[Check, ...] = (
    Check("appArmorProfile", BASELINE, app_armor_profile),
    Check("capabilities_baseline", BASELINE, capabilities_baseline),
    Check("hostNamespaces", BASELINE, host_namespaces),
    Check("hostPathVolumes", BASELINE, host_path_volumes),
    Check("hostPorts", BASELINE, host_ports),
    Check("hostProbesAndHostLifecycle", BASELINE, host_probes_and_host_lifecycle),
    Check("privileged", BASELINE, privileged),
    Check("procMount", BASELINE, proc_mount_baseline),
    Check("seLinuxOptions", BASELINE, se_linux_options),
    Check("seccompProfile_baseline", BASELINE, seccomp_profile_baseline),
    Check("sysctls", BASELINE, sysctls),
    Check("windowsHostProcess", BASELINE, windows_host_process),
    Check("allowPrivilegeEscalation", RESTRICTED, allow_privilege_escalation),
    Check("capabilities_restricted", RESTRICTED, capabilities_restricted, ("capabilities_baseline",)),
    Check("procMount_restricted", RESTRICTED, proc_mount_restricted, ("procMount",)),
    Check("restrictedVolumes", RESTRICTED, restricted_volumes, ("hostPathVolumes",)),
    Check("runAsNonRoot", RESTRICTED, run_as_non_root),
    Check("runAsUser", RESTRICTED, run_as_user),
    Check("seccompProfile_restricted", RESTRICTED, seccomp_profile_restricted, ("seccompProfile_baseline",)),
)


def checks_for(level: str) -> list[Check]:
    """Return the checks of a level in evaluation order: baseline IDs sorted, then restricted
    IDs sorted, restricted overrides dropping the baseline checks they replace."""
    baseline = sorted((c for c in CHECKS if c.level == BASELINE), key=lambda c: c.id)
    if level == BASELINE:
        return baseline
    if level != RESTRICTED:
        return []
    restricted = sorted((c for c in CHECKS if c.level == RESTRICTED), key=lambda c: c.id)
    overridden = {o for c in restricted for o in c.overrides}
    return [c for c in baseline if c.id not in overridden] + restricted


def evaluate(level: str, meta: dict[str, Any], spec: dict[str, Any]) -> list[Result]:
    """Return the failing checks' (reason, detail), in order."""
    results = (check.fn(_dict(meta), _dict(spec)) for check in checks_for(level))
    return [r for r in results if r is not None]


def forbidden_detail(results: list[Result]) -> str:
    """`reason (detail), reason (detail)` as AggregateCheckResult.ForbiddenDetail()."""
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in results)


def significant_pod_update(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether a pod update is evaluated at all (admission.go isSignificantPodUpdate)."""
    new_ann, old_ann = (
        _dict(_dict(new.get("metadata")).get("annotations")),
        _dict(_dict(old.get("metadata")).get("annotations")),
    )
    new_spec, old_spec = _dict(new.get("spec")), _dict(old.get("spec"))
    if new_ann.get(SECCOMP_POD_ANNOTATION) != old_ann.get(SECCOMP_POD_ANNOTATION):
        return True

    def changed(c: dict[str, Any], o: dict[str, Any]) -> bool:
        key = SECCOMP_CONTAINER_PREFIX + _name(c)
        return c.get("image") != o.get("image") or new_ann.get(key) != old_ann.get(key)

    for kind in ("containers", "initContainers"):
        cs, olds = _list(new_spec.get(kind)), _list(old_spec.get(kind))
        if len(cs) != len(olds):
            return True
        if any(changed(_dict(c), _dict(o)) for c, o in zip(cs, olds, strict=True)):
            return True
    old_ephemeral = {_name(_dict(o)): _dict(o) for o in _list(old_spec.get("ephemeralContainers"))}
    for c in _list(new_spec.get("ephemeralContainers")):
        c = _dict(c)
        if _name(c) not in old_ephemeral or changed(c, old_ephemeral[_name(c)]):
            return True
    return False


# -- the admission plugin --------------------------------------------------------------------
class PodSecurity:
    """The PodSecurity validating admission plugin (enforce mode)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def admit(self, a: Attributes) -> None:
        return None

    def validate(self, a: Attributes) -> None:
        if a.rt.group != "":
            return
        if a.rt.plural == "namespaces":
            self._validate_namespace(a)
        elif a.rt.plural == "pods":
            self._validate_pod(a)

    def _validate_namespace(self, a: Attributes) -> None:
        if a.subresource or a.operation not in ("CREATE", "UPDATE") or a.obj is None:
            return
        causes = label_causes(_labels(a.obj))
        if not causes:
            return
        if a.operation == "UPDATE" and causes == label_causes(_labels(a.old or {})):
            return  # unchanged errors do not block unrelated updates
        raise invalid("Namespace", a.name, causes)

    def _validate_pod(self, a: Attributes) -> None:
        if a.subresource in IGNORED_POD_SUBRESOURCES or a.operation not in ("CREATE", "UPDATE"):
            return
        if a.obj is None:
            return
        namespace = self.store.get(NS_KEY, "", a.namespace) or {}
        policy = enforce_policy(_labels(namespace))
        if policy.level == PRIVILEGED:
            return
        if a.operation == "UPDATE" and not significant_pod_update(a.obj, a.old or {}):
            return
        results = evaluate(policy.level, _dict(a.obj.get("metadata")), _dict(a.obj.get("spec")))
        if results:
            raise forbidden("pods", a.name, f'violates PodSecurity "{policy}": {forbidden_detail(results)}')


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return _dict(_dict(obj.get("metadata")).get("labels"))
