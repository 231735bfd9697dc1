"""`gpulease doctor` against the sandbox stack: passes, and names the setting that is broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config.settings import EXAMPLE_POLICY
from leases.store import make_engine, session_scope, upgrade
from sandbox.kube import KubeSandbox
from sandbox.slack import SlackSandbox
from tests.integration.sandbox.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def stack(tmp_path):
    db = f"sqlite:///{tmp_path / 'gpulease.db'}"
    upgrade(db)
    with KubeSandbox(port=0) as kube, SlackSandbox(port=0) as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
        env.update({
            "GPULEASE_DATABASE_URL": db,
            "GPULEASE_KUBE_API_URL": kube.url,
            "GPULEASE_SLACK_API_URL": slack.url,
            "GPULEASE_SLACK_BOT_TOKEN": "xoxb-sandbox-token",
            "GPULEASE_SLACK_SIGNING_SECRET": "sandbox-secret",
        })
        yield env, kube


def doctor(env: dict) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "gpulease", "doctor", "--json"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, json.loads(result.stdout)


def write_policy(tmp_path: Path, change) -> str:
    data = yaml.safe_load(EXAMPLE_POLICY.read_text())
    change(data)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def by_name(report: dict) -> dict:
    return {c["name"]: c for c in report["checks"]}


def test_doctor_passes_against_the_sandbox_stack(stack):
    env, _ = stack
    code, report = doctor(env)
    checks = by_name(report)
    assert code == 0, report
    assert all(c["ok"] for c in report["checks"])
    assert "required permissions granted" in checks["permissions"]["detail"]
    assert "PodNodeSelector in force" in checks["pinning"]["detail"]
    assert "GPU nodes serving" in checks["gpu nodes"]["detail"]
    assert "auth.test ok" in checks["slack"]["detail"]


@pytest.mark.parametrize(
    ("change", "check", "needle"),
    [
        ({"GPULEASE_BROKER_URL": "redis://127.0.0.1:1/0"}, "broker", "GPULEASE_BROKER_URL"),
        ({"GPULEASE_SLACK_BOT_TOKEN": "xoxb-wrong"}, "slack", "GPULEASE_SLACK_BOT_TOKEN"),
        ({"GPULEASE_KUBE_API_URL": "http://127.0.0.1:1"}, "cluster", "GPULEASE_KUBE_API_URL"),
        ({"GPULEASE_KUBE_RETRY_ATTEMPTS": "many"}, "settings", "GPULEASE_KUBE_RETRY_ATTEMPTS"),
        ({"GPULEASE_POLICY_FILE": "/nonexistent/policy.yaml"}, "policy", "/nonexistent/policy.yaml"),
    ],
)
def test_doctor_names_the_broken_setting(stack, change, check, needle):
    env, _ = stack
    code, report = doctor(env | change)
    assert code == 1
    failing = by_name(report)[check]
    assert not failing["ok"]
    assert needle in failing["detail"] + (failing["fix"] or "")


def test_doctor_reports_missing_permissions_and_migrations(stack, tmp_path):
    env, kube = stack
    kube.deny("patch", "nodes", enforce=False)
    # Server-side apply creates the bundle's objects, for which the API server checks `create`.
    kube.deny("create", "rolebindings", enforce=False)
    code, report = doctor(env | {"GPULEASE_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"})
    checks = by_name(report)
    assert code == 1
    assert "patch nodes" in checks["permissions"]["detail"]
    assert "create rolebindings.rbac.authorization.k8s.io" in checks["permissions"]["detail"]
    assert checks["database"]["fix"].startswith("run `gpulease db upgrade` to create one there")


def probe_namespaces(kube) -> list[str]:
    return [n["metadata"]["name"] for n in kube.list("namespaces")
            if n["metadata"]["name"].startswith("gpulease-doctor-")]


def test_doctor_fails_when_pinning_is_not_in_force(stack):
    env, kube = stack
    kube.disable_admission("PodNodeSelector")  # kube-apiserver's default; unavailable on EKS
    code, report = doctor(env)
    pinning = by_name(report)["pinning"]
    assert code == 1
    assert not pinning["ok"] and not pinning["skipped"]
    assert "PodNodeSelector admission plugin is off" in pinning["detail"]
    assert "--enable-admission-plugins" in pinning["fix"]
    # The probe was a dry run: no pod anywhere, and its namespace is deleted.
    assert not [p for p in kube.list("pods") if p["metadata"]["namespace"].startswith("gpulease-doctor-")]
    wait_until(lambda: not probe_namespaces(kube))


def test_doctor_without_pod_create_says_pinning_is_unverified(stack):
    env, kube = stack
    kube.deny("create", "pods")  # gpulease's own ClusterRole grants no pod creation
    code, report = doctor(env)
    pinning = by_name(report)["pinning"]
    assert code == 0, report
    assert pinning["skipped"] and "pinning not verified" in pinning["detail"]
    assert "administrator's kubeconfig" in pinning["fix"]
    wait_until(lambda: not probe_namespaces(kube))


def test_an_unreachable_database_is_reported_with_its_fix_and_no_password(stack):
    env, _ = stack
    url = "postgresql+psycopg://gpulease:s3cret@127.0.0.1:1/gpulease"
    code, report = doctor(env | {"GPULEASE_DATABASE_URL": url})
    database = by_name(report)["database"]
    assert code == 1 and not database["ok"]
    assert database["detail"].startswith(
        "cannot read the schema revision of the state store at postgresql+psycopg://gpulease:***@127.0.0.1:1/gpulease: "
    )
    assert database["fix"] == "check that the database is running and reachable there, and that " \
        "GPULEASE_DATABASE_URL is right"
    assert "s3cret" not in json.dumps(report)


def test_a_store_from_a_newer_release_is_not_told_to_upgrade(stack, tmp_path):
    env, _ = stack
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        session.connection().exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfacef00d'")
    engine.dispose()
    code, report = doctor(env | {"GPULEASE_DATABASE_URL": url})
    database = by_name(report)["database"]
    assert code == 1 and not database["ok"]
    assert "is at revision f00dfacef00d, newer than this release's newest" in database["detail"]
    assert "db upgrade" not in database["fix"]
    assert database["fix"].startswith("run the gpulease release that migrated it")


def test_doctor_never_creates_a_sqlite_store(stack, tmp_path):
    env, _ = stack
    empty = tmp_path / "empty"
    empty.mkdir()
    # The default URL, sqlite:///./gpulease.db, run in an empty directory.
    env = {k: v for k, v in env.items() if k != "GPULEASE_DATABASE_URL"} | {"PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "gpulease", "doctor", "--json"], env=env, cwd=empty,
                            capture_output=True, text=True, timeout=120)
    database = by_name(json.loads(result.stdout))["database"]
    assert result.returncode == 1 and not database["ok"]
    assert database["detail"] == f"no state store at {empty / 'gpulease.db'}"
    assert database["fix"].startswith("run `gpulease db upgrade` to create one there")
    assert list(empty.iterdir()) == [], "doctor created a file"


def test_every_cluster_of_the_policy_is_checked_and_named(stack, tmp_path):
    env, _ = stack
    far = {"name": "far", "api_url": "http://127.0.0.1:1"}
    policy = write_policy(tmp_path, lambda d: d["clusters"].append(far))
    code, report = doctor(env | {"GPULEASE_POLICY_FILE": policy})
    checks = {(c["name"], c["cluster"]): c for c in report["checks"]}
    assert code == 1
    for name in ("cluster", "permissions", "pinning", "gpu nodes"):
        assert checks[(name, "sandbox")]["ok"] and not checks[(name, "sandbox")]["skipped"], name
    assert not checks[("cluster", "far")]["ok"]
    assert "clusters[1].api_url" in checks[("cluster", "far")]["fix"]
    for name in ("permissions", "pinning", "gpu nodes"):
        assert checks[(name, "far")]["skipped"], name
    assert {c["cluster"] for c in report["checks"] if c["name"] in ("settings", "database", "slack")} == {None}


def test_the_table_prints_findings_as_written(stack, tmp_path):
    env, _ = stack
    policy = write_policy(tmp_path, lambda d: d["teams"][0].update(name="[/b]ml[a-z0-9]"))
    result = subprocess.run([sys.executable, "-m", "gpulease", "doctor"], env=env | {"GPULEASE_POLICY_FILE": policy},
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    flat = "".join(result.stdout.replace("│", " ").split())
    assert "'[/b]ml[a-z0-9]'mustbeaDNSlabel" in flat
