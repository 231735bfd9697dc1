"""The ownership guard as a pure check, and the GitOps renderer on a temporary directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from config.policy import PinningMechanism, Policy
from leases.errors import DomainError
from provisioners.bundle import OwnershipError, check_owned, render
from provisioners.gitops import lease_files, relabel_bundle, remove_bundle, write_bundle
from tests.unit.provisioners.conftest import LEASE_ID, make_spec


def ns(labels: dict[str, str] | None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml-alice-1", "labels": labels}}


def test_guard_accepts_the_lease_namespace(policy: Policy) -> None:
    labels = {"app.kubernetes.io/managed-by": "gpulease", "gpulease.io/lease": LEASE_ID}
    check_owned(ns(labels), make_spec(policy))


@pytest.mark.parametrize(
    ("labels", "label", "words"),
    [
        (None, "app.kubernetes.io/managed-by", "no app.kubernetes.io/managed-by label"),
        ({"gpulease.io/lease": LEASE_ID}, "app.kubernetes.io/managed-by", "not managed by gpulease"),
        ({"app.kubernetes.io/managed-by": "helm", "gpulease.io/lease": LEASE_ID},
         "app.kubernetes.io/managed-by", "app.kubernetes.io/managed-by=helm"),
        ({"app.kubernetes.io/managed-by": "gpulease"}, "gpulease.io/lease", "no gpulease.io/lease label"),
        ({"app.kubernetes.io/managed-by": "gpulease", "gpulease.io/lease": "another"},
         "gpulease.io/lease", "gpulease.io/lease=another"),
    ],
)
def test_guard_refuses_anything_else_naming_namespace_and_label(policy: Policy, labels, label, words) -> None:
    with pytest.raises(OwnershipError) as raised:
        check_owned(ns(labels), make_spec(policy))
    assert isinstance(raised.value, DomainError)
    assert raised.value.namespace == "ml-alice-1"
    assert raised.value.label == label
    assert "ml-alice-1" in str(raised.value)
    assert words in str(raised.value)


def test_gitops_writes_one_file_per_object_and_a_kustomization(policy: Policy, tmp_path: Path) -> None:
    spec = make_spec(policy)
    folder = write_bundle(spec, root=tmp_path)
    assert folder == tmp_path / "sandbox" / "ml-alice-1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "00-namespace.yaml", "01-resourcequota.yaml", "02-resourcequota.yaml", "03-limitrange.yaml",
        "04-networkpolicy.yaml", "05-rolebinding.yaml", "kustomization.yaml",
    ]
    objects = [yaml.safe_load((folder / name).read_text()) for name in sorted(lease_files(spec))[:-1]]
    assert objects == render(spec)
    for obj in objects:
        kubernetes_validate.validate(obj, "1.36", strict=True)
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert kustomization["resources"] == sorted(lease_files(spec))[:-1]
    top = yaml.safe_load((tmp_path / "sandbox" / "kustomization.yaml").read_text())
    assert top["resources"] == ["ml-alice-1"]
    assert not (tmp_path / "sandbox" / "_cluster").exists()


def test_gitops_output_is_byte_identical_and_not_rewritten(policy: Policy, tmp_path: Path) -> None:
    spec = make_spec(policy)
    a, b = tmp_path / "a", tmp_path / "b"
    write_bundle(spec, root=a)
    write_bundle(make_spec(policy), root=b)
    files_a = {p.relative_to(a): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b): p.read_bytes() for p in b.rglob("*") if p.is_file()}
    assert files_a == files_b
    mtimes = {p: p.stat().st_mtime_ns for p in a.rglob("*.yaml")}
    write_bundle(spec, root=a)
    assert {p: p.stat().st_mtime_ns for p in a.rglob("*.yaml")} == mtimes
    assert "sort" not in files_a[Path("sandbox/ml-alice-1/00-namespace.yaml")].decode()


def test_gitops_rerender_follows_a_changed_spec(policy: Policy, tmp_path: Path) -> None:
    spec = make_spec(policy)
    folder = write_bundle(spec, root=tmp_path)
    write_bundle(dataclasses.replace(spec, units=4), root=tmp_path)
    quota = yaml.safe_load((folder / "01-resourcequota.yaml").read_text())
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "4"


def test_gitops_admission_policy_goes_to_the_cluster_folder(policy: Policy, tmp_path: Path) -> None:
    spec = dataclasses.replace(make_spec(policy), pinning=PinningMechanism.MUTATING_ADMISSION_POLICY)
    write_bundle(spec, root=tmp_path)
    cluster = tmp_path / "sandbox" / "_cluster"
    assert sorted(p.name for p in cluster.iterdir()) == [
        "00-mutatingadmissionpolicy.yaml", "01-mutatingadmissionpolicybinding.yaml", "kustomization.yaml",
    ]
    assert sorted(p.name for p in (tmp_path / "sandbox" / "ml-alice-1").iterdir())[0] == "00-namespace.yaml"
    top = yaml.safe_load((tmp_path / "sandbox" / "kustomization.yaml").read_text())
    assert top["resources"] == ["_cluster", "ml-alice-1"]


def test_gitops_teardown_removes_only_the_lease_folder(policy: Policy, tmp_path: Path) -> None:
    spec = make_spec(policy)
    other = make_spec(policy, lease_id="fedcba", namespace="vision-carol")
    write_bundle(spec, root=tmp_path)
    write_bundle(other, root=tmp_path)
    assert remove_bundle(spec, root=tmp_path) is True
    assert not (tmp_path / "sandbox" / "ml-alice-1").exists()
    assert (tmp_path / "sandbox" / "vision-carol" / "00-namespace.yaml").exists()
    top = yaml.safe_load((tmp_path / "sandbox" / "kustomization.yaml").read_text())
    assert top["resources"] == ["vision-carol"]
    assert remove_bundle(spec, root=tmp_path) is False


def test_gitops_refuses_a_folder_of_another_lease(policy: Policy, tmp_path: Path) -> None:
    write_bundle(make_spec(policy, lease_id="someone-else"), root=tmp_path)
    spec = make_spec(policy)
    before = (tmp_path / "sandbox" / "ml-alice-1" / "00-namespace.yaml").read_bytes()
    with pytest.raises(OwnershipError, match="gpulease.io/lease=someone-else"):
        write_bundle(spec, root=tmp_path)
    with pytest.raises(OwnershipError):
        remove_bundle(spec, root=tmp_path)
    with pytest.raises(OwnershipError):
        relabel_bundle(spec, root=tmp_path)
    assert (tmp_path / "sandbox" / "ml-alice-1" / "00-namespace.yaml").read_bytes() == before


def test_gitops_relabel_rewrites_only_the_namespace_file_and_creates_no_folder(policy: Policy, tmp_path: Path) -> None:
    spec = make_spec(policy)
    assert relabel_bundle(spec, root=tmp_path) is False
    assert not (tmp_path / "sandbox").exists()
    folder = write_bundle(spec, root=tmp_path)
    (folder / "01-resourcequota.yaml").write_text("# kept as it is\n")
    later = dataclasses.replace(spec, expires_at=spec.expires_at.replace(year=2031), cpu_per_unit="99")
    assert relabel_bundle(later, root=tmp_path) is True
    namespace = yaml.safe_load((folder / "00-namespace.yaml").read_text())
    assert namespace["metadata"]["annotations"]["gpulease.io/expires-at"].startswith("2031-")
    assert (folder / "01-resourcequota.yaml").read_text() == "# kept as it is\n"


def test_gitops_refuses_a_folder_it_did_not_write(policy: Policy, tmp_path: Path) -> None:
    folder = tmp_path / "sandbox" / "ml-alice-1"
    folder.mkdir(parents=True)
    (folder / "app.yaml").write_text("kind: ConfigMap\n")
    with pytest.raises(OwnershipError, match="no gpulease namespace file"):
        remove_bundle(make_spec(policy), root=tmp_path)
    assert (folder / "app.yaml").exists()
