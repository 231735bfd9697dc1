"""GitOps mode: write a lease's bundle as YAML files for Argo CD / Flux instead of applying it.

Layout under the GitOps directory (settings `gitops_dir`):

    <dir>/<cluster>/kustomization.yaml           every folder below, sorted
    <dir>/<cluster>/_cluster/                    cluster-wide pinning policy and binding
    <dir>/<cluster>/<namespace>/00-namespace.yaml, 01-resourcequota.yaml, ..., kustomization.yaml

`_cluster` cannot clash with a namespace: `_` is not allowed in namespace names. Output is
byte-identical for the same spec (sorted keys, fixed order, no timestamps besides the
lease's expiry), and files whose content is unchanged are not rewritten, so a re-render makes
no commit. Removing a lease's folder (or rewriting only its namespace file) is guarded like
the cluster: only a folder whose namespace file carries this lease's labels is touched.

Removing the folder does not remove the namespace: Argo CD or Flux deletes it (with the GPU
pods in it) only when pruning is on, and at their next sync. `wait_pruned` watches for that,
reading the cluster and never writing to it, so that a reclaim gives the lease's units back
only once the namespace is gone; without pruning it is never gone, and the wait says so.

May import leases and config (through provisioners). Imported by workflows.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient

from config.policy import PinningMechanism
from provisioners.bundle.guard import OwnershipError, check_owned, is_terminating, read_namespace
from provisioners.bundle.render import render, render_cluster_objects
from provisioners.bundle.spec import BundleSpec
from provisioners.bundle.teardown import wait_until_gone
from provisioners.kube import RetryPolicy

logger = logging.getLogger(__name__)

CLUSTER_FOLDER = "_cluster"
KUSTOMIZATION = "kustomization.yaml"


def render_files(objects: list[dict[str, Any]], *, header: str) -> dict[str, str]:
    """Return file name → YAML text for objects, in order, plus their kustomization."""
    files: dict[str, str] = {}
    for index, obj in enumerate(objects):
        files[f"{index:02d}-{obj['kind'].lower()}.yaml"] = header + _dump(obj)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(files),
    }
    files[KUSTOMIZATION] = header + _dump(kustomization)
    return files


def lease_files(spec: BundleSpec) -> dict[str, str]:
    """Return the files of a lease's folder (namespaced objects and the namespace)."""
    objects = [o for o in render(spec) if o["kind"] not in _CLUSTER_KINDS]
    return render_files(objects, header=f"# Rendered by gpulease for lease {spec.lease_id}. Do not edit.\n")


def cluster_files() -> dict[str, str]:
    """Return the files of the cluster-wide folder (mutating-admission-policy pinning)."""
    return render_files(render_cluster_objects(), header="# Rendered by gpulease. Do not edit.\n")


def write_bundle(spec: BundleSpec, *, root: Path) -> Path:
    """Write the lease's bundle under root/<cluster>/<namespace>/ and return that folder."""
    cluster_dir = Path(root) / spec.cluster
    folder = cluster_dir / spec.namespace
    _guard_folder(folder, spec)
    if spec.pinning is PinningMechanism.MUTATING_ADMISSION_POLICY:
        _sync_folder(cluster_dir / CLUSTER_FOLDER, cluster_files())
    _sync_folder(folder, lease_files(spec))
    _write_cluster_kustomization(cluster_dir)
    return folder


def relabel_bundle(spec: BundleSpec, *, root: Path) -> bool:
    """Rewrite only the namespace file of the lease's folder (labels, annotations such as the
    expiry) and keep its other files as they are; False when there is no folder, which is then
    not created."""
    folder = Path(root) / spec.cluster / spec.namespace
    if not folder.exists():
        return False
    _guard_folder(folder, spec)
    name, text = next(iter(lease_files(spec).items()))  # the namespace comes first
    _write_if_changed(folder / name, text)
    return True


