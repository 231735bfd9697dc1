"""The Kubernetes manifests as `kubectl kustomize` renders them: valid against the official
schemas (kubernetes-validate, strict), secure pods, working probes and commands, the policy,
settings and secrets wired to names that exist, and what each overlay promises."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from config.settings import EXAMPLE_POLICY, Settings
from gpulease.cli_serve import LIVENESS_PATH
from gpulease.wiring import load_checked_policy
from tests.integration.deploy.commands import check_gpulease_args, check_probe_args
from tests.integration.deploy.conftest import DEPLOY, OVERLAYS, TARGETS, by_kind, documents

# The oldest Kubernetes the manifests are meant for, and the newest kubernetes-validate knows.
VERSIONS = ("1.32.0", latest_version())
COMPONENTS = ("bot", "worker", "beat")


def pods(target: str) -> dict[str, dict[str, Any]]:
    """Return each Deployment's pod spec by component (bot, worker, beat)."""
    return {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]["spec"]
        for d in by_kind(target, "Deployment").values()
    }


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def generated(target: str, kind: str, base_name: str) -> dict[str, Any]:
    """Return the generated ConfigMap or Secret whose name is `base_name` plus kustomize's hash."""
    [obj] = [o for name, o in by_kind(target, kind).items() if name.rsplit("-", 1)[0] == base_name]
    return obj


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_rendered_objects_validate_strictly(target: str, version: str) -> None:
    failures = []
    for obj in documents(target):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not failures, "\n".join(failures)


