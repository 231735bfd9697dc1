"""`gpulease render`: write a lease's bundle as YAML files for GitOps (Argo CD, Flux)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
import yaml

from config.policy import PolicyError
from config.settings import load_settings
from gpulease.console import err, out
from gpulease.wiring import load_checked_policy
from provisioners.bundle import spec_from
from provisioners.gitops import write_bundle

FIELDS = ("lease_id", "namespace", "tier", "team", "requester", "email", "units", "expires_at")


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


def render(
    lease_file: Path = typer.Option(..., "--lease", help=f"YAML or JSON with {', '.join(FIELDS)} (and cluster)."),
    out_dir: Path = typer.Option(..., "--out", help="Root folder; files go to OUT/<cluster>/<namespace>/."),
    policy_file: Path | None = typer.Option(None, "--policy", help="Overrides GPULEASE_POLICY_FILE."),
) -> None:
    """Render a lease's namespace bundle as YAML files, byte-identical for the same lease."""
    try:
        policy = load_checked_policy(policy_file or load_settings().policy_file)
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    try:
        lease = yaml.safe_load(lease_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise _fail(f"cannot read {lease_file}: {exc}") from None
    if not isinstance(lease, dict):
        raise _fail(f"{lease_file} must hold a mapping with {', '.join(FIELDS)}")
    missing = [f for f in FIELDS if f not in lease]
    if missing:
        raise _fail(f"{lease_file} lacks {', '.join(missing)}")
    expires = lease["expires_at"]
    try:
        if not isinstance(expires, datetime):
            expires = datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        spec = spec_from(
            policy, lease_id=str(lease["lease_id"]), namespace=str(lease["namespace"]), cluster=lease.get("cluster"),
            tier=str(lease["tier"]), team=str(lease["team"]), requester=str(lease["requester"]),
            email=str(lease["email"]), units=int(lease["units"]), expires_at=expires,
        )
    except (KeyError, ValueError) as exc:
        raise _fail(f"{lease_file}: {exc}") from None
    folder = write_bundle(spec, root=out_dir)
    out.print(f"wrote {folder}", highlight=False)