def remove_bundle(spec: BundleSpec, *, root: Path) -> bool:
    """Remove the lease's folder (only if it is this lease's); False if there was none."""
    cluster_dir = Path(root) / spec.cluster
    folder = cluster_dir / spec.namespace
    if not folder.exists():
        return False
    _guard_folder(folder, spec)
    shutil.rmtree(folder)
    _write_cluster_kustomization(cluster_dir)
    return True


def wait_pruned(
    api_client: ApiClient,
    spec: BundleSpec,
    *,
    root: Path,
    timeout: float = 300.0,
    poll: float = 1.0,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Wait until the lease's namespace is gone from the cluster once its folder is (Argo CD or
    Flux prunes it), reading only; False if it was not there.

    Gone is a 404 or a namespace of that name with another uid (created by someone else since).
    A namespace of that name that is not this lease's raises OwnershipError; one still there
    after `timeout` raises TemporaryError, saying why and what to do."""
    retry = retry or RetryPolicy()
    current = read_namespace(api_client, spec, retry=retry)  # the ownership guard
    if current is None:
        return False
    wait_until_gone(
        api_client, spec, uid=(current.get("metadata") or {}).get("uid"), timeout=timeout, poll=poll,
        retry=retry, sleep=sleep, clock=clock,
        still_there=lambda seen: _not_pruned(spec, seen, root=Path(root), timeout=timeout),
    )
    logger.info(
        "lease.gitops.pruned lease=%s namespace=%s", spec.lease_id, spec.namespace,
        extra={"event": "lease.gitops.pruned", "lease_id": spec.lease_id, "namespace": spec.namespace},
    )
    return True


def _not_pruned(spec: BundleSpec, seen: dict[str, Any], *, root: Path, timeout: float) -> str:
    """Say why the namespace is still there and what to do about it."""
    if is_terminating(seen):
        return (
            f"namespace {spec.namespace} is still terminating {timeout:.0f}s after its GitOps folder was "
            "removed: something in it holds it (finalizers); remove what holds it or delete it by hand"
        )
    return (
        f"namespace {spec.namespace} is still in cluster {spec.cluster} {timeout:.0f}s after its GitOps "
        f"folder {root / spec.cluster / spec.namespace} was removed: Argo CD or Flux has not pruned it. "
        f"Turn pruning on where they sync {root / spec.cluster} (Argo CD: syncPolicy.automated.prune; "
        "Flux: Kustomization spec.prune), or delete the namespace by hand"
    )


_CLUSTER_KINDS = frozenset({"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"})


def _guard_folder(folder: Path, spec: BundleSpec) -> None:
    if not folder.exists():
        return
    namespace_file = folder / next(iter(lease_files(spec)))
    try:
        obj = yaml.safe_load(namespace_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        obj = None
    if not isinstance(obj, dict) or obj.get("kind") != "Namespace":
        raise OwnershipError(
            f"GitOps folder {folder} holds no gpulease namespace file; it is left untouched",
            namespace=spec.namespace, label="", found=None,
        )
    check_owned(obj, spec)


def _sync_folder(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        _write_if_changed(folder / name, text)
    # Files of kinds the bundle no longer has must go, or the folder would keep applying them.
    for stale in folder.glob("*.yaml"):
        if stale.name not in files:
            stale.unlink()


def _write_cluster_kustomization(cluster_dir: Path) -> None:
    if not cluster_dir.exists():
        return
    folders = sorted(p.name for p in cluster_dir.iterdir() if (p / KUSTOMIZATION).is_file())
    target = cluster_dir / KUSTOMIZATION
    if not folders:
        target.unlink(missing_ok=True)
        return
    text = "# Rendered by gpulease. Do not edit.\n" + _dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": folders}
    )
    _write_if_changed(target, text)


def _write_if_changed(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    if path.exists() and path.read_bytes() == data:
        return
    # Write then rename, so a reader (or a crash) never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dump(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1000)


__all__ = [
    "cluster_files",
    "lease_files",
    "relabel_bundle",
    "remove_bundle",
    "render_files",
    "wait_pruned",
    "write_bundle",
]