def test_strict_validation_refuses_an_unknown_field() -> None:
    """The check above can fail: a misspelt field is an error in strict mode."""
    deployment = copy.deepcopy(next(iter(by_kind("base", "Deployment").values())))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"exec": {"command": ["true"]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("target", TARGETS)
def test_every_pod_runs_restricted(target: str) -> None:
    namespace = by_kind(target, "Namespace")["gpulease"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for component, pod in pods(target).items():
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] >= 1000, component
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, component
        for c in containers(pod):
            where = f"{component}/{c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
            assert "memory" in c["resources"]["limits"], where
            assert c["image"].startswith("ghcr.io/example/gpulease:"), where


@pytest.mark.parametrize("target", TARGETS)
def test_beat_is_a_single_replica_replaced_not_rolled(target: str) -> None:
    beat = next(d for d in by_kind(target, "Deployment").values() if d["metadata"]["name"].endswith("beat"))
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert not [p for p in by_kind(target, "PodDisruptionBudget").values()
                if p["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component") == "beat"]


@pytest.mark.parametrize("target", TARGETS)
def test_probes_and_commands_are_what_the_programs_accept(target: str) -> None:
    specs = pods(target)
    bot = specs["bot"]["containers"][0]
    assert bot["args"] == ["serve", "--host", "0.0.0.0", "--port", "3000"]
    assert [p["containerPort"] for p in bot["ports"] if p["name"] == "http"] == [3000]
    assert bot["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert bot["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # Liveness on the route that touches neither store nor Slack (/metrics queries the store).
    assert bot["livenessProbe"]["httpGet"] == {"path": LIVENESS_PATH, "port": "http"}
    for component in ("worker", "beat"):
        main = specs[component]["containers"][0]
        assert main["args"][0] == component
        for kind in ("startupProbe", "livenessProbe"):
            command = main[kind]["exec"]["command"]
            assert command[0] == "gpulease-probe", (component, kind)
            check_probe_args(command[1:])
    beat = specs["beat"]["containers"][0]
    schedule = beat["args"][beat["args"].index("--schedule-file") + 1]
    assert beat["livenessProbe"]["exec"]["command"][2] == schedule, "the probe watches another file"
    for pod in specs.values():
        for c in containers(pod):
            check_gpulease_args(c["args"])
    assert [c["args"] for c in specs["beat"]["initContainers"]] == [["db", "upgrade"]]
    for component in ("bot", "worker"):
        assert [c["args"] for c in specs[component]["initContainers"]] == [["db", "current"]]


@pytest.mark.parametrize("target", TARGETS)
def test_written_paths_are_volumes(target: str) -> None:
    """A read-only root filesystem: everything written must be a mounted volume."""
    for component, pod in pods(target).items():
        main = pod["containers"][0]
        mounts = {m["mountPath"]: m for m in main.get("volumeMounts", [])}
        assert "/tmp" in mounts and not mounts["/tmp"].get("readOnly"), component
        env = {e["name"]: e.get("value") for e in main.get("env", [])}
        written = [Path(main["args"][main["args"].index("--schedule-file") + 1]).parent.as_posix()] \
            if "--schedule-file" in main["args"] else []
        written += [env["PROMETHEUS_MULTIPROC_DIR"]] if env.get("PROMETHEUS_MULTIPROC_DIR") else []
        for path in written:
            assert path in mounts and not mounts[path].get("readOnly"), (component, path)


@pytest.mark.parametrize("target", TARGETS)
def test_references_resolve_and_settings_are_known(target: str) -> None:
    settings = generated(target, "ConfigMap", "gpulease-settings")
    secret = generated(target, "Secret", "gpulease-secrets")
    policy = generated(target, "ConfigMap", "gpulease-policy")
    configmaps, secrets = set(by_kind(target, "ConfigMap")), set(by_kind(target, "Secret"))
    known = {f"GPULEASE_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted((set(settings["data"]) | set(secret["data"])) - known)
    assert not unknown, f"not settings gpulease reads: {unknown}"
    for component, pod in pods(target).items():
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, (component, volume)
        for c in containers(pod):
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps, (component, source)
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, (component, source)
            for var in c.get("env", []):
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secrets, (component, var)
                    assert ref["key"] in by_kind(target, "Secret")[ref["name"]]["data"], (component, var)
        if component in ("bot", "worker"):
            main = pod["containers"][0]
            mount = next(m for m in main["volumeMounts"] if m["name"] == "policy")
            assert f"{mount['mountPath']}/policy.yaml" == settings["data"]["GPULEASE_POLICY_FILE"]
            assert next(v for v in pod["volumes"] if v["name"] == "policy")["configMap"]["name"] == \
                policy["metadata"]["name"]
    # The bot and workers need all four secrets; beat only the broker (and its migration the store).
    assert set(secret["data"]) == {"GPULEASE_DATABASE_URL", "GPULEASE_BROKER_URL",
                                   "GPULEASE_SLACK_BOT_TOKEN", "GPULEASE_SLACK_SIGNING_SECRET"}


@pytest.mark.parametrize("target", TARGETS)
def test_secrets_are_placeholders(target: str) -> None:
    import base64

    secret = generated(target, "Secret", "gpulease-secrets")
    for key, value in secret["data"].items():
        assert "REPLACE_ME" in base64.b64decode(value).decode(), f"{key} looks like a real secret"


@pytest.mark.parametrize("target", TARGETS)
def test_policy_config_map_is_a_valid_policy(target: str, tmp_path: Path) -> None:
    text = generated(target, "ConfigMap", "gpulease-policy")["data"]["policy.yaml"]
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    policy = load_checked_policy(path)  # PolicyError names the file and field if not
    assert policy.tiers
    # The in-cluster client is chosen when the policy's cluster names no URL or context.
    assert all(c.api_url is None and c.context is None for c in policy.clusters)


def test_base_policy_is_the_example() -> None:
    copied = (DEPLOY / "base" / "policy.yaml").read_text()
    assert copied == EXAMPLE_POLICY.read_text(), "run: cp config/examples/policy.yaml deploy/base/policy.yaml"


@pytest.mark.parametrize("target", TARGETS)
def test_bot_service_reaches_the_bot(target: str) -> None:
    [service] = by_kind(target, "Service").values()
    bot = next(d for d in by_kind(target, "Deployment").values()
               if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "bot")
    labels = bot["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    names = {p["name"] for p in bot["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert all(p["targetPort"] in names for p in service["spec"]["ports"])


def _replicas(target: str) -> dict[str, int]:
    return {d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["replicas"]
            for d in by_kind(target, "Deployment").values()}


def _requests(target: str) -> dict[str, dict[str, str]]:
    return {k: pod["containers"][0]["resources"]["requests"] for k, pod in pods(target).items()}


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_overlays_scale_as_promised() -> None:
    staging, production = _replicas("overlays/staging"), _replicas("overlays/production")
    assert staging == {"bot": 1, "worker": 1, "beat": 1}
    assert production["bot"] >= 3 and production["worker"] > staging["worker"] and production["beat"] == 1
    small, big = _requests("overlays/staging"), _requests("overlays/production")
    for component in COMPONENTS:
        for resource in ("cpu", "memory"):
            assert _quantity(small[component][resource]) < _quantity(big[component][resource]), (component, resource)
    assert by_kind("overlays/staging", "PodDisruptionBudget") == {}


def test_production_budgets_cover_bot_and_worker() -> None:
    budgets = by_kind("overlays/production", "PodDisruptionBudget")
    covered = set()
    for pdb in budgets.values():
        selector = pdb["spec"]["selector"]["matchLabels"]
        matching = [k for k, pod in pods("overlays/production").items() if k == selector.get("app.kubernetes.io/component")]
        assert matching, f"{pdb['metadata']['name']} selects no pods"
        assert pdb["spec"].get("maxUnavailable") == 1
        covered.update(matching)
    assert covered == {"bot", "worker"}


@pytest.mark.parametrize("target", TARGETS)
def test_everything_namespaced_is_in_one_namespace(target: str) -> None:
    namespaces = {d["metadata"].get("namespace") for d in documents(target)
                  if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding")}
    assert namespaces == {"gpulease"}


def test_overlays_keep_the_base_files_they_patch() -> None:
    """Every patch file an overlay lists exists and names an object of the base."""
    base_names = {(d["kind"], d["metadata"]["name"]) for d in documents("base")}
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load((DEPLOY / overlay / "kustomization.yaml").read_text())
        for patch in kustomization.get("patches", []):
            for obj in yaml.safe_load_all((DEPLOY / overlay / patch["path"]).read_text()):
                assert (obj["kind"], obj["metadata"]["name"]) in base_names, (overlay, patch["path"])
